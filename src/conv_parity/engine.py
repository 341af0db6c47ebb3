"""The conformance engine: cases in, one verdict per case x backend out.

One engine serves both front doors (the pytest plugin and the CLI). For a batch of cases it
makes the inputs in the parent, computes the reference, sends the whole batch to every backend
worker at once (one round trip per backend, backends concurrently), then classifies each result
(:mod:`conv_parity.judge.verdict`), applies the known-discrepancy registry, and for failures adds the
diagnosis, a heatmap of the error and a standalone repro script.
"""

from __future__ import annotations

import platform
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from conv_parity import backends as targets
from conv_parity import facts, modes
from conv_parity._version import __version__
from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.expected import Expected
from conv_parity.judge.known import apply_entry
from conv_parity.judge.repeat import note_every_selected_raised, repeat_record
from conv_parity.judge.verdict import Outcome, classify
from conv_parity.modes import Arrays
from conv_parity.registry import Registry, installed_keras_version
from conv_parity.vocabulary import is_failure
from conv_parity.workers import BackendInfo, BackendResult, WorkerPool, WorkItem
from conv_parity.workers import lease as leases

DEFAULT_TIMEOUT = 120.0
DEFAULT_CHUNK = 16
#: Which results get a standalone repro script (``Engine(repro=...)``, ``--repro``): one per
#: failing (case, backend) by default; ``all`` adds one per reproduced known discrepancy.
REPRO_CHOICES = ("failures", "all")
#: How many fresh processes the repro script of a nondeterministic failure checks the case in.
REPRO_REPEATS = 5


def installed_backends() -> list[str]:
    """Backends whose libraries are installed (found without importing them: cheap)."""
    return targets.installed()


def parse_backends(spec: str | Sequence[str] | None) -> tuple[list[str], bool]:
    """(targets, explicit) from a selection: see :func:`conv_parity.backends.parse`."""
    return targets.parse(spec)


def compute_reference(case: ConvCase, x: np.ndarray, weights: list[np.ndarray],
                      extras: dict[str, np.ndarray] | None = None) -> Expected:
    """The spec's answer for a case on these arrays: its mode's reference half."""
    return modes.get(case.mode).expected(case, Arrays(x, weights, extras or {}))


#: A case with the arrays to compute it on (seeded, or real weights from a model).
Prepared = tuple[ConvCase, Arrays]


