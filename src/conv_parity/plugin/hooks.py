"""The plugin's hooks and fixtures (re-exported by :mod:`conv_parity.plugin`, the entry point).

It parametrizes any test that asks for the ``conv_case`` and ``conv_backend`` fixtures with the
grid of the selected profile x the selected backends, marks known discrepancies as strict xfails
in one collection pass, hands the planned cases to one session-wide :class:`Engine` (so they run
in batches, all backends together) and turns each verdict into a pytest outcome. Every outcome
is recorded as a user property of its test (so under xdist it travels to the controller), where
:mod:`conv_parity.plugin.recorder` collects it into ``report.json`` and the conformance matrix.

This module holds what runs in every pytest process: options, per-process state, parametrization,
fixtures and enforcement. What runs only where the report is written is in ``recorder``.

Under pytest-xdist, use ``--dist loadgroup``: cases are grouped in chunks and every chunk runs
all backends in one process (one batch per backend per chunk; each verdict is its own).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conv_parity import kinds, modes
from conv_parity import policies as policy_records
from conv_parity.case import ConvCase
from conv_parity.errors import ConvParityError, UsageError
from conv_parity.generate import grid
from conv_parity.plugin.recorder import ENV_KEY, FUZZ_KEY, OUTCOME_KEY, Recorder
from conv_parity.registry import Registry, installed_keras_version
from conv_parity.report.matrix import KNOWN_BUCKETS, as_pytest_outcome, bucket, failure_label

if TYPE_CHECKING:
    from pluggy import Result

    from conv_parity.engine import Engine
    from conv_parity.generate.strategies import FilterCounter
    from conv_parity.judge.verdict import Outcome
    from conv_parity.report import ReportWriter

_OPTIONS: list[tuple[str, str, str | None]] = [
    ("backends", "comma-separated Keras backends (default: every installed one)", None),
    ("profile", "grid profile: smoke, default or full", "default"),
    ("report", "folder for report.json (and report.md / report.html)", None),
    ("timeout", "per-case timeout in seconds for a backend worker", "120"),
    ("shard", "run only shard I of N (e.g. 2/4) of the case list", None),
    ("layers", "comma-separated layer/op names to test (default: all)", None),
    ("modes", "comma-separated modes (eager, predict, jit, grad) to run, each on its profile's "
              "seeded share of the cases (default: the profile's modes)", None),
    ("policies", "comma-separated dtype policies (float16, bfloat16, mixed_float16, "
                 "mixed_bfloat16, float32, float64): keep only the profile's cases under "
                 "those (float32: the drawn grid; a policy the profile does not list gets a "
                 "seeded 1-in-4 share; int8, uint8, int32, int64: the profile's integer "
                 "cases; default: every policy of the profile)", None),
    ("registry", "path of a known-discrepancies TOML (default: the packaged one)", None),
    ("cases", "JSON file of cases to run instead of the grid: a list of case objects, or a "
              "report.json (reruns the cases it holds)", None),
    ("strict-registry", "true: a known discrepancy that does not reproduce fails the run (for "
                        "maintainers of the registry); default false: it passes with a note",
     "false"),
    ("fail-on-known", "true: known discrepancies fail too (migration gates); default false: "
                      "they are xfail", "false"),
    ("repro", "which results get a standalone repro script in the report folder: failures "
              "(one per failing case x backend) or all (known discrepancies too)", "failures"),
    ("progress-file", "a file rewritten with 'DONE TOTAL' after each test (conv-parity run's "
                      "live progress line reads it)", None),
]
_FILTERED_BEFORE = pytest.StashKey[tuple[int, int]]()
_STATE = pytest.StashKey["_State"]()
_FILTER_COUNTER = pytest.StashKey["FilterCounter"]()


class ConformanceFailure(AssertionError):
    """A backend does not conform on a case (the message says how)."""


class KnownDiscrepancy(AssertionError):
    """A registered discrepancy reproduced as expected (turned into xfail by its marker)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conv-parity", "Keras convolution conformance (conv-parity)")
    for name, help_text, default in _OPTIONS:
        key = _key(name)
        group.addoption(f"--conv-{name}", dest=key, default=None,
                        help=f"{help_text} [ini: {key}]")
        parser.addini(key, help_text, default=default)


