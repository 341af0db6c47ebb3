"""The predict mode: ``model.predict`` of a functional model around the layer, as a user gets
it by default (no ``compile`` call: TF runs a ``tf.function`` graph, XLA only on accelerators;
JAX a ``jax.jit``; torch eager; NumPy and OpenVINO their own predict loops). One output, ``y``.

Why a mode of its own: Keras takes other code paths when traced, and the backends disagree
differently there (issue 15: the TF channels_first bias bug is right in ``model.predict``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conv_parity.modes._compiled import Compiled

if TYPE_CHECKING:
    from conv_parity.backends import BackendSpec


class Predict(Compiled):
    """``model.predict`` without ``compile``."""

    name = "predict"
    outputs = ("y",)
    jit_compile = False

    def skip_reason(self, spec: BackendSpec) -> str | None:
        return None  # every backend has a predict loop


__all__ = ["Predict"]
