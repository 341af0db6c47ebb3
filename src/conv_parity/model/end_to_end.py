"""End to end: the whole model on every backend, same weights, same input; who diverges, where.

There is no float64 composition of a whole model to compare with, so the backends are
compared with each other (and, for a Keras 2 file, with Keras 2 itself: the ``keras2`` target
runs the user's original file, see :mod:`conv_parity.backends`): the reference of an output is the elementwise *median* over the
backends that ran (with three or more, one wrong backend cannot move it; with two, both are
equally far from it and the report says the two disagree).

Tolerance rule (documented in the README): for an output at depth ``d`` (the number of
weighted layers at or before it in the top-level graph, at least 1),

    tol = 64 * eps(float32) * d * max|median|

Each float32 layer's error relative to its output's scale is a few eps times the square root
of its reduction size (64 eps covers reductions up to ~4,000 terms, ResNet50's widest 3x3 conv
among them); errors of successive layers add, hence the factor ``d``. Real bugs are far above
it: the TF bias-on-the-wrong-axis bug moves a ResNet's output by 7%, about 10^4 times this
tolerance at ResNet50's depth.

When a backend's output diverges, the top-level layers are walked in graph order and the first
whose output diverges is named, with that layer's own per-layer verdict (a conv-family layer)
or the first non-passing conv-family layer inside it (a nested submodel). A divergence whose
first divergent layer has a registered known discrepancy on that backend is ``xfail`` with the
entry named. A model Keras refuses to load or build on a backend is ``unsupported`` there, with
Keras's message; the other backends go on.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from conv_parity.engine import Engine
    from conv_parity.judge.verdict import Outcome
    from conv_parity.model.extract import Extraction

RTOL_PER_LAYER = 64 * float(np.finfo(np.float32).eps)

#: A whole model takes longer than one layer: load, a builder's repeat, one forward pass with
#: every top-level output, and the weights round trip's second model (ResNet50 at 224x224 on
#: jax: about a minute of it tracing on 2 busy cores; the per-case default is 120 s).
WHOLE_MODEL_TIMEOUT_FACTOR = 5


def model_input(input_shape: tuple[int, ...], dtype: str = "float32", seed: int = 0
                ) -> np.ndarray:
    """The input every backend runs the model on: seeded standard normal."""
    return np.random.default_rng([seed, 20375]).standard_normal(input_shape).astype(dtype)


def _top_layers(model: Any) -> list[tuple[str, bool]]:
    """(name, has weights) of the top-level layers in graph order, inputs left out."""
    return [(layer.name, bool(layer.weights)) for layer in model.layers
            if type(layer).__name__ != "InputLayer"]


def tolerances(order: list[tuple[str, bool]], scales: dict[str, float]) -> dict[str, float]:
    """The tolerance of each named output (see the module docstring); ``"output"`` gets the
    whole model's depth. tolerances([("c", True)], {"c": 2.0, "output": 2.0})["c"] == 128 eps."""
    tol: dict[str, float] = {}
    depth = 0
    for name, weighted in order:
        depth += int(weighted)
        if name in scales:
            tol[name] = RTOL_PER_LAYER * max(1, depth) * scales[name]
    for name, scale in scales.items():
        if name.startswith("output"):
            tol[name] = RTOL_PER_LAYER * max(1, depth) * scale
    return tol


def compare(outputs: dict[str, dict[str, np.ndarray]], order: list[tuple[str, bool]]
            ) -> dict[str, dict[str, Any]]:
    """Per backend: max error of the model output against the median, its tolerance, and the
    first top-level layer (in ``order``) whose output exceeds its tolerance. Pure: arrays in,
    numbers out."""
    backends = list(outputs)
    names = [n for n in outputs[backends[0]]] if backends else []
    medians: dict[str, np.ndarray] = {}
    for name in names:
        stack = [outputs[b].get(name) for b in backends]
        if any(a is None or a.shape != stack[0].shape for a in stack):
            continue
        medians[name] = np.median(np.stack([a.astype(np.float64) for a in stack]), axis=0)
    scales = {n: float(np.max(np.abs(m))) if m.size else 0.0 for n, m in medians.items()}
    tol = tolerances(order, scales)
    final = "output" if "output" in outputs[backends[0]] else next(
        (n for n in names if n.startswith("output")), "output") if backends else "output"
    found: dict[str, dict[str, Any]] = {}
    for b in backends:
        errors: dict[str, float] = {}
        for name, med in medians.items():
            diff = np.abs(outputs[b][name].astype(np.float64) - med)
            errors[name] = float(np.nanmax(diff)) if diff.size else 0.0
            if not np.all(np.isfinite(outputs[b][name])) and np.all(np.isfinite(med)):
                errors[name] = float("inf")
        first = next((n for n, _ in order if n in errors and errors[n] > tol[n]), None)
        final_err = errors.get(final)
        shape_ok = final in medians
        diverges = (not shape_ok) or final_err is None or final_err > tol.get(final, 0.0)
        if diverges and first is None:
            first = final
        found[b] = {"max_abs_err": final_err, "tolerance": tol.get(final),
                    "diverges": bool(diverges or (first is not None)),
                    "first_divergent_layer": first,
                    "shape": list(outputs[b][final].shape) if final in outputs[b] else None}
    return found