def _key(name: str) -> str:
    """The ini key and option dest of ``--conv-NAME``: ``conv_`` + NAME with ``_`` for ``-``
    (an ini key with a hyphen would leave ``conv_strict_registry = true`` unread)."""
    return "conv_" + name.replace("-", "_")


def _flag(config: pytest.Config, name: str) -> bool:
    """A true/false option; anything else is a usage error naming it."""
    value = (_option(config, name) or "false").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise pytest.UsageError(f"--conv-{name} takes true or false, got {value!r}")
    return value in ("true", "1", "yes")


def _option(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(_key(name))
    if value is None:
        value = config.getini(_key(name)) or None
    return value


class _State:
    """Per-process plugin state: options, lazily built engine, collected outcomes."""

    def __init__(self, config: pytest.Config) -> None:
        from conv_parity.engine import parse_backends

        self.config = config
        self.profile = _option(config, "profile") or "default"
        if self.profile not in grid.PROFILES:
            raise pytest.UsageError(
                f"--conv-profile {self.profile!r}: choose one of {', '.join(grid.PROFILES)}"
            )
        self.backends, self.explicit = parse_backends(_option(config, "backends"))
        timeout = _option(config, "timeout") or "120"
        try:
            self.timeout = float(timeout)
        except ValueError:
            self.timeout = -1.0
        if not self.timeout > 0:
            raise pytest.UsageError(f"--conv-timeout must be a positive number, got {timeout!r}")
        self.shard = _option(config, "shard")
        if self.shard:
            grid.parse_shard(self.shard)
        layers = _option(config, "layers")
        self.layers = [s.strip() for s in layers.split(",") if s.strip()] if layers else None
        for name in self.layers or ():
            kinds.get_kind(name)
        try:
            self.modes = modes.parse(_option(config, "modes"))
        except UsageError as exc:
            raise pytest.UsageError(f"--conv-modes: {exc}") from None
        try:
            self.policies = policy_records.parse(_option(config, "policies"))
        except UsageError as exc:
            raise pytest.UsageError(f"--conv-policies: {exc}") from None
        report = _option(config, "report")
        self.report_dir = Path(report) if report else None
        self.strict = _flag(config, "strict-registry")
        self.fail_on_known = _flag(config, "fail-on-known")
        from conv_parity.engine import REPRO_CHOICES

        self.repro = (_option(config, "repro") or "failures").strip()
        if self.repro not in REPRO_CHOICES:
            raise pytest.UsageError(f"--conv-repro takes {' or '.join(REPRO_CHOICES)}, "
                                    f"got {self.repro!r}")
        self.registry = Registry.load(_option(config, "registry"))
        self.keras_version = installed_keras_version()
        self._cases: list[ConvCase] | None = None
        self._engine: Engine | None = None
        self.outcomes: list[dict[str, Any]] = []
        self.environment: dict[str, Any] = {}
        self.writer: ReportWriter | None = None
        self.env_sent = False
        #: Fuzz tests seen, and the examples their known-discrepancy filter dropped.
        self.fuzz = {"tests": 0, "filtered_known": 0}

    def cases(self) -> list[ConvCase]:
        if self._cases is None:
            path = _option(self.config, "cases")
            if path:
                cases = load_cases(Path(path))
                if self.layers:
                    cases = [c for c in cases if c.layer in self.layers]
                if self.modes:
                    cases = [c for c in cases if c.mode in self.modes]
                if self.policies:
                    cases = [c for c in cases if c.policy_name in self.policies]
            else:
                cases = grid.cases(self.profile, layers=self.layers, modes=self.modes,
                                   policies=self.policies)
            self._cases = grid.shard(cases, self.shard) if self.shard else cases
        return self._cases

    def engine(self) -> Engine:
        if self._engine is None:
            from conv_parity.engine import Engine

            self._engine = Engine(self.backends, timeout=self.timeout, report_dir=self.report_dir,
                                  strict_registry=self.strict,
                                  registry=self.registry, repro=self.repro)
        return self._engine

    def run_info(self) -> dict[str, Any]:
        return {"profile": self.profile, "backends": self.backends, "shard": self.shard or "1/1",
                "layers": self.layers, "modes": self.modes,
                "policies": self.policies, "argv": sys.argv, "front_door": "pytest"}


def load_cases(path: Path) -> list[ConvCase]:
    """Cases from a case file (conv_parity.generate.case_file): entries that are not valid cases,
    and layers conv-parity cannot check, are warned about by index and reason; the rest run."""
    from conv_parity.generate.case_file import read_cases

    try:
        found = read_cases(path)
    except ConvParityError as exc:
        raise pytest.UsageError(f"--conv-cases {exc}") from None
    for index, why in found.rejected:
        warnings.warn(pytest.PytestWarning(
            f"conv-parity: --conv-cases {path}: entry {index} is not a valid case, skipped: "
            f"{why}"), stacklevel=1)
    for index, why in found.uncheckable:
        warnings.warn(pytest.PytestWarning(
            f"conv-parity: --conv-cases {path}: entry {index} not checked: {why}"), stacklevel=1)
    return found.cases


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conv_parity: a conv-parity conformance case x backend")
    config.addinivalue_line("markers", "conv_fuzz: a conv-parity hypothesis fuzz test")
    from conv_parity.fuzzing import register_hypothesis_profiles

    register_hypothesis_profiles(config)
    try:
        state = _State(config)
    except ConvParityError as exc:
        raise pytest.UsageError(f"conv-parity: {exc}") from None
    config.stash[_STATE] = state
    if _is_xdist_worker(config):
        return
    if state.report_dir is not None:
        from conv_parity.report import ReportWriter

        state.report_dir.mkdir(parents=True, exist_ok=True)
        state.writer = ReportWriter(state.report_dir, state.run_info())
    config.pluginmanager.register(Recorder(state), "conv_parity_recorder")
    progress_file = _option(config, "progress-file")
    if progress_file:
        from conv_parity.plugin.progress_file import ProgressFile

        config.pluginmanager.register(ProgressFile(Path(progress_file)), "conv_parity_progress")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One header line saying what the plugin will do: grid, backends, registry, report."""
    state = config.stash.get(_STATE, None)
    if state is None:
        return []
    from conv_parity._version import __version__

    cases = _option(config, "cases")
    grid_text = f"cases from {cases}" if cases else f"profile {state.profile}"
    return [f"conv-parity {__version__}: {grid_text}; backends "
            f"{', '.join(state.backends) or 'none installed'}; registry "
            f"{'strict' if state.strict else 'not strict'}; report "
            f"{state.report_dir if state.report_dir is not None else 'not written'}"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = metafunc.fixturenames
    if "conv_case" not in names or "conv_backend" not in names:
        return
    state: _State = metafunc.config.stash[_STATE]
    params = []
    for i, case in enumerate(state.cases()):
        group = pytest.mark.xdist_group(f"conv-parity-{i // 16}")
        for backend in state.backends:
            params.append(pytest.param(case, backend, id=f"{case.id}-{backend}",
                                       marks=[group, pytest.mark.conv_parity]))
    metafunc.parametrize(("conv_case", "conv_backend"), params)


def _case_of(item: pytest.Item) -> tuple[ConvCase, str] | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None or "conv_case" not in callspec.params:
        return None
    return callspec.params["conv_case"], callspec.params["conv_backend"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """One pass: leave out the fuzz tests under --conv-cases; seed the fuzz tests' shards; note
    which entries match a collected case and warn about the rest. (Known discrepancies become strict xfails when the case runs: an entry
    can depend on platform facts that only the backend's worker knows, see ``conv_assert``.)"""
    from conv_parity import fuzzing

    state: _State = config.stash[_STATE]
    if _option(config, "cases"):
        # A case file asks for exactly its cases: the shipped fuzz tests would mix in others.
        fuzz = [i for i in items if i.get_closest_marker("conv_fuzz") is not None]
        if fuzz:
            config.hook.pytest_deselected(items=fuzz)
            items[:] = [i for i in items if i.get_closest_marker("conv_fuzz") is None]
    any_case = False
    for item in items:
        if item.get_closest_marker("conv_fuzz") is not None:
            fuzzing.seed_for_shard(item, state.shard)
        found = _case_of(item)
        if found is None:
            continue
        any_case = True
        state.registry.note_collected(found[0], found[1], state.keras_version)
    unused = [e.id for e in state.registry.unused(state.keras_version, state.backends)]
    # Registry hygiene is the maintainers' business: only a strict registry warns about it.
    if state.strict and any_case and unused and state.layers is None and not state.shard \
            and not _option(config, "cases"):  # a case file is no grid: entries may not apply
        warnings.warn(pytest.PytestWarning(
            f"conv-parity: known discrepancies {', '.join(map(repr, unused))} match no collected "
            f"case (Keras {state.keras_version}, profile {state.profile}): fine for a small "
            f"profile or a fuzz-only finding; otherwise narrow or delete them"
        ), stacklevel=1)


def mark_known(item: pytest.Item, outcome: Outcome, fail_on_known: bool = False) -> None:
    """Make the item a strict xfail when its outcome is a reproduced registered discrepancy
    (:func:`conv_parity.report.matrix.as_pytest_outcome` says ``xfailed``): :func:`enforce` then
    raises KnownDiscrepancy (XFAIL). Nothing else is marked, so no test ends as an
    XPASS(strict) that the matrix and the summary would count differently: a stale entry is a
    FAILED test under a strict registry and a noted pass for a user, and a case an entry
    matched but that came out ``unsupported`` passes as unsupported. With ``fail_on_known``
    there is no mark: known ones fail."""
    if as_pytest_outcome(_classified(outcome), fail_on_known) != "xfailed":
        return
    known = outcome.known or {}
    hint = f" (fixed in Keras {known['fixed_in']}: upgrade)" if known.get("fixed_in") else ""
    item.add_marker(pytest.mark.xfail(
        strict=True, raises=KnownDiscrepancy,
        reason=f"known discrepancy {known.get('id')} ({known.get('link')}){hint}",
    ))


def _classified(outcome: Outcome) -> dict[str, Any]:
    """The fields of an outcome that :func:`conv_parity.report.matrix.bucket` reads."""
    return {"verdict": outcome.verdict, "known": outcome.known,
            "observed_verdict": outcome.observed_verdict, "backend": outcome.backend}


def pytest_collection_finish(session: pytest.Session) -> None:
    state: _State = session.config.stash[_STATE]
    planned = [found[0] for item in session.items if (found := _case_of(item))]
    if planned:
        state.engine().plan(planned)


@pytest.fixture(scope="session")
def conv_engine(request: pytest.FixtureRequest) -> Engine:
    """The session's Engine (backend workers start on first use, all concurrently)."""
    state: _State = request.config.stash[_STATE]
    engine = state.engine()
    engine.start()
    return engine


@pytest.fixture
def conv_assert(request: pytest.FixtureRequest,
                conv_engine: Engine) -> Callable[[ConvCase, str], None]:
    """A function that checks one case on one backend and turns the verdict into an outcome."""
    state: _State = request.config.stash[_STATE]

    def check(case: ConvCase, backend: str) -> None:
        __tracebackhide__ = True
        outcome = conv_engine.outcome(case, backend)
        if not state.env_sent:  # once per process: it covers every selected backend
            state.env_sent = True
            request.node.user_properties.append((ENV_KEY, conv_engine.environment()))
        request.node.user_properties.append((OUTCOME_KEY, outcome.to_json()))
        mark_known(request.node, outcome, fail_on_known=state.fail_on_known)
        enforce(outcome, fail_on_known=state.fail_on_known)

    return check


def filter_counter(config: pytest.Config) -> FilterCounter:
    """This session's known-filter counter (one per pytest process, kept in ``config.stash``;
    made on first use so that a run without fuzz tests never imports the strategies)."""
    counter = config.stash.get(_FILTER_COUNTER, None)
    if counter is None:
        from conv_parity.generate.strategies import FilterCounter

        counter = config.stash[_FILTER_COUNTER] = FilterCounter()
    return counter


@pytest.fixture(scope="session")
def conv_filter_counter(request: pytest.FixtureRequest) -> FilterCounter:
    """The counter to give the strategies' known filter (``KnownFilter(..., counter)``) in a
    ``conv_fuzz`` test: what it drops is reported per test, in report.json and the summary."""
    return filter_counter(request.config)


@pytest.fixture
def conv_record_failures(request: pytest.FixtureRequest) -> Callable[[Sequence[Outcome]], None]:
    """A function that records one fuzz example's failing outcomes on this test, replacing the
    previous example's: hypothesis runs the minimal failing example last, so a failed fuzz test
    reports its shrunk outcomes like grid outcomes (as user properties, also under xdist).

    Function-scoped on purpose, and kept across examples (the fuzz suite's settings suppress
    hypothesis's ``function_scoped_fixture`` health check for it).
    """
    properties = request.node.user_properties
    recorded: list[tuple[str, object]] = []

    def record(failures: Sequence[Outcome]) -> None:
        properties[:] = [p for p in properties if not any(p is r for r in recorded)]
        recorded[:] = [(OUTCOME_KEY, o.to_json()) for o in failures]
        properties.extend(recorded)

    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    if item.get_closest_marker("conv_fuzz") is not None:
        counter = filter_counter(item.config)
        item.stash[_FILTERED_BEFORE] = (counter.filtered_known, counter.filtered_pairs)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Result[pytest.TestReport], None]:
    """A fuzz test reports how many examples its known filter dropped on every backend, and how
    many (case, backend) pairs it left unjudged (the session counter's growth during its call).
    Its failing outcomes are on the item already (``conv_record_failures``)."""
    result = yield
    report = result.get_result()
    if call.when != "call" or item.get_closest_marker("conv_fuzz") is None:
        return
    if _FILTERED_BEFORE in item.stash:
        counter = filter_counter(item.config)
        known_before, pairs_before = item.stash[_FILTERED_BEFORE]
        report.user_properties.append((FUZZ_KEY, {
            "filtered_known": counter.filtered_known - known_before,
            "filtered_pairs": counter.filtered_pairs - pairs_before}))


def enforce(outcome: Outcome, fail_on_known: bool = False) -> None:
    """Turn an outcome into the pytest outcome its bucket gives
    (:func:`conv_parity.report.matrix.as_pytest_outcome`): conforms, unsupported and not-reproduced
    pass, skip skips, a reproduced known discrepancy raises the exception its strict marker
    expects (:func:`mark_known`; with ``fail_on_known`` it fails), and the rest (new
    discrepancies, stale entries under a strict registry) fail with the full description."""
    __tracebackhide__ = True
    result = _classified(outcome)
    kind = as_pytest_outcome(result, fail_on_known)
    if kind == "passed":
        return
    if kind == "skipped":
        pytest.skip(outcome.message)
    if kind == "xfailed":
        raise KnownDiscrepancy(f"{outcome.observed_verdict}: {outcome.message}")
    if bucket(result) in KNOWN_BUCKETS:
        raise ConformanceFailure(describe(outcome) + "\n(a known discrepancy: failing "
                                 "because of --conv-fail-on-known)")
    raise ConformanceFailure(describe(outcome))


def describe(outcome: Outcome) -> str:
    """The failure text: verdict, message, diagnosis and repro (same words as the reports)."""
    label = failure_label(_classified(outcome))
    lines = [f"{outcome.case.id} on {outcome.backend}: {label}", outcome.message]
    if outcome.diagnosis:
        lines.append(f"diagnosis: {outcome.diagnosis}")
    if outcome.repro:
        lines.append(f"repro: python {outcome.repro}")
    return "\n".join(lines)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state: _State | None = session.config.stash.get(_STATE, None)
    if state is not None and state._engine is not None:
        state._engine.close()
