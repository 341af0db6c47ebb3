"""What the compiled modes share: a functional model around the layer, run by ``model.predict``.

Why ``model.predict`` and not a hand-written ``tf.function`` / ``jax.jit``: it is the path a
user's inference takes, with Keras's own tracing choices (the TF predict step is a
``tf.function``, XLA only with ``jit_compile=True``; JAX's is ``jax.jit``; torch's is eager
unless ``jit_compile=True`` asks for ``torch.compile``).

One model per (configuration, input shape, dtype), reused for every case of that shape: the
seed only changes the arrays, so a new case sets its weights into the cached layer and calls
the already traced predict function (no retrace per case; the issue's performance rule). The
cache is bounded (least recently used goes) so a long fuzz run does not keep every graph.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from conv_parity.modes._keras import make_layer, op_function, op_kwargs, tagged, to_tensor
from conv_parity.modes._protocol import Arrays
from conv_parity.modes.eager import Eager

if TYPE_CHECKING:
    from conv_parity.case import ConvCase

#: Models kept per worker; a model holds a traced function (and for XLA a compiled one).
CACHE_SIZE = 64


class Compiled(Eager):
    """A forward pass through ``model.predict`` of a functional model; subclasses say whether
    the model is compiled with ``jit_compile=True``."""

    jit_compile: bool = False

    def __init__(self) -> None:
        super().__init__()
        self._models: OrderedDict[ConvCase, tuple[Any, Any]] = OrderedDict()
        #: How many models were built (for the no-retrace test and the benchmark).
        self.models_built = 0

    def _model(self, keras: Any, case: ConvCase, arrays: Arrays) -> tuple[Any, Any]:
        """(layer or None, model) for the case's configuration, cached; weights set."""
        key = dataclasses.replace(case, seed=0)
        hit = self._models.get(key) if not case.kind.is_op else None
        if hit is not None:
            self._models.move_to_end(key)
            layer, model = hit
            try:
                layer.set_weights(arrays.weights)
            except Exception as exc:
                raise tagged(exc, "build") from None
            return hit
        inp = keras.Input(batch_shape=tuple(case.input_shape), dtype=case.input_dtype)
        if case.kind.is_op:
            # The kernels are constants of the graph: an op case builds its own model.
            try:
                ws = [to_tensor(keras, w, case.dtype) for w in arrays.weights]
                out = op_function(keras, case)(inp, *ws, **op_kwargs(case))
                model = keras.Model(inp, out)
            except Exception as exc:
                raise tagged(exc, "build") from None
            self._compile(model)
            return None, model
        try:
            layer = make_layer(keras, case)
        except Exception as exc:
            raise tagged(exc, "construct") from None
        try:
            model = keras.Model(inp, layer(inp))
            layer.set_weights(arrays.weights)
        except Exception as exc:
            raise tagged(exc, "build") from None
        self._compile(model)
        self.models_built += 1
        self._models[key] = (layer, model)
        if len(self._models) > CACHE_SIZE:
            self._models.popitem(last=False)
        return layer, model

    def _compile(self, model: Any) -> None:
        if self.jit_compile:
            try:
                model.compile(jit_compile=True)
            except Exception as exc:
                raise tagged(exc, "build") from None

    def run(self, keras: Any, case: ConvCase, arrays: Arrays) -> dict[str, np.ndarray]:
        self._built = None
        layer, model = self._model(keras, case, arrays)
        if layer is not None:
            self._built = (case, layer)
        try:
            batch = int(case.input_shape[0])
            if batch == 0:
                # Keras's predict loop raises UnboundLocalError ('batch_outputs') on an input
                # without rows, on every backend; predict_on_batch runs the same traced
                # predict function on it directly.
                y = model.predict_on_batch(arrays.x)
            else:
                y = model.predict(arrays.x, batch_size=batch, verbose=0)
            return {"y": np.asarray(y)}
        except Exception as exc:
            raise tagged(exc, "call") from None

    def repro_call(self, case: ConvCase) -> str:
        """The same model around the layer (or op), predicted as the mode does."""
        compile_line = "model.compile(jit_compile=True)\n" if self.jit_compile else ""
        if case.kind.is_op:
            op = case.layer[len("ops."):]
            body = (
                "inp = keras.Input(batch_shape=INPUT_SHAPE, dtype=DTYPE)\n"
                "wt = [keras.ops.convert_to_tensor(w, dtype=DTYPE) for w in weights]\n"
                f"model = keras.Model(inp, keras.ops.{op}(inp, *wt, **KWARGS))\n"
            )
        else:
            inits = "".join(f', {name}="zeros"' for name in case.kind.initializer_kwargs)
            body = (
                f"layer = keras.layers.{case.layer}(**KWARGS{inits}, dtype=POLICY)\n"
                "inp = keras.Input(batch_shape=INPUT_SHAPE, dtype=INPUT_DTYPE)\n"
                "model = keras.Model(inp, layer(inp))\n"
                "layer.set_weights(weights)\n"
            )
        return (body + compile_line
                + "y = (model.predict(x, batch_size=x.shape[0], verbose=0) if len(x)\n"
                "     else model.predict_on_batch(x))  # predict's loop raises on 0 rows")
