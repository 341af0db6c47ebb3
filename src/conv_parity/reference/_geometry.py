"""Shape rules, padding amounts and validation: the spec's geometry, written from Keras's docs.

Everything here is plain integer arithmetic on canonical keyword arguments (see
:func:`conv_parity.kinds.canonicalize`); nothing touches array data. The rules were read from
Keras 3 (``keras/src/ops/operation_utils.py``, ``keras/src/backend/common/backend_utils.py``,
``keras/src/layers/convolutional/base_conv*.py``, ``keras/src/layers/pooling/base_pooling.py``)
and re-derived, not copied:

* ``valid``: ``out = floor((n - ((k - 1) * d + 1)) / s) + 1``; ``out <= 0`` is rejected.
* ``same`` (TensorFlow style): ``out = ceil(n / s)``; total padding
  ``max((out - 1) * s + (k - 1) * d + 1 - n, 0)``, ``total // 2`` before and the rest (the odd
  one) *after*, i.e. at the bottom/right.
* ``causal`` (``Conv1D`` only, as ``standardize_padding(allow_causal=rank == 1)`` in
  ``base_conv.py``): ``d * (k - 1)`` zeros on the left, none on the right; ``out = ceil(n / s)``.
* Transposed conv (``compute_conv_transpose_output_shape`` and
  ``compute_conv_transpose_padding_args_for_jax``): with ``K = (k - 1) * d + 1``, the "full"
  transposed conv (every input position ``i`` scattered to ``i * s + j * d`` for tap ``j``) has
  length ``(n - 1) * s + K``. Keras's output is a window of it:

  - ``valid``: starts at 0; length ``(n - 1) * s + K + op`` where ``op`` defaults to
    ``max(K, s) - K``; positions past the full length are zeros (plus bias).
  - ``same``, ``op`` None: length ``n * s``; ``same``, ``op`` given: ``(n - 1) * s + K % 2 + op``.
    JAX's left padding is ``min(ceil(pad_len / 2), K - 1)`` with ``pad_len = s + K - 2``
    (``op`` None) or ``K + K % 2 - 2 + op``; the window starts at ``K - 1 - left_pad``.

Decisions where Keras's docs are silent (each mirrors what the Keras layer constructors do):

* ``strides > 1`` together with ``dilation_rate > 1`` is rejected for ``ConvND`` and
  ``ConvNDTranspose`` layers, because ``BaseConv.__init__`` and ``BaseConvTranspose.__init__``
  raise ``ValueError`` for ``max(strides) > 1 and max(dilation_rate) > 1`` (any axes, not
  necessarily the same one). ``BaseDepthwiseConv``/``BaseSeparableConv`` and the ``keras.ops``
  functions have no such check, so there the configuration is valid and computed exactly.
* ``output_padding`` must satisfy ``0 <= op < stride`` per axis (``BaseConvTranspose`` and the
  ``ops.conv_transpose`` docstring); dilation does not enter this rule (nor TF's).
* A zero spatial size or zero channels in the input is rejected (``input_shape``); batch 0 is
  valid and gives batch 0.
* ``ops.*`` take ``padding`` ``valid``/``same`` only; ``causal`` is a ``Conv1D`` layer feature.
* Global pooling is one ``valid`` window over the whole input; without ``keepdims`` the
  spatial axes are dropped, giving ``(batch, channels)`` whatever the data_format.
* Adaptive pooling (Keras 3.13+) has no window of its own: output ``i`` of an axis pools the
  bin ``[floor(i * n / m), ceil((i + 1) * n / m))`` (:mod:`conv_parity.reference.adaptive`).
  Its geometry records the widest bin as ``window`` (what the error bound needs), unit
  strides and no padding; ``output_size`` larger than the input is valid (bins repeat).
* ``ops.depthwise_conv`` and ``ops.separable_conv`` are documented for 1D and 2D inputs only
  (and the TensorFlow backend raises for rank 5), so a 3D input is rejected (``input_shape``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import prod
from typing import Any, NamedTuple

from conv_parity import kinds
from conv_parity.errors import InvalidConfig, UsageError
from conv_parity.reference.adaptive import largest_bin

# Kinds whose Keras layer constructor rejects strides > 1 together with dilation > 1.
_STRIDE_DILATION_EXCLUSIVE = frozenset(
    f"Conv{r}D{t}" for r in (1, 2, 3) for t in ("", "Transpose")
)


@dataclass(frozen=True, slots=True)
class Geometry:
    """Everything the kernels need about one configuration, validated.

    ``pads`` is the input padding (before, after) per spatial axis for conv/depthwise/separable
    and pooling; for transposed conv it is (crop_before, 0): the output window starts
    ``crop_before`` positions into the full transposed conv.
    """

    layer: str
    family: str
    rank: int
    channels_first: bool
    input_shape: tuple[int, ...]
    in_spatial: tuple[int, ...]
    c_in: int
    window: tuple[int, ...]
    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    out_spatial: tuple[int, ...]
    groups: int
    depth_multiplier: int
    c_out: int
    use_bias: bool
    activation: str | None
    output_shape: tuple[int, ...]
    # The output with every spatial axis kept: output_shape except for a global pool without
    # keepdims, whose (batch, channels) output the kernels compute as (batch, 1, ..., channels).
    kept_shape: tuple[int, ...] = ()
    # Derived, precomputed so that tiny calls do no repeated Python arithmetic.
    taps: int = 0  # prod(window)
    padded_spatial: tuple[int, ...] = ()
    needs_padding: bool = False
    interior: tuple[slice, ...] = ()  # where the input sits in the padded channels-last array

    @property
    def batch(self) -> int:
        return self.input_shape[0]

    @property
    def products(self) -> int:
        """How many products one output element sums (the K of the reference's error bound and
        of the integer ranges): the taps times the input channels one output reads (a group's
        for grouped convs; one for depthwise; the pointwise stage's C * m more for separable;
        transposed convs: an upper bound, every tap of every channel)."""
        taps = max(1, self.taps)
        if self.family in ("max_pool", "average_pool", "depthwise"):
            return taps
        if self.family == "separable":
            return taps * self.c_in * self.depth_multiplier
        return taps * max(1, self.c_in // self.groups)


def same_padding(n: int, k_eff: int, s: int) -> tuple[int, int]:
    """TF-style "same" padding (before, after): the odd extra element goes after."""
    out = -(-n // s)
    total = max((out - 1) * s + k_eff - n, 0)
    return total // 2, total - total // 2


def conv_transpose_window(
    n: int, k: int, s: int, d: int, padding: str, output_padding: int | None
) -> tuple[int, int]:
    """(start, length) of Keras's transposed-conv output within the full transposed conv."""
    k_eff = (k - 1) * d + 1
    if padding == "valid":
        op = max(k_eff, s) - k_eff if output_padding is None else output_padding
        return 0, (n - 1) * s + k_eff + op
    if output_padding is None:
        pad_len = s + k_eff - 2
        length = n * s
    else:
        pad_len = k_eff + k_eff % 2 - 2 + output_padding
        length = (n - 1) * s + k_eff % 2 + output_padding
    left = min(pad_len // 2 + pad_len % 2, k_eff - 1)
    return k_eff - 1 - left, length


def _positive(name: str, values: Sequence[int] | int) -> None:
    vals = (values,) if isinstance(values, int) else tuple(values)
    if any(v <= 0 for v in vals):
        raise InvalidConfig(f"{name} must be positive, got {name}={_fmt(values)}")


def _fmt(value: Any) -> str:
    return repr(tuple(value)) if isinstance(value, (list, tuple)) else repr(value)


class _Window(NamedTuple):
    """The sizing of one configuration: its window, how it moves, what it produces per pixel."""

    window: tuple[int, ...]
    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    depth_multiplier: int
    c_out: int
    use_bias: bool
    activation: Any


def build(layer: str, canon: Mapping[str, Any], input_shape: Sequence[int]) -> Geometry:
    """Validate a canonical configuration and compute its geometry; InvalidConfig if rejected."""
    kind = kinds.get_kind(layer)
    input_shape = tuple(int(v) for v in input_shape)
    rank = kinds.spatial_rank(kind, input_shape)
    cf = canon["data_format"] == "channels_first"
    c_in, in_spatial = _check_input(layer, kind, input_shape, rank, cf)
    padding = canon.get("padding", "valid")  # global pooling has none: one valid window
    family = kind.family
    if padding == "causal" and layer != "Conv1D":
        raise InvalidConfig(f"padding='causal' is only supported by Conv1D, not by {layer}")
    w = _window(layer, kind, canon, rank, c_in, in_spatial, input_shape)
    window, strides, dilation = w.window, w.strides, w.dilation
    if family == "conv_transpose":
        pads, out_spatial = _transpose_axes(canon, in_spatial, w, padding, input_shape)
    elif kind.is_adaptive:
        pads, out_spatial = ((0, 0),) * rank, tuple(canon["output_size"])
    else:
        pads, out_spatial = _forward_axes(kind, in_spatial, w, padding, input_shape)

    batch = input_shape[0]
    shape = (batch, w.c_out, *out_spatial) if cf else (batch, *out_spatial, w.c_out)
    kept_shape = shape
    if kind.is_global and not canon["keepdims"]:
        shape = (batch, w.c_out)
    return Geometry(
        layer=layer,
        family=family,
        rank=rank,
        channels_first=cf,
        input_shape=input_shape,
        in_spatial=tuple(in_spatial),
        c_in=c_in,
        window=window,
        strides=strides,
        dilation=dilation,
        pads=pads,
        out_spatial=out_spatial,
        groups=w.groups,
        depth_multiplier=w.depth_multiplier,
        c_out=w.c_out,
        use_bias=w.use_bias,
        activation=w.activation,
        output_shape=shape,
        kept_shape=kept_shape,
        taps=prod(window),
        padded_spatial=tuple(n + b + a for n, (b, a) in zip(in_spatial, pads)),
        needs_padding=family != "conv_transpose" and any(b or a for b, a in pads),
        interior=(
            slice(None), *(slice(b, b + n) for (b, _), n in zip(pads, in_spatial)), slice(None)
        ),
    )


def _check_input(layer: str, kind: kinds.Kind, input_shape: tuple[int, ...], rank: int,
                 cf: bool) -> tuple[int, tuple[int, ...]]:
    """The input's channels and spatial sizes, checked: UsageError for a malformed shape,
    InvalidConfig for one the spec rejects (no channels, an empty spatial axis, a 3D input to
    a depthwise/separable op)."""
    if len(input_shape) != rank + 2:
        raise UsageError(
            f"{layer} takes inputs of rank {rank + 2} (batch, {rank} spatial, channels), "
            f"got input_shape={input_shape!r}"
        )
    if any(v < 0 for v in input_shape):
        raise UsageError(f"input_shape must not have negative sizes, got {input_shape!r}")
    c_in = input_shape[1] if cf else input_shape[-1]
    in_spatial = input_shape[2:] if cf else input_shape[1:-1]
    if c_in == 0:
        raise InvalidConfig(f"input_shape has zero channels: input_shape={input_shape!r}")
    if 0 in in_spatial:
        raise InvalidConfig(f"input_shape has a zero spatial size: input_shape={input_shape!r}")
    if kind.is_op and kind.family in ("depthwise", "separable") and rank == 3:
        raise InvalidConfig(
            f"{layer} supports 1D and 2D inputs only (keras.ops docs), got a 3D input: "
            f"input_shape={input_shape!r}"
        )
    return c_in, in_spatial


def _window(layer: str, kind: kinds.Kind, canon: Mapping[str, Any], rank: int, c_in: int,
            in_spatial: tuple[int, ...], input_shape: tuple[int, ...]) -> _Window:
    """The window and channel arithmetic of a global pool, an adaptive pool (its widest bin),
    a pool or a conv, validated."""
    if kind.is_global:
        return _Window(tuple(in_spatial), tuple(in_spatial), (1,) * rank, 1, 1, c_in,
                       False, None)
    if kind.is_adaptive:
        sizes = tuple(canon["output_size"])
        _positive("output_size", sizes)
        window = tuple(largest_bin(n, m) for n, m in zip(in_spatial, sizes))
        return _Window(window, (1,) * rank, (1,) * rank, 1, 1, c_in, False, None)
    if kind.is_pool:
        window = tuple(canon["pool_size"])
        _positive("pool_size", window)
        strides = window if canon["strides"] is None else tuple(canon["strides"])
        _positive("strides", strides)
        return _Window(window, strides, (1,) * rank, 1, 1, c_in, False, None)
    family = kind.family
    window = tuple(canon["kernel_size"])
    _positive("kernel_size", window)
    strides = tuple(canon["strides"])
    _positive("strides", strides)
    dilation = tuple(canon["dilation_rate"])
    _positive("dilation_rate", dilation)
    groups = canon.get("groups", 1)
    depth_multiplier = canon.get("depth_multiplier", 1)
    _positive("groups", groups)
    _positive("depth_multiplier", depth_multiplier)
    if "filters" in canon and family != "depthwise":
        _positive("filters", canon["filters"])
    if layer in _STRIDE_DILATION_EXCLUSIVE and max(strides) > 1 and max(dilation) > 1:
        raise InvalidConfig(
            f"{layer} does not support strides > 1 together with dilation_rate > 1 "
            f"(Keras BaseConv rejects it): strides={strides}, dilation_rate={dilation}"
        )
    if c_in % groups:
        raise InvalidConfig(
            f"groups={groups} does not divide the {c_in} input channels "
            f"(input_shape={input_shape!r})"
        )
    if family == "conv" and canon["filters"] % groups:
        raise InvalidConfig(
            f"groups={groups} does not divide filters={canon['filters']}"
        )
    c_out = c_in * depth_multiplier if family == "depthwise" else canon["filters"]
    return _Window(window, strides, dilation, groups, depth_multiplier, c_out,
                   bool(canon.get("use_bias", False)), canon.get("activation"))


def _transpose_axes(
    canon: Mapping[str, Any], in_spatial: tuple[int, ...], w: _Window, padding: str,
    input_shape: tuple[int, ...],
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """Per axis of a transposed conv: (crop start, 0) and the output length."""
    window, strides, dilation = w.window, w.strides, w.dilation
    ops_ = canon["output_padding"]
    if ops_ is not None:
        for i, (op, s) in enumerate(zip(ops_, strides)):
            if not 0 <= op < s:
                raise InvalidConfig(
                    f"output_padding must satisfy 0 <= output_padding < strides on every "
                    f"axis; axis {i}: output_padding={tuple(ops_)}, strides={strides}"
                )
    pads_l: list[tuple[int, int]] = []
    out_l: list[int] = []
    for i in range(len(in_spatial)):
        start, length = conv_transpose_window(
            in_spatial[i], window[i], strides[i], dilation[i], padding,
            None if ops_ is None else ops_[i],
        )
        if length <= 0:
            raise InvalidConfig(
                f"output size would be {length} on spatial axis {i}: kernel_size={window}, "
                f"strides={strides}, padding={padding!r}, output_padding={_fmt(ops_)}, "
                f"input_shape={input_shape!r}",
                argument="kernel_size", axis=i, size=length,
            )
        pads_l.append((start, 0))
        out_l.append(length)
    return tuple(pads_l), tuple(out_l)


def _forward_axes(
    kind: kinds.Kind, in_spatial: tuple[int, ...], w: _Window, padding: str,
    input_shape: tuple[int, ...],
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """Per axis of a conv or pool: its (before, after) padding and the output length."""
    window, strides, dilation = w.window, w.strides, w.dilation
    pads_l: list[tuple[int, int]] = []
    out_l: list[int] = []
    size_name = "pool_size" if kind.is_pool else "kernel_size"
    for i in range(len(in_spatial)):
        n, s, k_eff = in_spatial[i], strides[i], (window[i] - 1) * dilation[i] + 1
        if padding == "valid":
            out = (n - k_eff) // s + 1
            pad = (0, 0)
        elif padding == "same":
            out = -(-n // s)
            pad = same_padding(n, k_eff, s)
        else:  # causal
            out = -(-n // s)
            pad = (k_eff - 1, 0)
        if out <= 0:
            extra = "" if kind.is_pool else f", dilation_rate={dilation}"
            raise InvalidConfig(
                f"output size would be {out} on spatial axis {i}: {size_name}={window} is "
                f"larger than the input (input_shape={input_shape!r}, padding={padding!r}"
                f"{extra}, strides={strides})",
                argument=size_name, axis=i, size=out,
            )
        pads_l.append(pad)
        out_l.append(out)
    return tuple(pads_l), tuple(out_l)


def op_geometry_kwargs(
    layer: str, kwargs: Mapping[str, Any], input_shape: Sequence[int],
    weight_shapes: Sequence[tuple[int, ...]],
) -> dict[str, Any]:
    """An op's call kwargs completed with the geometry read from its kernel arrays.

    Any geometry keys the caller passed are ignored: the arrays are the truth, as for Keras,
    which infers ``groups = channels // kernel.shape[-2]``.
    """
    kind = kinds.get_kind(layer)
    out = {k: v for k, v in kwargs.items() if k not in kind.geometry}
    if kind.is_pool:
        if weight_shapes:
            raise UsageError(f"{layer} takes no kernel arrays, got {len(weight_shapes)}")
        return out
    rank = kinds.spatial_rank(kind, input_shape)
    n_expected = len(kind.weight_names)
    if len(weight_shapes) != n_expected:
        raise UsageError(
            f"{layer} takes {n_expected} kernel array(s) ({', '.join(kind.weight_names)}), "
            f"got {len(weight_shapes)}"
        )
    for name, shape in zip(kind.weight_names, weight_shapes):
        if len(shape) != rank + 2:
            raise InvalidConfig(
                f"{name} must have rank {rank + 2} for a {rank}D input, got shape {shape}"
            )
    data_format = kwargs.get("data_format") or "channels_last"
    c_in = kinds.channels({"data_format": data_format}, input_shape)
    kshape = weight_shapes[0]
    out["kernel_size"] = tuple(kshape[:-2])
    if kind.family == "conv":
        cg = kshape[-2]
        if c_in == 0:
            raise InvalidConfig(f"input_shape has zero channels: input_shape={tuple(input_shape)}")
        if cg <= 0 or c_in % cg:
            raise InvalidConfig(
                f"kernel input channels (kernel.shape[-2]={cg}) must divide the {c_in} input "
                f"channels (groups = channels // kernel.shape[-2])"
            )
        out["groups"] = c_in // cg
        out["filters"] = kshape[-1]
    elif kind.family == "conv_transpose":
        if kshape[-1] != c_in:
            raise InvalidConfig(
                f"kernel.shape[-1]={kshape[-1]} must equal the {c_in} input channels "
                f"(conv_transpose kernel layout is (*kernel_size, filters, channels))"
            )
        out["filters"] = kshape[-2]
    else:  # depthwise, separable
        if kshape[-2] != c_in:
            raise InvalidConfig(
                f"kernel.shape[-2]={kshape[-2]} must equal the {c_in} input channels"
            )
        out["depth_multiplier"] = kshape[-1]
        if kind.family == "separable":
            pshape = weight_shapes[1]
            if tuple(pshape[:-2]) != (1,) * rank or pshape[-2] != c_in * kshape[-1]:
                raise InvalidConfig(
                    f"pointwise_kernel must have shape {(1,) * rank + (c_in * kshape[-1],)}"
                    f" + (filters,), got {tuple(pshape)}"
                )
            out["filters"] = pshape[-1]
    return out


def check_layer_weights(
    layer: str, canon: Mapping[str, Any], input_shape: Sequence[int],
    weight_shapes: Sequence[tuple[int, ...]],
) -> None:
    """UsageError unless the weights are exactly what ``get_weights()`` would return."""
    expected = [tuple(s) for s in kinds.weight_shapes(layer, canon, input_shape)]
    got = [tuple(s) for s in weight_shapes]
    if expected != got:
        raise UsageError(
            f"{layer} weights must have shapes {expected} (get_weights() order), got {got}"
        )
