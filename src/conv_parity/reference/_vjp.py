"""The backward pass: vector-Jacobian products of every kind, in float64, tap by tap.

Written independently of the forward kernels in ``_conv`` (which use im2col and a tap scatter
for transposed conv): here every kind is one Python loop over the kernel taps, each tap a
strided slice of the padded input and one ``einsum``. That way a bug shared by the forward and
the backward is unlikely, and the two are checked against each other by the adjoint identity
(``tests/reference/test_ref_vjp.py``). The rules:

* correlation ``y[o] = sum_j xp[o*s + j*d] @ W[j]`` (conv, grouped, depthwise): the input
  gradient scatters ``dz[o] @ W[j]^T`` back to ``o*s + j*d`` (a transposed conv of the
  cotangent), the padding is cropped off; the kernel gradient is ``sum_o xp[o*s + j*d] (x) dz[o]``
  (the correlation of input and cotangent).
* transposed conv ``full[i*s + j*d] += x[i] @ W[j]``, output a crop of ``full``: the
  cotangent is placed at the crop inside a zero ``full``; then ``dx[i] = sum_j dfull[i*s + j*d]
  @ W[j]^T`` (a correlation) and ``dW[j] = sum_i x[i] (x) dfull[i*s + j*d]``.
* separable: the pointwise 1x1 conv's VJP, then the depthwise one.
* bias: the cotangent summed over batch and space; the activation's derivative (at the
  pre-activation output) multiplies the cotangent first.
* max pooling routes each cotangent element to its window's arg-max (padding is -inf, so it
  never wins; inputs must make that max unique, or the backends' tie-breaks decide);
  average pooling spreads it over the window divided by the count of real (unpadded) elements,
  as the forward does (``_pool``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import product
from typing import Any

import numpy as np

from conv_parity.reference import _activations, adaptive
from conv_parity.reference._geometry import Geometry
from conv_parity.reference._pool import _window_counts
from conv_parity.reference._windows import channels_last, padded_input


def _tap_slices(g: Geometry, tap: tuple[int, ...], count: Sequence[int]) -> tuple[slice, ...]:
    """(batch, *spatial, channel) slice reading ``count`` positions from ``j*d`` with step s."""
    sp = tuple(slice(j * d, j * d + (n - 1) * s + 1, s)
               for j, d, s, n in zip(tap, g.dilation, g.strides, count))
    return (slice(None), *sp, slice(None))


def _taps(g: Geometry) -> list[tuple[int, ...]]:
    return list(product(*(range(k) for k in g.window)))


def _grouped_kernel(kernel: np.ndarray, g: Geometry, depthwise: bool) -> np.ndarray:
    """Any correlation kernel as (K, G, Cg, Fg): conv's (*k, C/G, F) or depthwise's (*k, C, dm)."""
    k = np.asarray(kernel, np.float64)
    taps = g.taps
    if depthwise:
        return k.reshape(taps, g.c_in, 1, g.depth_multiplier)
    cg = g.c_in // g.groups
    return k.reshape(taps, cg, g.groups, g.c_out // g.groups).transpose(0, 2, 1, 3)


def _correlation_vjp(
    x: np.ndarray, kernel: np.ndarray, dz: np.ndarray, g: Geometry, depthwise: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(dx channels-last, dkernel in the kernel's own layout) of a (grouped) correlation."""
    wg = _grouped_kernel(kernel, g, depthwise)
    _, groups, cg, fg = wg.shape
    xp = padded_input(x, g, 0.0)
    n = xp.shape[0]
    dzg = dz.reshape(*dz.shape[:-1], groups, fg)
    dxp = np.zeros(xp.shape, np.float64)
    dw = np.zeros(wg.shape, np.float64)
    for t, tap in enumerate(_taps(g)):
        sl = _tap_slices(g, tap, g.out_spatial)
        xs = xp[sl].reshape(n, *g.out_spatial, groups, cg)
        dxs = np.einsum("...gf,gcf->...gc", dzg, wg[t])
        dxp[sl] += dxs.reshape(*dxs.shape[:-2], groups * cg)
        dw[t] = np.einsum("mgc,mgf->gcf", xs.reshape(-1, groups, cg), dzg.reshape(-1, groups, fg))
    dx = dxp[g.interior] if g.needs_padding else dxp
    if depthwise:
        dkernel = dw.reshape(*g.window, g.c_in, g.depth_multiplier)
    else:
        dkernel = dw.transpose(0, 2, 1, 3).reshape(*g.window, cg, g.c_out)
    return dx, dkernel


