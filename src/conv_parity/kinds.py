"""What is under test: one record per layer or op kind (a slim OpInfo).

Every other part (reference, workers, grid, CLI) asks this module, and only this module, which
keyword arguments a kind takes, what they default to, how they are written canonically (ints
expanded to tuples, padding lower-case, data_format explicit) and which weights it owns in which
layout. It is pure Python on purpose: the backend workers import it before Keras.

Layer kinds take their Keras constructor arguments. Op kinds (``ops.conv`` ...) take the op's
keyword arguments plus *geometry* arguments that say how big the kernel arrays are
(``kernel_size``, ``filters``, ``groups``, ``depth_multiplier``); :func:`call_kwargs` strips the
geometry before the op is called, because the op receives the kernel arrays themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conv_parity.errors import Uncheckable, UsageError

FAMILIES = ("conv", "conv_transpose", "depthwise", "separable", "max_pool", "average_pool",
            "adaptive_max_pool", "adaptive_average_pool")
#: The pooling families: no weights; the adaptive ones size their bins from ``output_size``.
POOL_FAMILIES = ("max_pool", "average_pool", "adaptive_max_pool", "adaptive_average_pool")
ADAPTIVE_FAMILIES = ("adaptive_max_pool", "adaptive_average_pool")
PADDINGS = ("valid", "same", "causal")
DATA_FORMATS = ("channels_last", "channels_first")
# Element-wise Keras activations a conv layer accepts (reference/_activations.py defines them).
ACTIVATIONS = (None, "linear", "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "swish",
               "hard_sigmoid", "hard_silu", "hard_swish", "gelu", "elu", "celu", "selu",
               "softplus", "softsign", "mish", "exponential", "log_sigmoid", "hard_tanh",
               "tanh_shrink", "soft_shrink", "hard_shrink", "squareplus", "sparse_plus",
               "sparse_sigmoid")
# Keras activations that mix the channels: a real layer may use them, conv-parity cannot check it.
CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax", "sparsemax", "glu")

_REQUIRED = object()  # marks a keyword argument without a default


@dataclass(frozen=True)
class Kind:
    """One layer or op under test and the facts every part needs about it."""

    name: str
    family: str
    rank: int | None  # spatial rank; None for ops, whose rank comes from the input shape
    params: Mapping[str, Any]  # keyword -> default (_REQUIRED when required), canonical order
    tuple_params: tuple[str, ...]  # keywords that take an int or a tuple of `rank` ints
    geometry: tuple[str, ...] = ()  # op-only keywords that size the kernels, not passed to the op
    weight_names: tuple[str, ...] = ()  # get_weights() order (bias last, only when use_bias)
    initializer_kwargs: tuple[str, ...] = field(default=())  # constructor args set to "zeros"

    @property
    def is_op(self) -> bool:
        return self.name.startswith("ops.")

    @property
    def is_pool(self) -> bool:
        return self.family in POOL_FAMILIES

    @property
    def is_adaptive(self) -> bool:
        """Adaptive pooling: ``output_size`` bins the input (no pool_size, strides or padding;
        Keras 3.13+)."""
        return self.family in ADAPTIVE_FAMILIES

    @property
    def is_max(self) -> bool:
        """A max reduction: its gradient goes to one element per window (ties matter)."""
        return self.family in ("max_pool", "adaptive_max_pool")

    @property
    def is_global(self) -> bool:
        """Global pooling: the window is the whole input (no pool_size, strides or padding)."""
        return self.name.startswith("Global")

    @property
    def has_weights(self) -> bool:
        return bool(self.weight_names)

    @property
    def is_transposed(self) -> bool:
        return self.family == "conv_transpose"

    @property
    def has_bias(self) -> bool:
        """Whether the kind can add a bias (the layers with ``use_bias``; ops never do)."""
        return "use_bias" in self.params


_LAYER_COMMON_TAIL = {"activation": None, "use_bias": True}

_CONV = {
    "filters": _REQUIRED,
    "kernel_size": _REQUIRED,
    "strides": 1,
    "padding": "valid",
    "data_format": None,
    "dilation_rate": 1,
    "groups": 1,
    **_LAYER_COMMON_TAIL,
}
_CONV_T = {
    "filters": _REQUIRED,
    "kernel_size": _REQUIRED,
    "strides": 1,
    "padding": "valid",
    "output_padding": None,
    "data_format": None,
    "dilation_rate": 1,
    **_LAYER_COMMON_TAIL,
}
_DEPTHWISE = {
    "kernel_size": _REQUIRED,
    "strides": 1,
    "padding": "valid",
    "depth_multiplier": 1,
    "data_format": None,
    "dilation_rate": 1,
    **_LAYER_COMMON_TAIL,
}
_SEPARABLE = {
    "filters": _REQUIRED,
    "kernel_size": _REQUIRED,
    "strides": 1,
    "padding": "valid",
    "data_format": None,
    "dilation_rate": 1,
    "depth_multiplier": 1,
    **_LAYER_COMMON_TAIL,
}
_MAX_POOL = {"pool_size": 2, "strides": None, "padding": "valid", "data_format": None}
_AVG_POOL = {**_MAX_POOL, "pool_size": _REQUIRED}  # Keras's AveragePooling*D has no default

# GlobalAveragePooling*D / GlobalMaxPooling*D: one window over all spatial positions.
_GLOBAL_POOL = {"data_format": None, "keepdims": False}

# Adaptive{Average,Max}Pooling*D and keras.ops.adaptive_{average,max}_pool (Keras 3.13+).
_ADAPTIVE_POOL = {"output_size": _REQUIRED, "data_format": None}

_OP_CONV = {"strides": 1, "padding": "valid", "data_format": None, "dilation_rate": 1}
_OP_CONV_T = {
    "strides": _REQUIRED,
    "padding": "valid",
    "output_padding": None,
    "data_format": None,
    "dilation_rate": 1,
}
_OP_POOL = {"pool_size": _REQUIRED, "strides": None, "padding": "valid", "data_format": None}

_CONV_TUPLES = ("kernel_size", "strides", "dilation_rate")


def _build_kinds() -> dict[str, Kind]:
    kinds: list[Kind] = []
    for rank in (1, 2, 3):
        kinds.append(
            Kind(
                f"Conv{rank}D",
                "conv",
                rank,
                _CONV,
                _CONV_TUPLES,
                weight_names=("kernel", "bias"),
                initializer_kwargs=("kernel_initializer", "bias_initializer"),
            )
        )
        kinds.append(
            Kind(
                f"Conv{rank}DTranspose",
                "conv_transpose",
                rank,
                _CONV_T,
                (*_CONV_TUPLES, "output_padding"),
                weight_names=("kernel", "bias"),
                initializer_kwargs=("kernel_initializer", "bias_initializer"),
            )
        )
        kinds.append(
            Kind(f"MaxPooling{rank}D", "max_pool", rank, _MAX_POOL, ("pool_size", "strides"))
        )
        kinds.append(
            Kind(f"AveragePooling{rank}D", "average_pool", rank, _AVG_POOL, ("pool_size", "strides"))
        )
        kinds.append(Kind(f"GlobalMaxPooling{rank}D", "max_pool", rank, _GLOBAL_POOL, ()))
        kinds.append(Kind(f"GlobalAveragePooling{rank}D", "average_pool", rank, _GLOBAL_POOL, ()))
    for rank in (1, 2):
        kinds.append(
            Kind(
                f"DepthwiseConv{rank}D",
                "depthwise",
                rank,
                _DEPTHWISE,
                _CONV_TUPLES,
                weight_names=("depthwise_kernel", "bias"),
                initializer_kwargs=("depthwise_initializer", "bias_initializer"),
            )
        )
        kinds.append(
            Kind(
                f"SeparableConv{rank}D",
                "separable",
                rank,
                _SEPARABLE,
                _CONV_TUPLES,
                weight_names=("depthwise_kernel", "pointwise_kernel", "bias"),
                initializer_kwargs=(
                    "depthwise_initializer",
                    "pointwise_initializer",
                    "bias_initializer",
                ),
            )
        )
    kinds += [
        Kind(
            "ops.conv",
            "conv",
            None,
            _OP_CONV,
            ("strides", "dilation_rate", "kernel_size"),
            geometry=("kernel_size", "filters", "groups"),
            weight_names=("kernel",),
        ),
        Kind(
            "ops.conv_transpose",
            "conv_transpose",
            None,
            _OP_CONV_T,
            ("strides", "dilation_rate", "kernel_size", "output_padding"),
            geometry=("kernel_size", "filters"),
            weight_names=("kernel",),
        ),
        Kind(
            "ops.depthwise_conv",
            "depthwise",
            None,
            _OP_CONV,
            ("strides", "dilation_rate", "kernel_size"),
            geometry=("kernel_size", "depth_multiplier"),
            weight_names=("kernel",),
        ),
        Kind(
            "ops.separable_conv",
            "separable",
            None,
            _OP_CONV,
            ("strides", "dilation_rate", "kernel_size"),
            geometry=("kernel_size", "depth_multiplier", "filters"),
            weight_names=("depthwise_kernel", "pointwise_kernel"),
        ),
        Kind("ops.max_pool", "max_pool", None, _OP_POOL, ("pool_size", "strides")),
        Kind("ops.average_pool", "average_pool", None, _OP_POOL, ("pool_size", "strides")),
    ]
    # Last, so that the kinds before them keep their place (the grid draws in this order).
    for rank in (1, 2, 3):
        kinds.append(Kind(f"AdaptiveMaxPooling{rank}D", "adaptive_max_pool", rank,
                          _ADAPTIVE_POOL, ("output_size",)))
        kinds.append(Kind(f"AdaptiveAveragePooling{rank}D", "adaptive_average_pool", rank,
                          _ADAPTIVE_POOL, ("output_size",)))
    kinds += [
        Kind("ops.adaptive_max_pool", "adaptive_max_pool", None, _ADAPTIVE_POOL,
             ("output_size",)),
        Kind("ops.adaptive_average_pool", "adaptive_average_pool", None, _ADAPTIVE_POOL,
             ("output_size",)),
    ]
    return {k.name: k for k in kinds}


KINDS: dict[str, Kind] = _build_kinds()

_GEOMETRY_DEFAULTS = {
    "kernel_size": _REQUIRED,
    "filters": _REQUIRED,
    "groups": 1,
    "depth_multiplier": 1,
}


def get_kind(name: str) -> Kind:
    """The record of a layer/op name; UsageError listing the known names otherwise."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(KINDS))
        hint = did_you_mean(str(name), KINDS)
        raise UsageError(f"unknown layer or op {name!r}{hint}; known: {known}") from None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'Conv2D'?)`` for a near miss (case-insensitive first: 'Conv2d'), or ''."""
    import difflib

    options = list(choices)
    folded = {c.lower(): c for c in options}
    if name.lower() in folded:
        return f" (did you mean {folded[name.lower()]!r}?)"
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def spatial_rank(kind: Kind, input_shape: Sequence[int]) -> int:
    """The number of spatial dimensions: fixed for layers, ndim - 2 for ops."""
    if kind.rank is not None:
        return kind.rank
    rank = len(input_shape) - 2
    if rank not in (1, 2, 3):
        raise UsageError(
            f"{kind.name} needs an input of rank 3, 4 or 5 (batch, spatial..., channels); "
            f"got input_shape={tuple(input_shape)!r}"
        )
    return rank


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be an int, got {value!r}")
    return value


def _as_tuple(name: str, value: Any, rank: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        if len(value) != rank:
            raise UsageError(f"{name} must have {rank} entries for a {rank}D kind, got {value!r}")
        return tuple(_as_int(name, v) for v in value)
    return (_as_int(name, value),) * rank


def canonicalize(name: str, kwargs: Mapping[str, Any], input_shape: Sequence[int]) -> dict[str, Any]:
    """Complete, canonical keyword arguments: every meaningful key, ints expanded to tuples.

    Raises UsageError for unknown keywords, missing required ones and malformed types. Values
    that are well-formed but rejected by the specification (a zero stride, groups not dividing
    the channels) pass through: :func:`conv_parity.reference.output_shape` rejects them with
    InvalidConfig, and the suite checks that backends reject them too.
    """
    kind = get_kind(name)
    rank = spatial_rank(kind, input_shape)
    accepted = dict(kind.params)
    for g in kind.geometry:
        accepted[g] = _GEOMETRY_DEFAULTS[g]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        hint = did_you_mean(unknown[0], accepted) if len(unknown) == 1 else ""
        raise UsageError(
            f"{name} does not take {', '.join(map(repr, unknown))}{hint}; "
            f"it takes: {', '.join(accepted)}"
        )
    out: dict[str, Any] = {}
    for key, default in accepted.items():
        value = kwargs.get(key, default)
        if value is _REQUIRED:
            raise UsageError(f"{name} needs the argument {key!r}")
        out[key] = _canonical_value(name, kind, key, value, rank)
    return out


def _canonical_value(name: str, kind: Kind, key: str, value: Any, rank: int) -> Any:
    if key in kind.tuple_params:
        if value is None and key in ("strides", "output_padding"):
            if key == "strides" and not kind.is_pool:
                raise UsageError(f"{name}: strides must not be None")
            return None
        return _as_tuple(key, value, rank)
    if key == "padding":
        if not isinstance(value, str) or value.lower() not in PADDINGS:
            raise UsageError(f"padding must be one of {PADDINGS}, got {value!r}")
        return value.lower()
    if key == "data_format":
        value = "channels_last" if value is None else value
        if value not in DATA_FORMATS:
            raise UsageError(f"data_format must be one of {DATA_FORMATS}, got {value!r}")
        return value
    if key in ("filters", "groups", "depth_multiplier"):
        return _as_int(key, value)
    if key in ("use_bias", "keepdims"):
        if not isinstance(value, bool):
            raise UsageError(f"{key} must be True or False, got {value!r}")
        return value
    if key == "activation":
        if value in CHANNEL_MIXING_ACTIVATIONS:
            raise Uncheckable(f"activation {value!r} mixes the channels: conv-parity computes "
                              f"element-wise activations only", argument="activation")
        if value not in ACTIVATIONS:
            raise UsageError(
                f"activation {value!r} is not one conv-parity computes; element-wise Keras "
                f"activations only: {', '.join(a for a in ACTIVATIONS if a)} (softmax, "
                f"log_softmax, sparsemax and glu mix the channels)")
        return None if value == "linear" else value
    return value


def call_kwargs(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments to pass to the layer constructor or the op (geometry removed)."""
    kind = get_kind(name)
    return {k: v for k, v in kwargs.items() if k not in kind.geometry}


