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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from conv_parity.requests import ModelReply, ModelRequest

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
    """A one-input model's seeded standard normal input (:mod:`conv_parity.model.inputs`
    makes one per input, integer ones included)."""
    from conv_parity.model.inputs import ModelInput, seeded_inputs

    return seeded_inputs([ModelInput("input", input_shape, dtype)], [input_shape], seed)[0]


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


def nan_median(stack: Sequence[np.ndarray]) -> np.ndarray:
    """The elementwise median of the backends' outputs, NaN where most of them give NaN.

    NaN is never masked: where most backends give NaN, NaN is the answer (and a finite value
    there is a discrepancy); where most do not, the median of the non-NaN values is (and a NaN
    there is one). Infinities take part as numbers (IEEE order)."""
    arr = np.stack([np.asarray(a, np.float64) for a in stack])
    nan = np.isnan(arr)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        med = np.nanmedian(arr, axis=0) if nan.any() else np.median(arr, axis=0)
    if nan.any():
        med = np.where(nan.sum(axis=0) * 2 > arr.shape[0], np.nan, med)
    return np.asarray(med)


def max_error(y: np.ndarray, reference: np.ndarray) -> float:
    """max |y - reference| where equal values (NaN with NaN, inf with the same inf) count as
    agreement and a NaN or inf against anything else is an infinite error."""
    from conv_parity.workers.whole_model import _max_diff

    return _max_diff(y, reference)


def _scale(median: np.ndarray) -> float:
    finite = np.abs(median[np.isfinite(median)])
    return float(finite.max()) if finite.size else 0.0


def compare(outputs: dict[str, dict[str, np.ndarray]], order: list[tuple[str, bool]]
            ) -> dict[str, dict[str, Any]]:
    """Per backend: each model output's max error against the median and its tolerance, the
    worst of them, and the first top-level layer (in ``order``) whose output exceeds its
    tolerance. NaN and inf are compared, never masked (:func:`nan_median`,
    :func:`max_error`). Pure: arrays in, numbers out."""
    backends = list(outputs)
    names = [n for n in outputs[backends[0]]] if backends else []
    medians: dict[str, np.ndarray] = {}
    for name in names:
        stack = [outputs[b].get(name) for b in backends]
        if any(a is None or a.shape != stack[0].shape for a in stack):
            continue
        medians[name] = nan_median(stack)  # type: ignore[arg-type]
    tol = tolerances(order, {n: _scale(m) for n, m in medians.items()})
    finals = [n for n in names if n.startswith("output")] or ["output"]
    found: dict[str, dict[str, Any]] = {}
    for b in backends:
        errors = {name: max_error(outputs[b][name], med) for name, med in medians.items()}
        first = next((n for n, _ in order if n in errors and errors[n] > tol[n]), None)
        per_output = {n: {"max_abs_err": errors.get(n), "tolerance": tol.get(n),
                          "shape": list(outputs[b][n].shape) if n in outputs[b] else None,
                          "ok": n in errors and errors[n] <= tol[n]} for n in finals}
        bad = [n for n in finals if not per_output[n]["ok"]]
        worst = bad[0] if bad else max(
            finals, key=lambda n: (errors.get(n) or 0.0) / (tol.get(n) or 1.0))
        if bad and first is None:
            first = worst
        found[b] = {"max_abs_err": errors.get(worst), "tolerance": tol.get(worst),
                    "output": worst, "outputs": per_output,
                    "diverges": bool(bad or first is not None),
                    "first_divergent_layer": first,
                    "shape": per_output[worst]["shape"]}
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

    x: np.ndarray | list[np.ndarray] | None = None
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
    ``max_abs_err``, ``tolerance``, ``first_divergent_layer`` and that layer's verdict, and
    per model output (``outputs``) its error and tolerance.

    ``how``: a :class:`WholeModelRun`, or its fields as keywords (``x=...``, ``also=...``);
    the keywords win. ``x``: one array, or a list with one array per model input.
    """
    from conv_parity.model.inputs import int_high, model_inputs, seeded_inputs

    how = replace(how or WholeModelRun(), **fields)
    order = _top_layers(model)
    specs = model_inputs(model)
    if how.x is None:
        shapes = extraction.input_shapes or [input_shape]
        xs = seeded_inputs(specs, shapes, seed, int_high(model))
    else:
        xs = list(how.x) if isinstance(how.x, (list, tuple)) else [how.x]
    replies = _request(engine, model, order, xs, [s.name for s in specs], how)
    import keras

    rows, ran, reloads = _replies(replies, keras.backend.backend())
    if len(ran) == 1:
        (only,) = ran
        rows[only] = {"backend": only, "verdict": "skip", "max_abs_err": None,
                      "tolerance": None, "first_divergent_layer": None,
                      "message": "the only backend that ran the model: nothing was compared"}
    elif ran:
        for backend, c in compare(ran, order).items():
            rows[backend] = _compared_row(backend, c, extraction, outcomes)
        _acquit(rows)
    _raised_rows(rows, bool(ran), extraction, outcomes)
    return {"input_shape": list(input_shape),
            "input_shapes": {s.name: list(x.shape) for s, x in zip(specs, xs)},
            "compared": len(ran) >= 2,
            "rule": "median of backends; tol = 64 eps32 x depth x max|median|; NaN and inf "
            "compared, never masked", "results": [rows[b] for b in replies],
            **({"weights_round_trips": reloads} if how.weights_round_trip else {})}


def _request(engine: Engine, model: Any, order: list[tuple[str, bool]],
             xs: list[np.ndarray], names: list[str], how: WholeModelRun,
             ) -> dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Save the model (and its weights, for the round trip) and run it on every worker."""
    with tempfile.TemporaryDirectory(prefix="conv-parity-model-") as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        weights_path = Path(tmp) / "model.weights.h5"
        if how.weights_round_trip:
            model.save_weights(weights_path)  # read by every other backend: a round trip
        request = ModelRequest(
            files={"keras": str(path), "source": how.source_file,
                   "weights": str(weights_path) if how.weights_round_trip else None},
            layers=tuple(n for n, _ in order), inputs=tuple(names),
            application=how.application, imports=tuple(how.imports), cwd=str(Path.cwd()))
        return engine.request_all(request.to_header(), [*xs, *(how.weights or [])],
                                  timeout=WHOLE_MODEL_TIMEOUT_FACTOR * engine.pool.timeout,
                                  also=how.also if how.source_file else ())