def _transpose_vjp(
    x: np.ndarray, kernel: np.ndarray, dz: np.ndarray, g: Geometry,
) -> tuple[np.ndarray, np.ndarray]:
    """(dx channels-last, dkernel (*k, F, C)) of a transposed conv."""
    xc = np.asarray(channels_last(x, g.channels_first), np.float64)
    w = np.asarray(kernel, np.float64).reshape(g.taps, g.c_out, g.c_in)
    full = tuple((i - 1) * s + (k - 1) * d + 1
                 for i, s, k, d in zip(g.in_spatial, g.strides, g.window, g.dilation))
    starts = tuple(p[0] for p in g.pads)
    ext = tuple(max(f, st + o) for f, st, o in zip(full, starts, g.out_spatial))
    dfull = np.zeros((xc.shape[0], *ext, g.c_out), np.float64)
    inner = (slice(None), *(slice(st, st + o) for st, o in zip(starts, g.out_spatial)))
    dfull[inner] = dz
    dx = np.zeros(xc.shape, np.float64)
    dw = np.zeros(w.shape, np.float64)
    for t, tap in enumerate(_taps(g)):
        ds = dfull[_tap_slices(g, tap, g.in_spatial)]
        dx += ds @ w[t]
        dw[t] = ds.reshape(-1, g.c_out).T @ xc.reshape(-1, g.c_in)
    return dx, dw.reshape(*g.window, g.c_out, g.c_in)


def _pool_vjp(x: np.ndarray, dy: np.ndarray, g: Geometry) -> np.ndarray:
    """dx channels-last of max / average pooling."""
    is_max = g.family == "max_pool"
    xp = padded_input(x, g, -np.inf if is_max else 0.0)
    dxp = np.zeros(xp.shape, np.float64)
    taps = _taps(g)
    if is_max:
        best = np.full((xp.shape[0], *g.out_spatial, xp.shape[-1]), -np.inf)
        arg = np.zeros(best.shape, np.intp)
        for t, tap in enumerate(taps):
            xs = xp[_tap_slices(g, tap, g.out_spatial)]
            wins = xs > best
            best = np.where(wins, xs, best)
            arg[wins] = t
        for t, tap in enumerate(taps):
            dxp[_tap_slices(g, tap, g.out_spatial)] += np.where(arg == t, dy, 0.0)
    else:
        share = dy / (_window_counts(g) if g.needs_padding else float(g.taps))
        for tap in taps:
            dxp[_tap_slices(g, tap, g.out_spatial)] += share
    return dxp[g.interior] if g.needs_padding else dxp


def _adaptive_vjp(x: np.ndarray, dz: np.ndarray, g: Geometry) -> np.ndarray:
    """dx of adaptive pooling, in the input's own layout (max: routed by ``x``'s own values,
    also for the magnitude, as for max pooling)."""
    mode = "max" if g.family == "adaptive_max_pool" else "average"
    fmt = "channels_first" if g.channels_first else "channels_last"
    return np.ascontiguousarray(adaptive.vjp(x, dz, g.out_spatial, mode, fmt))


def activation_derivative(activation: str | None, z: np.ndarray) -> np.ndarray | None:
    """d act / d z at the pre-activation output ``z``; None for the identity (the
    definitions live with the activations, reference/_activations.py)."""
    return _activations.derivative(activation, np.asarray(z, np.float64))


