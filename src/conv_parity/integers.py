"""Integer dtypes (issue 23, item 3): which integers a case holds and what Keras promises.

Keras's convolution and pooling ops take integer tensors on some backends, and every one of
their ``compute_output_spec`` (``keras/src/ops/nn.py``: ``Conv``, ``ConvTranspose``,
``DepthwiseConv``, ``SeparableConv``, ``MaxPool``, ``AveragePool``) returns
``KerasTensor(shape, dtype=inputs.dtype)``: the result has the input's dtype. That is the
spec's dtype for every integer case, average pooling and the global pools included (their
symbolic output claims the input dtype too, while their eager ``ops.mean`` returns float32).

The spec's values are exact integer arithmetic: inputs and kernels are small seeded integers
(:func:`ranges`) chosen so that no product, partial sum, intermediate (separable's depthwise
stage) or result leaves the dtype, so a backend that accumulates in the dtype itself stays
exact. The float64 reference is then exact too (every partial sum is an integer below 2**53).
Average pooling's answer is the exact mean: Keras documents no rounding, so a backend that
returns an integer is compared with the true mean and the report says which rounding its
output matches (:func:`rounding_of`).

Why some cases are not drawn or refused:

* a *layer* under ``dtype="int8"``: Keras reads the policy name ``int8`` as the int8
  quantization mode and raises in the constructor on every backend (``DTypePolicy`` →
  ``QuantizedDTypePolicy``), so the spec rejects it (:func:`keras_refusal`) and the grid
  does not draw it; ``uint8`` / ``int32`` / ``int64`` layers are plain policies;
* mode ``grad``: an integer function has no gradient (refused by ``ConvCase.make``);
* value regimes other than ``normal``: NaN, inf and "large" have no integer meaning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from conv_parity import kinds
from conv_parity.errors import InvalidConfig, UsageError
from conv_parity.reference._geometry import build

#: The integer compute dtypes a case can run in.
INT_DTYPES: tuple[str, ...] = ("int8", "uint8", "int32", "int64")
#: The largest input magnitude per dtype (the issue's ranges: int8 in [-4, 4], uint8 in [0, 8]).
INPUT_MAX = {"int8": 4, "uint8": 8, "int32": 4, "int64": 4}
#: The largest kernel (and bias) magnitude before :func:`ranges` narrows it.
KERNEL_MAX = 4


def is_integer(dtype: str) -> bool:
    """Whether ``dtype`` is one of :data:`INT_DTYPES`: ``is_integer("uint8") is True``."""
    return dtype in INT_DTYPES


def signed(dtype: str) -> bool:
    """Whether an integer dtype holds negative values (uint8 does not)."""
    return not dtype.startswith("u")


def dtype_max(dtype: str) -> int:
    """The largest value of an integer dtype: ``dtype_max("int8") == 127``."""
    return int(np.iinfo(np.dtype(dtype)).max)


def worst_case(terms: int, stages: int, a: int, b: int, bias: bool) -> int:
    """The largest magnitude any partial sum reaches: ``terms`` products of an input of
    magnitude ``a`` and ``stages`` kernels of magnitude ``b`` (separable: two), plus a bias of
    magnitude ``b``. ``worst_case(18, 1, 4, 1, True) == 73``."""
    return terms * a * b ** stages + (b if bias else 0)


def ranges(dtype: str, terms: int, stages: int, bias: bool) -> tuple[int, int]:
    """(input magnitude, kernel magnitude): the widest ranges, kernels narrowed first, whose
    :func:`worst_case` fits ``dtype``; a pool (``stages == 0``) sums ``terms`` inputs. A
    UsageError names the case's size when even ones and zeros could overflow."""
    top = dtype_max(dtype)
    a, b = INPUT_MAX[dtype], (KERNEL_MAX if stages else 1)
    while worst_case(terms, stages, a, b, bias) > top and b > 1:
        b -= 1
    while worst_case(terms, stages, a, b, bias) > top and a > 1:
        a -= 1
    if worst_case(terms, stages, a, b, bias) > top:
        raise UsageError(
            f"an exact {dtype} result is not guaranteed: one output sums {terms} products and "
            f"{dtype} holds at most {top}; use a smaller kernel or fewer channels, or "
            f"--dtype int32")
    return a, b


def case_ranges(layer: str, kwargs: Mapping[str, Any], input_shape: Sequence[int],
                dtype: str) -> tuple[int, int]:
    """:func:`ranges` for a case (canonical kwargs): a max pool sums nothing, an average pool
    its window, a convolution its products (``Geometry.products``; separable: two kernel
    stages). A case Keras refuses (:func:`keras_refusal`) or the spec rejects never computes:
    it gets the widest ranges."""
    kind = kinds.get_kind(layer)
    try:
        geo = build(layer, kwargs, tuple(input_shape))
    except InvalidConfig:
        geo = None
    if geo is None or keras_refusal(not kind.is_op, dtype):
        return INPUT_MAX[dtype], KERNEL_MAX
    stages = 0 if kind.is_pool else 2 if kind.family == "separable" else 1
    terms = 1 if kind.family == "max_pool" else geo.products
    return ranges(dtype, terms, stages, bias=bool(kwargs.get("use_bias")))


def draw(rng: np.random.Generator, shape: Sequence[int], magnitude: int,
         dtype: str) -> np.ndarray:
    """Seeded integers in [-magnitude, magnitude] ([0, magnitude] for an unsigned dtype),
    as ``dtype``."""
    low = -magnitude if signed(dtype) else 0
    return rng.integers(low, magnitude + 1, size=tuple(shape)).astype(np.dtype(dtype))


def keras_refusal(is_layer: bool, dtype: str) -> str | None:
    """Why Keras refuses the case in its constructor on every backend, or None: a layer under
    the policy name ``int8`` (the int8 quantization mode, not an int8 compute dtype)."""
    if is_layer and dtype == "int8":
        return ("Keras reads a layer's dtype='int8' as the int8 quantization mode "
                "(QuantizedDTypePolicy), not as an int8 compute dtype; its constructor "
                "refuses it on every backend")
    return None


def rounding_of(output: np.ndarray, exact: np.ndarray) -> str | None:
    """Which rounding of the exact (float64) values an integer ``output`` equals, when the
    exact values are not all integers: "truncated toward zero", "floored",
    "rounded half to even", "rounded half away from zero"; None when none explains it."""
    out = np.asarray(output, dtype=np.float64)
    ref = np.asarray(exact, dtype=np.float64)
    if out.shape != ref.shape or np.array_equal(ref, np.round(ref)):
        return None
    candidates = (
        ("truncated toward zero", np.trunc(ref)),
        ("floored", np.floor(ref)),
        ("rounded half to even", np.round(ref)),
        ("rounded half away from zero", np.sign(ref) * np.floor(np.abs(ref) + 0.5)),
    )
    for name, rounded in candidates:
        if np.array_equal(out, rounded):
            return name
    return None


__all__ = ["INPUT_MAX", "INT_DTYPES", "KERNEL_MAX", "case_ranges", "draw", "dtype_max", "is_integer",
           "keras_refusal", "ranges", "rounding_of", "signed", "worst_case"]
