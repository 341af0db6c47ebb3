"""The worker half of the end-to-end check: a whole saved model, run once, outputs named.

The parent saves the model (with the weights it checks) as a ``.keras`` file and asks every
backend worker to load it and run it on the same input. Loading is safe mode (no code from the
file runs). Besides the model's output, the worker returns the outputs of the named top-level
layers: comparing those across backends finds the first layer whose output diverges. One probe
model returns them all from one forward pass, so an intermediate costs no second run.

The same code serves Keras 2 (the ``keras2`` target, ``keras`` is then tf_keras, loading the
user's own .h5): both Kerases have ``saving.load_model``, a functional graph with
``_nodes_by_depth`` and ``keras.Model(inputs, outputs)``; a Keras 2 node names its layer
``layer`` where Keras 3 says ``operation``, and Keras 2 has no ``keras.ops`` (TensorFlow takes
and gives NumPy-convertible tensors).

Imported only inside worker processes, after Keras.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from conv_parity.modes._keras import tagged

#: The suffix of an output computed by a fresh copy of the model that read its weights from
#: the ``.weights.h5`` the parent wrote (the cross-backend weights round trip).
RELOADED = "@weights.h5"


def run_saved_model(keras: Any, path: str, x: np.ndarray, layers: list[str],
                    weights: list[np.ndarray] | None = None,
                    weights_file: str | None = None, application: dict[str, Any] | None = None,
                    fetch_many: Callable[[Sequence[Any]], list[Any]] | None = None,
                    imports: Sequence[str] = (), cwd: str | None = None,
                    ) -> tuple[dict[str, np.ndarray], str | None]:
    """(``{"output": y, layer: its output, ...}``, why the weights round trip failed or
    None); an exception leaves with its phase (build: Keras refused to load or build the model
    on this backend; call: the forward pass). ``weights``: set after loading (the user's
    file, whose weights conv-parity replaced). ``weights_file``: a ``.weights.h5`` written by
    the parent (another backend); a fresh model from the same config reads it and runs
    again, its outputs named ``output`` + :data:`RELOADED`. ``application``: the
    keras.applications call (``name``, ``kwargs``) that made the model, repeated here first,
    because a builder may refuse this backend (the model is still run from ``path``).
    ``fetch_many``: the target's way to fetch every output of one call at once
    (:attr:`conv_parity.backends.BackendSpec.fetch_many`). ``imports``: the user's own
    modules (named with ``--builder``, searched in ``cwd`` first), imported before loading so
    that the custom layers they register are known; never code from the model file."""
    try:
        if imports:
            import importlib
            import sys

            if cwd and cwd not in sys.path:
                sys.path.insert(0, cwd)
            for module in imports:
                importlib.import_module(module)
        if application:
            kwargs = {k: tuple(v) if isinstance(v, list) else v
                      for k, v in application["kwargs"].items()}
            getattr(keras.applications, application["name"])(**kwargs)
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
        if weights:
            model.set_weights(list(weights))
        # The model's own graph: a Sequential keeps it in ``_functional``; ``layer.output``
        # would not do, since a rebuilt Sequential's layers keep nodes of earlier graphs.
        graph = getattr(model, "_functional", None) or model
        outputs = list(graph.outputs)
        names = ["output"] if len(outputs) == 1 else [f"output:{i}" for i in range(len(outputs))]
        produced: dict[str, list[Any]] = {}
        for nodes in graph._nodes_by_depth.values():
            for node in nodes:
                layer = getattr(node, "operation", None) or node.layer
                tensors = node.output_tensors  # Keras 2: one tensor when there is one
                produced.setdefault(layer.name, []).extend(
                    tensors if isinstance(tensors, (list, tuple)) else [tensors])
        for name in layers:
            tensors = produced.get(name, [])
            if len(tensors) != 1:
                continue  # a shared or multi-output layer has no single output to compare
            outputs.append(tensors[0])
            names.append(name)
        probe = keras.Model(graph.inputs, outputs)
    except Exception as exc:
        raise tagged(exc, "build") from None
    ops = getattr(keras, "ops", None)  # None in Keras 2

    def call(m: Any) -> list[np.ndarray]:
        got = m(ops.convert_to_tensor(x) if ops else x, training=False)  # the one input
        if not isinstance(got, (list, tuple)):
            got = [got]
        if fetch_many is not None:
            return [np.asarray(t) for t in fetch_many(got)]
        return [np.asarray(ops.convert_to_numpy(t) if ops else t) for t in got]

    try:
        found = dict(zip(names, call(probe)))
    except Exception as exc:
        raise tagged(exc, "call") from None
    if not weights_file:
        return found, None
    try:
        fresh = type(model).from_config(model.get_config())
        fresh.load_weights(weights_file)
        for i, y in enumerate(call(fresh)):
            found[names[i] + RELOADED] = y
    except Exception as exc:
        return found, f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
    return found, None
