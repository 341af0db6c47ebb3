"""Hypothesis profiles, the fuzz tests' settings, CI shard seeds, and fuzz campaigns.

Profiles (registered by the plugin in ``pytest_configure``; select with
``--hypothesis-profile``): ``dev``: few examples, fast. ``ci``: derandomized, ``print_blob``,
no database, a fixed budget; shard-aware (:func:`seed_for_shard` gives each ``--conv-shard I/N``
its own fixed seed, so CI machines do not repeat each other). ``nightly``: randomized, with an
example database under the report folder, so CI can cache and replay what earlier nights found.
Every profile has ``deadline=None`` (each example crosses process boundaries, so its time says
nothing about the code under test) and no ``explain`` phase (it re-runs a failure dozens of
times, each a round trip to every backend; the engine's diagnosis explains failures better).

:func:`run_campaign` is what ``conv-parity fuzz`` runs: a time- and example-bounded search that
collects *distinct* discrepancies (one per root cause: layer, backend, verdict, diagnosis) and
shrinks each to a minimal configuration.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase
from hypothesis.errors import Unsatisfiable

if TYPE_CHECKING:
    import pytest

    from conv_parity.case import ConvCase
    from conv_parity.engine import Engine
    from conv_parity.generate.strategies import FilterCounter, KnownFilter
    from conv_parity.judge.verdict import Outcome
    from conv_parity.registry import Registry

PROFILES = ("dev", "ci", "nightly")
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
#: Every phase but ``explain``: see the module docstring.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)
#: Budget of the shipped fuzz tests when no conv-parity profile is loaded (the repo's own run).
DEFAULT_RUN_EXAMPLES = 10
#: Default campaign budget when neither max_examples nor time_budget is given.
DEFAULT_CAMPAIGN_EXAMPLES = 100


def register_hypothesis_profiles(config: pytest.Config | None = None) -> None:
    """Register the dev / ci / nightly profiles; nightly's database goes under the report dir."""
    report = None
    if config is not None:
        report = config.getoption("conv_report", None)
        try:
            report = report or config.getini("conv_report") or None
        except ValueError:  # the plugin is disabled (-p no:conv_parity): no such ini key
            report = None
    db_dir = Path(report or "conv-parity-report") / "hypothesis-db"
    common: dict[str, Any] = {"deadline": None, "suppress_health_check": _SUPPRESS,
                              "phases": PHASES}
    # dev is derandomized too: the repo's own `pytest` run must give the same verdicts twice.
    settings.register_profile("dev", max_examples=DEFAULT_RUN_EXAMPLES, derandomize=True,
                              database=None, **common)
    settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True,
                              database=None, **common)
    settings.register_profile("nightly", max_examples=400, derandomize=False,
                              database=DirectoryBasedExampleDatabase(str(db_dir)),
                              print_blob=True, **common)


def active_profile(config: pytest.Config | None = None) -> str | None:
    """The hypothesis profile in force: ``--hypothesis-profile`` if given, else the loaded one."""
    name = None
    if config is not None:
        with contextlib.suppress(ValueError, AttributeError):
            name = config.getoption("hypothesis_profile", None)
    if name is None:
        getter = getattr(settings, "get_current_profile_name", None)
        name = getter() if getter is not None else getattr(settings, "_current_profile", None)
    return name


def suite_settings(fraction: float = 1.0) -> settings:
    """Settings for a shipped fuzz test, evaluated at its decoration (after profiles load).

    Under a conv-parity profile (or any profile a user loaded) its budget applies, scaled by
    ``fraction``; under hypothesis's own ``default`` profile (a plain ``pytest`` run, which must
    stay cheap) the ``dev`` budget applies. Always ``deadline=None``. The
    ``function_scoped_fixture`` health check is off: the plugin's ``conv_record_failures`` is
    meant to live across examples (it keeps the last example's failures).
    """
    if "dev" not in getattr(settings, "_profiles", {"dev": None}):
        register_hypothesis_profiles()
    name = active_profile()
    current = settings.default  # the loaded profile (None only before hypothesis loads one)
    base = (settings.get_profile("dev") if name in (None, "default") or current is None
            else current)
    n = max(1, round(base.max_examples * fraction))
    suppress = sorted(set(base.suppress_health_check) | set(_SUPPRESS)
                      | {HealthCheck.function_scoped_fixture}, key=lambda h: h.value)
    return settings(base, max_examples=n, deadline=None, suppress_health_check=suppress)


