"""Convolution kernels: chunked im2col + one matmul per chunk, and transposed conv by tap scatter.

All arithmetic is float64. Groups (and depthwise, which is groups == channels) are a batch axis
of one ``np.matmul``, never a Python loop. Scratch memory per call is bounded by a budget: the
im2col matrix is built for a block of batch items (or of output rows of one item) at a time, in
a reused buffer; blocks may run on a few threads (``_threads``), which share the budget.

How far blocking can move a result: each output element is one dot product of length K (the
taps times the input channels of a group) computed by BLAS, whose kernels choose the order of
the K products by CPU and by the block's row count (small-matrix paths, edge tiles). Any order
of a float64 sum of K products errs by at most ``gamma_K * B``, ``gamma_K = K u / (1 - K u)``
with ``u = 2**-53`` and ``B`` the same sum of absolute products (Higham, Accuracy and
Stability of Numerical Algorithms, 3.1). So two blockings differ by at most
``2 gamma_K B <= K * eps64 * B`` per element (for K u < 1/2): the bound the tests hold the
reference to, and the same ``K * eps64 * max(B)`` that ``compare.reference_error_bound`` adds
to every tolerance. It is about 1e-13 of ``B`` for K = 500, far below any float32 or float16
tolerance.
"""

from __future__ import annotations

from collections.abc import Iterator
from math import prod

import numpy as np

from conv_parity.reference import _activations
from conv_parity.reference._geometry import Geometry
from conv_parity.reference._threads import run_blocks, threads_for
from conv_parity.reference._windows import RowSlabs, chunks

_F8 = 8  # bytes per float64


def conv_kernel_matrix(kernel: np.ndarray, g: Geometry, absolute: bool) -> np.ndarray:
    """(*k, C/G, F) kernel as (K*C/G, F) when G == 1, else (G, K*C/G, F/G), float64."""
    k = np.asarray(kernel, dtype=np.float64)
    if absolute:
        k = np.abs(k)
    kk = g.taps
    cg = g.c_in // g.groups
    if g.groups == 1:
        return k.reshape(kk * cg, g.c_out)
    fg = g.c_out // g.groups
    return np.ascontiguousarray(
        k.reshape(kk, cg, g.groups, fg).transpose(2, 0, 1, 3)
    ).reshape(g.groups, kk * cg, fg)


def depthwise_kernel_matrix(kernel: np.ndarray, g: Geometry, absolute: bool) -> np.ndarray:
    """(*k, C, dm) depthwise kernel as (C, K, dm): C groups of one channel each."""
    k = np.asarray(kernel, dtype=np.float64)
    if absolute:
        k = np.abs(k)
    kk = g.taps
    return np.ascontiguousarray(k.reshape(kk, g.c_in, g.depth_multiplier).transpose(1, 0, 2))


#: Calls whose im2col matrix is smaller run on one thread. Measured on the 2-core VM (k3
#: convs, threads vs serial, interleaved, three runs): 1.20-1.37x at 9 MiB, 0.96-1.29x at
#: 18 MiB, 0.91-1.10x at 36 MiB, 0.77-0.96x at 72 MiB. Both threads start computing only
#: 0.5-5 ms into a call (thread start, BLAS limit, per-thread scratch, waking the other
#: vCPU), which short calls cannot win back.
THREADED_MIN_BYTES = 32 << 20
#: With several threads, blocks are made small enough that each thread gets about this many
#: (threads take blocks as they finish, so a few per thread even out their speeds) ...
BLOCKS_PER_THREAD = 4
#: ... but no smaller than this: per-block Python and BLAS call costs would start to show.
MIN_BLOCK_BYTES = 256 << 10

#: Arrays at least this big are written once, in order, before use (see :func:`_touched`).
_PREFAULT_BYTES = 1 << 20


def _touched(a: np.ndarray) -> np.ndarray:
    """``a`` with its fresh pages mapped by one sequential write.

    Why: a new large array's pages are mapped on first write; when that first write comes
    block by block from matmuls and copies, mapping cost ~10% of a large conv on this VM
    (measured: 149 ms vs 134 ms on the benchmark's large case), while one sequential fill
    maps them far more cheaply.
    """
    if a.nbytes >= _PREFAULT_BYTES:
        a.fill(0.0)
    return a


