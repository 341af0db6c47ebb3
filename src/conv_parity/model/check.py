"""``check_model``: a whole model's conv-family layers through the engine, as one result.

A client of the engine (DESIGN.md, "model"): it hands the engine prepared items, a case plus
the layer's real weights, and never talks to workers itself. Each distinct (config, input
shape, dtype) becomes one case, checked once on every selected backend however many layers
share it; the model section maps every layer back to its case's results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from conv_parity.errors import UsageError
from conv_parity.model.extract import Extraction, LayerUse, concrete_input_shapes, extract
from conv_parity.model.files import import_keras
from conv_parity.model.inputs import (
    int_high,
    match_inputs,
    model_inputs,
    read_inputs,
    seeded_inputs,
)
from conv_parity.model.load import Loaded, load, reseed
from conv_parity.model.migrate import group_blockers
from conv_parity.report.common import coverage_phrase

if TYPE_CHECKING:
    from conv_parity.case import ConvCase
    from conv_parity.engine import Engine
    from conv_parity.judge.verdict import Outcome

DEFAULT_BATCH = 2


def conform_word(coverage: dict[str, int]) -> str:
    """"all conform" only when every conv-family layer use was checked."""
    if coverage["not_checkable"]:
        return (f"no discrepancy in the {coverage['checked']} checked, but "
                f"{coverage['not_checkable']} conv-family layer uses were not checked")
    return "all conform"


@dataclass
class ModelResult:
    """What :func:`check_model` found; :meth:`to_json` is the report.json document (the
    same data ``conv-parity model --json`` prints)."""

    source: str
    input_shape: tuple[int, ...]
    extraction: Extraction
    outcomes: list[Outcome]
    environment: dict[str, Any]
    backends: list[str]
    weights: str  # "file" (the user's own) or "seeded"
    image_data_format: str
    notes: list[str] = field(default_factory=list)
    end_to_end: dict[str, Any] | None = None
    migration: Any = None  # conv_parity.model.migrate.Migration for a Keras 2 .h5
    round_trip: dict[str, Any] | None = None

    @property
    def failures(self) -> list[Outcome]:
        """Outcomes that are discrepancies (known ones, xfail, are not)."""
        return [o for o in self.outcomes if o.failed]

    @property
    def end_to_end_failures(self) -> list[dict[str, Any]]:
        """End-to-end rows that are discrepancies (not pass, xfail, skip or unsupported)."""
        rows = (self.end_to_end or {}).get("results") or []
        return [r for r in rows if r["verdict"] not in ("pass", "xfail", "skip", "unsupported")]

    @property
    def passed(self) -> bool:
        blocked = self.migration is not None and self.migration.blocked
        round_trip_ok = self.round_trip is None or self.round_trip["ok"]
        return (not self.failures and not self.end_to_end_failures and not blocked
                and round_trip_ok)

    def results_for(self, case: ConvCase) -> list[Outcome]:
        return [o for o in self.outcomes if o.case == case]

    def layer_rows(self) -> list[dict[str, Any]]:
        """The model section's ``layers``: one row per layer use, with its case's results."""
        by_case: dict[ConvCase, list[Outcome]] = {}
        for o in self.outcomes:
            by_case.setdefault(o.case, []).append(o)
        rows = []
        for use in self.extraction.uses:
            rows.append({
                "name": use.path,
                "class": use.cls,
                "input_shape": list(use.input_shape),
                "config": use.config,
                "dtype": use.dtype,
                "dtype_policy": use.policy,
                "case_id": use.case.id if use.case is not None else None,
                "checked": use.case is not None,
                "reason": use.reason,
                "results": [_result_row(o) for o in by_case.get(use.case, [])]
                if use.case is not None else [],
            })
        return rows

    def section(self) -> dict[str, Any]:
        """report.json's ``model`` section."""
        return {
            "source": self.source,
            "input_shape": list(self.input_shape),
            "input_shapes": [list(s) for s in self.extraction.input_shapes],
            "weights": self.weights,
            "image_data_format": self.image_data_format,
            "backends": list(self.backends),
            "layers": self.layer_rows(),
            "distinct_cases": len({u.case for u in self.extraction.checkable}),
            "coverage": self.extraction.coverage(),
            "not_checked": {cls: list(paths)
                            for cls, paths in sorted(self.extraction.not_checked.items())},
            "end_to_end": self.end_to_end,
            "migration": None if self.migration is None else self.migration.to_json(),
            "round_trip": self.round_trip,
            "notes": list(self.notes),
        }

    def to_json(self) -> dict[str, Any]:
        """A report.json document (schema v1) with the ``model`` section."""
        import sys

        from conv_parity.report import build_doc
        from conv_parity.report.writer import normalize_result

        run = {"front_door": "model", "backends": list(self.backends), "argv": sys.argv,
               "source": self.source}
        doc = build_doc([normalize_result(o.to_json()) for o in self.outcomes], run,
                        self.environment, complete=True)
        doc["model"] = self.section()
        return doc

    def summary(self) -> str:
        """One readable paragraph: what failed where (the pytest helper's message)."""
        checked = self.extraction.checkable
        lines = [f"{self.source} at input {tuple(self.input_shape)}: "
                 f"{coverage_phrase(self.extraction.coverage())}, "
                 f"{len({u.case for u in checked})} distinct configs on "
                 f"{', '.join(self.backends)}: "
                 + (f"{len(self.failures)} discrepancies" if not self.passed
                    else conform_word(self.extraction.coverage()))]
        if self.migration is not None:
            for g in group_blockers(self.migration.blockers):
                lines.append(f"  migration blocker: {g.line()}")
        for c in (self.round_trip or {}).get("checks", []) + (self.round_trip or {}).get(
                "layers", []):
            if not c["ok"]:
                lines.append(f"  round trip {c.get('check') or c.get('layer')}: {c['problem']}")
        for r in self.end_to_end_failures:
            lines.append(f"  end to end on {r['backend']}: {r['verdict']}: {r['message']}")
        for o in self.failures:
            layers = [u.path for u in checked if u.case == o.case]
            lines.append(f"  {', '.join(layers)} ({o.case.id}) on {o.backend}: {o.verdict}: "
                         f"{(o.diagnosis or o.message).splitlines()[0] if (o.diagnosis or o.message) else ''}")
        return "\n".join(lines)