def shard_seed(test_name: str, shard: str) -> int:
    """The fixed seed of one test on one CI shard: distinct per shard, stable across runs."""
    return zlib.crc32(f"conv-parity|{test_name}|shard {shard}".encode())


def seed_for_shard(item: pytest.Item, shard: str | None) -> None:
    """Give a ``conv_fuzz`` item its shard's fixed seed under the ``ci`` profile.

    ``ci`` is derandomized: without this every shard would draw the same examples. An explicit
    ``@seed`` takes precedence over ``derandomize`` in hypothesis (``get_random_for_wrapped_test``
    checks the seed first), so each shard stays deterministic but explores different inputs.
    Other profiles are randomized already; an item that is not a hypothesis test is left alone.
    """
    if not shard:
        return
    if active_profile(getattr(item, "config", None)) != "ci":
        return
    fn = getattr(item, "obj", None)
    if fn is None or not getattr(fn, "is_hypothesis_test", False):
        return
    from conv_parity.generate import grid

    grid.parse_shard(shard)
    hypothesis_seed(shard_seed(getattr(fn, "__qualname__", repr(fn)), shard))(fn)


# --------------------------------------------------------------------------- campaigns


def root_cause(outcome: Outcome) -> tuple[str, str, str, str | None]:
    """The dedup key of a failing outcome: (layer, backend, verdict, diagnosis); the layer
    carries the mode when it is not eager (``Conv2D[grad]``): a gradient bug is another cause.

    Errors have no diagnosis; their exception type stands in for it, so a backend that raises
    two different errors on one layer counts as two root causes.
    """
    verdict = outcome.verdict
    if outcome.known and outcome.known.get("stale"):
        verdict = "stale-known"
    cause = outcome.diagnosis_code
    if cause is None and outcome.error:
        cause = str(outcome.error.get("type") or "") or None
    layer = outcome.case.layer
    if outcome.case.mode != "eager":
        layer = f"{layer}[{outcome.case.mode}]"
    return (layer, outcome.backend, verdict, cause)


def _complexity(case: ConvCase) -> tuple[int, int, str]:
    """A simplicity order for representatives that hypothesis has not shrunk (smaller first)."""
    ints = [v for val in case.kwargs.values() if isinstance(val, tuple) for v in val]
    size = 1
    for d in case.input_shape:
        size *= max(1, d)
    return (size, sum(ints), case.id)


@dataclass
class CampaignEvent:
    """A progress report: ``kind`` is example, found, minimised or done. str() is one line."""

    kind: str
    examples: int
    seconds: float
    discrepancies: int
    case_id: str | None = None
    key: tuple[Any, ...] | None = None

    def __str__(self) -> str:
        head = f"[{self.seconds:7.1f}s] {self.examples} examples, {self.discrepancies} distinct"
        if self.kind == "found" and self.key:
            return f"{head}: new discrepancy {'/'.join(map(str, self.key))} on {self.case_id}"
        if self.kind == "minimised" and self.key:
            return f"{head}: minimised {'/'.join(map(str, self.key))} to {self.case_id}"
        if self.kind == "done":
            return f"{head}: done"
        return head


