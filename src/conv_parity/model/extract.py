"""Every conv-family layer of a model, as a case with its real config, input shape and weights.

Input shapes come from the model's own graph, made concrete: the model is run *symbolically*
(``compute_output_spec``, no numbers) on the user's input shape while every leaf layer records
the shape it is called with. That one pass handles what reading ``layer.input`` cannot: layers
inside nested functional or sequential submodels, layers shared and called at several shapes,
and models whose graph leaves spatial sizes open (``Input((None, None, 3))``), which only a
concrete input shape resolves. It is also where an input of the wrong shape is caught, with
Keras's own message.

A layer whose config the suite cannot express (an activation outside
:data:`conv_parity.kinds.ACTIVATIONS`, a LoRA adapter, a quantized layer...) is listed as not
checked with the reason, never checked as something it is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from conv_parity import kinds
from conv_parity.case import DTYPES, ConvCase
from conv_parity.errors import UsageError
from conv_parity.policies import round_to
from conv_parity.workers.layer_tree import containers, leaves

#: Config keys with no effect on the forward pass conv-parity checks (initial values are
#: replaced by real weights; regularizers and constraints act in training only).
NO_EFFECT_KEYS = frozenset({
    "name", "trainable", "dtype", "kernel_initializer", "bias_initializer",
    "depthwise_initializer", "pointwise_initializer", "kernel_regularizer", "bias_regularizer",
    "depthwise_regularizer", "pointwise_regularizer", "activity_regularizer",
    "kernel_constraint", "bias_constraint", "depthwise_constraint", "pointwise_constraint",
    "lora_alpha",
})

#: The reason of a conv-family layer ``--layers`` leaves out.
NOT_SELECTED = "not selected by --layers"

#: Layer classes that are plumbing, not computation: never listed as "not checked".
_PLUMBING = frozenset({"InputLayer"})


@dataclass
class LayerUse:
    """One conv-family layer called at one input shape: the unit the model section lists."""

    path: str  # "block_1/conv" for a layer inside submodel "block_1"
    cls: str
    input_shape: tuple[int, ...]
    config: dict[str, Any]  # the canonical kwargs the case carries
    dtype: str
    weights: list[np.ndarray]
    case: ConvCase | None = None
    reason: str | None = None  # why it is not checked (case is None then)
    policy: str | None = None


@dataclass
class Extraction:
    """What :func:`extract` found: the conv-family uses and the other layers by class."""

    input_shape: tuple[int, ...]  # the first input's
    uses: list[LayerUse] = field(default_factory=list)
    not_checked: dict[str, list[str]] = field(default_factory=dict)  # class -> layer paths
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)  # one per input

    @property
    def checkable(self) -> list[LayerUse]:
        return [u for u in self.uses if u.case is not None]

    @property
    def unchecked(self) -> list[LayerUse]:
        """Conv-family uses that could not be checked (``--layers`` leaving one out is a
        choice, not a gap, and is not counted)."""
        return [u for u in self.uses if u.case is None and u.reason != NOT_SELECTED]

    def coverage(self) -> dict[str, int]:
        """How many conv-family layer uses were found, checked, not checkable, not selected."""
        return {"found": len(self.uses), "checked": len(self.checkable),
                "not_checkable": len(self.unchecked),
                "not_selected": sum(u.reason == NOT_SELECTED for u in self.uses)}


def model_input_shape(model: Any) -> tuple[int | None, ...]:
    """The first input's shape as the graph declares it (None for open dimensions)."""
    from conv_parity.model.inputs import model_inputs

    return model_inputs(model)[0].shape


def concrete_input_shapes(model: Any, given: Sequence[Sequence[int]] | None,
                          batch: int = 2, what: str = "--input-shape"
                          ) -> list[tuple[int, ...]]:
    """One concrete shape per model input (:func:`concrete_input_shape` for each): ``given``
    (the user's arrays' shapes), else the declared shapes with batch ``batch``."""
    from conv_parity.model.inputs import model_inputs

    specs = model_inputs(model)
    if len(specs) == 1:
        return [concrete_input_shape(model, given[0] if given else None, batch, what)]
    if given is not None:
        return [tuple(int(d) for d in g) for g in given]
    open_ = [s.name for s in specs if any(d is None for d in s.shape[1:])]
    if open_:
        raise UsageError(f"the model's inputs {', '.join(open_)} leave dimensions open; give "
                         f"--input FILE.npz with one array per input name")
    return [(batch, *(int(d) for d in s.shape[1:])) for s in specs]


