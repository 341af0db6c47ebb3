"""The safe layer-expression parser behind ``conv-parity check`` (and its shape-rule text).

A person pastes the layer as they wrote it, ``Conv2D(8, kernel_size=(4, 4), padding='same')``;
we must never ``eval`` it (it is user input on a command line that CI may run). The expression
is parsed with :mod:`ast` and only literals are read: ints, strings, booleans, ``None`` and
tuples/lists of those. Positional arguments are mapped in the order of the real Keras
constructor (or ``keras.ops`` function), so what runs is what the user's code does.

Every rejection is a :class:`~conv_parity.errors.UsageError` whose message is one line that
names the problem and shows a correct example, because the CLI prints it as is (exit 2).

It sits in the ``cli`` package because only the front door reads what a person typed; its
shape-rule text is derived independently of :mod:`conv_parity.reference` on purpose, so that
the two check each other (``tests/cli/test_cli_parse.py``).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conv_parity import kinds
from conv_parity.errors import UsageError
from conv_parity.policies import POLICIES
from conv_parity.registry import installed_keras_version, old_output_padding_api

#: Positional order of each kind, read from Keras 3's signatures (``keras/src/layers/
#: convolutional/*.py``, ``pooling/*.py``, ``ops/nn.py``). Note Conv3DTranspose puts
#: ``data_format`` before ``output_padding``, unlike the 1D/2D transposed layers, and that
#: before Keras 3.11 the transposed layers had no ``output_padding`` parameter at all
#: (:func:`conv_parity.registry.old_output_padding_api`).
_CONV_POS = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
             "groups", "activation", "use_bias")
_CONV_T_POS = ("filters", "kernel_size", "strides", "padding", "output_padding", "data_format",
               "dilation_rate", "activation", "use_bias")
_CONV3D_T_POS = ("filters", "kernel_size", "strides", "padding", "data_format", "output_padding",
                 "dilation_rate", "activation", "use_bias")
_CONV_T_POS_BEFORE_3_11 = ("filters", "kernel_size", "strides", "padding", "data_format",
                           "dilation_rate", "activation", "use_bias")
_DEPTHWISE_POS = ("kernel_size", "strides", "padding", "depth_multiplier", "data_format",
                  "dilation_rate", "activation", "use_bias")
_SEPARABLE_POS = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
                  "depth_multiplier", "activation", "use_bias")
_POOL_POS = ("pool_size", "strides", "padding", "data_format")
_GLOBAL_POOL_POS = ("data_format", "keepdims")
_ADAPTIVE_POS = ("output_size", "data_format")

#: keras.ops functions: (array arguments, literal positional arguments after them).
_OP_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ops.conv": (("inputs", "kernel"), ("strides", "padding", "data_format", "dilation_rate")),
    "ops.conv_transpose": (("inputs", "kernel"),
                           ("strides", "padding", "output_padding", "data_format",
                            "dilation_rate")),
    "ops.depthwise_conv": (("inputs", "kernel"),
                           ("strides", "padding", "data_format", "dilation_rate")),
    "ops.separable_conv": (("inputs", "depthwise_kernel", "pointwise_kernel"),
                           ("strides", "padding", "data_format", "dilation_rate")),
    "ops.max_pool": (("inputs",), ("pool_size", "strides", "padding", "data_format")),
    "ops.average_pool": (("inputs",), ("pool_size", "strides", "padding", "data_format")),
    "ops.adaptive_max_pool": (("inputs",), _ADAPTIVE_POS),
    "ops.adaptive_average_pool": (("inputs",), _ADAPTIVE_POS),
}

#: Keras's own aliases, so code pasted as written is understood.
_ALIASES = {
    **{f"Convolution{r}D": f"Conv{r}D" for r in (1, 2, 3)},
    **{f"Convolution{r}DTranspose": f"Conv{r}DTranspose" for r in (1, 2, 3)},
    **{f"MaxPool{r}D": f"MaxPooling{r}D" for r in (1, 2, 3)},
    **{f"AvgPool{r}D": f"AveragePooling{r}D" for r in (1, 2, 3)},
    **{f"GlobalMaxPool{r}D": f"GlobalMaxPooling{r}D" for r in (1, 2, 3)},
    **{f"GlobalAvgPool{r}D": f"GlobalAveragePooling{r}D" for r in (1, 2, 3)},
}

#: Keras constructor arguments that do not change the forward computation conv-parity checks
#: (weights come from the seed; regularizers/constraints act in training only). They are
#: accepted and dropped *unread* (never evaluated), so pasting real code works.
IGNORED_KWARGS = frozenset({
    "name", "trainable", "kernel_initializer", "bias_initializer", "depthwise_initializer",
    "pointwise_initializer", "kernel_regularizer", "bias_regularizer", "depthwise_regularizer",
    "pointwise_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint",
    "depthwise_constraint", "pointwise_constraint", "lora_rank", "lora_alpha",
    "input_shape", "batch_input_shape", "input_dim",
})

_PREFIXES = ("tf.keras.layers.", "keras.layers.", "layers.", "keras.ops.nn.", "keras.ops.",
             "ops.nn.", "ops.")

_POSITIVE_INTS = ("filters", "groups", "depth_multiplier")
_POSITIVE_TUPLES = ("kernel_size", "strides", "dilation_rate", "pool_size")

DEFAULT_EXAMPLE = ("conv-parity check \"Conv2D(8, kernel_size=(4, 4), strides=(2, 2), "
                   "padding='same', use_bias=False)\" --input-shape 1,28,28,3")


def positional_order(name: str, keras_version: str | None = None) -> tuple[str, ...]:
    """The literal positional arguments of a kind, in its Keras signature's order, for
    ``keras_version`` (default: the installed Keras)."""
    if name in _OP_SIGNATURES:
        return _OP_SIGNATURES[name][1]
    kind = kinds.get_kind(name)
    if kind.is_global:
        return _GLOBAL_POOL_POS
    family = kind.family
    if family == "conv_transpose" and old_output_padding_api(
            keras_version or installed_keras_version()):
        return _CONV_T_POS_BEFORE_3_11
    if name == "Conv3DTranspose":
        return _CONV3D_T_POS
    return {
        "conv": _CONV_POS,
        "conv_transpose": _CONV_T_POS,
        "depthwise": _DEPTHWISE_POS,
        "separable": _SEPARABLE_POS,
        "max_pool": _POOL_POS,
        "average_pool": _POOL_POS,
        "adaptive_max_pool": _ADAPTIVE_POS,
        "adaptive_average_pool": _ADAPTIVE_POS,
    }[family]


def example_for(name: str | None) -> str:
    """A correct ``check`` command for a kind (shown with every rejection)."""
    if name is None or name not in kinds.KINDS:
        return DEFAULT_EXAMPLE
    kind = kinds.KINDS[name]
    rank = kind.rank or 2
    spatial = ",".join(["28", "28", "28"][:rank] if rank < 3 else ["8", "8", "8"])
    shape = f"1,{spatial},3"
    k = "(" + ", ".join(["3"] * rank) + ")" if rank > 1 else "3"
    if kind.is_op:
        arrays = ", ".join(_OP_SIGNATURES[name][0])
        if kind.is_adaptive:
            expr = f"{name}({arrays}, output_size={k})"
        elif kind.is_pool:
            expr = f"{name}({arrays}, pool_size={k}, strides=2, padding='same')"
        else:
            geo = {"conv": "kernel_size={k}, filters=8",
                   "conv_transpose": "kernel_size={k}, filters=8",
                   "depthwise": "kernel_size={k}, depth_multiplier=2",
                   "separable": "kernel_size={k}, depth_multiplier=2, filters=8"}[kind.family]
            expr = f"{name}({arrays}, strides=2, padding='same', {geo.format(k=k)})"
        return f"conv-parity check \"{expr}\" --input-shape {shape}"
    if kind.is_global:
        expr = f"{name}(keepdims=True)"
    elif kind.is_adaptive:
        expr = f"{name}(output_size={k})"
    elif kind.is_pool:
        expr = f"{name}(pool_size={k}, strides=2, padding='same')"
    elif kind.family == "depthwise":
        expr = f"{name}(kernel_size={k}, depth_multiplier=2, padding='same')"
    else:
        expr = f"{name}(8, kernel_size={k}, strides=2, padding='same')"
    return f"conv-parity check \"{expr}\" --input-shape {shape}"


def with_example(message: str, name: str | None = None) -> str:
    """`message` as one line, followed by a correct example."""
    one_line = " ".join(str(message).split())
    return f"{one_line}; e.g. {example_for(name)}"


@dataclass
class ParsedLayer:
    """What a layer expression says: the kind, its (non-canonical) kwargs and side facts."""

    name: str
    kwargs: dict[str, Any]
    dtype: str | None = None  # the expression's own dtype= (if any)
    ignored: list[str] = field(default_factory=list)  # accepted but irrelevant keywords
    source: str = ""


class _NotLiteral(Exception):
    pass


def _literal(node: ast.AST) -> Any:
    """The value of a literal node; _NotLiteral for anything else (names, calls, operators)."""
    if isinstance(node, ast.Constant) and (
        node.value is None or isinstance(node.value, (bool, int, float, str))
    ):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _literal(node.operand)
        if isinstance(inner, bool) or not isinstance(inner, (int, float)):
            raise _NotLiteral
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):  # a pasted get_config() value (no ``**spread``)
        keys = [k for k in node.keys if k is not None]
        if len(keys) == len(node.keys):
            return {_literal(k): _literal(v) for k, v in zip(keys, node.values)}
    raise _NotLiteral


def _policy_dtype(name: str, value: Any) -> Any:
    """A ``dtype=`` as get_config() writes it: a DTypePolicy dict gives its policy name
    (``mixed_bfloat16`` included), anything else is returned as is."""
    if not isinstance(value, dict):
        return value
    policy = (value.get("config") or {}).get("name") if isinstance(value.get("config"), dict) \
        else None
    if value.get("class_name") not in ("DTypePolicy", "FloatDTypePolicy") or policy is None:
        raise UsageError(with_example(
            f"{name}: dtype must be a dtype name or a DTypePolicy config, got {value!r}", name))
    return policy


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _resolve_name(dotted: str) -> str:
    """`keras.layers.Conv2D` -> `Conv2D`, `keras.ops.conv` -> `ops.conv`; UsageError if not ours."""
    bare = dotted
    for prefix in _PREFIXES:
        if dotted.startswith(prefix):
            bare = dotted[len(prefix):]
            break
    if "." in bare:
        raise UsageError(with_example(f"{dotted!r} is not a Keras layer or keras.ops function"))
    bare = _ALIASES.get(bare, bare)
    if bare in kinds.KINDS and not bare.startswith("ops."):
        return bare
    if f"ops.{bare}" in kinds.KINDS:
        return f"ops.{bare}"
    layers = [k for k in kinds.KINDS if not k.startswith("ops.")]
    hint = kinds.did_you_mean(bare, layers + [k[len("ops."):] for k in kinds.KINDS
                                              if k.startswith("ops.")])
    raise UsageError(with_example(
        f"{dotted} is not a convolution or pooling layer conv-parity covers{hint} (covered: "
        f"Conv{{1,2,3}}D, Conv{{1,2,3}}DTranspose, DepthwiseConv{{1,2}}D, SeparableConv{{1,2}}D, "
        f"MaxPooling{{1,2,3}}D, AveragePooling{{1,2,3}}D, GlobalMaxPooling{{1,2,3}}D, "
        f"GlobalAveragePooling{{1,2,3}}D, Adaptive{{Max,Average}}Pooling{{1,2,3}}D and "
        f"keras.ops conv, conv_transpose, depthwise_conv, separable_conv, max_pool, "
        f"average_pool, adaptive_max_pool, adaptive_average_pool)"
    ))


def _fmt(value: Any) -> str:
    return repr(value)


def _check_value(name: str, key: str, value: Any, rank: int | None) -> Any:
    """Type and sign checks with messages a person can act on (kinds.canonicalize does the
    rest: padding/data_format/activation spellings, tuple lengths)."""

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def bad(expected: str) -> UsageError:
        return UsageError(with_example(f"{name}: {key} must be {expected}, got {key}={_fmt(value)}",
                                       name))

    if key in _POSITIVE_INTS:
        if not is_int(value):
            raise bad("a positive int")
        if value < 1:
            raise bad("a positive int")
        return value
    if key in _POSITIVE_TUPLES or key == "output_padding":
        if value is None and key in ("strides", "output_padding"):
            return None
        what = "a non-negative int" if key == "output_padding" else "a positive int"
        n = f"{rank} " if rank else ""
        expected = f"{what} or a tuple of {n}such ints"
        items = value if isinstance(value, tuple) else (value,)
        if not items or not all(is_int(v) for v in items):
            raise bad(expected)
        low = 0 if key == "output_padding" else 1
        if any(v < low for v in items):
            raise bad(expected)
        if isinstance(value, tuple) and rank is not None and len(value) != rank:
            raise bad(f"an int or a tuple of {rank} ints for a {rank}D layer")
        return value
    if key in ("padding",):
        if not isinstance(value, str):
            raise bad("one of 'valid', 'same', 'causal'")
        return value
    if key == "data_format":
        if value is not None and not isinstance(value, str):
            raise bad("'channels_last', 'channels_first' or None")
        return value
    if key == "activation":
        if value is not None and not isinstance(value, str):
            raise bad("None or the name of an activation (e.g. 'relu')")
        return value
    if key == "use_bias":
        if not isinstance(value, bool):
            raise bad("True or False")
        return value
    return value


def parse_layer(expr: str) -> ParsedLayer:
    """Parse a layer or op expression safely; UsageError (one line, with an example) otherwise."""
    text = (expr or "").strip()
    if not text:
        raise UsageError(with_example("the layer expression is empty"))
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        reason = exc.msg or "invalid syntax"
        raise UsageError(with_example(
            f"cannot parse the layer expression {text!r}: {reason}"
        )) from None
    call = tree.body
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Call) and not call.keywords \
            and all(isinstance(a, ast.Name) for a in call.args):
        call = call.func  # `Conv2D(...)(x)` as pasted from a model: the layer is the inner call
    if not isinstance(call, ast.Call):
        if isinstance(call, (ast.Name, ast.Attribute)) and _dotted(call):
            raise UsageError(with_example(
                f"{text!r} is a name, not a call: write it with its arguments"))
        raise UsageError(with_example(
            f"the layer expression must be one call such as Conv2D(...), got {text!r}"))
    dotted = _dotted(call.func)
    if dotted is None:
        raise UsageError(with_example(
            f"the layer expression must call a Keras layer by name, got {text!r}"))
    name = _resolve_name(dotted)
    kind = kinds.get_kind(name)
    rank = kind.rank
    accepted = set(kind.params) | set(kind.geometry)

    kwargs: dict[str, Any] = {}
    positional = list(call.args)
    if any(isinstance(a, ast.Starred) for a in positional) or any(
        k.arg is None for k in call.keywords
    ):
        raise UsageError(with_example(
            f"{name}: *args and **kwargs cannot be read safely; write the arguments out", name))
    if kind.is_op:
        arrays = _OP_SIGNATURES[name][0]
        # Array arguments (x, kernel, ...) may be written as plain names; they are placeholders:
        # the arrays are drawn from the seed, their sizes come from the geometry keywords.
        n_arrays = 0
        while positional and n_arrays < len(arrays) and isinstance(positional[0], ast.Name):
            positional.pop(0)
            n_arrays += 1
    order = positional_order(name)
    if len(positional) > len(order):
        raise UsageError(with_example(
            f"{name} takes at most {len(order)} positional arguments "
            f"({', '.join(order)}), got {len(positional)}", name))
    pairs: list[tuple[str, ast.AST]] = list(zip(order, positional))
    pairs += [(k.arg, k.value) for k in call.keywords if k.arg is not None]
    ignored: list[str] = []
    dtype: str | None = None
    for key, node in pairs:
        if key in kwargs or key in ignored or (key == "dtype" and dtype is not None):
            raise UsageError(with_example(f"{name} got multiple values for {key!r}", name))
        if key in IGNORED_KWARGS and not kind.is_op:
            ignored.append(key)  # dropped unread: never evaluated
            continue
        try:
            value = _literal(node)
        except _NotLiteral:
            snippet = ast.get_source_segment(text, node) or ast.dump(node)[:40]
            raise UsageError(with_example(
                f"{name}: the value of {key} must be a literal (a number, string, True/False, "
                f"None or a tuple of those), got {snippet}", name)) from None
        if isinstance(value, float):
            raise UsageError(with_example(
                f"{name}: {key} must not be a float, got {key}={value!r}", name))
        if key == "dtype" and not kind.is_op:
            value = _policy_dtype(name, value)
            if value is not None and value not in POLICIES:
                raise UsageError(with_example(
                    f"{name}: dtype must be a dtype policy, one of {', '.join(POLICIES)} (or "
                    f"use --dtype), got dtype={value!r}", name))
            dtype = value
            continue
        if key not in accepted:
            takes = ", ".join([*order, *(g for g in kind.geometry if g not in order)])
            hint = kinds.did_you_mean(key, [*accepted, "dtype"])
            raise UsageError(with_example(
                f"{name} does not take {key!r}{hint}; it takes {takes}", name))
        kwargs[key] = _check_value(name, key, value, rank)
    if kind.is_op:
        missing = [g for g in kind.geometry
                   if g in ("kernel_size", "filters") and g not in kwargs]
        if missing:
            raise UsageError(with_example(
                f"{name} gets its kernel arrays' sizes from geometry keywords: add "
                f"{', '.join(f'{m}=...' for m in missing)}", name))
    return ParsedLayer(name, kwargs, dtype, ignored, text)


def parse_input_shape(text: str) -> tuple[int, ...]:
    """`1,28,28,3` (also `(1, 28, 28, 3)`, `1x28x28x3`) -> (1, 28, 28, 3); UsageError otherwise."""
    raw = (text or "").strip().strip("()[]")
    parts = [p.strip() for p in raw.replace("x", ",").replace(" ", ",").split(",")]
    parts = [p for p in parts if p]
    if not parts:
        raise UsageError(f"--input-shape is empty; e.g. {DEFAULT_EXAMPLE}")
    dims = []
    for p in parts:
        try:
            d = int(p)
        except ValueError:
            raise UsageError(
                f"--input-shape {text!r}: {p!r} is not an int; write the sizes as "
                f"batch,spatial...,channels, e.g. --input-shape 1,28,28,3") from None
        if d < 0:
            raise UsageError(f"--input-shape {text!r}: sizes must be >= 0, got {d}")
        dims.append(d)
    return tuple(dims)


_AXIS_NAMES = {1: ("length",), 2: ("H", "W"), 3: ("D", "H", "W")}


def layout(rank: int, data_format: str) -> str:
    """A human layout such as `(batch, H, W, channels)`."""
    axes = ", ".join(_AXIS_NAMES[rank])
    if data_format == "channels_first":
        return f"(batch, channels, {axes})"
    return f"(batch, {axes}, channels)"


def check_input_shape(parsed: ParsedLayer, shape: Sequence[int]) -> list[str]:
    """Validate `shape` against the kind's rank and data_format; returns notes (warnings).

    UsageError names the expected rank and layout. A shape that fits the rank but looks like
    the other data_format gives a note, not an error: it is a valid (if surprising) input.
    """
    kind = kinds.get_kind(parsed.name)
    fmt = parsed.kwargs.get("data_format") or "channels_last"
    if fmt not in kinds.DATA_FORMATS:
        return []  # canonicalize reports the bad spelling
    ranks: tuple[int, ...] = (kind.rank + 2,) if kind.rank is not None else (3, 4, 5)
    if len(shape) not in ranks:
        shown = ",".join(map(str, shape))
        if kind.rank is not None:
            want = f"rank {kind.rank + 2} {layout(kind.rank, fmt)}"
        else:
            want = "rank 3, 4 or 5 (batch, spatial..., channels)"
        raise UsageError(with_example(
            f"--input-shape {shown} has rank {len(shape)}, but {parsed.name} with "
            f"data_format={fmt!r} takes inputs of {want}", parsed.name))
    rank = len(shape) - 2
    c_axis = 1 if fmt == "channels_first" else len(shape) - 1
    if shape[c_axis] == 0:
        raise UsageError(with_example(
            f"--input-shape {','.join(map(str, shape))}: the channels axis {layout(rank, fmt)} "
            f"is 0", parsed.name))
    notes = []
    spatial = shape[2:] if fmt == "channels_first" else shape[1:-1]
    other = shape[-1] if fmt == "channels_first" else shape[1]
    if rank >= 2 and shape[c_axis] > 4 and other <= 4 and len(set(spatial[1:])) == 1 \
            and shape[c_axis] == spatial[-1] and spatial[0] != shape[c_axis]:
        flip = "channels_first" if fmt == "channels_last" else "channels_last"
        notes.append(
            f"note: input shape {tuple(shape)} looks like {flip}, but the layer uses "
            f"data_format={fmt!r} {layout(rank, fmt)}; pass data_format={flip!r} if you meant it"
        )
    return notes


# ------------------------------------------------------------------------- shape rule text


def _axis_rule(family: str, padding: str, n: int, k: int, s: int, d: int,
               output_padding: int | None, is_pool: bool) -> tuple[str, int]:
    """One axis's formula in words and its value (the reference's geometry, re-derived)."""
    kk = f"{k}" if d == 1 else f"(({k} - 1) * {d} + 1)"
    k_eff = (k - 1) * d + 1
    if family == "conv_transpose":
        if padding == "valid":
            if output_padding is None:
                out = (n - 1) * s + max(k_eff, s)
                return f"({n} - 1) * {s} + max({kk}, {s}) = {out}", out
            out = (n - 1) * s + k_eff + output_padding
            return f"({n} - 1) * {s} + {kk} + {output_padding} = {out}", out
        if output_padding is None:
            return f"{n} * {s} = {n * s}", n * s
        out = (n - 1) * s + k_eff % 2 + output_padding
        return f"({n} - 1) * {s} + {kk} % 2 + {output_padding} = {out}", out
    if padding == "valid":
        out = (n - k_eff) // s + 1
        if s == 1:
            return f"{n} - {kk} + 1 = {out}", out
        return f"floor(({n} - {kk}) / {s}) + 1 = {out}", out
    out = -(-n // s)
    if s == 1:
        return f"{n} (stride 1 keeps the size)", out
    return f"ceil({n} / {s}) = {out}", out


def _axis_rules(name: str, kwargs: Mapping[str, Any],
                input_shape: Sequence[int]) -> tuple[list[tuple[str, int]], int, int]:
    """Per spatial axis (rule text, size), the input channels and the output channels."""
    kind = kinds.get_kind(name)
    rank = len(input_shape) - 2
    first = kwargs.get("data_format", "channels_last") == "channels_first"
    spatial = list(input_shape[2:] if first else input_shape[1:-1])
    c_in = input_shape[1] if first else input_shape[-1]
    if kind.is_adaptive:  # bin i of n -> m: [floor(i * n / m), ceil((i + 1) * n / m))
        return [(f"{n} -> {m} bins", m) for n, m in zip(spatial, kwargs["output_size"])], \
            c_in, c_in
    if kind.is_global:
        window = strides = tuple(spatial)
        dilation = (1,) * rank
        c_out = c_in
    elif kind.is_pool:
        window = tuple(kwargs["pool_size"])
        strides = window if kwargs.get("strides") is None else tuple(kwargs["strides"])
        dilation = (1,) * rank
        c_out = c_in
    else:
        window = tuple(kwargs["kernel_size"])
        strides = tuple(kwargs["strides"])
        dilation = tuple(kwargs.get("dilation_rate") or (1,) * rank)
        c_out = c_in * kwargs["depth_multiplier"] if kind.family == "depthwise" \
            else kwargs["filters"]
    op = kwargs.get("output_padding")
    rules = [
        _axis_rule(kind.family, kwargs.get("padding", "valid"), spatial[i], window[i], strides[i],
                   dilation[i], None if op is None else op[i], kind.is_pool)
        for i in range(rank)
    ]
    return rules, c_in, c_out


def shape_rule(name: str, kwargs: Mapping[str, Any], input_shape: Sequence[int]) -> str:
    """The output-shape rule used, as one line with the numbers filled in.

    `kwargs` must be canonical. E.g. "same: ceil(28 / 2) = 14 per spatial axis; channels:
    filters = 8". Written here (not read from the reference) so that the text explains the
    number the reference gave; a disagreement would show in the CLI's tests.
    """
    kind = kinds.get_kind(name)
    rank = len(input_shape) - 2
    rules, c_in, c_out = _axis_rules(name, kwargs, input_shape)
    texts = [text for text, _ in rules]
    if kind.is_global:
        kept = "kept as size 1" if kwargs.get("keepdims") else "dropped"
        spatial = input_shape[2:] if kwargs.get("data_format") == "channels_first" \
            else input_shape[1:-1]
        return (f"global: the whole input ({'x'.join(map(str, spatial))}) is one window, its "
                f"spatial axes {kept}; channels unchanged = {c_in}")
    if kind.is_adaptive:
        return (f"adaptive: output_size replaces the spatial sizes ({', '.join(texts)}; bin i "
                f"pools [floor(i * n / m), ceil((i + 1) * n / m))); channels unchanged = {c_in}")
    padding = kwargs["padding"]
    label = {"conv_transpose": f"{padding} (transposed)"}.get(kind.family, padding)
    if len(set(texts)) == 1:
        axes = f"{label}: {texts[0]}" + (" per spatial axis" if rank > 1 else "")
    else:
        names = _AXIS_NAMES[rank]
        axes = f"{label}: " + ", ".join(f"{names[i]}: {t}" for i, t in enumerate(texts))
    if kind.is_pool and kwargs.get("strides") is None:
        axes += " (strides default to pool_size)"
    if kind.is_pool:
        chan = f"channels unchanged = {c_in}"
    elif kind.family == "depthwise":
        chan = f"channels = {c_in} * depth_multiplier {kwargs['depth_multiplier']} = {c_out}"
    else:
        chan = f"channels = filters = {kwargs['filters']}"
    return f"{axes}; {chan}"


def shape_from_rule(name: str, kwargs: Mapping[str, Any],
                    input_shape: Sequence[int]) -> tuple[int, ...]:
    """The shape :func:`shape_rule` describes (tests compare it with the reference's)."""
    rules, _, c_out = _axis_rules(name, kwargs, input_shape)
    out = [size for _, size in rules]
    batch = input_shape[0]
    if kinds.get_kind(name).is_global and not kwargs.get("keepdims"):
        return (batch, c_out)
    if kwargs.get("data_format", "channels_last") == "channels_first":
        return (batch, c_out, *out)
    return (batch, *out, c_out)