def vjp(
    g: Geometry, x: np.ndarray, weights: Sequence[np.ndarray], dz: np.ndarray,
    is_op: bool, absolute: bool,
) -> list[np.ndarray]:
    """[dx, d weight for each weight in order] for the cotangent ``dz`` of the output *before*
    the activation (the caller applies the activation's derivative), all in the arrays' own
    layouts. With ``absolute`` every input is taken by magnitude: the sums of ``|products|``
    that bound the rounding error of each gradient element."""
    if g.family in ("adaptive_max_pool", "adaptive_average_pool"):
        return [_adaptive_vjp(x, np.abs(dz) if absolute else dz, g)]
    if absolute:
        if g.family not in ("max_pool", "average_pool"):  # pooling routes by x's own values
            x = np.abs(np.asarray(x, np.float64))
        weights = [np.abs(np.asarray(w, np.float64)) for w in weights]
        dz = np.abs(np.asarray(dz, np.float64))
    dzc = np.ascontiguousarray(channels_last(np.asarray(dz, np.float64), g.channels_first))
    fam = g.family
    grads: list[np.ndarray]
    if fam in ("max_pool", "average_pool"):
        dx = _pool_vjp(x, dzc, g)
        grads = [dx]
    else:
        bias = g.use_bias and not is_op
        if fam == "separable":
            dw_ = np.asarray(weights[1], np.float64)
            pw = dw_.reshape(dw_.shape[-2], dw_.shape[-1])
            mid_g = _depthwise_geometry(g)
            mid = _depthwise_output(x, weights[0], mid_g)
            dmid = dzc @ pw.T
            dpw = (mid.reshape(-1, mid.shape[-1]).T @ dzc.reshape(-1, dzc.shape[-1])).reshape(dw_.shape)
            dx, dk = _correlation_vjp(x, weights[0], dmid, mid_g, True)
            grads = [dx, dk, dpw]
        elif fam == "conv_transpose":
            dx, dk = _transpose_vjp(x, weights[0], dzc, g)
            grads = [dx, dk]
        else:
            dx, dk = _correlation_vjp(x, weights[0], dzc, g, fam == "depthwise")
            grads = [dx, dk]
        if bias:
            grads.append(dzc.reshape(-1, dzc.shape[-1]).sum(axis=0))
    if g.channels_first:
        grads[0] = np.moveaxis(grads[0], -1, 1)
    return [np.ascontiguousarray(a) for a in grads]


def _depthwise_geometry(g: Geometry) -> Geometry:
    """The depthwise half of a separable conv: same window, C*dm outputs, no bias."""
    from dataclasses import replace

    return replace(g, family="depthwise", c_out=g.c_in * g.depth_multiplier, use_bias=False)


def _depthwise_output(x: np.ndarray, kernel: np.ndarray, g: Geometry) -> np.ndarray:
    """Channels-last depthwise correlation (the separable conv's middle), tap by tap."""
    wg = _grouped_kernel(kernel, g, True)
    xp = padded_input(x, g, 0.0)
    n = xp.shape[0]
    out = np.zeros((n, *g.out_spatial, g.c_in, g.depth_multiplier))
    for t, tap in enumerate(_taps(g)):
        xs = xp[_tap_slices(g, tap, g.out_spatial)].reshape(n, *g.out_spatial, g.c_in, 1)
        out += xs * wg[t][:, 0, :]
    return out.reshape(n, *g.out_spatial, g.c_in * g.depth_multiplier)


def names(layer: str, kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """The gradient names of a kind, in :func:`vjp`'s order: ``dx``, ``dkernel`` (the first
    kernel, depthwise ones included), ``dpointwise_kernel``, ``dbias`` when there is a bias."""
    from conv_parity import kinds

    kind = kinds.get_kind(layer)
    if kind.is_pool:
        return ("dx",)
    out = ["dx", "dkernel"]
    if kind.family == "separable":
        out.append("dpointwise_kernel")
    if kind.has_bias and kwargs.get("use_bias", True):
        out.append("dbias")
    return tuple(out)
