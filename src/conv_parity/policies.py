"""Dtype policies: one record per Keras dtype policy a case can run under (issue 15, item 3).

A policy names two dtypes (Keras ``DTypePolicy``): the *compute* dtype the layer computes and
returns in, and the *variable* dtype its weights are stored in. The plain policies
(``float16``, ``bfloat16``, ``float32``, ``float64``) have one dtype for both; the mixed ones
(``mixed_float16``, ``mixed_bfloat16``) keep float32 variables and compute in half precision.

Why a record: the case, the worker, the comparison and the registry all need the same three
facts (compute dtype, variable dtype, the dtype an input is given in), and NumPy has no
bfloat16 of its own, so how arrays are rounded and carried is decided here once:

* every seeded array is rounded to the *compute* dtype (through ``ml_dtypes`` for bfloat16),
  so the backend computes with exactly the bits the float64 reference sees;
* it is carried in :func:`numpy_dtype` of the *variable* dtype (float32 for bfloat16: the
  ``.npy`` wire has no bfloat16), and the worker converts it to the tensor dtype it needs.

A layer's input is given in the variable dtype: float32 under a mixed policy, as the input of a
mixed-precision model is, and the layer casts it. Ops have no policy: an op case runs both
arrays in the compute dtype of a plain policy; a mixed policy is refused for ops (a float32
variable is a layer's), and the input / kernel dtype mixes of ops are checked by
:mod:`conv_parity.mixed_dtypes` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conv_parity.errors import UsageError
from conv_parity.integers import INT_DTYPES


@dataclass(frozen=True)
class Policy:
    """A Keras dtype policy: its name, compute dtype and variable dtype."""

    name: str
    compute: str
    variable: str

    @property
    def mixed(self) -> bool:
        return self.compute != self.variable


#: Every policy a case can run under, in the order profiles and messages list them.
POLICIES: dict[str, Policy] = {p.name: p for p in (
    Policy("float16", "float16", "float16"),
    Policy("bfloat16", "bfloat16", "bfloat16"),
    Policy("mixed_float16", "float16", "float32"),
    Policy("mixed_bfloat16", "bfloat16", "float32"),
    Policy("float32", "float32", "float32"),
    Policy("float64", "float64", "float64"),
    # Integer policies (docs/integer-dtypes.md): Keras takes uint8 / int32 / int64 as plain
    # policies; a layer refuses "int8" (it names the int8 quantization mode), an op takes it.
    *(Policy(name, name, name) for name in INT_DTYPES),
)}
#: The float compute dtypes (a case's ``dtype``; the integer ones are :data:`INT_DTYPES`).
DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")
#: Every compute dtype a case can run in.
ALL_DTYPES: tuple[str, ...] = DTYPES + INT_DTYPES


def get(name: str) -> Policy:
    """The policy called ``name``; an unknown one is a UsageError listing them."""
    try:
        return POLICIES[name]
    except KeyError:
        raise UsageError(f"unknown dtype policy {name!r}; choose from "
                         f"{', '.join(POLICIES)}") from None


def name_of(value: object) -> object:
    """A ``dtype`` as a case file or a pasted ``get_config()`` writes it: a ``DTypePolicy``
    dict gives its policy's name (``{"class_name": "DTypePolicy", "config": {"name":
    "mixed_bfloat16"}}`` -> ``"mixed_bfloat16"``); anything else is returned as is."""
    if not isinstance(value, dict):
        return value
    config = value.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    if value.get("class_name") not in ("DTypePolicy", "FloatDTypePolicy") or name is None:
        raise UsageError(f"dtype must be a dtype policy name or a DTypePolicy config, got "
                         f"{value!r}")
    return name


def parse(spec: str | None) -> list[str] | None:
    """The policies a ``--policies`` / ``--conv-policies`` value names, in order, each checked;
    None for no value. ``parse("float32, mixed_bfloat16") == ["float32", "mixed_bfloat16"]``."""
    if spec is None:
        return None
    names = list(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))
    if not names:
        raise UsageError(f"no dtype policy given; choose from {', '.join(POLICIES)}")
    for name in names:
        get(name)
    return names


def numpy_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype arrays of ``dtype`` travel in: float32 for bfloat16, which NumPy lacks
    (its values are bfloat16-exact, so nothing is lost). ``numpy_dtype("bfloat16") == float32``."""
    return np.dtype(np.float32 if dtype == "bfloat16" else dtype)


def _exact_dtype(dtype: str) -> np.dtype:
    if dtype == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def round_to(a: np.ndarray, dtype: str) -> np.ndarray:
    """``a`` rounded (to nearest) to ``dtype`` and returned as :func:`numpy_dtype` of it."""
    return np.asarray(a).astype(_exact_dtype(dtype)).astype(numpy_dtype(dtype))


def finfo(dtype: str | np.dtype) -> tuple[float, float]:
    """(eps, smallest normal) of a float dtype, bfloat16 included: eps(bfloat16) == 2**-7.
    NumPy's own dtypes skip importing ml_dtypes (seconds on a loaded machine: a warm ``check``
    would spend most of its time there)."""
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    if name in ("float16", "float32", "float64"):
        info = np.finfo(np.dtype(name))
        return float(info.eps), float(info.tiny)
    import ml_dtypes

    info = ml_dtypes.finfo(_exact_dtype(name))
    return float(info.eps), float(info.tiny)


def for_numpy(a: np.ndarray) -> np.ndarray:
    """An array the ``.npy`` wire can carry: bfloat16 (ml_dtypes) widened to float32, exactly."""
    a = np.asarray(a)
    return a.astype(np.float32) if a.dtype.name == "bfloat16" else a


__all__ = ["ALL_DTYPES", "DTYPES", "INT_DTYPES", "POLICIES", "Policy", "finfo", "for_numpy", "get", "name_of",
           "numpy_dtype", "parse", "round_to"]
