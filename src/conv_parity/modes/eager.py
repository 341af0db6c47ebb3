"""The eager forward pass: construct, build, set_weights, call once; one output, ``y``."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from conv_parity.modes import call_form
from conv_parity.modes._keras import (
    call_input,
    make_layer,
    op_function,
    op_kwargs,
    tagged,
    variable_dtypes,
)
from conv_parity.modes._protocol import Arrays

if TYPE_CHECKING:
    from conv_parity.backends import BackendSpec
    from conv_parity.case import ConvCase
    from conv_parity.expected import Expected


class Eager:
    """What a user's first call of a layer (or ``keras.ops`` function) computes."""

    name = "eager"
    outputs: tuple[str, ...] = ("y",)

    def __init__(self) -> None:
        # The layer the last run built, reused by the symbolic phase of the same case (building
        # costs ~40 ms per new shape on JAX). Lives in the worker process only.
        self._built: tuple[ConvCase, Any] | None = None

    def skip_reason(self, spec: BackendSpec) -> str | None:
        return None  # every backend computes a forward pass

    def layer_for(self, keras: Any, case: ConvCase) -> Any:
        """The layer :meth:`run` built for ``case``, or a fresh unbuilt one."""
        if self._built is not None and self._built[0] is case:
            return self._built[1]
        return make_layer(keras, case)

    def variable_dtypes(self, case: ConvCase) -> list[str] | None:
        """The dtypes of the weights of the layer the last run built for ``case`` (None for an
        op, or when it built none): the policy's variable dtype is checked against them."""
        if self._built is None or self._built[0] is not case:
            return None
        return variable_dtypes(self._built[1])

    def seeded(self, case: ConvCase) -> Arrays:
        """The arrays of :meth:`ConvCase.arrays`: input and weights, nothing else."""
        x, weights = case.arrays()
        return Arrays(x, weights)

    def built_layer(self, keras: Any, case: ConvCase, arrays: Arrays) -> Any:
        """The layer of ``case`` constructed, built and holding ``arrays.weights``, remembered
        for the symbolic phase; exceptions tagged construct / build."""
        try:
            layer = make_layer(keras, case)
        except Exception as exc:
            raise tagged(exc, "construct") from None
        try:
            layer.build(tuple(case.input_shape))
            layer.set_weights(arrays.weights)
        except Exception as exc:
            raise tagged(exc, "build") from None
        self._built = (case, layer)
        return layer

    def run(self, keras: Any, case: ConvCase, arrays: Arrays) -> dict[str, np.ndarray]:
        """An exception leaves with attribute ``conv_parity_phase`` (construct/build/call)."""
        self._built = None
        if case.kind.is_op:
            try:
                xt = call_input(keras, case, arrays.x, case.dtype)
                wt = [call_input(keras, case, w, case.dtype) for w in arrays.weights]
                fn, kw = op_function(keras, case), op_kwargs(case)
                _warm_up(case, lambda: fn(xt, *wt, **kw))
                y = fn(xt, *wt, **kw)
                return {"y": keras.ops.convert_to_numpy(y)}
            except Exception as exc:
                raise tagged(exc, "call") from None
        layer = self.built_layer(keras, case, arrays)
        try:
            xt = call_input(keras, case, arrays.x, case.input_dtype)
            _warm_up(case, lambda: layer(xt))
            y = layer(xt)
            return {"y": keras.ops.convert_to_numpy(y)}
        except Exception as exc:
            raise tagged(exc, "call") from None

    def expected(self, case: ConvCase, arrays: Arrays) -> Expected:
        """The spec's answer: the output and its magnitude, or the rejection.

        The reference gets the full canonical kwargs: for ops, the geometry (kernel_size,
        filters) is what its shape rule needs; forward() reads the kernel arrays.
        """
        from conv_parity import reference
        from conv_parity.errors import InvalidConfig
        from conv_parity.expected import Expected
        from conv_parity.geometry import reduction_size
        from conv_parity.integers import keras_refusal

        refusal = keras_refusal(not case.kind.is_op, case.dtype)
        if refusal is not None:  # docs/integer-dtypes.md: a layer under "int8"
            return Expected(invalid=refusal)
        kwargs = case.kwargs
        try:
            shape = reference.output_shape(case.layer, case.input_shape, **kwargs)
            out = reference.forward(case.layer, arrays.x, arrays.weights, **kwargs)
            mag = reference.magnitude(case.layer, arrays.x, arrays.weights, **kwargs)
        except InvalidConfig as exc:
            return Expected(invalid=str(exc))
        return Expected(tuple(shape), {"y": out}, {"y": mag},
                         reduction_sizes={"y": reduction_size(case)})

    def repro_prepare(self, case: ConvCase) -> str:
        """Lines run on ``x`` and ``weights`` before the call (none: the seeded arrays)."""
        return ""

    def repro_check(self, case: ConvCase, backend: str) -> str:
        """Lines run once ``y`` matched, returning 1 on a discrepancy (none: y is all)."""
        return ""

    def repro_call(self, case: ConvCase) -> str:
        """Lines that compute ``y`` from ``x`` and ``weights`` with plain Keras."""
        numpy = call_form.uses_numpy(case.call_form)
        if case.kind.is_op:
            op = case.layer[len("ops."):]
            if numpy:  # the call once before, as the worker does (see _warm_up)
                return textwrap.dedent(f"""\
                    xt, wt = as_array(x, DTYPE), [as_array(w, DTYPE) for w in weights]
                    keras.ops.{op}(xt, *wt, **KWARGS)  # warm-up: the measured call is the 2nd
                    y = keras.ops.convert_to_numpy(keras.ops.{op}(xt, *wt, **KWARGS))""")
            return textwrap.dedent(f"""\
                xt = keras.ops.convert_to_tensor(x, dtype=DTYPE)
                wt = [keras.ops.convert_to_tensor(w, dtype=DTYPE) for w in weights]
                y = keras.ops.convert_to_numpy(keras.ops.{op}(xt, *wt, **KWARGS))""")
        inits = "".join(f', {name}="zeros"' for name in case.kind.initializer_kwargs)
        call = ("xt = as_array(x, INPUT_DTYPE)  # a NumPy array, as the call form says\n"
                "layer(xt)  # warm-up: the measured call is the 2nd\n") if numpy \
            else "xt = keras.ops.convert_to_tensor(x, dtype=INPUT_DTYPE)\n"
        return textwrap.dedent(f"""\
            layer = keras.layers.{case.layer}(**KWARGS{inits}, dtype=POLICY)
            layer.build(INPUT_SHAPE)
            layer.set_weights(weights)
            """) + call + "y = keras.ops.convert_to_numpy(layer(xt))"


def _warm_up(case: ConvCase, call: Callable[[], Any]) -> None:
    """For a NumPy call form, the same call once before the measured one, its result and any
    error dropped. TensorFlow's eager fast path converts a NumPy argument by a dtype it caches
    on the op's first call (``ops.max_pool`` of a float64 array is float64 in a fresh process,
    float32 once any max_pool ran), so without this the verdict would depend on which cases
    the worker served before; with it, every case sees the warmed-up state."""
    if call_form.uses_numpy(case.call_form):
        with contextlib.suppress(Exception):
            call()