def channels(kwargs: Mapping[str, Any], input_shape: Sequence[int]) -> int:
    """The input's channel count, read from the axis data_format names."""
    if kwargs.get("data_format", "channels_last") == "channels_first":
        return int(input_shape[1])
    return int(input_shape[-1])


def weight_shapes(
    name: str, kwargs: Mapping[str, Any], input_shape: Sequence[int]
) -> list[tuple[int, ...]]:
    """Shapes of the arrays `get_weights()` returns (layers) or the op takes (ops), in order.

    `kwargs` must be canonical. For configurations the spec rejects (groups not dividing the
    channels) the shapes are still well defined, so the backend can be asked and must refuse.
    """
    kind = get_kind(name)
    c_in = channels(kwargs, input_shape)
    rank = spatial_rank(kind, input_shape)
    if kind.is_pool:
        return []
    k = tuple(kwargs["kernel_size"])
    shapes: list[tuple[int, ...]]
    if kind.family == "conv":
        groups = max(1, kwargs.get("groups", 1))
        shapes = [(*k, max(1, c_in // groups), kwargs["filters"])]
        n_out = kwargs["filters"]
    elif kind.family == "conv_transpose":
        shapes = [(*k, kwargs["filters"], c_in)]
        n_out = kwargs["filters"]
    elif kind.family == "depthwise":
        dm = kwargs["depth_multiplier"]
        shapes = [(*k, c_in, dm)]
        n_out = c_in * dm
    else:  # separable
        dm = kwargs["depth_multiplier"]
        shapes = [(*k, c_in, dm), (*(1,) * rank, c_in * dm, kwargs["filters"])]
        n_out = kwargs["filters"]
    if not kind.is_op and kwargs.get("use_bias", False):
        shapes.append((n_out,))
    return shapes