@dataclass
class CampaignResult:
    """What a campaign found: one result dict per distinct discrepancy, and the statistics.

    Each discrepancy is a report.json result (DESIGN contract) for its minimal case, plus
    ``root_cause`` (layer, backend, verdict, diagnosis), ``minimised`` (False when the budget
    ran out before hypothesis finished shrinking it) and ``first_case_id`` (as first found).
    """

    discrepancies: list[dict[str, Any]]
    examples: int
    #: Drawn cases a registry entry explains on every selected backend (never run).
    filtered_known: int
    seconds: float
    backends: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    shrink_examples: int = 0
    rejected_invalid: int = 0
    stopped_by: str = ""
    complete: bool = True
    backend_seconds: dict[str, float] = field(default_factory=dict)
    report_paths: dict[str, str] = field(default_factory=dict)
    #: (case, backend) pairs not judged because a registry entry explains them: every backend
    #: of a case in ``filtered_known``, and the known backends of a case run on the others.
    filtered_pairs: int = 0
    #: Every (case, backend) pair drawn: the judged ones plus ``filtered_pairs``.
    pairs: int = 0

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0

    @property
    def filtered_pair_share(self) -> float:
        """The share of drawn (case, backend) pairs the registry explained (0 when none)."""
        return self.filtered_pairs / self.pairs if self.pairs else 0.0

    def stats(self) -> dict[str, Any]:
        """The report's ``fuzz`` block."""
        return {
            "examples": self.examples,
            "shrink_examples": self.shrink_examples,
            "filtered_known": self.filtered_known,
            "filtered_pairs": self.filtered_pairs,
            "pairs": self.pairs,
            "filtered_pair_share": round(self.filtered_pair_share, 4),
            "rejected_invalid": self.rejected_invalid,
            "seconds": round(self.seconds, 3),
            "examples_per_second": round(self.examples_per_second, 3),
            "backend_seconds": {b: round(s, 3) for b, s in self.backend_seconds.items()},
            "distinct_discrepancies": len(self.discrepancies),
            "seed": self.seed,
            "stopped_by": self.stopped_by,
        }

    def to_json(self) -> dict[str, Any]:
        """The report.json document: schema_version, environment, results (+ ``fuzz`` stats)."""
        from conv_parity.report import build_doc
        from conv_parity.report.writer import default_environment

        env = self.environment or default_environment()
        doc = build_doc(self.discrepancies, self.run, env, self.complete)
        doc["fuzz"] = self.stats()
        return doc