def _result_row(o: Outcome) -> dict[str, Any]:
    return {"backend": o.backend, "verdict": o.verdict, "max_abs_err": o.max_abs_err,
            "tolerance": o.tolerance, "diagnosis": o.diagnosis,
            "known": (o.known or {}).get("id"),
            "hidden_by_weights": bool((o.known or {}).get("hidden_by_weights")),
            "message": (o.message or "").splitlines()[0] if o.message else ""}


def layer_input(case: ConvCase) -> np.ndarray:
    """The input a layer is checked on: seeded from its case, standard normal, in its dtype.

    Real weights, synthetic input: the layer's arithmetic is checked on values of a known
    scale, and the repro script can rebuild the input from the seed.
    """
    rng = np.random.default_rng(case.seed)
    return rng.standard_normal(case.input_shape).astype(case.dtype)


def prepared_items(extraction: Extraction, label: str) -> list[tuple[ConvCase, Any]]:
    """One (case, Arrays) per distinct case, with the first layer using it as the source."""
    from conv_parity.modes import Arrays

    first: dict[ConvCase, LayerUse] = {}
    for use in extraction.checkable:
        assert use.case is not None
        first.setdefault(use.case, use)
    return [(case, Arrays(layer_input(case), use.weights, source=f"{label}:{use.path}"))
            for case, use in first.items()]


def _recheck_stale(engine: Engine, outcomes: list[Outcome]) -> None:
    """Rerun the cases whose entry looked stale on the layer's real weights on seeded arrays,
    and apply :func:`conv_parity.judge.known.stale_but_seeded_reproduces` to each."""
    from conv_parity.judge.known import stale_but_seeded_reproduces

    stale = [o for o in outcomes if o.known and o.known.get("stale")]
    if not stale:
        return
    seeded = {(o.case, o.backend): o for o in engine.check(list({o.case for o in stale}))}
    for o in stale:
        stale_but_seeded_reproduces(o, seeded.get((o.case, o.backend)))


