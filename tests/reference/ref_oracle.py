"""A direct-loop oracle: one plain Python loop nest per output element, written for clarity.

Independent of the reference on purpose: it indexes the input in its own data_format (no
channels-last copy), pads by bounds checks instead of padded arrays, and computes transposed
convolution the textbook way (zero-insert the input by the stride, pad, correlate with the
spatially flipped kernel), with Keras's JAX padding rule re-derived here. Only for tiny shapes.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def _get(x, n, pos, c, cf):
    return x[(n, c, *pos)] if cf else x[(n, *pos, c)]


def _spatial(shape, cf):
    return tuple(shape[2:]) if cf else tuple(shape[1:-1])


def _channels(shape, cf):
    return shape[1] if cf else shape[-1]


def _empty(batch, out_sp, ch, cf):
    return np.zeros((batch, ch, *out_sp) if cf else (batch, *out_sp, ch))


def _set(y, n, pos, c, cf, v):
    if cf:
        y[(n, c, *pos)] = v
    else:
        y[(n, *pos, c)] = v


def _out_and_before(n, k, s, d, padding):
    """Output size and left padding for one axis of a forward conv/pool."""
    span = (k - 1) * d + 1
    if padding == "valid":
        out = 0
        while out * s + span <= n:
            out += 1
        return out, 0
    out = math.ceil(n / s)
    if padding == "causal":
        return out, span - 1
    total = max((out - 1) * s + span - n, 0)
    return out, total // 2


def _act(v, activation):
    if activation == "relu":
        return max(v, 0.0)
    if activation == "sigmoid":
        return 1.0 / (1.0 + math.exp(-v)) if v > -700 else 0.0
    if activation == "tanh":
        return math.tanh(v)
    return v


def conv(x, kernel, bias, strides, padding, dilation, groups, cf, activation=None):
    """Grouped N-D correlation; kernel (*k, C/groups, F)."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    rank = x.ndim - 2
    sp = _spatial(x.shape, cf)
    c_in = _channels(x.shape, cf)
    ks = kernel.shape[:rank]
    cg, f_out = kernel.shape[-2], kernel.shape[-1]
    fg = f_out // groups
    geo = [_out_and_before(sp[i], ks[i], strides[i], dilation[i], padding) for i in range(rank)]
    out_sp = tuple(o for o, _ in geo)
    y = _empty(x.shape[0], out_sp, f_out, cf)
    assert c_in == cg * groups
    for n in range(x.shape[0]):
        for o in itertools.product(*(range(v) for v in out_sp)):
            for f in range(f_out):
                g = f // fg
                acc = 0.0
                for j in itertools.product(*(range(v) for v in ks)):
                    pos = tuple(
                        o[i] * strides[i] + j[i] * dilation[i] - geo[i][1] for i in range(rank)
                    )
                    if any(p < 0 or p >= sp[i] for i, p in enumerate(pos)):
                        continue
                    for c in range(cg):
                        acc += _get(x, n, pos, g * cg + c, cf) * kernel[(*j, c, f)]
                if bias is not None:
                    acc += bias[f]
                _set(y, n, o, f, cf, _act(acc, activation))
    return y