class _Stop(BaseException):
    """Ends a campaign iteration at once (budget spent): hypothesis must not shrink it."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class _Harness(BaseException):
    """The engine itself failed: abort instead of letting hypothesis shrink a harness bug."""


class _Discrepancy(Exception):
    """The probe's failure signal for the iteration's target root cause."""


class _KeepingDatabase(ExampleDatabase):
    """Delegates to a database but never deletes: later campaign iterations exclude root causes
    found earlier, so their saved failures no longer fail there and would otherwise be dropped
    before the next campaign could replay them."""

    def __init__(self, inner: ExampleDatabase) -> None:
        super().__init__()
        self.inner = inner

    def save(self, key: bytes, value: bytes) -> None:
        self.inner.save(key, value)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        return self.inner.fetch(key)

    def delete(self, key: bytes, value: bytes) -> None:
        return None

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self.inner.save(dest, value)


@dataclass
class _Found:
    outcome: Outcome
    first_case_id: str
    minimised: bool = False


def _campaign_strategy(layers: Sequence[str] | None, known: KnownFilter, counter: FilterCounter,
                       modes: Sequence[str] = ("eager",),
                       policies: Sequence[str] = ("float32",)) -> st.SearchStrategy[ConvCase]:
    """Valid cases mostly, boundary and invalid ones sometimes; shrinks towards valid ones.
    Each drawn case runs in a drawn mode and under a drawn dtype policy (shrinking towards the
    first one listed); an op keeps its plain dtype where a mixed policy is drawn (ops have no
    policy, see :mod:`conv_parity.policies`)."""
    from conv_parity.generate.strategies import conv_cases, edge_cases, invalid_cases

    valid = conv_cases(layers, exclude_known=known, counter=counter)
    edge = edge_cases(layers, exclude_known=known, counter=counter)
    invalid = invalid_cases(layers, exclude_known=known, counter=counter)
    drawn = st.one_of(valid, valid, valid, edge, invalid)
    if list(modes) == ["eager"] and list(policies) == ["float32"]:
        return drawn

    from conv_parity import policies as records
    from conv_parity.case import ConvCase

    def remade(triple: tuple[ConvCase, str, str]) -> ConvCase:
        case, mode, policy = triple
        if case.kind.is_op and records.get(policy).mixed:
            policy = case.policy_name
        if mode == case.mode and policy == case.policy_name:
            return case
        return ConvCase.make(case.layer, case.kwargs, case.input_shape, policy, mode=mode)

    return st.tuples(drawn, st.sampled_from(list(modes)),
                     st.sampled_from(list(policies))).map(remade)


@dataclass
class CampaignOptions:
    """What a campaign searches, for how long, and where it writes (see :func:`run_campaign`).

    ``backends``: target names (None: every installed one); ``max_examples`` / ``time_budget``
    (seconds) bound the search (neither: :data:`DEFAULT_CAMPAIGN_EXAMPLES`); ``seed`` (None: a
    random one, recorded in the result); ``report_dir``: reports, repros, worker logs and the
    example database; ``progress`` receives :class:`CampaignEvent` objects; ``registry``: a
    loaded one, a TOML path, or None for the shipped one; ``layers``, ``modes``, ``policies``
    narrow what is drawn; ``engine``: one to reuse (the campaign then does not close it).
    """

    backends: Sequence[str] | str | None = None
    max_examples: int | None = None
    time_budget: float | None = None
    seed: int | None = None
    report_dir: str | Path | None = None
    progress: Callable[[CampaignEvent], None] | None = None
    registry: Registry | str | Path | None = None
    layers: Sequence[str] | None = None
    engine: Engine | None = None
    modes: Sequence[str] | None = None
    policies: Sequence[str] | None = None


def run_campaign(options: CampaignOptions | None = None, /, **fields: Any) -> CampaignResult:
    """Fuzz every selected backend until ``max_examples`` or ``time_budget`` (seconds) is spent.

    Takes a :class:`CampaignOptions`, or its fields as keywords (``run_campaign(max_examples=5,
    seed=0)``), or both (the keywords win); an unknown keyword is a TypeError.

    How distinct discrepancies are collected: each iteration is one hypothesis run whose probe
    fails only for its *target*, the first root cause not found before; hypothesis shrinks that
    one (other failures seen meanwhile are remembered but do not steer the shrink, so it cannot
    slip to another bug), the minimal case is kept, its root cause is excluded, and the next
    iteration (next seed) searches on. Each example is one batched round trip to all backends
    (:meth:`Engine.check`), whose cache makes re-runs free and the probe deterministic.

    Known discrepancies are filtered per (case, backend) pair (issue 21): a case the registry
    explains on every selected backend is not drawn; one it explains on some runs, and only the
    other backends' outcomes can be discrepancies (:meth:`KnownFilter.unexplained`; matched
    without worker facts, so the same pairs are filtered on every machine). The result counts
    both: ``filtered_known`` cases and ``filtered_pairs`` of ``pairs``.
    ``max_examples`` bounds generated examples (shrinking is extra); when the time budget ends
    mid-shrink the best case so far is kept with ``minimised: False``.

    ``progress`` receives :class:`CampaignEvent` objects (``str()`` gives a log line).
    ``report_dir``: report.json/md/html (rewritten on every new discrepancy, so a partial report
    survives an interrupt), repro scripts, worker logs, and ``hypothesis-db``.
    """
    from conv_parity.registry import Registry

    opts = _checked(replace(options or CampaignOptions(), **fields))
    report_path = Path(opts.report_dir) if opts.report_dir is not None else None
    if report_path is not None:
        report_path.mkdir(parents=True, exist_ok=True)
    registry = opts.registry if opts.registry is not None else Registry.load()
    if isinstance(registry, (str, Path)):
        registry = Registry.load(registry)
    engine = opts.engine
    if engine is None:
        from conv_parity.engine import Engine

        engine = Engine(opts.backends, report_dir=report_path, registry=registry)
    try:
        return _Campaign(opts, engine, registry, report_path).run()
    finally:
        if opts.engine is None:
            engine.close()


def _checked(opts: CampaignOptions) -> CampaignOptions:
    """The options with the budget checked and the defaults (budget, seed) filled in."""
    from conv_parity.errors import UsageError

    if opts.max_examples is not None and opts.max_examples < 1:
        raise UsageError(f"max_examples must be >= 1, got {opts.max_examples!r}")
    if opts.time_budget is not None and not opts.time_budget > 0:
        raise UsageError("time_budget must be a positive number of seconds, got "
                         f"{opts.time_budget!r}")
    if opts.max_examples is None and opts.time_budget is None:
        opts = replace(opts, max_examples=DEFAULT_CAMPAIGN_EXAMPLES)
    if opts.seed is None:
        opts = replace(opts, seed=random.SystemRandom().getrandbits(32))
    return opts


class _Campaign:
    """One campaign's state: what was drawn and found, the budget, the result it keeps current."""

    def __init__(self, opts: CampaignOptions, engine: Engine, registry: Registry,
                 report_path: Path | None) -> None:
        from conv_parity.generate.strategies import FilterCounter, KnownFilter

        self.opts, self.engine, self.report_path = opts, engine, report_path
        self.seed: int = opts.seed if opts.seed is not None else 0  # set by _checked
        self.start = time.monotonic()
        self.deadline: float | None = None
        self.counter = FilterCounter()
        self.known = KnownFilter(registry, engine.backends, counter=self.counter)
        self.strategy = _campaign_strategy(opts.layers, self.known, self.counter,
                                           tuple(opts.modes or ("eager",)),
                                           tuple(opts.policies or ("float32",)))
        self.found: dict[tuple, _Found] = {}
        self.seen: set[ConvCase] = set()
        self.examples = self.shrink = self.pairs = 0
        self.target: tuple | None = None
        self.backend_seconds: dict[str, float] = dict.fromkeys(engine.backends, 0.0)
        run_info = {"front_door": "fuzz", "backends": list(engine.backends), "seed": self.seed,
                    "max_examples": opts.max_examples, "time_budget": opts.time_budget,
                    "layers": list(opts.layers) if opts.layers else None,
                    "modes": list(opts.modes or ["eager"]),
                    "policies": list(opts.policies or ["float32"]),
                    "argv": sys.argv}
        self.result = CampaignResult([], 0, 0, 0.0, backends=list(engine.backends),
                                     run=run_info, seed=self.seed)

    def emit(self, kind: str, case_id: str | None = None, key: tuple | None = None) -> None:
        if self.opts.progress is not None:
            self.opts.progress(CampaignEvent(kind, self.examples, time.monotonic() - self.start,
                                             len(self.found), case_id, key))

    def snapshot(self, complete: bool) -> CampaignResult:
        result, counter = self.result, self.counter
        result.discrepancies = [_result_dict(key, f) for key, f in self.found.items()]
        result.examples = self.examples
        result.shrink_examples = self.shrink
        result.filtered_known = counter.filtered_known
        result.filtered_pairs = counter.filtered_pairs
        result.pairs = self.pairs + counter.filtered_known * len(self.engine.backends)
        result.rejected_invalid = counter.rejected_invalid
        result.seconds = time.monotonic() - self.start
        result.backend_seconds = dict(self.backend_seconds)
        result.complete = complete and all(f.minimised for f in self.found.values())
        if self.report_path is not None:
            from conv_parity.report import write_all

            paths = write_all(result.to_json(), self.report_path)
            result.report_paths = {k: str(v) for k, v in paths.items()}
        return result

    def probe(self, case: ConvCase) -> None:
        """One example: run it, remember what failed, and fail only for the iteration's target."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _Stop("time_budget")
        max_examples = self.opts.max_examples
        if self.target is None and max_examples is not None and self.examples >= max_examples:
            raise _Stop("max_examples")
        new = case not in self.seen
        try:
            outcomes = self.engine.check([case])
        except Exception as exc:  # a harness failure is not a discrepancy to shrink
            raise _Harness(exc) from exc
        if new:
            self._count(case, outcomes)
        # A pair the registry explains is not judged (xfail where it reproduces); the case's
        # other backends are: a TensorFlow entry must not hide the case from torch.
        judged = self.known.unexplained(outcomes, count=new)
        keys = {root_cause(o): o for o in judged if o.failed}
        self._remember(keys)
        if new and self.target is None:
            self.emit("example", case.id)
        if self.target is None:
            fresh = [k for k in keys if not self.found[k].minimised]
            self.target = fresh[0] if fresh else None
        if self.target in keys:
            # Hypothesis only tries simpler candidates, so the last failure is the best so far.
            # One raise site: hypothesis tells failures apart by where they are raised.
            self.found[self.target].outcome = keys[self.target]
            raise _Discrepancy(self.target)

    def _count(self, case: ConvCase, outcomes: Sequence[Outcome]) -> None:
        self.seen.add(case)
        if self.target is not None:
            self.shrink += 1
        else:
            self.examples += 1
        self.pairs += len(outcomes)
        for o in outcomes:
            if o.seconds:
                self.backend_seconds[o.backend] = (
                    self.backend_seconds.get(o.backend, 0.0) + o.seconds)

    def _remember(self, keys: dict[tuple, Outcome]) -> None:
        """Record new root causes; keep a simpler case for one not being shrunk now."""
        for key, o in keys.items():
            f = self.found.get(key)
            if f is None:
                self.found[key] = _Found(o, o.case.id)
                self.emit("found", o.case.id, key)
                if self.report_path is not None:
                    self.snapshot(complete=False)
            elif not f.minimised and key != self.target and _complexity(o.case) < _complexity(
                    f.outcome.case):
                f.outcome = o

    def search(self) -> str:
        """Hypothesis runs, one per root cause, until the budget is spent: why it stopped."""
        from conv_parity.errors import HarnessError

        database = None
        if self.report_path is not None:
            database = DirectoryBasedExampleDatabase(str(self.report_path / "hypothesis-db"))
        max_examples = self.opts.max_examples
        iteration = 0
        while True:
            self.target = None
            remaining = (max_examples - self.examples) if max_examples else 10**9
            if remaining <= 0:
                return "max_examples"
            db = database if iteration == 0 or database is None else _KeepingDatabase(database)

            def probe(case: ConvCase) -> None:
                self.probe(case)

            run = settings(
                max_examples=remaining, deadline=None, database=db, derandomize=False,
                phases=PHASES, report_multiple_bugs=False, print_blob=False,
                verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck),
            )(given(case=self.strategy)(probe))
            hypothesis_seed(self.seed + iteration)(run)
            iteration += 1
            try:
                run()
            except _Discrepancy:
                assert self.target is not None
                found = self.found[self.target]
                found.minimised = True
                self.emit("minimised", found.outcome.case.id, self.target)
                if self.report_path is not None:
                    self.snapshot(complete=False)
                continue
            except _Stop as stop:
                return stop.why
            except Unsatisfiable:
                return "unsatisfiable"
            except _Harness as exc:
                raise HarnessError(f"the engine failed during the campaign: {exc}") from exc
            return "max_examples" if max_examples else "exhausted"

    def run(self) -> CampaignResult:
        try:
            self.result.environment = self.engine.environment()  # starts every worker
            self.start = time.monotonic()  # throughput and budget exclude the workers' start-up
            budget = self.opts.time_budget
            self.deadline = self.start + budget if budget is not None else None
            with contextlib.redirect_stdout(sys.stderr):  # `fuzz --json` owns stdout
                stopped_by = self.search()
        except KeyboardInterrupt:
            self.result.stopped_by = "interrupted"
            self.snapshot(complete=False)
            raise
        self.result.stopped_by = stopped_by
        self.snapshot(complete=True)
        self.emit("done")
        return self.result


def _result_dict(key: tuple, found: _Found) -> dict[str, Any]:
    d = found.outcome.to_json()
    d["root_cause"] = {"layer": key[0], "backend": key[1], "verdict": key[2],
                       "diagnosis": key[3]}
    d["minimised"] = found.minimised
    d["first_case_id"] = found.first_case_id
    return d