@dataclass
class ModelCheckOptions:
    """How :func:`check_model` checks a model (every field is also a keyword of check_model).

    ``input_shape`` / ``batch``: the shape to run (default: the model's, with ``batch``).
    ``layers``: only these layer names. ``reseed_weights``: replace a user's weights with seeded
    ones (a model conv-parity builds, keras.applications, always gets them), from ``seed``.
    ``timeout``: per case, for an engine started here. ``report_dir``: worker logs and repros.
    ``engine``: reuse a running engine (its backends win); otherwise one is started and closed
    here. ``progress``: a callable taking one line of text, for long runs. ``end_to_end``:
    also run the whole model on every backend and compare (:mod:`conv_parity.model.end_to_end`).
    ``write_repaired``: save a migrated Keras 2 model as this ``.keras`` path.
    ``round_trip``: check get_config and .keras save/load (:mod:`conv_parity.model.round_trip`).
    ``builder``: ``module:function`` building the model of a ``.weights.h5`` path.
    ``input_array``: the input to run the whole model on (an array, one array per input, a
    mapping by input name, or a ``.npy`` / ``.npz`` path; default: seeded, in each input's
    dtype); its shapes are the input shapes. ``imports``: the user's modules (``--import``)
    imported before a ``.keras`` file is loaded (still in safe mode), here and in every worker,
    so the custom classes they register are known.
    """

    input_shape: Sequence[int] | None = None
    batch: int = DEFAULT_BATCH
    layers: Sequence[str] | None = None
    reseed_weights: bool = False
    seed: int = 0
    timeout: float = 120.0
    report_dir: str | Path | None = None
    engine: Engine | None = None
    progress: Callable[[str], None] | None = None
    end_to_end: bool = True
    write_repaired: str | Path | None = None
    round_trip: bool = True
    builder: str | None = None
    input_array: Any = None
    imports: Sequence[str] = ()


def check_model(model_or_path: Any, backends: str | Sequence[str] | None = None,
                options: ModelCheckOptions | None = None, **fields: Any) -> ModelResult:
    """Check every conv-family layer of a model on every selected backend.

    ``model_or_path``: a Keras model object, a ``.keras`` / ``.h5`` path or
    ``"keras.applications.NAME"``. How: a :class:`ModelCheckOptions`, or its fields as
    keywords (``check_model(path, "jax", input_shape=(1, 32, 32, 3))``), or both (the keywords
    win); an unknown keyword is a TypeError.

    For a Keras 2 .h5, Keras 2 itself (the ``keras2`` target, where tf_keras is installed)
    joins the end-to-end check with its own worker, running the file as Keras 2 does.
    """
    from conv_parity import backends as targets
    from conv_parity.engine import Engine, parse_backends

    opts = replace(options or ModelCheckOptions(), **fields)
    say = opts.progress or (lambda _line: None)
    given, x_name = _given_input(opts)
    input_shape = opts.input_shape
    if isinstance(given, np.ndarray):
        if input_shape is not None and tuple(input_shape) != given.shape:
            raise UsageError(f"{x_name}: its shape {given.shape} != --input-shape "
                             f"{tuple(input_shape)}; give one of them")
        input_shape = given.shape
    loaded = _load(model_or_path, opts, input_shape, say)
    keras = import_keras()
    seeded = loaded.built_here or opts.reseed_weights
    if seeded:
        reseed(loaded.model, opts.seed)
    specs = model_inputs(loaded.model)
    xs = match_inputs(specs, given, x_name) if given is not None else None
    shapes = concrete_input_shapes(
        loaded.model, [x.shape for x in xs] if xs is not None else
        ([tuple(input_shape)] if input_shape is not None else None), opts.batch,
        what=x_name if xs is not None else "--input-shape")
    shape = shapes[0]
    found = extract(loaded.model, shapes, loaded.source, only=opts.layers)
    if xs is None:
        xs = seeded_inputs(specs, shapes, opts.seed, int_high(loaded.model))
    # Keras 2 itself joins the end to end of a Keras 2 file; asked for by name, it needs one.
    saved_by = loaded.migration.keras_version if loaded.migration is not None else None
    engine = opts.engine
    selected = list(engine.backends) if engine is not None else parse_backends(backends)[0]
    whole_only = [b for b in selected if not targets.get(b).cases]
    if whole_only and saved_by is None:
        raise UsageError(f"{whole_only[0]} runs a Keras 2 model file (.h5 saved by Keras 2); "
                         f"{loaded.source} was not")
    also = list(dict.fromkeys([*whole_only, *targets.whole_model_targets(saved_by)]))
    trips = None
    if opts.round_trip:
        from conv_parity.model import round_trip as round_trip_module

        say("conv-parity: round trips (get_config, .keras save/load)...")
        trips = round_trip_module.run(loaded.model, shapes, found)
    label = Path(loaded.source).name if loaded.kind in ("keras", "h5") else loaded.source
    items = prepared_items(found, label)
    say(f"conv-parity: {loaded.source}: {len(found.checkable)} conv-family layer uses, "
        f"{len(items)} distinct configs, {sum(len(v) for v in found.not_checked.values())} "
        f"other layers not checked")
    if engine is None:
        selected = [b for b in selected if b not in whole_only]
        say(f"conv-parity: starting {len(selected)} backend workers ({', '.join(selected)})...")
        engine = Engine(selected, timeout=opts.timeout, report_dir=opts.report_dir)
    try:
        outcomes = engine.check_prepared(items) if items else []
        _recheck_stale(engine, outcomes)
        e2e = None
        if opts.end_to_end:
            from conv_parity.model import end_to_end as e2e_module

            say("conv-parity: running the whole model on every backend (end to end"
                + (f", and {', '.join(also)}" if also else "") + ")...")
            e2e = e2e_module.run(
                engine, loaded.model, shape, found, outcomes, opts.seed, x=xs,
                source_file=loaded.source if saved_by else None, also=also,
                weights=loaded.model.get_weights() if (seeded and also) else None,
                application=loaded.application, weights_round_trip=trips is not None,
                imports=loaded.imports)
            if trips is not None:
                round_trip_module.add_cross_backend(trips, e2e)
        env = engine.environment()
        chosen = list(engine.backends)
    finally:
        if opts.engine is None:
            engine.close()
    env["image_data_format"] = keras.config.image_data_format()
    return ModelResult(loaded.source, shape, found, outcomes, env, chosen,
                       "seeded" if seeded else "file", keras.config.image_data_format(),
                       end_to_end=e2e, migration=loaded.migration, round_trip=trips)


