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
        # The model's own graph: a Sequential keeps it in ``_functional``; ``layer.output``
        # would not do, since a rebuilt Sequential's layers keep nodes of earlier graphs.
        graph = getattr(model, "_functional", None) or model
        outputs = list(graph.outputs)
        names = ["output"] if len(outputs) == 1 else [f"output:{i}" for i in range(len(outputs))]
        produced: dict[str, list[Any]] = {}
        for nodes in graph._nodes_by_depth.values():
            for node in nodes:
                produced.setdefault(node.operation.name, []).extend(node.output_tensors)
        for name in layers:
            tensors = produced.get(name, [])
            if len(tensors) != 1:
                continue  # a shared or multi-output layer has no single output to compare
            outputs.append(tensors[0])
            names.append(name)
        probe = keras.Model(graph.inputs, outputs)
    except Exception as exc:
        raise tagged(exc, "build") from None
    try:
        got = probe([keras.ops.convert_to_tensor(x)], training=False)
        if not isinstance(got, (list, tuple)):
            got = [got]
        return {n: np.asarray(keras.ops.convert_to_numpy(t)) for n, t in zip(names, got)}
    except Exception as exc:
        raise tagged(exc, "call") from None
