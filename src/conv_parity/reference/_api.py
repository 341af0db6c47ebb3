"""The reference's entry points, behind :mod:`conv_parity.reference` (which re-exports them and
documents them): the call plan cache, :func:`forward`, :func:`magnitude`, :func:`output_shape`,
:func:`vjp` and :func:`vjp_magnitude`. Apart from the package face so that
:mod:`conv_parity.reference.ops` can call :func:`forward` without importing the package that
imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from conv_parity import kinds
from conv_parity.errors import UsageError
from conv_parity.formats import freeze
from conv_parity.reference import _conv, _geometry, _pool, _vjp, adaptive
from conv_parity.reference._geometry import Geometry
from conv_parity.reference._windows import DEFAULT_SCRATCH_BYTES

_PLANS: dict[Any, Geometry] = {}
_PLAN_CACHE_MAX = 4096


def _plan(
    layer: str, kwargs: Mapping[str, Any], input_shape: tuple[int, ...],
    weight_shapes: tuple[tuple[int, ...], ...],
) -> Geometry:
    """Validated geometry for one call, memoised: tiny calls must not re-validate each time."""
    key: Any = (layer, tuple(kwargs.items()), input_shape, weight_shapes)
    try:
        hit = _PLANS.get(key)
    except TypeError:  # lists among the values: freeze them (or give up caching)
        try:
            key = (layer, tuple((k, freeze(v)) for k, v in kwargs.items()), input_shape,
                   weight_shapes)
            hit = _PLANS.get(key)
        except TypeError:
            key, hit = None, None
    if hit is not None:
        return hit
    kind = kinds.get_kind(layer)
    if kind.is_op:
        full = _geometry.op_geometry_kwargs(layer, kwargs, input_shape, weight_shapes)
        canon = kinds.canonicalize(layer, full, input_shape)
        geom = _geometry.build(layer, canon, input_shape)
    else:
        canon = kinds.canonicalize(layer, kwargs, input_shape)
        geom = _geometry.build(layer, canon, input_shape)
        _geometry.check_layer_weights(layer, canon, input_shape, weight_shapes)
    if key is not None:
        if len(_PLANS) >= _PLAN_CACHE_MAX:
            _PLANS.clear()
        _PLANS[key] = geom
    return geom


def output_shape(layer: str, input_shape: Sequence[int], **kwargs: Any) -> tuple[int, ...]:
    """The output shape the spec gives; InvalidConfig (argument named) if it rejects the config.

    For ops the geometry keywords (``kernel_size``, ``filters``, ``groups``,
    ``depth_multiplier``) must be present, since there are no kernel arrays to read them from.
    """
    shape = tuple(int(v) for v in input_shape)
    canon = kinds.canonicalize(layer, kwargs, shape)
    return _geometry.build(layer, canon, shape).output_shape


def _compute(
    layer: str, x: Any, weights: Sequence[Any], kwargs: Mapping[str, Any],
    absolute: bool, scratch_bytes: int | None,
) -> np.ndarray:
    x = np.asarray(x)
    weights = [np.asarray(w) for w in weights]
    g = _plan(layer, kwargs, x.shape, tuple(w.shape for w in weights))
    budget = DEFAULT_SCRATCH_BYTES if scratch_bytes is None else int(scratch_bytes)
    if budget <= 0:
        raise UsageError(f"scratch_bytes must be positive, got {scratch_bytes!r}")
    fam = g.family
    if fam in kinds.ADAPTIVE_FAMILIES:
        return adaptive.forward(np.abs(x) if absolute else x, g.out_spatial,
                                adaptive_mode(fam), _data_format(g))
    if fam in ("max_pool", "average_pool"):
        y = _pool.pool(x, g, absolute)
        return _conv.finish(y, g, None, absolute).reshape(g.output_shape)
    bias = weights[-1] if g.use_bias and not layer.startswith("ops.") else None
    if fam == "conv":
        wmat = _conv.conv_kernel_matrix(weights[0], g, absolute)
        y = _conv.grouped_conv(x, wmat, g, g.groups, g.c_out, budget, absolute)
    elif fam == "depthwise":
        wmat = _conv.depthwise_kernel_matrix(weights[0], g, absolute)
        y = _conv.grouped_conv(x, wmat, g, g.c_in, g.c_out, budget, absolute)
    elif fam == "separable":
        wmat = _conv.depthwise_kernel_matrix(weights[0], g, absolute)
        mid = g.c_in * g.depth_multiplier
        y = _conv.grouped_conv(x, wmat, g, g.c_in, mid, budget, absolute)
        y = _conv.pointwise(y, weights[1], absolute)
    else:  # conv_transpose
        y = _conv.conv_transpose(x, weights[0], g, budget, absolute)
    return _conv.finish(y, g, bias, absolute)


def adaptive_mode(family: str) -> str:
    """The reduction of an adaptive family: ``adaptive_mode("adaptive_max_pool") == "max"``."""
    return "max" if family == "adaptive_max_pool" else "average"


def _data_format(g: Geometry) -> str:
    return "channels_first" if g.channels_first else "channels_last"


def forward(
    layer: str, x: Any, weights: Sequence[Any], *, scratch_bytes: int | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """The float64 output of ``layer`` (a :data:`conv_parity.kinds.KINDS` name) on ``x``.

    ``weights`` as ``keras_layer.get_weights()`` returns them, or for ops the kernel arrays in
    argument order. ``kwargs``: the layer's constructor arguments (raw or canonical) or the op's
    call arguments (geometry keys, if present, are ignored: the kernels are the truth).
    """
    return _compute(layer, x, weights, kwargs, False, scratch_bytes)


def magnitude(
    layer: str, x: Any, weights: Sequence[Any], *, scratch_bytes: int | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """The same computation on ``|x|``, ``|w|`` and ``|b|`` without the activation.

    It bounds the sum of absolute products behind each output element, which is what the
    rounding error of an accumulation scales with (pooling: the average/max of ``|x|``).
    """
    return _compute(layer, x, weights, kwargs, True, scratch_bytes)


def _backward(layer: str, x: Any, weights: Sequence[Any], dy: Any,
              kwargs: Mapping[str, Any], absolute: bool) -> dict[str, np.ndarray]:
    x = np.asarray(x)
    weights = [np.asarray(w) for w in weights]
    dy = np.asarray(dy, np.float64)
    g = _plan(layer, kwargs, x.shape, tuple(w.shape for w in weights))
    if dy.shape != g.output_shape:
        raise UsageError(f"dy has shape {dy.shape}, but {layer}'s output has {g.output_shape}")
    dz = dy.reshape(g.kept_shape)  # a global pool's (batch, channels) as its one window
    if g.activation not in (None, "linear"):
        linear = {**kwargs, "activation": None}
        if absolute:
            # |dz| <= |dy| (relu, tanh and sigmoid are 1-Lipschitz), plus the backend's
            # derivative taken at its own z, which errs by ~eps * B_forward: |act''| <= 1.
            grow = 1.0 if g.activation == "relu" else 1.0 + magnitude(layer, x, weights, **linear)
            dz = np.abs(dy) * grow
        else:
            z = forward(layer, x, weights, **linear)
            dz = dy * _vjp.activation_derivative(g.activation, z)
    grads = _vjp.vjp(g, x, weights, dz, kinds.get_kind(layer).is_op, absolute)
    return dict(zip(_vjp.names(layer, kwargs), grads))


def vjp(layer: str, x: Any, weights: Sequence[Any], dy: Any, **kwargs: Any,
        ) -> dict[str, np.ndarray]:
    """The float64 gradients of ``<dy, forward(layer, x, weights)>`` with respect to the input
    and each weight: ``{"dx": ..., "dkernel": ..., "dbias": ...}`` (names from
    ``_vjp.names``; each array shaped like what it is the gradient of). Pooling: ``dx`` only;
    max pooling assumes each window's maximum is unique."""
    return _backward(layer, x, weights, dy, kwargs, False)


def vjp_magnitude(layer: str, x: Any, weights: Sequence[Any], dy: Any, **kwargs: Any,
                  ) -> dict[str, np.ndarray]:
    """:func:`vjp` on ``|x|``, ``|w|``, ``|dy|`` (the activation's derivative bounded by 1):
    the sum of absolute products behind each gradient element, the tolerance's scale."""
    return _backward(layer, x, weights, dy, kwargs, True)
