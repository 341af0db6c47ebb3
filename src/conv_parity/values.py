"""Value regimes: what a case's input holds (issue 23), one generator per regime.

Every case used to feed finite N(0, 1) values; real inputs are one-signed (after a ReLU), large
(near the dtype's range), hold NaN or inf (masks, broken pipelines), exact ties, or zeros. Each
regime here makes the input in float64 from the case's seed; :meth:`ConvCase.arrays` rounds it
to the compute dtype, so the reference sees exactly the bits the backends get. Weights stay
N(0, 1/fan-in) in every regime: the regime is about the data, and a finite kernel keeps the
answer defined.

* ``normal``: N(0, 1) (the default; ids and data of old cases unchanged).
* ``positive``: ``|N(0, 1)|``, one-signed: sums do not cancel, so accumulation error is largest.
* ``large``: one-signed magnitudes in [S/2, S]. Pooling: ``S = min(max(dtype) / 2,
  max(float32) / (4 * taps))``: every element is finite, a float16 window of four or more sums
  past 65504 (an accumulator in float16 overflows to inf) while a float32 accumulator and the
  average stay finite. Convolutions: ``S = max(dtype) / (4 * max(kernel size, input size))``
  (element counts), so the outputs and the kernel gradient of a correct backend stay in range.
* ``nan``: N(0, 1) with NaN at seeded positions (about 1 in 30) and on the whole first window
  (batch 0, channel 0, every spatial index below the window's extent).
* ``inf``: N(0, 1) with +inf / -inf at seeded positions and +inf on the whole first window.
* ``ties``: integers in [-3, 3]: every window holds ties (which element max pooling's gradient
  goes to is then a convention, see docs/value-regimes.md).
* ``zeros``: all zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import numpy as np

from conv_parity.vocabulary import VALUE_REGIMES

#: Regimes whose input holds NaN or inf: their gradient is not defined, so a grad case refuses them.
NON_FINITE: tuple[str, ...] = ("nan", "inf")
#: One position in about this many is made non-finite in the nan and inf regimes.
NON_FINITE_EVERY = 30


def dtype_max(dtype: str) -> float:
    """The largest finite value of a float dtype, bfloat16 included."""
    import ml_dtypes

    return float(ml_dtypes.finfo(ml_dtypes.bfloat16 if dtype == "bfloat16"
                                 else np.dtype(dtype)).max)


def large_scale(dtype: str, is_pool: bool, taps: int, terms: int) -> float:
    """S of the ``large`` regime (module docstring): near the dtype's range, yet no correct
    computation overflows. ``taps``: a pool's window size; ``terms``: for a convolution, the
    larger of its kernel's and its input's element counts.
    ``large_scale("float16", True, 9, 9) == 32752``."""
    top = dtype_max(dtype)
    if is_pool:
        wide = dtype_max("float64" if dtype == "float64" else "float32")
        return min(top / 2, wide / (4 * max(1, taps)))
    return top / (4 * max(1, terms))


def first_window(shape: Sequence[int], extent: Sequence[int],
                 channels_first: bool) -> tuple[slice | int, ...]:
    """Index of the first output's whole window in an input of ``shape``: batch 0, channel 0,
    every spatial index below the (effective) window ``extent``. For ``same`` padding the
    first window starts in the padding, so these elements cover all of its real ones."""
    del shape
    spatial = tuple(slice(0, max(1, e)) for e in extent)
    return (0, 0, *spatial) if channels_first else (0, *spatial, 0)


def make_input(regime: str, rng: np.random.Generator, shape: Sequence[int], dtype: str, *,
               extent: Sequence[int], channels_first: bool, is_pool: bool,
               terms: int) -> np.ndarray:
    """The input in float64 for ``regime`` (not yet rounded to ``dtype``). ``extent``: the
    effective window per spatial axis; ``terms``: see :func:`large_scale`. ``normal`` draws
    exactly what cases drew before regimes existed."""
    shape = tuple(shape)
    if regime not in VALUE_REGIMES:
        raise ValueError(f"unknown value regime {regime!r}; choose from {VALUE_REGIMES}")
    if regime == "zeros":
        return np.zeros(shape)
    if regime == "ties":
        return rng.integers(-3, 4, size=shape).astype(np.float64)
    if regime == "positive":
        return np.abs(rng.standard_normal(shape))
    if regime == "large":
        scale = large_scale(dtype, is_pool, prod(extent), terms)
        return scale * rng.uniform(0.5, 1.0, size=shape)
    x = rng.standard_normal(shape)
    if regime == "normal" or x.size == 0:
        return x
    marked = rng.random(shape) < 1.0 / NON_FINITE_EVERY
    window = first_window(shape, extent, channels_first)
    if regime == "nan":
        x[marked] = np.nan
        x[window] = np.nan
    else:  # inf: both signs at seeded positions, +inf on the first window
        x[marked] = np.where(rng.random(shape) < 0.5, np.inf, -np.inf)[marked]
        x[window] = np.inf
    return x


__all__ = ["NON_FINITE", "NON_FINITE_EVERY", "dtype_max", "first_window", "large_scale",
           "make_input"]
