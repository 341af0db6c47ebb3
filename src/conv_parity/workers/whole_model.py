"""The worker half of the end-to-end check: a whole saved model, run once, outputs named.

The parent saves the model (with the weights it checks) as a ``.keras`` file and asks every
backend worker to load it and run it on the same input. Loading is safe mode (no code from the
file runs). Besides the model's output, the worker returns the outputs of the named top-level
layers: comparing those across backends finds the first layer whose output diverges. One probe
model returns them all from one forward pass, so an intermediate costs no second run.

Imported only inside worker processes, after Keras.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conv_parity.modes._keras import tagged


def run_saved_model(keras: Any, path: str, x: np.ndarray,
                    layers: list[str]) -> dict[str, np.ndarray]:
    """``{"output": y, layer: its output, ...}``; an exception leaves with its phase (build:
    Keras refused to load or build the model on this backend; call: the forward pass)."""
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
        outputs = list(model.outputs)
        names = ["output"] if len(outputs) == 1 else [f"output:{i}" for i in range(len(outputs))]
        for name in layers:
            layer = model.get_layer(name)
            if len(getattr(layer, "_inbound_nodes", ())) != 1:
                continue  # a shared layer has no single output to compare
            out = layer.output
            if isinstance(out, (list, tuple)):
                continue
            outputs.append(out)
            names.append(name)
        probe = keras.Model(model.inputs, outputs)
    except Exception as exc:
        raise tagged(exc, "build") from None
    try:
        got = probe(keras.ops.convert_to_tensor(x), training=False)
        if not isinstance(got, (list, tuple)):
            got = [got]
        return {n: np.asarray(keras.ops.convert_to_numpy(t)) for n, t in zip(names, got)}
    except Exception as exc:
        raise tagged(exc, "call") from None