def _given_input(opts: ModelCheckOptions) -> tuple[Any, str]:
    """The user's input (read from its .npy / .npz path) and how to name it in messages."""
    given, x_name = opts.input_array, "input"
    if isinstance(given, (str, Path)):
        x_name = f"--input {given}"
        given = read_inputs(given)
    return given, x_name


def _load(model_or_path: Any, opts: ModelCheckOptions, input_shape: Sequence[int] | None,
          say: Callable[[str], None]) -> Loaded:
    """The model, loaded from its source (and saved repaired where ``write_repaired`` asks)."""
    if isinstance(model_or_path, (str, Path)):
        loaded = load(str(model_or_path), tuple(input_shape) if input_shape else None, say,
                      builder=opts.builder, imports=opts.imports)
    else:
        loaded = Loaded(model_or_path, getattr(model_or_path, "name", "model"), "object",
                        built_here=False, imports=tuple(opts.imports))
    write_repaired = opts.write_repaired
    if write_repaired is not None:
        if loaded.migration is None:
            raise UsageError("--write-repaired is for a Keras 2 .h5 (it saves the repaired "
                             "model); this source needs no migration")
        if not str(write_repaired).endswith(".keras"):
            raise UsageError(f"--write-repaired {write_repaired}: the path must end in .keras")
        loaded.model.save(write_repaired)
        say(f"conv-parity: wrote the repaired model to {write_repaired}")
    return loaded


def assert_model_conforms(model_or_path: Any, backends: str | Sequence[str] | None = None,
                          **kwargs: Any) -> ModelResult:
    """For users' own tests: ``assert_model_conforms(model)`` fails with one readable message
    naming each discrepant layer, backend and verdict; returns the result otherwise."""
    __tracebackhide__ = True
    result = check_model(model_or_path, backends, **kwargs)
    if not result.passed:
        raise AssertionError(result.summary())
    return result
