"""The arrays a whole model runs on: one per model input, in the model's own dtype.

A model may take several inputs (named, in ``model.inputs`` order) and integer ones (token
ids). Seeded float inputs are standard normal; seeded integer inputs are uniform in
``[0, high)`` where ``high`` is the smallest ``input_dim`` of the model's ``Embedding`` layers
(every id is then valid for each of them), or 10 where the model has none. A user's input
(``--input``) is a ``.npy`` (one input) or an ``.npz`` keyed by input name, never unpickled,
and must carry each input's own dtype.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conv_parity.errors import UsageError

#: The id range of a seeded integer input when the model has no Embedding to bound it.
DEFAULT_INT_HIGH = 10


@dataclass(frozen=True)
class ModelInput:
    """One input of a model: its name, declared shape (None for open dimensions), dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    @property
    def is_int(self) -> bool:
        return np.dtype(self.dtype).kind in "iu"


def model_inputs(model: Any) -> list[ModelInput]:
    """The model's inputs in ``model.inputs`` order; UsageError when it has none."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):  # an unbuilt Sequential or subclassed model
        inputs = None
    if not inputs:
        raise UsageError("the model has no defined input (a subclassed model that was never "
                         "built cannot be checked); save a functional or sequential model")
    found = []
    for i, tensor in enumerate(inputs):
        dtype = str(getattr(tensor, "dtype", None) or "float32")
        name = str(getattr(tensor, "name", None) or f"input_{i}").split(":")[0]
        found.append(ModelInput(name, tuple(tensor.shape), dtype))
    return found


def int_high(model: Any) -> int:
    """The exclusive upper bound of seeded integer ids: the smallest Embedding input_dim."""
    from conv_parity.workers.layer_tree import leaves

    dims = [int(layer.input_dim) for _, layer in leaves(model)
            if type(layer).__name__ == "Embedding" and getattr(layer, "input_dim", None)]
    return min(dims) if dims else DEFAULT_INT_HIGH


def seeded_inputs(specs: Sequence[ModelInput], shapes: Sequence[tuple[int, ...]],
                  seed: int = 0, high: int = DEFAULT_INT_HIGH) -> list[np.ndarray]:
    """One seeded array per input at ``shapes``: N(0, 1) floats, or ids in [0, high)."""
    out = []
    for i, (spec, shape) in enumerate(zip(specs, shapes)):
        rng = np.random.default_rng([seed, 20375, i])
        if spec.is_int:
            out.append(rng.integers(0, high, size=shape).astype(spec.dtype))
        else:
            dtype = spec.dtype if spec.dtype in ("float16", "float32", "float64") else "float32"
            out.append(rng.standard_normal(shape).astype(dtype))
    return out


def read_inputs(path: str | Path) -> np.ndarray | dict[str, np.ndarray]:
    """The array of a ``.npy`` or the arrays of an ``.npz`` (by name), never unpickled."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"--input {path}: no such file (give a .npy file saved with "
                         f"numpy.save, or an .npz keyed by input name)") from None
    except (ValueError, OSError, EOFError) as exc:
        text = " ".join(str(exc).split())[:300]
        raise UsageError(f"--input {path}: not a readable .npy array, nor an .npz of "
                         f"them ({text})") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        try:
            return {name: loaded[name] for name in loaded.files}
        except ValueError as exc:  # an object array inside the archive
            raise UsageError(f"--input {path}: {' '.join(str(exc).split())[:300]}") from None


def match_inputs(specs: Sequence[ModelInput],
                 given: np.ndarray | Mapping[str, np.ndarray] | Sequence[np.ndarray],
                 what: str = "--input") -> list[np.ndarray]:
    """The user's arrays in input order, each checked against its input's dtype and rank:
    one array for a one-input model, a mapping by input name, or one array per input."""
    if isinstance(given, np.ndarray):
        arrays = [given]
    elif isinstance(given, Mapping):
        names = [s.name for s in specs]
        if len(given) == 1 and len(specs) == 1:
            arrays = list(given.values())
        else:
            missing = [n for n in names if n not in given]
            extra = [n for n in given if n not in names]
            if missing or extra:
                raise UsageError(f"{what}: the model's inputs are {', '.join(names)}; "
                                 + (f"missing {', '.join(missing)}" if missing else "")
                                 + ("; " if missing and extra else "")
                                 + (f"unknown {', '.join(extra)}" if extra else ""))
            arrays = [given[n] for n in names]
    else:
        arrays = [np.asarray(a) for a in given]
    if len(arrays) != len(specs):
        raise UsageError(f"{what}: {len(arrays)} arrays for a model with {len(specs)} inputs "
                         f"({', '.join(s.name for s in specs)}); give an .npz keyed by input "
                         f"name")
    for spec, array in zip(specs, arrays):
        want = spec.dtype if (spec.is_int or spec.dtype in ("float16", "float32", "float64")
                              ) else "float32"
        if str(array.dtype) != want:
            raise UsageError(f"{what}: input {spec.name} has dtype {array.dtype}, but the "
                             f"model takes {want} there (save it as x.astype({want!r}))")
        if len(specs) > 1 and array.ndim != len(spec.shape):  # one input: extract's hint
            raise UsageError(f"{what}: input {spec.name} has rank {array.ndim} "
                             f"{tuple(array.shape)}, but the model takes rank "
                             f"{len(spec.shape)} {spec.shape}")
    return arrays