def concrete_input_shape(model: Any, given: Sequence[int] | None,
                         batch: int = 2, what: str = "--input-shape") -> tuple[int, ...]:
    """The input shape to check at: ``given`` when the user gave one (``what`` names where
    it came from in messages), else the declared shape with batch ``batch``; UsageError when a
    dimension stays open."""
    declared = model_input_shape(model)
    if given is not None:
        given = tuple(int(d) for d in given)
        if len(given) != len(declared):
            raise UsageError(f"{what} {_fmt(given)} has rank {len(given)} but the model "
                             f"takes rank {len(declared)} inputs {_fmt(declared)}"
                             + layout_hint(given, declared))
        return given
    if any(d is None for d in declared[1:]):
        example = ",".join(str(batch if i == 0 else (d or 32)) for i, d in enumerate(declared))
        raise UsageError(f"the model's input {_fmt(declared)} leaves dimensions open; give "
                         f"--input-shape, e.g. --input-shape {example}")
    return (batch, *(int(d) for d in declared[1:]))


def _fmt(shape: Sequence[Any]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def layout_hint(given: Sequence[int], declared: Sequence[int | None]) -> str:
    """When ``given`` reads naturally in the other data_format, say so with both readings.

    (1, 3, 28, 28) fed to a model declared (None, 28, 28, 3) is the keras#20375 user's real
    problem: a tensor laid out channels_first for a channels_last model.
    """
    if len(given) < 3 or len(given) != len(declared):
        return ""
    as_last = (given[0], *given[2:], given[1])  # read given as channels_first
    as_first = (given[0], given[-1], *given[1:-1])  # read given as channels_last

    def fits(shape: Sequence[int]) -> bool:
        return all(d is None or d == s for d, s in zip(declared[1:], shape[1:]))

    if fits(as_last):
        return (f"; {_fmt(given)} reads as channels_first (batch, channels={given[1]}, "
                f"spatial {_fmt(given[2:])}) while the model is channels_last: "
                f"transpose it to {_fmt(as_last)}")
    if fits(as_first):
        return (f"; {_fmt(given)} reads as channels_last (channels={given[-1]}) while the "
                f"model is channels_first: transpose it to {_fmt(as_first)}")
    return ""


def _record_shapes(model: Any, input_shapes: Sequence[tuple[int, ...]]
                   ) -> dict[int, list[tuple[int, ...]]]:
    """id(layer) -> the input shapes it is called at, from one symbolic pass of the model."""
    import keras

    from conv_parity.model.inputs import model_inputs

    specs = model_inputs(model)
    seen: dict[int, list[tuple[int, ...]]] = {}
    patched = []
    for _, layer in leaves(model):
        # A layer called on symbolic tensors reaches compute_output_spec; one inside a
        # subclassed layer is traced with the backend's own placeholders and reaches call.
        for method in ("compute_output_spec", "call"):
            original = getattr(layer, method)
            object.__setattr__(layer, method,  # bypass Keras's attribute tracking
                               _spy(original, seen.setdefault(id(layer), [])))
            patched.append((layer, method))
    for block in containers(model):
        # A block that declares compute_output_shape is never traced: its sublayers would go
        # unseen. Operation.compute_output_spec traces ``call`` with the backend's
        # placeholders, which reaches every sublayer's ``call`` (and its spy).
        if getattr(block, "_nodes_by_depth", None) is None:  # a functional graph is walked
            object.__setattr__(block, "compute_output_spec",
                               _traced(keras, block, block.compute_output_spec))
            patched.append((block, "compute_output_spec"))
    tensors = [keras.KerasTensor(shape, dtype=spec.dtype)
               for shape, spec in zip(input_shapes, specs)]
    try:
        model.compute_output_spec(tensors[0] if len(tensors) == 1 else tensors)
    except Exception as exc:
        text = " ".join(str(exc).split())[:400]
        shown = ", ".join(_fmt(s) for s in input_shapes)
        raise UsageError(f"the model does not accept input shape {shown}: {text}"
                         + (layout_hint(input_shapes[0], specs[0].shape)
                            if len(specs) == 1 else "")) from None
    finally:
        for layer, method in patched:
            object.__delattr__(layer, method)
    return {key: shapes for key, shapes in seen.items() if shapes}


def _traced(keras: Any, block: Any, own: Any) -> Any:
    """``block.compute_output_spec`` that traces ``call`` (Operation's), falling back to the
    block's own where tracing fails (a block that needs concrete sizes)."""
    trace = partial(keras.Operation.compute_output_spec, block)

    def spec(*args: Any, **kwargs: Any) -> Any:
        try:
            return trace(*args, **kwargs)
        except Exception:
            return own(*args, **kwargs)

    return spec


def _spy(original: Any, shapes: list[tuple[int, ...]]) -> Any:
    """``original`` that first notes the shape of its first argument in ``shapes`` (once)."""

    def spy(*args: Any, **kwargs: Any) -> Any:
        first = args[0] if args else next(iter(kwargs.values()), None)
        shape = getattr(first, "shape", None)
        if shape is not None:
            try:
                concrete = tuple(None if d is None else int(d) for d in shape)
            except TypeError:  # a dimension the tracer leaves symbolic
                concrete = None
            if concrete is not None and None not in concrete and concrete not in shapes:
                shapes.append(concrete)
        return original(*args, **kwargs)

    return spy


def layer_kwargs(kind: kinds.Kind, config: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(kwargs for ConvCase.make, None) or (None, why the suite cannot express this config)."""
    kwargs = {k: config[k] for k in kind.params if k in config}
    for key, value in config.items():
        if key in kind.params or key in NO_EFFECT_KEYS:
            continue
        if value in (None, False, 0, {}, []):  # lora_rank=None, quantization_config=None, ...
            continue
        return None, f"config key {key}={value!r:.60} is outside what conv-parity checks"
    activation = kwargs.get("activation")
    if activation not in kinds.ACTIVATIONS:
        return None, (f"activation {activation!r:.60} is outside what conv-parity checks "
                      f"({', '.join(str(a) for a in kinds.ACTIVATIONS)})")
    return kwargs, None


def _live_config(layer: Any, kind: kinds.Kind) -> dict[str, Any]:
    """``get_config()`` completed from the layer itself where it forgets an argument the
    layer computes with (before Keras 3.15 a transposed conv's config lacked output_padding,
    keras#23014): the case must be what the layer computes; the round trip reports the loss."""
    config = dict(layer.get_config())
    for key in kind.params:
        if key not in config and hasattr(layer, key):
            value = getattr(layer, key)
            config[key] = list(value) if isinstance(value, tuple) else value
    return config


def extract(model: Any, input_shape: tuple[int, ...] | Sequence[tuple[int, ...]],
            source: str = "model", only: Sequence[str] | None = None) -> Extraction:
    """Every conv-family layer use of ``model`` at ``input_shape`` (one shape, or one per
    model input), with its real weights.

    ``only``: fnmatch patterns on the layer path, name or class (``--layers``); the other
    conv-family layers are then listed as not checked ("not selected").
    """
    from fnmatch import fnmatchcase

    shaped = ([tuple(input_shape)] if input_shape and isinstance(input_shape[0], int)
              else [tuple(s) for s in input_shape])  # type: ignore[arg-type]
    shapes = _record_shapes(model, shaped)  # type: ignore[arg-type]
    found = Extraction(shaped[0], input_shapes=shaped)  # type: ignore[arg-type]
    for path, layer in leaves(model):
        cls = type(layer).__name__
        kind = kinds.KINDS.get(cls)
        if kind is None or kind.is_op:
            if cls not in _PLUMBING:
                found.not_checked.setdefault(cls, []).append(path)
            continue
        uses = shapes.get(id(layer), [])
        if not uses:  # e.g. inside a wrapper whose symbolic pass never calls it
            found.uses.append(LayerUse(path, cls, (), {}, str(getattr(layer, "compute_dtype",
                                                                      "float32")), [],
                                       reason="never called during the model's forward pass "
                                              "at this input shape"))
            continue
        selected = not only or any(fnmatchcase(path, p) or fnmatchcase(layer.name, p)
                                   or fnmatchcase(cls, p) for p in only)
        policy = getattr(layer, "dtype_policy", None)
        dtype = str(getattr(layer, "compute_dtype", "float32"))
        variable_dtype = str(getattr(layer, "variable_dtype", dtype))
        policy_name = getattr(policy, "name", None)
        weights = [round_to(w, dtype) if dtype in DTYPES else np.asarray(w)
                   for w in layer.get_weights()]  # bfloat16: exact, carried in float32
        kwargs, reason = layer_kwargs(kind, _live_config(layer, kind))
        if reason is None and dtype not in DTYPES:
            reason = f"compute dtype {dtype} is outside what conv-parity checks ({DTYPES})"
        if reason is None and not selected:
            reason = NOT_SELECTED
        for shape in uses:
            use = LayerUse(path, cls, tuple(int(d) for d in shape), kwargs or {}, dtype,
                           weights, reason=reason,
                           policy=policy_name if variable_dtype != dtype else None)
            if reason is None:
                try:
                    use.case = ConvCase.make(cls, kwargs or {}, use.input_shape, dtype=dtype)
                    use.config = use.case.to_json()["kwargs"]
                except UsageError as exc:
                    use.reason = str(exc)
            found.uses.append(use)
    if not found.uses:
        others = ", ".join(sorted(found.not_checked)) or "none"
        raise UsageError(f"{source}: the model holds no convolution or pooling layer "
                         f"(its layers: {others})")
    if only and not found.checkable:
        raise UsageError(f"--layers {','.join(only)} selects none of the conv-family layers "
                         f"that can be checked: {', '.join(u.path for u in found.uses)}")
    return found
