"""What a wrong gradient is, in words: the grad mode's counterpart of :mod:`diagnosis`.

When a grad case fails with its forward output ``y`` right, the bug is in the backward pass,
and reinterpreting the *forward* configuration (padding, strides, layout...) would explain
nothing. A backward bug shows as a simple transformation of the right gradient instead, so the
candidates here transform the reference's gradient and ask whether the backend's equals it:

* scaled by a constant (``grad-scaled``; a factor of 1/batch is named as a mean taken for a
  sum, ``grad-batch-mean``), negated (``grad-negated``), or zero (``grad-zero``: nothing
  flowed back);
* the spatial axes of the array swapped (``grad-hw-swapped``) or reversed (``grad-flipped``:
  a correlation taken for a convolution, or the reverse);
* shifted by one position along a spatial axis (``grad-shifted-<axis>``);
* nonzero on an empty batch (``grad-empty-batch-garbage``): a weight gradient sums over the
  batch, so with no examples it is exactly zero; anything else was never written (the values
  change from call to call).

Each sentence names the gradient ("the kernel gradient equals the reference's with H and W
swapped"). Equality is the suite's own per-element tolerance (:func:`compare.tolerance`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import numpy as np

from conv_parity import kinds
from conv_parity.case import ConvCase
from conv_parity.explain.diagnosis import Diagnosis
from conv_parity.judge import compare

#: The words for each gradient name the grad mode returns.
WHAT = {"dx": "input gradient", "dkernel": "kernel gradient",
        "dpointwise_kernel": "pointwise kernel gradient", "dbias": "bias gradient"}

CODES: dict[str, str] = {
    "grad-scaled": "a gradient off by a constant factor",
    "grad-batch-mean": "a gradient divided by the batch size (a mean taken for a sum)",
    "grad-negated": "a gradient with the wrong sign",
    "grad-zero": "a gradient that is zero where the reference's is not",
    "grad-hw-swapped": "a gradient with its H and W axes swapped",
    "grad-flipped": "a gradient reversed along its spatial axes (correlation vs convolution)",
    "grad-shifted": "a gradient shifted by one position along a spatial axis",
    "grad-empty-batch-garbage": "a nonzero gradient of an empty batch (uninitialised memory)",
    "none": "no known interpretation matches",
}

_AXIS_NAMES = {1: ("W",), 2: ("H", "W"), 3: ("D", "H", "W")}


def _spatial_axes(case: ConvCase, name: str, ndim: int) -> tuple[int, ...]:
    """Where the spatial axes of a gradient array are: a kernel's lead its layout
    ``(*kernel_size, in, out)``; ``dx`` is laid out like the input (data_format)."""
    rank = kinds.spatial_rank(case.kind, case.input_shape)
    if name == "dx":
        first = case.kwargs.get("data_format") == "channels_first"
        return tuple(range(2, 2 + rank)) if first else tuple(range(1, 1 + rank))
    if name in ("dkernel", "dpointwise_kernel") and ndim == rank + 2:
        return tuple(range(rank))
    return ()


def _shift(a: np.ndarray, axis: int, step: int) -> np.ndarray:
    """``a`` moved ``step`` positions along ``axis``, the vacated position filled with 0."""
    out = np.zeros_like(a)
    src = [slice(None)] * a.ndim
    dst = [slice(None)] * a.ndim
    if step > 0:
        src[axis], dst[axis] = slice(None, -step), slice(step, None)
    else:
        src[axis], dst[axis] = slice(-step, None), slice(None, step)
    out[tuple(dst)] = a[tuple(src)]
    return out


def diagnose_gradient(case: ConvCase, name: str, got: np.ndarray, expected: np.ndarray,
                      magnitude: np.ndarray, backend: str) -> Diagnosis | None:
    """The first transformation of the reference's gradient ``name`` that the backend's
    equals; ``Diagnosis("none", ...)`` when none does; None when there is nothing to explain
    (the gradient conforms, or the shapes differ: the verdict's message says that)."""
    got = np.asarray(got, np.float64)
    ref = np.asarray(expected, np.float64)
    mag = np.asarray(magnitude, np.float64)
    if got.shape != ref.shape or got.size == 0:
        return None

    def close(cand: np.ndarray, cand_mag: np.ndarray) -> bool:
        tol = compare.tolerance(cand, cand_mag, case.dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            return bool(np.all((np.abs(got - cand) <= tol) | (np.isnan(got) & np.isnan(cand))))

    if close(ref, mag):
        return None
    what = WHAT.get(name, name)
    who = f"{backend}'s {what}"
    if case.input_shape[0] == 0 and not np.any(ref):
        finite = got[np.isfinite(got)]
        largest = f"up to {np.abs(finite).max():.3g}" if finite.size else "non-finite"
        return Diagnosis("grad-empty-batch-garbage",
                         f"the batch is empty, so the {what} must be exactly zero; {who} holds "
                         f"nonzero values ({largest}): uninitialised memory, which changes "
                         f"from call to call")
    for code, text, cand in _candidates(case, name, got, ref):
        candidate = cand()
        if candidate is None or np.allclose(candidate, ref, rtol=0, atol=0):
            continue  # the transformation changes nothing here: it cannot tell
        if close(candidate, np.abs(mag) + np.abs(candidate)):
            return Diagnosis(code, f"{who} equals the reference's {text}")
    return Diagnosis("none", f"no known interpretation matches {who} (tried a constant factor, "
                             "the sign, zero, swapped, reversed and shifted spatial axes)")


Candidate = tuple[str, str, Callable[[], "np.ndarray | None"]]


def _candidates(case: ConvCase, name: str, got: np.ndarray, ref: np.ndarray,
                ) -> Iterator[Candidate]:
    denom = float(np.sum(ref * ref))
    ratio = float(np.sum(got * ref)) / denom if denom > 0 else 0.0
    batch = case.input_shape[0]
    if batch > 1 and name != "dx" and abs(ratio * batch - 1.0) < 1e-3:
        yield ("grad-batch-mean", f"divided by the batch size {batch} (a mean over the batch "
               "taken for the sum)", lambda: ref / batch)
    yield ("grad-negated", "negated", lambda: -ref)
    if ratio not in (0.0, 1.0) and np.isfinite(ratio):
        yield ("grad-scaled", f"times {ratio:.6g}", lambda: ref * ratio)
    yield ("grad-zero", "replaced by zeros (no gradient flowed back)", lambda: np.zeros_like(ref))
    axes = _spatial_axes(case, name, ref.ndim)
    names = _AXIS_NAMES.get(len(axes), ())
    if len(axes) >= 2 and ref.shape[axes[-2]] == ref.shape[axes[-1]]:
        yield ("grad-hw-swapped", "with H and W swapped",
               lambda: np.swapaxes(ref, axes[-2], axes[-1]))
    if axes:
        yield ("grad-flipped", "reversed along its spatial axes (a correlation taken for a "
               "convolution, or the reverse)", lambda: np.flip(ref, axis=axes))
    for axis, axis_name in zip(axes, names):
        if ref.shape[axis] < 2:
            continue
        for step in (1, -1):
            yield ("grad-shifted", f"shifted by one position along {axis_name} "
                   f"({'forward' if step > 0 else 'back'})",
                   partial(_shift, ref, axis, step))
