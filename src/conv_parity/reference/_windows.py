"""Padded channels-last copies (whole, or just the rows one block reads), sliding-window views
and chunking of the batch/output rows.

Sliding windows are built with one ``np.ndarray(buffer=...)`` call over a contiguous array: the
same zero-copy view ``sliding_window_view`` gives, minus its per-call Python overhead (which
matters: the fuzzing path calls the reference thousands of times on tiny inputs).
"""

from __future__ import annotations

from itertools import pairwise
from math import prod

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
    batch: int | None = None,
    offset: int = 0,
) -> np.ndarray:
    """Read-only view (N, *out_spatial, *window, C) of a contiguous (N, *spatial, C) array.

    ``view[n, o..., j..., c] == xp[n, o*s + j*d ..., c]``. ``batch`` (default ``xp.shape[0]``)
    and ``offset`` (bytes) select a block of a larger buffer.
    """
    st = xp.strides
    sp = st[1:-1]
    shape = (xp.shape[0] if batch is None else batch, *out_spatial, *window, xp.shape[-1])
    strides_b = (
        st[0],
        *[a * s for a, s in zip(sp, strides)],
        *[a * d for a, d in zip(sp, dilation)],
        st[-1],
    )
    if xp.size == 0 or 0 in shape:
        return np.lib.stride_tricks.as_strided(xp, shape, strides_b, writeable=False)
    view = np.ndarray(shape, np.float64, buffer=xp, offset=offset, strides=strides_b)
    view.flags.writeable = False
    return view


class RowSlabs:
    """The blocks of one conv call, and a zero-padded copy of just the input rows each reads.

    Why not pad the whole input first: that is one more full pass over memory (36 MB written on
    the benchmark's large case, ~6% of its time), while a block's rows fit in cache and are read
    again at once by the im2col copy. Blocks ``(n0, n1, r0, r1)`` come from :func:`chunks`
    (rows along the first spatial axis). An input that is already float64, channels-last,
    contiguous and unpadded is viewed in place, without any copy. Blocks may run on several
    threads: each thread gets its own slab buffer from :meth:`buffer`.
    """

    def __init__(self, x: np.ndarray, g: Geometry, absolute: bool, per_row: int, budget: int):
        """``per_row``: the caller's own scratch per output row (im2col columns)."""
        self.g = g
        self.absolute = absolute
        self.xc = xc = channels_last(x, g.channels_first)
        in_place = (
            not g.needs_padding and not absolute and xc.dtype == np.float64
            and xc.flags.c_contiguous
        )
        slab_row = 0 if in_place else g.strides[0] * prod(g.padded_spatial[1:]) * g.c_in * 8
        self.blocks = chunks(xc.shape[0], g.out_spatial[0], per_row + slab_row, budget)
        #: ``whole`` is the whole (padded) input, shared by all blocks, or None: per-block slabs.
        self.whole: np.ndarray | None = None
        if in_place:
            self.whole = xc
        elif len(self.blocks) == 1:  # a single block reads everything: pad everything once
            self.whole = padded_input(x, g, 0.0, absolute)
        else:
            self.others = g.interior[2:]  # interior of the other spatial axes, all channels

    def _span(self, r0: int, r1: int) -> tuple[int, int]:
        """Padded input rows ``[p0, p1)`` that output rows ``[r0, r1)`` read."""
        s, k, d = self.g.strides[0], self.g.window[0], self.g.dilation[0]
        return r0 * s, (r1 - 1) * s + (k - 1) * d + 1

    def buffer(self) -> np.ndarray:
        """A slab buffer big enough for any block (the shared whole input if there is one)."""
        if self.whole is not None:
            return self.whole
        nb = max(n1 - n0 for n0, n1, _, _ in self.blocks)
        rows = max(p1 - p0 for p0, p1 in (self._span(r0, r1) for *_, r0, r1 in self.blocks))
        g = self.g
        return np.zeros((nb, rows, *g.padded_spatial[1:], self.xc.shape[-1]), np.float64)

    def windows(self, buf: np.ndarray, n0: int, n1: int, r0: int, r1: int) -> np.ndarray:
        """The read-only window view ``(n1-n0, r1-r0, *O[1:], *window, C)`` of one block;
        ``buf`` is this thread's :meth:`buffer`."""
        g = self.g
        osp = (r1 - r0, *g.out_spatial[1:])
        nb = n1 - n0
        if self.whole is not None:
            offset = n0 * buf.strides[0] + r0 * g.strides[0] * buf.strides[1]
            return window_view(buf, osp, g.window, g.strides, g.dilation, nb, offset)
        p0, p1 = self._span(r0, r1)
        lo, n = g.pads[0][0], g.in_spatial[0]
        a, b = max(p0, lo), min(p1, lo + n)
        if b <= a:
            buf[:nb, : p1 - p0] = 0.0
        else:
            buf[:nb, : a - p0] = 0.0
            buf[:nb, b - p0 : p1 - p0] = 0.0
            inner = (slice(0, nb), slice(a - p0, b - p0), *self.others)
            dst = buf[inner]
            src = self.xc[n0:n1, a - lo : b - lo]
            if self.absolute:
                np.abs(src, out=dst, casting="unsafe")
            else:
                np.copyto(dst, src, casting="unsafe")
        return window_view(buf, osp, g.window, g.strides, g.dilation, nb)


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
        return [(n0, n1, 0, rows) for n0, n1 in _even_cuts(batch, budget // max(per_item, 1))]
    cuts = _even_cuts(rows, budget // max(per_row, 1))
    return [(n, n + 1, r0, r1) for n in range(batch) for r0, r1 in cuts]


def _even_cuts(total: int, most: int) -> list[tuple[int, int]]:
    """``[0, total)`` cut into as few pieces of at most ``most`` (at least 1) as possible, their
    sizes differing by at most one: 30 rows at most 21 a piece give 15 + 15, not 21 + 9, so
    threads sharing the blocks finish together and no small remainder pays a whole call's cost."""
    pieces = -(-total // max(1, most))
    bounds = [total * i // pieces for i in range(pieces + 1)]
    return list(pairwise(bounds))
