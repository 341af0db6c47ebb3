"""Comparison of one backend's output with the reference: shape, then dtype, then values.

The value check uses an accumulation-scaled tolerance (see :func:`tolerance`), and NaN/inf are
compared, never masked. This module knows nothing about processes or pytest: it takes arrays and
returns a :class:`ValueCheck`, so the engine, the CLI and the fuzzer share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conv_parity.integers import is_integer
from conv_parity.policies import finfo

#: rtol = RTOL_EPS_FACTOR * eps(dtype), applied to the accumulated magnitude B (see tolerance()).
RTOL_EPS_FACTOR = 64.0


@dataclass(frozen=True)
class ValueCheck:
    """The result of comparing values of equal shape."""

    ok: bool
    mismatches: int
    max_abs_err: float
    worst_index: tuple[int, ...] | None
    worst_value: float | None
    worst_reference: float | None
    worst_tolerance: float | None
    max_tolerance: float


#: Dtypes whose eps is so coarse that ``64 * eps`` of B (50% in bfloat16) would hide a wrong
#: accumulation: their rtol is derived from the reduction size instead (:func:`rtol_for`).
LOW_PRECISION: tuple[str, ...] = ("float16", "bfloat16")
#: Bits of slack beyond ``ceil(log2(K))`` in the low-precision bound: the rounding of the
#: products and of the result, and a few-eps transform error (Winograd), each about one eps.
LOW_PRECISION_SLACK = 2


def rtol_for(dtype: str | np.dtype, reduction_size: int | None = None) -> float:
    """The relative tolerance on the accumulated magnitude B (bfloat16's eps is 2**-7).

    ``64 * eps`` of the compute dtype, except in float16 / bfloat16 with a known reduction size
    K: ``(ceil(log2(K)) + LOW_PRECISION_SLACK) * eps``. A backend that accumulates wider than it
    stores (float32 for half types, as every tensor library's pooling and conv kernels can)
    errs by about ``eps/2 * |y|``; one that sums the K terms pairwise in the low precision loses
    at most ``ceil(log2(K))`` roundings of ``eps/2 * B`` each; only a running sum kept in the
    low precision (``K - 1`` roundings of a growing total) exceeds the bound. So an average of
    a 16x16 bfloat16 window (K = 256) may err by 10 eps = 7.8% of B, and the 13% of a bfloat16
    running sum fails (tests/reference/test_low_precision_accumulation.py proves both).
    ``rtol_for("bfloat16", 256) == 10 * 2**-7``; ``rtol_for("bfloat16") == 0.5``.
    """
    eps = finfo(dtype)[0]
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    if reduction_size is None or name not in LOW_PRECISION:
        return RTOL_EPS_FACTOR * eps
    bits = int(np.ceil(np.log2(max(int(reduction_size), 1))))
    return min(RTOL_EPS_FACTOR, bits + LOW_PRECISION_SLACK) * eps


def tolerance(reference: np.ndarray, magnitude: np.ndarray, dtype: str | np.dtype,
              reduction_size: int | None = None) -> np.ndarray:
    """Per-element tolerance ``atol + rtol * B + 2 * eps * |y_ref|`` (``rtol``:
    :func:`rtol_for` of the dtype and, in float16 / bfloat16, the reduction size K).

    Why these terms:

    * ``B`` (the same convolution on ``|x|`` and ``|w|``, plus ``|bias|``) bounds the size of
      every partial sum, so it is the natural scale of rounding error in a sum of products; a
      relative test on ``|y_ref|`` alone would fail wherever large terms cancel.
    * ``rtol = 64 * eps(dtype)`` (float32 / float64; half types: see :func:`rtol_for`): inputs and weights are exactly representable (they are made in
      the case's dtype), so the error comes from products and accumulation only. Blocked or
      pairwise summation of K terms errs by about ``log2(K) * eps * B`` and plain recursive
      summation typically by ``sqrt(K) * eps * B``; 64 covers K up to ~4096 with margin, and
      also the few-eps extra error of Winograd/FFT algorithms oneDNN and XLA pick. Real bugs
      (a shifted pixel, a wrong pad, a dropped bias) err by O(B), thousands of times more.
    * ``2 * eps * |y_ref|``: rounding of the result itself and of a 1-Lipschitz activation.
    * ``atol``: the smallest normal number times 100, so exact zeros compare equal to denormals
      a backend produces when it flushes or does not flush them.

    An integer dtype's tolerance is zero: its inputs are chosen so that the exact result fits
    (:mod:`conv_parity.integers`), and the float64 reference of integers below 2**53 is exact.
    """
    if is_integer(dtype if isinstance(dtype, str) else np.dtype(dtype).name):
        return np.zeros(np.shape(reference))
    eps, tiny = finfo(dtype)
    atol = 100.0 * tiny
    rtol = rtol_for(dtype, reduction_size)
    return atol + rtol * np.abs(magnitude) + 2.0 * eps * np.abs(reference)


def reference_error_bound(magnitude: np.ndarray, reduction_size: int) -> float:
    """The float64 reference's own worst-case rounding error, ``K * eps64 * max(B)``.

    Checked before a value discrepancy is declared (PyTorch's tie-break idea): if the reference
    itself could be this wrong, the harness, not the backend, is at fault.
    """
    finite = np.abs(magnitude[np.isfinite(magnitude)])
    if finite.size == 0:  # NaN and inf elements are compared exactly, never within a bound
        return 0.0
    return float(reduction_size * np.finfo(np.float64).eps * finite.max())


def compare_values(
    output: np.ndarray,
    reference: np.ndarray,
    magnitude: np.ndarray,
    dtype: str | np.dtype,
    reference_error: float = 0.0,
    reduction_size: int | None = None,
) -> ValueCheck:
    """Element-wise comparison; NaN must meet NaN, inf must meet the same inf.

    `reference_error` (from :func:`reference_error_bound`) widens the tolerance by what the
    reference itself may have got wrong, so a discrepancy is declared only when the reference
    cannot explain it: negligible for float32/float16, decisive for float64 cases.
    `reduction_size` (K, the terms one element sums) sets the float16 / bfloat16 bound.
    """
    out = np.asarray(output, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if is_integer(dtype if isinstance(dtype, str) else np.dtype(dtype).name):
        reference_error = 0.0  # integers below 2**53: the float64 reference is exact
    tol = tolerance(ref, magnitude, dtype, reduction_size) + reference_error
    if out.size == 0:
        return ValueCheck(True, 0, 0.0, None, None, None, None, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(out - ref)
        ref_nan, out_nan = np.isnan(ref), np.isnan(out)
        ref_inf, out_inf = np.isinf(ref), np.isinf(out)
        finite = ~(ref_nan | ref_inf)
        # A NaN or inf reference is met exactly (its magnitude, hence its bound, is not finite).
        tol = np.where(finite & np.isfinite(tol), tol, 0.0)
        bad = np.zeros(out.shape, dtype=bool)
        bad |= ref_nan != out_nan
        bad |= ref_inf & (out != ref)
        bad |= finite & ~out_nan & ~out_inf & (err > tol)
        bad |= finite & (out_nan | out_inf)
        # The error to report: inf where one side is non-finite and they disagree.
        shown = np.where(bad & ~(finite & np.isfinite(out)), np.inf, np.where(finite, err, 0.0))
        shown = np.where(np.isnan(shown), np.inf, shown)
    mismatches = int(bad.sum())
    max_abs_err = float(shown.max())
    # Worst element: the largest error relative to its tolerance among the mismatches.
    if mismatches:
        # over: an exact (integer) comparison has tolerance 0, so the ratio overflows to inf
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.where(bad, shown / np.maximum(tol, np.finfo(np.float64).tiny), -1.0)
        flat = int(np.nanargmax(ratio))
    else:
        flat = int(np.argmax(shown))
    idx = tuple(int(i) for i in np.unravel_index(flat, out.shape))
    return ValueCheck(
        ok=mismatches == 0,
        mismatches=mismatches,
        max_abs_err=max_abs_err,
        worst_index=idx,
        worst_value=float(out[idx]),
        worst_reference=float(ref[idx]),
        worst_tolerance=float(tol[idx]),
        max_tolerance=float(tol.max()),
    )