def depthwise(x, kernel, bias, strides, padding, dilation, cf, activation=None):
    """Depthwise conv; kernel (*k, C, dm); output channel c*dm + m."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    rank = x.ndim - 2
    sp = _spatial(x.shape, cf)
    c_in = _channels(x.shape, cf)
    ks = kernel.shape[:rank]
    dm = kernel.shape[-1]
    geo = [_out_and_before(sp[i], ks[i], strides[i], dilation[i], padding) for i in range(rank)]
    out_sp = tuple(o for o, _ in geo)
    y = _empty(x.shape[0], out_sp, c_in * dm, cf)
    for n in range(x.shape[0]):
        for o in itertools.product(*(range(v) for v in out_sp)):
            for c in range(c_in):
                for m in range(dm):
                    acc = 0.0
                    for j in itertools.product(*(range(v) for v in ks)):
                        pos = tuple(
                            o[i] * strides[i] + j[i] * dilation[i] - geo[i][1]
                            for i in range(rank)
                        )
                        if all(0 <= p < sp[i] for i, p in enumerate(pos)):
                            acc += _get(x, n, pos, c, cf) * kernel[(*j, c, m)]
                    if bias is not None:
                        acc += bias[c * dm + m]
                    _set(y, n, o, c * dm + m, cf, _act(acc, activation))
    return y


def separable(x, dkernel, pkernel, bias, strides, padding, dilation, cf, activation=None):
    """Depthwise conv, then a 1x1 conv with the pointwise kernel, then bias and activation."""
    mid = depthwise(x, dkernel, None, strides, padding, dilation, cf)
    rank = mid.ndim - 2
    ones = (1,) * rank
    return conv(mid, pkernel, bias, ones, "valid", ones, 1, cf, activation)


def _jax_transpose_pads(k, s, d, padding, output_padding):
    """Keras's (left, right) padding of the stride-dilated input, as documented for JAX."""
    span = (k - 1) * d + 1
    if padding == "valid":
        op = max(span, s) - span if output_padding is None else output_padding
        return span - 1, span - 1 + op
    if output_padding is None:
        total = s + span - 2
    else:
        total = span + span % 2 - 2 + output_padding
    left = min(total // 2 + total % 2, span - 1)
    return left, total - left


def conv_transpose(x, kernel, bias, strides, padding, output_padding, dilation, cf,
                   activation=None):
    """Transposed conv; kernel (*k, F, C). Zero-insert, pad, correlate with the flipped kernel."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    rank = x.ndim - 2
    sp = _spatial(x.shape, cf)
    c_in = _channels(x.shape, cf)
    ks = kernel.shape[:rank]
    f_out = kernel.shape[-2]
    ops = output_padding if output_padding is not None else (None,) * rank
    pads = [_jax_transpose_pads(ks[i], strides[i], dilation[i], padding, ops[i])
            for i in range(rank)]
    # Size of the zero-inserted, padded input, and of the output (a stride-1 correlation).
    big = [(sp[i] - 1) * strides[i] + 1 + pads[i][0] + pads[i][1] for i in range(rank)]
    out_sp = tuple(big[i] - ((ks[i] - 1) * dilation[i] + 1) + 1 for i in range(rank))
    y = _empty(x.shape[0], out_sp, f_out, cf)

    def stuffed(n, q, c):
        """The zero-inserted, padded input at position q (a tuple), channel c."""
        pos = []
        for i in range(rank):
            t = q[i] - pads[i][0]
            if t < 0 or t % strides[i] or t // strides[i] >= sp[i]:
                return 0.0
            pos.append(t // strides[i])
        return _get(x, n, tuple(pos), c, cf)

    for n in range(x.shape[0]):
        for o in itertools.product(*(range(v) for v in out_sp)):
            for f in range(f_out):
                acc = 0.0
                for j in itertools.product(*(range(v) for v in ks)):
                    q = tuple(o[i] + j[i] * dilation[i] for i in range(rank))
                    flipped = tuple(ks[i] - 1 - j[i] for i in range(rank))
                    for c in range(c_in):
                        v = stuffed(n, q, c)
                        if v != 0.0:
                            acc += v * kernel[(*flipped, f, c)]
                if bias is not None:
                    acc += bias[f]
                _set(y, n, o, f, cf, _act(acc, activation))
    return y


def pool(x, pool_size, strides, padding, cf, mode):
    """Max or average pooling; padded positions are skipped (not counted for the average)."""
    x = np.asarray(x, np.float64)
    rank = x.ndim - 2
    sp = _spatial(x.shape, cf)
    c_in = _channels(x.shape, cf)
    strides = pool_size if strides is None else strides
    geo = [_out_and_before(sp[i], pool_size[i], strides[i], 1, padding) for i in range(rank)]
    out_sp = tuple(o for o, _ in geo)
    y = _empty(x.shape[0], out_sp, c_in, cf)
    for n in range(x.shape[0]):
        for o in itertools.product(*(range(v) for v in out_sp)):
            for c in range(c_in):
                vals = []
                for j in itertools.product(*(range(v) for v in pool_size)):
                    pos = tuple(o[i] * strides[i] + j[i] - geo[i][1] for i in range(rank))
                    if all(0 <= p < sp[i] for i, p in enumerate(pos)):
                        vals.append(_get(x, n, pos, c, cf))
                _set(y, n, o, c, cf, max(vals) if mode == "max" else sum(vals) / len(vals))
    return y


def global_pool(x, cf, keepdims, mode):
    """Global max or average pooling: one value per (sample, channel), over every position."""
    x = np.asarray(x, np.float64)
    sp = _spatial(x.shape, cf)
    c_in = _channels(x.shape, cf)
    out = np.zeros((x.shape[0], c_in))
    for n in range(x.shape[0]):
        for c in range(c_in):
            vals = [_get(x, n, pos, c, cf) for pos in itertools.product(*(range(v) for v in sp))]
            out[n, c] = max(vals) if mode == "max" else sum(vals) / len(vals)
    if not keepdims:
        return out
    ones = (1,) * len(sp)
    return out.reshape(x.shape[0], c_in, *ones) if cf else out.reshape(x.shape[0], *ones, c_in)