def grouped_conv(
    x: np.ndarray, wmat: np.ndarray, g: Geometry, groups: int, c_out: int,
    budget: int, absolute: bool,
) -> np.ndarray:
    """Channels-last (N, *O, c_out) result of the (grouped) correlation of ``x`` with ``wmat``.

    ``wmat`` is (K*C, F) for one group or (G, K*C/G, F/G) for G groups; output channel
    ``gi * F/G + f`` belongs to group ``gi``, whose input channels are ``gi*C/G ...``
    (Keras/TF's grouped-conv channel order). Blocks are independent (each writes its own
    output rows), so they may run on several threads (see ``_threads``), each with its own
    share of the scratch budget.
    """
    n = x.shape[0]
    osp = g.out_spatial
    out = _touched(np.empty((n, *osp, c_out), np.float64))
    if out.size == 0:
        return out
    kk = g.taps
    c = g.c_in
    row = prod(osp[1:])  # output positions per first-axis row
    kc = kk * c
    total = n * osp[0] * row * kc * _F8  # the whole im2col matrix, were it built at once
    # Blocks are at most one per (batch item, output row): no more threads than that.
    threads = threads_for(n * osp[0]) if total >= THREADED_MIN_BYTES else 1
    if threads > 1:  # each thread its share of the budget, and enough blocks to share out
        share = max(total // (BLOCKS_PER_THREAD * threads), MIN_BLOCK_BYTES)
        budget = min(budget // threads, share)
    slabs = RowSlabs(x, g, absolute, row * kc * _F8, budget)
    blocks = slabs.blocks
    threads = min(threads, len(blocks))
    most = max((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in blocks)
    cg = c // groups
    fg = c_out // groups

    def work(mine: Iterator[tuple[int, int, int, int]]) -> None:
        buf = slabs.buffer()
        scratch = _touched(np.empty(most * row * kc))
        for n0, n1, r0, r1 in mine:
            m = (n1 - n0) * (r1 - r0) * row
            src = slabs.windows(buf, n0, n1, r0, r1)
            if groups == 1:
                cols = scratch[: m * kc].reshape(src.shape)
                np.copyto(cols, src)
                np.matmul(cols.reshape(m, kc), wmat, out=out[n0:n1, r0:r1].reshape(m, c_out))
                continue
            # (nb, O..., k..., G, Cg) -> (G, nb, O..., k..., Cg): the group is the matmul batch.
            src = np.moveaxis(src.reshape((*src.shape[:-1], groups, cg)), -2, 0)
            cols = scratch[: m * kc].reshape(src.shape)
            np.copyto(cols, src)
            res = np.matmul(cols.reshape(groups, m, kk * cg), wmat)  # (G, m, Fg)
            np.copyto(out[n0:n1, r0:r1].reshape(m, groups, fg), res.transpose(1, 0, 2))

    run_blocks(blocks, work, threads)
    return out


def conv_transpose(
    x: np.ndarray, kernel: np.ndarray, g: Geometry, budget: int, absolute: bool
) -> np.ndarray:
    """Channels-last (N, *O, F) transposed convolution, by scatter-add per kernel tap.

    One matmul gives every (input position, tap) contribution ``x[i] @ w[j]``; each tap's
    block is then added into the output at ``i * s + j * d`` with a strided slice. No
    zero-stuffed input is built, so no multiplications by inserted zeros happen.
    """
    xc = x if not g.channels_first else np.moveaxis(x, 1, -1)
    if absolute:
        xc = np.abs(xc)
    xc = np.ascontiguousarray(xc, dtype=np.float64)
    w = np.asarray(kernel, dtype=np.float64)
    if absolute:
        w = np.abs(w)
    kk = g.taps
    c, f = g.c_in, g.c_out
    # (*k, F, C) -> (C, K*F)
    wmat = np.ascontiguousarray(w.reshape(kk, f, c).transpose(2, 0, 1)).reshape(c, kk * f)
    n = xc.shape[0]
    isp = g.in_spatial
    full = tuple((i - 1) * s + (k - 1) * d + 1 for i, s, k, d in zip(isp, g.strides, g.window, g.dilation))
    starts = tuple(p[0] for p in g.pads)
    ext = tuple(max(fl, st + o) for fl, st, o in zip(full, starts, g.out_spatial))
    buf = np.zeros((n, *ext, f), np.float64)
    if n and kk:
        taps = list(np.ndindex(*g.window))
        row = prod(isp[1:])
        blocks = chunks(n, isp[0], row * kk * f * _F8, budget)
        scratch = np.empty(max((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in blocks) * row * kk * f)
        for n0, n1, r0, r1 in blocks:
            src = xc[n0:n1, r0:r1]
            m = src.size // c
            y = scratch[: m * kk * f].reshape(m, kk * f)
            np.matmul(src.reshape(m, c), wmat, out=y)
            y = y.reshape((*src.shape[:-1], *g.window, f))
            cnt = src.shape[1 : 1 + g.rank]
            lead = (*((slice(None),) * (1 + g.rank)),)
            for j in taps:
                idx = [slice(n0, n1)]
                for ax in range(g.rank):
                    s = g.strides[ax]
                    begin = (r0 if ax == 0 else 0) * s + j[ax] * g.dilation[ax]
                    idx.append(slice(begin, begin + (cnt[ax] - 1) * s + 1, s))
                idx.append(slice(None))
                target = buf[tuple(idx)]
                tap = (*lead, *j, slice(None))
                target += y[tap]
    sel = (slice(None), *(slice(st, st + o) for st, o in zip(starts, g.out_spatial)), slice(None))
    return buf[sel]


def pointwise(y: np.ndarray, kernel: np.ndarray, absolute: bool) -> np.ndarray:
    """Channels-last 1x1 conv: (N, *O, C) @ (C, F)."""
    w = np.asarray(kernel, dtype=np.float64)
    if absolute:
        w = np.abs(w)
    w = w.reshape(w.shape[-2], w.shape[-1])
    return y @ w


def finish(
    y: np.ndarray, g: Geometry, bias: np.ndarray | None, absolute: bool
) -> np.ndarray:
    """Add bias, apply the activation (magnitudes: scale by its slope bound), restore
    data_format, contiguous.

    ``y`` is always an array this package allocated (or a view of one), so it is updated in
    place.
    """
    if bias is not None:
        b = np.asarray(bias, dtype=np.float64)
        y += np.abs(b) if absolute else b
    if absolute:
        # the magnitude of a steep activation's output: B times its slope (_activations)
        slope = _activations.slope_bound(g.activation, y)
        if not isinstance(slope, float) or slope != 1.0:
            y *= slope
    elif g.activation == "relu":
        np.maximum(y, 0.0, out=y)
    elif g.activation is not None and g.activation != "linear":
        y[...] = _activations.apply(g.activation, y)
    if g.channels_first:
        y = np.moveaxis(y, -1, 1)
    return np.ascontiguousarray(y)