def _layer_outcome(name: str, backend: str, extraction: Extraction,
                   outcomes: list[Outcome]) -> tuple[str | None, Outcome | None]:
    """(the conv-family layer path that explains a divergence at top-level layer ``name``, its
    outcome on ``backend``): the layer itself, or the first non-passing one inside it."""
    paths = [u for u in extraction.checkable if u.path == name or u.path.startswith(name + "/")]
    by_case = {(o.case, o.backend): o for o in outcomes}
    first_any = None
    for use in paths:
        o = by_case.get((use.case, backend))
        if o is None:
            continue
        first_any = first_any or (use.path, o)
        if o.verdict != "pass":
            return use.path, o
    return first_any if first_any else (None, None)


def _acquit(rows: dict[str, dict[str, Any]]) -> None:
    """A backend that diverges from the median at a layer it computes right (its own per-layer
    verdict there passes), while another backend diverges at the same layer with a failing or
    known-discrepant verdict, only moved the median: with two backends the median is their
    mean and both seem to diverge. It passes, with a note naming the culprit."""
    culprits = {r["first_divergent_layer"]: b for b, r in rows.items()
                if r.get("first_divergent_layer") and r.get("layer_verdict") not in (None, "pass")}
    for backend, row in rows.items():
        layer = row.get("first_divergent_layer")
        other = culprits.get(layer)
        if (layer and other and other != backend and row.get("layer_verdict") == "pass"
                and row["verdict"] == "fail-values"):
            row["verdict"] = "pass"
            row["message"] = (f"differs from the median only because {other} diverges at "
                              f"{layer}; {row.get('layer', layer)} passes its own check here")


def input_dtype(model: Any) -> str:
    """The float dtype the model's first input takes (float32 when it declares another)."""
    dtype = str(getattr(model.inputs[0], "dtype", "float32") or "float32")
    return dtype if dtype in ("float16", "float32", "float64") else "float32"


@dataclass
class WholeModelRun:
    """How the whole model runs on each worker (:func:`run`'s options).

    ``x``: the user's input (default: seeded). ``also``: whole-model-only targets
    (``keras2``), which load ``source_file`` (the user's Keras 2 .h5) instead of the model
    saved here; ``weights`` (the model's ``get_weights()``, when conv-parity replaced the
    file's) are set on their model after loading, so every row runs the same numbers.
    ``application``: the keras.applications call that built the model, repeated by each
    worker so that a builder's refusal of a backend is that backend's ``unsupported``.
    ``weights_round_trip``: also have every worker read the ``.weights.h5`` written here into
    a fresh model (``weights_round_trips`` in the result, for the round-trip section).
    ``imports``: the user's own modules (``--builder``'s), imported by every worker first.
    """

    x: np.ndarray | None = None
    source_file: str | None = None
    also: Sequence[str] = ()
    weights: list[np.ndarray] | None = None
    application: dict[str, Any] | None = None
    weights_round_trip: bool = True
    imports: Sequence[str] = ()


def run(engine: Engine, model: Any, input_shape: tuple[int, ...], extraction: Extraction,
        outcomes: list[Outcome], seed: int = 0, how: WholeModelRun | None = None,
        **fields: Any) -> dict[str, Any]:
    """The ``end_to_end`` part of the model section: per backend ``backend``, ``verdict``,
    ``max_abs_err``, ``tolerance``, ``first_divergent_layer`` and that layer's verdict.

    ``how``: a :class:`WholeModelRun`, or its fields as keywords (``x=...``, ``also=...``);
    the keywords win.
    """
    how = replace(how or WholeModelRun(), **fields)
    order = _top_layers(model)
    x = how.x if how.x is not None else model_input(input_shape, input_dtype(model), seed)
    replies = _request(engine, model, order, x, how)
    import keras

    rows, ran, reloads = _replies(replies, keras.backend.backend())
    if len(ran) == 1:
        (only,) = ran
        rows[only] = {"backend": only, "verdict": "pass", "max_abs_err": None,
                      "tolerance": None, "first_divergent_layer": None,
                      "message": "the only backend that ran: nothing to compare with"}
    elif ran:
        for backend, c in compare(ran, order).items():
            rows[backend] = _compared_row(backend, c, extraction, outcomes)
        _acquit(rows)
    return {"input_shape": list(input_shape), "rule": "median of backends; tol = 64 eps32 "
            "x depth x max|median|", "results": [rows[b] for b in replies],
            **({"weights_round_trips": reloads} if how.weights_round_trip else {})}


