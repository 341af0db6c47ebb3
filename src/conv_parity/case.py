"""`ConvCase`: one configuration under test, as a frozen, hashable, JSON-serialisable value.

A case names the layer or op, its canonical keyword arguments, the input shape, dtype, seed,
mode and dtype policy (:mod:`conv_parity.policies`: ``dtype`` is the compute dtype; ``policy``
is set only for a mixed policy, whose variables are float32). Inputs and weights are *derived*
from it (:meth:`ConvCase.arrays`) in the parent process, so every backend sees identical bits
and a case can be reproduced from its JSON alone.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from conv_parity import integers, kinds, policies
from conv_parity.errors import UsageError
from conv_parity.formats import freeze
from conv_parity.vocabulary import CALL_FORMS, MODE_NAMES, VALUE_REGIMES

#: The compute dtypes a case runs in (a mixed policy is ``policy`` beside one of them).
DTYPES = policies.DTYPES

#: The activations whose result of an integer is an integer (other ones are refused).
INTEGER_ACTIVATIONS = (None, "linear", "relu")

_ABBREV = {
    "filters": "f",
    "kernel_size": "k",
    "pool_size": "p",
    "output_size": "o",
    "strides": "s",
    "dilation_rate": "d",
    "groups": "g",
    "depth_multiplier": "m",
    "output_padding": "op",
}


@dataclass(frozen=True)
class ConvCase:
    """A configuration under test. Build it with :meth:`make`, which canonicalises kwargs."""

    layer: str
    kwargs_items: tuple[tuple[str, Any], ...]
    input_shape: tuple[int, ...]
    dtype: str = "float32"
    seed: int = 0
    mode: str = "eager"
    #: A mixed policy (``mixed_float16`` / ``mixed_bfloat16``) or None for the plain policy
    #: ``dtype``: so a plain case's fields, id and JSON are what they were before policies.
    policy: str | None = None
    #: The value regime of the input (:data:`conv_parity.vocabulary.VALUE_REGIMES`).
    values: str = "normal"
    #: How the layer or op is called (:data:`conv_parity.vocabulary.CALL_FORMS`).
    call_form: str = "tensor"

    @classmethod
    def make(
        cls,
        layer: str,
        kwargs: Mapping[str, Any],
        input_shape: Sequence[int],
        dtype: str = "float32",
        seed: int | None = None,
        mode: str = "eager",
        policy: str | None = None,
        values: str = "normal",
        call_form: str = "tensor",
    ) -> ConvCase:
        """A case with canonical kwargs; UsageError naming the bad value otherwise.

        ``seed=None`` derives the seed from the configuration itself, so a case's data is a
        function of its id and ids need not carry a seed. ``dtype`` may name any policy
        (``dtype="mixed_bfloat16"`` is ``dtype="bfloat16", policy="mixed_bfloat16"``).
        """
        if not isinstance(input_shape, (list, tuple)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in input_shape
        ):
            raise UsageError(f"input_shape must be a sequence of ints >= 0, got {input_shape!r}")
        kind = kinds.get_kind(layer)
        expected = None if kind.rank is None else kind.rank + 2
        if expected is not None and len(input_shape) != expected:
            raise UsageError(
                f"{layer} takes inputs of rank {expected} (batch, {kind.rank} spatial, channels), "
                f"got input_shape={tuple(input_shape)!r}"
            )
        dtype, policy = _split_policy(dtype, policy)
        if policy is not None and kind.is_op:
            raise UsageError(
                f"{layer} is an op and ops have no dtype policy: {policy!r} means float32 "
                f"variables computed in {dtype}, which only a layer has. Use --dtype {dtype} "
                f"(input and kernel both {dtype}), or `conv-parity check --mixed-dtypes` for "
                f"an input and a kernel of different dtypes")
        if mode not in MODE_NAMES:
            raise UsageError(f"mode must be one of {MODE_NAMES}, got {mode!r}")
        if values not in VALUE_REGIMES:
            raise UsageError(f"values must be one of {VALUE_REGIMES}, got {values!r}")
        if values in ("nan", "inf") and mode == "grad":
            raise UsageError(f"values={values!r} with mode 'grad': a gradient at a NaN or inf "
                             f"input is not defined; check the {values} regime in a forward "
                             f"mode (eager, predict, jit)")
        _check_integer(kind, dtype, mode, values, kwargs.get("activation"))
        if call_form not in CALL_FORMS:
            raise UsageError(f"call_form must be one of {CALL_FORMS}, got {call_form!r}")
        if call_form.startswith("numpy") and mode != "eager":
            # A gradient needs a tensor to differentiate; a compiled model converts its input.
            raise UsageError(f"call_form {call_form!r} passes NumPy arrays to the call, which "
                             f"only the eager mode does; mode {mode!r} takes call_form 'tensor' "
                             f"or 'list'")
        canon = kinds.canonicalize(layer, kwargs, input_shape)
        case = cls(layer, tuple(canon.items()), tuple(input_shape), dtype, 0, mode, policy,
                   values, call_form)
        if integers.is_integer(dtype):
            case.integer_ranges()  # UsageError when no integer input keeps the result exact
        if seed is None:
            seed = case.default_seed
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise UsageError(f"seed must be an int in [0, 2**32), got {seed!r}")
        return cls(layer, tuple(canon.items()), tuple(input_shape), dtype, seed, mode, policy,
                   values, call_form)

    @property
    def policy_name(self) -> str:
        """The Keras dtype policy the layer is built with: ``policy`` or the plain ``dtype``."""
        return self.policy or self.dtype

    @property
    def variable_dtype(self) -> str:
        """The dtype weights are stored (and their gradients returned) in."""
        return policies.get(self.policy_name).variable

    @property
    def input_dtype(self) -> str:
        """The dtype the input is given in: the variable dtype (float32 under a mixed policy,
        as a mixed-precision model's input is; the layer casts it to ``dtype``)."""
        return self.variable_dtype

    @property
    def default_seed(self) -> int:
        """The seed derived from the configuration (the id without a seed part)."""
        return zlib.crc32(self._base_id().encode()) % (2**31)

    @property
    def kind(self) -> kinds.Kind:
        return kinds.get_kind(self.layer)

    @property
    def kwargs(self) -> dict[str, Any]:
        """Canonical keyword arguments, geometry included for ops."""
        return dict(self.kwargs_items)

    @property
    def call_kwargs(self) -> dict[str, Any]:
        """What the layer constructor / op receives (op geometry removed)."""
        return kinds.call_kwargs(self.layer, self.kwargs)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """The input's spatial sizes, read according to data_format."""
        if self.kwargs.get("data_format") == "channels_first":
            return tuple(self.input_shape[2:])
        return tuple(self.input_shape[1:-1])

    def weight_shapes(self) -> list[tuple[int, ...]]:
        return kinds.weight_shapes(self.layer, self.kwargs, self.input_shape)

    def arrays(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """The input and weights, made from the seed (standard normal, never all-ones/arange;
        the input as the case's value regime says, :mod:`conv_parity.values`).

        Weights are scaled by 1/sqrt(fan-in) so outputs stay O(1) and float16 does not overflow.
        Generated in float64 then rounded to the compute dtype, so the reference sees exactly
        the bits the backend computes with (:meth:`as_input`).
        """
        rng = np.random.default_rng(self.seed)
        if integers.is_integer(self.dtype):
            a, b = self.integer_ranges()
            return (integers.draw(rng, self.input_shape, a, self.dtype),
                    [integers.draw(rng, s, b, self.dtype) for s in self.weight_shapes()])
        x = self.as_input(self._regime_input(rng))
        weights = []
        for shape in self.weight_shapes():
            fan_in = max(1, int(np.prod(shape[:-1])))
            w = rng.standard_normal(shape) / np.sqrt(fan_in)
            weights.append(self.as_input(w))
        return x, weights

    def integer_ranges(self) -> tuple[int, int]:
        """(input magnitude, kernel magnitude) of an integer case: the widest seeded integers
        whose exact result cannot leave the dtype (:func:`conv_parity.integers.case_ranges`)."""
        return integers.case_ranges(self.layer, self.kwargs, self.input_shape, self.dtype)

    def window_extent(self) -> tuple[int, ...]:
        """The effective window per spatial axis, dilation included (a global pool's: the
        whole input; an adaptive pool's: its widest bin), as given (valid or not)."""
        kw = self.kwargs
        if self.kind.is_global:
            return self.spatial_shape
        if self.kind.is_adaptive:  # its widest bin; imported here as values is: start-up time
            from conv_parity.reference.adaptive import largest_bin

            return tuple(largest_bin(n, m) if n > 0 and m > 0 else 1
                         for n, m in zip(self.spatial_shape, kw["output_size"]))
        window = tuple(kw["pool_size"] if self.kind.is_pool else kw["kernel_size"])
        dilation = tuple(kw.get("dilation_rate") or (1,) * len(window))
        return tuple((k - 1) * d + 1 for k, d in zip(window, dilation))

    def _regime_input(self, rng: np.random.Generator) -> np.ndarray:
        """The input of the case's value regime in float64 (:mod:`conv_parity.values`)."""
        from conv_parity.values import make_input

        return make_input(self.values, rng, self.input_shape, self.dtype,
                          extent=self.window_extent(),
                          channels_first=self.kwargs.get("data_format") == "channels_first",
                          is_pool=self.kind.is_pool, terms=self.value_terms())

    def value_terms(self) -> int:
        """The ``terms`` of :func:`conv_parity.values.large_scale`: the larger of the input's
        and the first weight's element counts."""
        shapes = self.weight_shapes()
        return max([int(np.prod(self.input_shape)), *(int(np.prod(s)) for s in shapes[:1])])

    def as_input(self, a: np.ndarray) -> np.ndarray:
        """``a`` rounded to the compute dtype, carried in the input dtype's NumPy dtype
        (float32 for bfloat16 and under mixed policies; see :mod:`conv_parity.policies`)."""
        rounded = policies.round_to(a, self.dtype)
        return rounded.astype(policies.numpy_dtype(self.input_dtype))

    @property
    def id(self) -> str:
        """A short readable id, stable across runs: used as the pytest id and file names.

        The seed appears (as ``-r<seed>``) only when it is not the configuration's default.
        """
        base = self._base_id()
        if self.seed != self.default_seed:
            base += f"-r{self.seed}"
        return base

    def _base_id(self) -> str:
        kw = self.kwargs
        parts = [self.layer]
        for key in ("filters", "kernel_size", "pool_size", "output_size", "strides", "padding",
                    "data_format",
                    "dilation_rate", "groups", "depth_multiplier", "output_padding"):
            if key not in kw:
                continue
            value = kw[key]
            if key == "padding":
                parts.append(value)
            elif key == "data_format":
                parts.append("first" if value == "channels_first" else "last")
            elif key == "output_padding" and value is None:
                continue
            elif value is None:
                parts.append(f"{_ABBREV[key]}-")
            elif isinstance(value, tuple):
                parts.append(_ABBREV[key] + "x".join(map(str, value)))
            else:
                parts.append(f"{_ABBREV[key]}{value}")
        if kw.get("use_bias") is False:
            parts.append("nobias")
        if kw.get("keepdims"):
            parts.append("keepdims")
        if kw.get("activation"):
            parts.append(kw["activation"])
        parts.append("in" + "x".join(map(str, self.input_shape)))
        parts.append(self.policy_name)
        if self.mode != "eager":
            parts.append(self.mode)
        if self.values != "normal":
            parts.append(f"v{self.values}")
        if self.call_form != "tensor":
            parts.append(f"c{self.call_form}")
        return "-".join(parts)

    def to_json(self) -> dict[str, Any]:
        kw = {k: list(v) if isinstance(v, tuple) else v for k, v in self.kwargs_items}
        return {
            "layer": self.layer,
            "kwargs": kw,
            "input_shape": list(self.input_shape),
            "dtype": self.dtype,
            "seed": self.seed,
            "mode": self.mode,
            "policy": self.policy_name,
            **({"values": self.values} if self.values != "normal" else {}),
            **({"call_form": self.call_form} if self.call_form != "tensor" else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, trusted: bool = False) -> ConvCase:
        """The case :meth:`to_json` wrote. ``trusted`` skips re-validation: for the worker,
        which receives only cases the parent built with :meth:`make` (re-validating cost 30-70 µs
        per case, 1-2% of a fast one)."""
        try:
            kwargs = {k: freeze(v) for k, v in data["kwargs"].items()}
            if trusted:
                dtype, policy = _split_policy(data["dtype"], data.get("policy"))
                return cls(data["layer"], tuple(kwargs.items()), tuple(data["input_shape"]),
                           dtype, data["seed"], data["mode"], policy,
                           data.get("values", "normal"), data.get("call_form", "tensor"))
            return cls.make(
                data["layer"],
                kwargs,
                tuple(data["input_shape"]),
                # make() validates it: a non-string gets its "unknown dtype" error there
                cast(str, policies.name_of(data.get("dtype", "float32"))),
                data.get("seed"),
                data.get("mode", "eager"),
                data.get("policy"),
                data.get("values", "normal"),
                data.get("call_form", "tensor"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"malformed case JSON ({exc}): {json.dumps(data)[:200]}") from None

    def __str__(self) -> str:
        return self.id


def _check_integer(kind: kinds.Kind, dtype: str, mode: str, values: str,
                   activation: Any) -> None:
    """UsageError for what an integer case cannot be (docs/integer-dtypes.md): a gradient
    (an integer function has none), a value regime other than ``normal``, or an activation
    whose values are not integers (relu and linear keep them)."""
    if not integers.is_integer(dtype):
        return
    if mode == "grad":
        raise UsageError(f"dtype {dtype!r} with mode 'grad': an integer {kind.name} is not "
                         f"differentiable; check {dtype} in a forward mode (eager, predict, "
                         f"jit) or the gradient in a float dtype")
    if values != "normal":
        raise UsageError(f"dtype {dtype!r} with values {values!r}: an integer case holds "
                         f"seeded small integers (values 'normal'); the {values} regime is "
                         f"for float dtypes")
    if activation not in INTEGER_ACTIVATIONS:
        raise UsageError(f"dtype {dtype!r} with activation {activation!r}: its values are not "
                         f"integers; an integer case takes activation None, 'linear' or 'relu'")


def _split_policy(dtype: Any, policy: Any) -> tuple[str, str | None]:
    """(compute dtype, mixed policy or None) from a ``dtype`` that may name any policy and an
    optional ``policy``; UsageError when they are unknown or disagree.
    ``_split_policy("mixed_float16", None) == ("float16", "mixed_float16")``."""
    names = tuple(policies.POLICIES)
    if dtype not in names:
        raise UsageError(f"dtype must be one of {policies.ALL_DTYPES} or a policy ({', '.join(names)}), "
                         f"got {dtype!r}")
    if policy is not None and policy not in names:
        raise UsageError(f"policy must be one of {names}, got {policy!r}")
    named = policies.POLICIES[policy or dtype]
    if policy is not None and policies.POLICIES[dtype].compute != named.compute:
        raise UsageError(f"dtype {dtype!r} is not the compute dtype of policy {policy!r} "
                         f"({named.compute})")
    return named.compute, (named.name if named.mixed else None)
