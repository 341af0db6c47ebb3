"""Where a backend's output differs from the reference, reduced to a small 2-D picture.

A max-abs-error says *how much*; the error map says *where*. A wrong border lights up one
edge, a one-pixel shift of a feature lights up a stripe, a swapped layout lights up everything.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _spatial_axes(ndim: int, data_format: str) -> tuple[int, ...]:
    if data_format == "channels_first":
        return tuple(range(2, ndim))
    return tuple(range(1, ndim - 1))


def _abs_diff(output: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """|out - ref| in float64, where NaN/inf that agree count 0 and any that disagree count inf.

    NaN is compared, never masked: a NaN on one side only is the worst possible error.
    """
    out = np.asarray(output, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(out - ref)
    same_nonfinite = (np.isnan(out) & np.isnan(ref)) | (np.isinf(out) & (out == ref))
    diff[same_nonfinite] = 0.0
    diff[np.isnan(diff)] = np.inf
    return diff


def _block_max(a: np.ndarray, max_cells: int) -> tuple[np.ndarray, tuple[int, int]]:
    rows, cols = a.shape
    fr = max(1, math.ceil(rows / max_cells))
    fc = max(1, math.ceil(cols / max_cells))
    if fr == 1 and fc == 1:
        return a, (1, 1)
    pr, pc = -rows % fr, -cols % fc
    padded = np.pad(a, ((0, pr), (0, pc)), constant_values=0.0)  # diffs are >= 0
    r2, c2 = padded.shape[0] // fr, padded.shape[1] // fc
    return padded.reshape(r2, fr, c2, fc).max(axis=(1, 3)), (fr, fc)


def _round(v: float) -> float:
    return float(f"{v:.4g}") if math.isfinite(v) else v


def error_map(
    output: np.ndarray,
    reference: np.ndarray,
    data_format: str,
    max_cells: int = 48,
) -> dict[str, Any] | None:
    """|output - reference| reduced (max) over batch and channels to the spatial dims.

    1-D outputs give one row; 3-D outputs are also reduced (max) over depth, so the picture is
    always rows x cols (H x W, or 1 x L). Maps larger than `max_cells` per side are shrunk by
    block-max, so one bad pixel never disappears. Values keep 4 significant digits (it is a
    picture, not a measurement). Returns None when the shapes differ (there is nothing to
    align), the output has no spatial dims, or it is empty.

    Result: ``{"rows", "cols", "values": [[float]], "vmax", "spatial_shape", "block",
    "nonfinite"}``; ``vmax`` is the largest finite cell (0.0 when none), cells whose
    difference is not finite (a NaN or inf on one side only) are ``inf``, and ``nonfinite``
    counts them.
    """
    out = np.asarray(output)
    ref = np.asarray(reference)
    if out.shape != ref.shape or out.ndim not in (3, 4, 5) or out.size == 0:
        return None
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be channels_last or channels_first, got {data_format!r}")
    if max_cells < 1:
        raise ValueError(f"max_cells must be >= 1, got {max_cells}")
    diff = _abs_diff(out, ref)
    spatial = _spatial_axes(out.ndim, data_format)
    other = tuple(ax for ax in range(out.ndim) if ax not in spatial)
    reduced = diff.max(axis=other)  # spatial dims only, in order
    spatial_shape = list(reduced.shape)
    if reduced.ndim == 1:
        reduced = reduced[np.newaxis, :]
    elif reduced.ndim == 3:
        reduced = reduced.max(axis=0)
    small, block = _block_max(reduced, max_cells)
    finite = small[np.isfinite(small)]
    vmax = float(finite.max()) if finite.size else 0.0
    return {
        "rows": int(small.shape[0]),
        "cols": int(small.shape[1]),
        "values": [[_round(float(v)) for v in row] for row in small],
        "vmax": _round(vmax),
        "spatial_shape": spatial_shape,
        "block": list(block),
        "nonfinite": int(np.count_nonzero(~np.isfinite(small))),
    }