def _request(engine: Engine, model: Any, order: list[tuple[str, bool]], x: np.ndarray,
             how: WholeModelRun) -> dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Save the model (and its weights, for the round trip) and run it on every worker."""
    with tempfile.TemporaryDirectory(prefix="conv-parity-model-") as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        weights_path = Path(tmp) / "model.weights.h5"
        if how.weights_round_trip:
            model.save_weights(weights_path)  # read by every other backend: a round trip
        return engine.request_all({"type": "model",
                                   "files": {"keras": str(path), "source": how.source_file,
                                             "weights": str(weights_path)
                                             if how.weights_round_trip else None},
                                   "layers": [n for n, _ in order],
                                   "application": how.application,
                                   "imports": list(how.imports), "cwd": str(Path.cwd())},
                                  [x, *(how.weights or [])],
                                  timeout=WHOLE_MODEL_TIMEOUT_FACTOR * engine.pool.timeout,
                                  also=how.also if how.source_file else ())


def _replies(
    replies: dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]], writer: str,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, np.ndarray]], list[dict[str, Any]]]:
    """The rows of the backends that did not run the model, the outputs of those that did,
    and each weights round trip (written on ``writer``, read on the backend)."""
    from conv_parity.workers.whole_model import RELOADED

    rows: dict[str, dict[str, Any]] = {}
    ran: dict[str, dict[str, np.ndarray]] = {}
    reloads: list[dict[str, Any]] = []
    for backend, (reply, arrays) in replies.items():
        status = reply.get("status")
        if status == "ok":
            again = {n[:-len(RELOADED)]: arrays.pop(n) for n in list(arrays)
                     if n.endswith(RELOADED)}
            ran[backend] = arrays
            if again or reply.get("weights_error"):
                from conv_parity.model.round_trip import same

                problem = reply.get("weights_error") or same(
                    [v for n, v in arrays.items() if n.startswith("output")],
                    [again[n] for n in arrays if n.startswith("output")])
                reloads.append({"check": f".weights.h5 written on {writer}, read on {backend}",
                                "writer": writer, "reader": backend,
                                "ok": problem is None, "problem": problem})
            continue
        error = reply.get("error") or {}
        text = f"{error.get('type', 'Error')}: {' '.join(str(error.get('message', '')).split())}"
        verdict = {"unavailable": "skip", "timeout": "timeout"}.get(str(status), "crash")
        if status == "error":
            verdict = "unsupported" if error.get("phase") == "build" else "crash"
        rows[backend] = {"backend": backend, "verdict": verdict, "max_abs_err": None,
                         "tolerance": None, "first_divergent_layer": None,
                         "message": text[:600]}
    return rows, ran, reloads


def _compared_row(backend: str, c: dict[str, Any], extraction: Extraction,
                  outcomes: list[Outcome]) -> dict[str, Any]:
    """A backend's row from its comparison with the median; a divergence is blamed on the
    first divergent layer's own check where it failed (or a known discrepancy explains it)."""
    row = {"backend": backend, "max_abs_err": c["max_abs_err"],
           "tolerance": c["tolerance"], "first_divergent_layer": None,
           "verdict": "pass", "message": ""}
    if not c["diverges"]:
        return row
    layer = c["first_divergent_layer"]
    row["first_divergent_layer"] = layer
    path, o = _layer_outcome(str(layer), backend, extraction, outcomes)
    if o is not None and o.verdict == "xfail" and o.known:
        row["verdict"] = "xfail"
        row["known"] = o.known.get("id")
        row["message"] = (f"diverges from layer {layer} on, explained by known "
                          f"discrepancy {o.known.get('id')} in {path}")
    else:
        row["verdict"] = "fail-values"
        if o is not None and o.verdict != "pass":
            row["message"] = (f"diverges from layer {layer} on; {path} fails its "
                              f"own check: {o.verdict}: "
                              f"{(o.diagnosis or o.message).splitlines()[0]}")
        else:
            row["message"] = (f"diverges from layer {layer} on, a layer whose "
                              f"conv-family parts (if any) pass their own checks")
    if path and o is not None:
        row["layer_verdict"] = o.verdict
        row["layer_diagnosis"] = o.diagnosis
        row["layer"] = path
    return row
