"""The worker half of the end-to-end check: a whole saved model, run once, outputs named.

The parent saves the model (with the weights it checks) as a ``.keras`` file and asks every
backend worker to load it and run it on the same inputs (one array per model input, in the
order of the request's ``inputs``). Loading is safe mode (no code from the file runs).
Besides the model's outputs (nested dict / list outputs flattened to path names,
``output/boxes/0``), the worker returns the outputs of the named top-level layers: comparing
those across backends finds the first layer whose output diverges. One probe model returns
them all from one forward pass, so an intermediate costs no second run. When the forward pass
raises, the leaf layer it raised in is named by its path (:class:`~.layer_tree.RaisingLayer`).

The weights round trip builds a fresh model from the config, reads the ``.weights.h5`` the
parent wrote, and runs it through the *same* probe graph as the loaded model, so the two runs
compute the same graph on the same backend; the model's own run-to-run jitter (the probe run
twice) is measured beside it.

The same code serves Keras 2 (the ``keras2`` target, ``keras`` is then tf_keras, loading the
user's own .h5): both Kerases have ``saving.load_model``, a functional graph with
``_nodes_by_depth`` and ``keras.Model(inputs, outputs)``; a Keras 2 node names its layer
``layer`` where Keras 3 says ``operation``, and Keras 2 has no ``keras.ops`` (TensorFlow takes
and gives NumPy-convertible tensors).

Imported only inside worker processes, after Keras.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conv_parity.modes._keras import tagged
from conv_parity.workers.layer_tree import RaisingLayer, output_names

#: The suffix of an output computed by a fresh copy of the model that read its weights from
#: the ``.weights.h5`` the parent wrote (the cross-backend weights round trip).
RELOADED = "@weights.h5"


@dataclass
class SavedModelRun:
    """What one worker did with the saved model: named outputs (``output...``, each named
    top-level layer, and ``output...@weights.h5`` for the weights round trip), why the
    weights round trip failed (or None), and per model output the largest difference between
    two runs of the same probe graph (its run-to-run jitter; 0.0 when deterministic)."""

    outputs: dict[str, np.ndarray]
    weights_error: str | None = None
    jitter: dict[str, float] = field(default_factory=dict)


def _import_user_modules(imports: Sequence[str], cwd: str | None) -> None:
    import importlib
    import sys

    if cwd and cwd not in sys.path:
        sys.path.insert(0, cwd)
    for module in imports:
        importlib.import_module(module)


def _probe(keras: Any, model: Any, layers: Sequence[str]) -> tuple[Any, list[str]]:
    """A model on ``model``'s graph returning its flat outputs and each named top-level
    layer's single output, and their names."""
    # The model's own graph: a Sequential keeps it in ``_functional``; ``layer.output`` would
    # not do, since a rebuilt Sequential's layers keep nodes of earlier graphs.
    graph = getattr(model, "_functional", None) or model
    outputs = list(graph.outputs)
    names = output_names(graph, len(outputs))
    produced: dict[str, list[Any]] = {}
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            layer = getattr(node, "operation", None) or node.layer
            tensors = node.output_tensors  # Keras 2: one tensor when there is one
            produced.setdefault(layer.name, []).extend(
                tensors if isinstance(tensors, (list, tuple)) else [tensors])
    for name in layers:
        tensors = produced.get(name, [])
        if len(tensors) != 1 or name in names:
            continue  # a shared or multi-output layer has no single output to compare
        outputs.append(tensors[0])
        names.append(name)
    return keras.Model(list(graph.inputs), outputs), names


@dataclass(frozen=True)
class SavedModelCall:
    """What to run: the saved model at ``path`` on ``xs`` (one array per input), returning
    the outputs of ``layers`` too. ``weights``: set after loading (the user's file, whose
    weights conv-parity replaced). ``weights_file``: a ``.weights.h5`` written by the parent
    (another backend) for the weights round trip. ``application``: the keras.applications call
    (``name``, ``kwargs``) that made the model, repeated here first, because a builder may
    refuse this backend. ``imports``: the user's own modules (``--builder``'s and
    ``--import``'s, searched in ``cwd`` first), imported before loading so that the custom
    layers they register are known; never code from the file."""

    path: str
    xs: Sequence[np.ndarray]
    layers: Sequence[str] = ()
    weights: list[np.ndarray] | None = None
    weights_file: str | None = None
    application: dict[str, Any] | None = None
    imports: Sequence[str] = ()
    cwd: str | None = None


def run_saved_model(keras: Any, run: SavedModelCall,
                    fetch_many: Callable[[Sequence[Any]], list[Any]] | None = None,
                    ) -> SavedModelRun:
    """Run ``run`` (:class:`SavedModelCall`); an exception leaves with its phase (build: Keras
    refused to load or build the model on this backend; call: the forward pass) and, for a
    call, ``conv_parity_layer``: the path of the leaf layer it raised in. ``fetch_many``: the
    target's way to fetch every output of one call at once
    (:attr:`conv_parity.backends.BackendSpec.fetch_many`)."""
    path, xs, layers, weights = run.path, run.xs, list(run.layers), run.weights
    weights_file, application, imports, cwd = run.weights_file, run.application, run.imports, \
        run.cwd
    try:
        if imports:
            _import_user_modules(imports, cwd)
        if application:
            kwargs = {k: tuple(v) if isinstance(v, list) else v
                      for k, v in application["kwargs"].items()}
            getattr(keras.applications, application["name"])(**kwargs)
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
        if weights:
            model.set_weights(list(weights))
        probe, names = _probe(keras, model, layers)
    except Exception as exc:
        raise tagged(exc, "build") from None
    ops = getattr(keras, "ops", None)  # None in Keras 2

    def call(m: Any) -> list[np.ndarray]:
        tensors = [ops.convert_to_tensor(x) if ops else x for x in xs]
        got = m(tensors[0] if len(tensors) == 1 else tensors, training=False)
        if not isinstance(got, (list, tuple)):
            got = [got]
        if fetch_many is not None:
            return [np.asarray(t) for t in fetch_many(got)]
        return [np.asarray(ops.convert_to_numpy(t) if ops else t) for t in got]

    with RaisingLayer(model) as watch:
        try:
            found = dict(zip(names, call(probe)))
        except Exception as exc:
            if watch.path is not None:
                with contextlib.suppress(Exception):
                    exc.conv_parity_layer = watch.path  # type: ignore[attr-defined]
            raise tagged(exc, "call") from None
    result = SavedModelRun(found)
    if not weights_file:
        return result
    finals = [n for n in names if n.startswith("output")]
    try:
        again = dict(zip(names, call(probe)))
        result.jitter = {n: _max_diff(found[n], again[n]) for n in finals}
        fresh = type(model).from_config(model.get_config())
        fresh.load_weights(weights_file)
        fresh_probe, fresh_names = _probe(keras, fresh, layers)
        for name, y in zip(fresh_names, call(fresh_probe)):
            if name in finals:
                found[name + RELOADED] = y
    except Exception as exc:
        result.weights_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
    return result


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    """The largest |a - b|, NaN in the same place counting as equal; inf where one is NaN or
    inf and the other is not."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a64.shape != b64.shape:
        return float("inf")
    same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
    if same.all():
        return 0.0
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(a64 - b64))
    return float(np.nan_to_num(diff, nan=np.inf).max())
