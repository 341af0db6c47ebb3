"""Padded channels-last copies, sliding-window views and chunking of the batch/output rows.

Sliding windows are built with one ``np.ndarray(buffer=...)`` call over a contiguous array: the
same zero-copy view ``sliding_window_view`` gives, minus its per-call Python overhead (which
matters: the fuzzing path calls the reference thousands of times on tiny inputs).
"""

from __future__ import annotations

import numpy as np

from conv_parity.reference._geometry import Geometry

#: Default bound on the scratch memory (im2col / tap buffers) of one call, in bytes.
DEFAULT_SCRATCH_BYTES = 64 * 2**20


def channels_last(x: np.ndarray, channels_first: bool) -> np.ndarray:
    """A view of ``x`` with channels on the last axis."""
    return np.moveaxis(x, 1, -1) if channels_first else x


def padded_input(
    x: np.ndarray, g: Geometry, fill: float, absolute: bool = False
) -> np.ndarray:
    """``x`` as a contiguous float64 channels-last array, padded per ``g.pads`` with ``fill``.

    With ``absolute`` the interior holds ``|x|`` (the padding stays ``fill``: for max pooling
    the magnitude must still pad with -inf).
    """
    xc = channels_last(x, g.channels_first)
    if not g.needs_padding:
        if absolute:
            out = np.empty(xc.shape, np.float64)
            np.abs(xc, out=out, casting="unsafe")
            return out
        return np.ascontiguousarray(xc, dtype=np.float64)
    shape = (xc.shape[0], *g.padded_spatial, xc.shape[-1])
    xp = np.zeros(shape, np.float64) if fill == 0.0 else np.full(shape, fill, np.float64)
    interior = xp[g.interior]
    if absolute:
        np.abs(xc, out=interior, casting="unsafe")
    else:
        np.copyto(interior, xc, casting="unsafe")
    return xp


def window_view(
    xp: np.ndarray,
    out_spatial: tuple[int, ...],
    window: tuple[int, ...],
    strides: tuple[int, ...],
    dilation: tuple[int, ...],
) -> np.ndarray:
    """Read-only view (N, *out_spatial, *window, C) of a contiguous (N, *spatial, C) array.

    ``view[n, o..., j..., c] == xp[n, o*s + j*d ..., c]``.
    """
    st = xp.strides
    sp = st[1:-1]
    shape = (xp.shape[0], *out_spatial, *window, xp.shape[-1])
    strides_b = (
        st[0],
        *(a * s for a, s in zip(sp, strides)),
        *(a * d for a, d in zip(sp, dilation)),
        st[-1],
    )
    if xp.size == 0 or 0 in shape:
        return np.lib.stride_tricks.as_strided(xp, shape, strides_b, writeable=False)
    view = np.ndarray(shape, np.float64, buffer=xp, offset=0, strides=strides_b)
    view.flags.writeable = False
    return view


#: Chunks are also capped at a few MB whatever the budget: an im2col block that stays in cache
#: between being written and being multiplied makes the whole conv run at about the speed of
#: the matmul alone (measured: 1.0x the GEMM bound at 2-4 MB, 1.6x at 64 MB).
CACHE_CHUNK_BYTES = 4 << 20


def chunks(
    batch: int, rows: int, per_row: int, budget: int
) -> list[tuple[int, int, int, int]]:
    """Blocks ``(n0, n1, r0, r1)`` of (batch, first-axis rows) whose scratch fits ``budget``
    (and :data:`CACHE_CHUNK_BYTES`).

    ``per_row`` is the scratch one output row (all other axes) needs. Whole batch items are
    grouped while one fits; otherwise each item is split along its first spatial axis.
    """
    budget = min(budget, CACHE_CHUNK_BYTES)
    per_item = per_row * rows
    if per_item * batch <= budget:
        return [(0, batch, 0, rows)]
    if per_item <= budget:
        nb = max(1, budget // max(per_item, 1))
        return [(n0, min(batch, n0 + nb), 0, rows) for n0 in range(0, batch, nb)]
    rb = max(1, budget // max(per_row, 1))
    return [(n, n + 1, r0, min(rows, r0 + rb)) for n in range(batch) for r0 in range(0, rows, rb)]