class Engine:
    """Runs cases on backend workers and judges them. Use as a context manager or close()."""

    def __init__(
        self,
        backends: Sequence[str] | str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        report_dir: Path | str | None = None,
        extra_env: dict[str, str] | None = None,
        registry: Registry | None = None,
        diagnose: bool = True,
        strict_registry: bool = False,
        repro: str = "failures",
        daemon: bool | None = None,
    ) -> None:
        self.backends, self.explicit = parse_backends(backends)
        if repro not in REPRO_CHOICES:
            raise UsageError(f"repro must be one of {', '.join(REPRO_CHOICES)}, got {repro!r}")
        #: Which results get a repro script: ``failures`` (new discrepancies, stale entries
        #: under a strict registry) or ``all`` (known discrepancies too).
        self.repro = repro
        for name in self.backends:
            spec = targets.get(name)
            if not spec.cases:
                raise UsageError(f"{name} is not a target for layer cases ({spec.summary}); "
                                 f"`conv-parity model` on a Keras 2 .h5 adds its row by itself")
        #: Whole-model-only targets (keras2) that :meth:`request_all` was asked to include.
        self.model_targets: list[str] = []
        #: A registered discrepancy that does not reproduce fails (the project's own runs) or
        #: is a pass with a note (a user's run: fixed in their Keras, or another platform).
        self.strict_registry = strict_registry
        if timeout is None or not timeout > 0:
            raise UsageError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.report_dir = Path(report_dir) if report_dir is not None else None
        self.registry = registry if registry is not None else Registry.load()
        self.keras_version = installed_keras_version()
        self.diagnose = diagnose
        log_dir = self.report_dir / "logs" if self.report_dir else None
        if log_dir:
            log_dir.mkdir(parents=True, exist_ok=True)
        # daemon None: borrow warm workers from the per-user service unless CI=true,
        # CONV_PARITY_DAEMON=0 or --no-daemon (which sets it) say not to (workers/lease.py).
        self.pool = WorkerPool(timeout=timeout, log_dir=log_dir, extra_env=extra_env,
                               daemon=leases.wanted() if daemon is None else daemon)
        self._started = False
        self._lock = threading.Lock()
        self._cache: dict[tuple[ConvCase, str], Outcome] = {}
        self._chunk_of: dict[ConvCase, list[ConvCase]] = {}

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start every backend worker concurrently (idempotent, non-blocking)."""
        if not self._started:
            self.pool.start(self.backends)
            self._started = True

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def daemon_error(self) -> str | None:
        """Why the warm worker service could not be used (None: it was, or it is off)."""
        return self.pool.daemon_error

    def info(self, backend: str) -> BackendInfo:
        self.start()
        return self.pool.info(backend)

    def environment(self) -> dict[str, Any]:
        """Versions of everything under test, as report.json's `environment`."""
        self.start()
        return {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "conv_parity": __version__,
            "keras": self.keras_version,
            "numpy": np.__version__,
            "facts": facts.cpu(),
            "backends": {b: self.pool.info(b).to_json()
                         for b in (*self.backends, *self.model_targets)},
        }

    # -- running ----------------------------------------------------------------------------
    def plan(self, cases: Iterable[ConvCase], chunk: int = DEFAULT_CHUNK) -> None:
        """Declare the cases this process will ask for, in order, so they run in batches."""
        ordered = list(dict.fromkeys(cases))
        for i in range(0, len(ordered), chunk):
            group = ordered[i : i + chunk]
            for case in group:
                self._chunk_of[case] = group

    def outcome(self, case: ConvCase, backend: str) -> Outcome:
        """The verdict for one case on one backend, running its whole planned batch if needed."""
        if backend not in self.backends:
            raise UsageError(f"backend {backend!r} is not selected (selected: {self.backends})")
        with self._lock:
            if (case, backend) not in self._cache:
                group = self._chunk_of.get(case, [case])  # always holds `case` itself
                self._run([c for c in group if (c, backend) not in self._cache])
            return self._cache[(case, backend)]

    def check(self, cases: Iterable[ConvCase]) -> list[Outcome]:
        """Every case on every selected backend; outcomes ordered by case, then backend. The
        seeded shortcut of :meth:`check_prepared`."""
        case_list = list(cases)
        with self._lock:
            todo = [c for c in dict.fromkeys(case_list)
                    if any((c, b) not in self._cache for b in self.backends)]
            self._run(todo)
            return [self._cache[(c, b)] for c in case_list for b in self.backends]

    def check_prepared(self, items: Iterable[Prepared]) -> list[Outcome]:
        """Cases with the arrays to run them on (real weights: the model package's door);
        outcomes ordered by item, then backend. Not cached: arrays are not part of a case."""
        with self._lock:
            return self._evaluate(list(items))

    def _run(self, cases: list[ConvCase]) -> None:
        for outcome in self._evaluate([(c, modes.seeded(c)) for c in cases]):
            self._cache[(outcome.case, outcome.backend)] = outcome

    def _evaluate(self, prepared: list[Prepared]) -> list[Outcome]:
        if not prepared:
            return []
        self.start()
        refs = [modes.get(c.mode).expected(c, a) for c, a in prepared]
        work: dict[str, list[WorkItem]] = {b: [] for b in self.backends}
        skipped: dict[tuple[int, str], str] = {}
        for i, (case, arrays) in enumerate(prepared):
            item = WorkItem(case=case, x=arrays.x, weights=arrays.weights,
                            extras=dict(arrays.extras))
            for b in self.backends:
                reason = modes.get(case.mode).skip_reason(targets.get(b))
                if reason is None:
                    work[b].append(item)
                else:
                    skipped[(i, b)] = reason
        ran = self.pool.run_many(work)
        stream = {b: iter(results) for b, results in ran.items()}
        judged: list[tuple[int, Outcome, BackendResult | None]] = []
        for i, (case, _arrays) in enumerate(prepared):
            ref = refs[i]
            per_backend = {b: (None if (i, b) in skipped else next(stream[b]))
                           for b in self.backends}
            for b, res in per_backend.items():
                if res is None:
                    judged.append((i, Outcome(case, b, "skip", skipped[(i, b)],
                                              reference_shape=ref.shape), None))
                    continue
                out = classify(case, ref, res)
                if res.status == "unavailable" and self.explicit:
                    out.verdict = "crash"
                    out.message = f"{b} was requested explicitly but cannot start: " + out.message
                judged.append((i, out, res))
        self._repeat_failures(prepared, refs, judged)
        for _i, out, res in judged:
            if res is not None:
                self._apply_registry(out)
        note_every_selected_raised(judged)
        for i, out, res in judged:
            if res is not None and (out.failed or out.verdict == "xfail"):
                self._explain(out, prepared[i][1], refs[i], res.output, res.outputs)
        return [out for _i, out, _res in judged]

    def _repeat_failures(self, prepared: list[Prepared], refs: list[Expected],
                         judged: list[tuple[int, Outcome, BackendResult | None]]) -> None:
        """Run every failing result once more, from the same inputs in a fresh call, before it
        is judged: a kernel that reads uninitialised memory or races gives another answer (or
        aborts) on the second call, and the verdict's message says so (``repeat`` in the
        report). Timeouts are not repeated (another full timeout for nothing)."""
        again: dict[str, list[WorkItem]] = {b: [] for b in self.backends}
        which: dict[str, list[tuple[int, Outcome, BackendResult]]] = {b: [] for b in self.backends}
        for i, out, res in judged:
            if res is None or not is_failure(out.verdict) or res.status in ("timeout",
                                                                             "unavailable"):
                continue
            case, arrays = prepared[i]
            again[out.backend].append(WorkItem(case=case, x=arrays.x, weights=arrays.weights,
                                               extras=dict(arrays.extras)))
            which[out.backend].append((i, out, res))
        if not any(again.values()):
            return
        ran = self.pool.run_many({b: items for b, items in again.items() if items})
        for b, results in ran.items():
            for (i, out, first), second in zip(which[b], results):
                out.repeat = repeat_record(prepared[i][0], refs[i], first, out.verdict, second)
                if out.repeat["differ"]:
                    out.message += ("\ntwo identical calls gave different results: "
                                    + out.repeat["summary"])

    def request_all(self, header: dict[str, Any], arrays: Sequence[np.ndarray],
                    timeout: float | None = None, also: Sequence[str] = (),
                    ) -> dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """One non-case request (a handler of the worker's table, e.g. ``"model"``) on every
        selected backend at once: backend -> (reply header, named output arrays). Failures
        are data in the reply (``status``, ``error``), as for cases. ``timeout``: per
        backend, default the per-case one. ``also``: whole-model-only targets (``keras2``)
        to ask as well, each in its own worker."""
        import concurrent.futures as cf

        self.start()
        extra = [b for b in also if b not in self.backends]
        self.model_targets.extend(b for b in extra if b not in self.model_targets)
        self.pool.start(extra)

        def ask(backend: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
            reply, out = self.pool.request(backend, header, arrays, timeout=timeout)
            return reply, dict(zip(reply.get("outputs") or [], out))

        with cf.ThreadPoolExecutor(max_workers=max(1, len(self.backends) + len(extra))) as ex:
            futures = {b: ex.submit(ask, b) for b in (*self.backends, *extra)}
            return {b: f.result() for b, f in futures.items()}

    def facts(self, backend: str) -> dict[str, Any]:
        """The platform facts of a target's worker (empty when it could not start)."""
        return self.pool.info(backend).facts

    def _apply_registry(self, out: Outcome) -> None:
        """Look up the entry that matches the outcome; :func:`judge.known.apply_entry` rules."""
        if out.verdict == "unsupported" and (out.error or {}).get("phase") == "construct":
            return  # this Keras's own constructor refuses it everywhere: no backend bug
        entry = self.registry.match(out.case, out.backend, self.keras_version,
                                    facts=self.facts(out.backend), observed=out.verdict)
        if entry is not None:
            apply_entry(out, entry, self.keras_version, strict=self.strict_registry)

    def _diagnose_gradient(self, out: Outcome, ref: Expected,
                           outputs: Mapping[str, np.ndarray]) -> None:
        """The failing gradient (the worst output, y being right) in words."""
        from conv_parity.explain.gradient_diagnosis import diagnose_gradient

        name = _worst_output(out)
        if name is None or name not in outputs or name not in ref.outputs:
            return
        found = diagnose_gradient(out.case, name, outputs[name], ref.outputs[name],
                                  ref.magnitudes[name], out.backend)
        if found is not None:
            out.diagnosis, out.diagnosis_code = found.text, found.code

    def _explain(self, out: Outcome, arrays: Arrays, ref: Expected,
                 output: np.ndarray | None,
                 outputs: Mapping[str, np.ndarray] | None = None) -> None:
        """Diagnosis in words, error heatmap and repro script: best effort, never fatal."""
        notes = []
        judged = out.observed_verdict or out.verdict
        if output is not None and _forward_conforms(out, ref, output):
            # Diagnosis and heatmap read the forward output ``y``; when it is right, the
            # failure is in another output (a gradient): that one is diagnosed instead.
            output = None
            if self.diagnose and judged == "fail-values":
                try:
                    self._diagnose_gradient(out, ref, outputs or {})
                except Exception as exc:  # a diagnosis bug must not hide the verdict
                    notes.append(f"diagnosis failed: {type(exc).__name__}: {exc}")
        if self.diagnose and output is not None and judged in ("fail-values", "fail-shape"):
            try:
                from conv_parity.explain.diagnosis import diagnose

                found = diagnose(out.case, arrays.x, arrays.weights, output, out.backend,
                                 reference=ref)
                if found is not None:
                    out.diagnosis, out.diagnosis_code = found.text, found.code
            except Exception as exc:  # a diagnosis bug must not hide the verdict
                notes.append(f"diagnosis failed: {type(exc).__name__}: {exc}")
        if out.repeat and out.repeat.get("differ") and out.diagnosis_code in (None, "none"):
            out.diagnosis_code = "nondeterministic"
            out.diagnosis = ("two identical calls gave different results "
                             f"({out.repeat['summary']}): the backend's kernel is "
                             "nondeterministic here (uninitialised memory or a race)")
        if output is not None and ref.output is not None and output.shape == ref.output.shape:
            try:
                from conv_parity.explain.errormap import error_map

                out.error_map = error_map(output, ref.output, out.case.kwargs["data_format"])
            except Exception as exc:
                notes.append(f"error map failed: {type(exc).__name__}: {exc}")
        if ref.invalid is not None or (self.repro != "all" and not out.failed):
            # the spec rejects the case (no reference to script), or a known discrepancy
            # whose script was not asked for (``repro="all"``): one script per failure
            if notes:
                print("conv-parity: " + "; ".join(notes), file=sys.stderr)
            return
        try:
            from conv_parity.explain.repro import write_repro

            folder = self.report_dir or Path(tempfile.gettempdir()) / "conv-parity"
            out.repro = str(write_repro(out.case, out.backend, folder,
                                        note=out.diagnosis or out.message.splitlines()[0],
                                        arrays=None if arrays.seeded else arrays,
                                        focus=out.worst,
                                        repeats=REPRO_REPEATS if _flaky(out) else 1))
        except Exception as exc:
            notes.append(f"repro script failed: {type(exc).__name__}: {exc}")
        if notes:
            print("conv-parity: " + "; ".join(notes), file=sys.stderr)


def _flaky(out: Outcome) -> bool:
    """Two identical calls differed, or the entry that explains it says it is nondeterministic."""
    return bool((out.repeat or {}).get("differ") or (out.known or {}).get("nondeterministic"))


def _worst_output(out: Outcome) -> str | None:
    """The name of the output the verdict's worst element is in (``worst["output"]``)."""
    return (out.worst or {}).get("output")


def _forward_conforms(out: Outcome, ref: Expected, output: np.ndarray) -> bool:
    """Whether the first output (``y``) of a several-output mode matches the reference."""
    from conv_parity.judge.compare import compare_values, reference_error_bound

    if len(ref.outputs) < 2 or ref.output is None or ref.magnitude is None:
        return False
    if output.shape != ref.output.shape:
        return False
    first = next(iter(ref.outputs))
    size = ref.reduction_sizes.get(first)
    bound = reference_error_bound(ref.magnitude, size or 1)
    return compare_values(output, ref.output, ref.magnitude, out.case.dtype, bound, size).ok