def reload_problem(arrays: dict[str, np.ndarray], again: dict[str, np.ndarray],
                   jitter: dict[str, float]) -> str | None:
    """None when every model output read back from the ``.weights.h5`` equals the loaded
    model's through the same graph, within that backend's measured run-to-run jitter (exactly
    where it is deterministic); else which output differs and by how much."""
    finals = [n for n in arrays if n.startswith("output")]
    if sorted(again) != sorted(finals):
        return f"outputs {sorted(again)} after reading the weights, {finals} before"
    for name in finals:
        a, b = arrays[name], again[name]
        if a.shape != b.shape:
            return f"{name} shape {b.shape} after the round trip != {a.shape} before"
        err = max_error(b, a)
        allowed = float(jitter.get(name, 0.0))
        if err > allowed:
            return (f"{name} values differ after the round trip (max |diff| {err:.3g}; the "
                    f"same graph run twice differs by {allowed:.3g})")
    return None


def _replies(
    replies: dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]], writer: str,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, np.ndarray]], list[dict[str, Any]]]:
    """The rows of the backends that did not run the model, the outputs of those that did,
    and each weights round trip (written on ``writer``, read on the backend)."""
    from conv_parity.workers.whole_model import RELOADED

    rows: dict[str, dict[str, Any]] = {}
    ran: dict[str, dict[str, np.ndarray]] = {}
    reloads: list[dict[str, Any]] = []
    for backend, (header, arrays) in replies.items():
        reply = ModelReply.from_header(header)
        status = reply.status
        if status == "ok":
            again = {n[:-len(RELOADED)]: arrays.pop(n) for n in list(arrays)
                     if n.endswith(RELOADED)}
            ran[backend] = arrays
            if again or reply.weights_error:
                problem = reply.weights_error or reload_problem(arrays, again, reply.jitter)
                reloads.append({"check": f".weights.h5 written on {writer}, read on {backend}",
                                "writer": writer, "reader": backend, "jitter": reply.jitter,
                                "ok": problem is None, "problem": problem})
            continue
        error = reply.error or {}
        text = f"{error.get('type', 'Error')}: {' '.join(str(error.get('message', '')).split())}"
        verdict = {"unavailable": "skip", "timeout": "timeout"}.get(str(status), "crash")
        if status == "error":
            verdict = "unsupported" if error.get("phase") == "build" else "raised"
        rows[backend] = {"backend": backend, "verdict": verdict, "max_abs_err": None,
                         "tolerance": None, "first_divergent_layer": None,
                         "message": text[:600]}
        if error.get("layer"):
            rows[backend]["raised_in"] = error["layer"]
    return rows, ran, reloads


def _raised_rows(rows: dict[str, dict[str, Any]], others_ran: bool, extraction: Extraction,
                 outcomes: list[Outcome]) -> None:
    """A backend whose forward pass raised while another ran it: ``fail-error-parity`` at the
    layer it raised in, or ``xfail`` where that layer's own check on this backend is a known
    discrepancy (its entry named). Where no backend ran it, the model itself is refused
    (``unsupported``), not a backend."""
    for backend, row in rows.items():
        if row["verdict"] != "raised":
            continue
        layer = row.get("raised_in")
        row["first_divergent_layer"] = layer
        if not others_ran:
            row["verdict"] = "unsupported"
            row["message"] = f"raises on every backend: {row['message']}"
            continue
        where = f" in {layer}" if layer else ""
        o = None
        if layer:
            by_case = {(x.case, x.backend): x for x in outcomes}
            o = next((by_case.get((u.case, backend)) for u in extraction.checkable
                      if u.path == layer and (u.case, backend) in by_case), None)
        if o is not None:
            row["layer"], row["layer_verdict"] = layer, o.verdict
        if o is not None and o.verdict == "xfail" and o.known:
            row.update(verdict="xfail", known=o.known.get("id"),
                       message=f"raises{where}, explained by known discrepancy "
                               f"{o.known.get('id')} (that layer's own check): "
                               f"{row['message'][:300]}")
        else:
            row["verdict"] = "fail-error-parity"
            own = f" (its own check: {o.verdict})" if o is not None else ""
            row["message"] = f"raises{where}{own} where other backends run: {row['message']}"


def _compared_row(backend: str, c: dict[str, Any], extraction: Extraction,
                  outcomes: list[Outcome]) -> dict[str, Any]:
    """A backend's row from its comparison with the median; a divergence is blamed on the
    first divergent layer's own check where it failed (or a known discrepancy explains it)."""
    row = {"backend": backend, "max_abs_err": c["max_abs_err"],
           "tolerance": c["tolerance"], "first_divergent_layer": None,
           "verdict": "pass", "message": "", "output": c.get("output"),
           "outputs": c.get("outputs")}
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
