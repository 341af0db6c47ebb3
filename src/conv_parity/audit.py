"""Every registry scope proven by the tool, not by hope (issue 21, item 3).

A known-discrepancy entry (:mod:`conv_parity.registry`) claims a scope: Keras releases, backends,
layers, a ``where`` predicate, and the modes, dtype policies and platform facts it holds in. Its
example is one case inside that scope. The audit varies the example **one dimension at a time**
on the example's backend:

* **in scope**: every mode the entry names (all four when it names none), every dtype policy it
  admits (``policies`` / ``dtypes``; when it names neither, only the example's own policy runs,
  and the table says so), and every selected variant of the backend whose facts hold. Each must
  *reproduce*: ``xfail`` naming this entry (or, for an entry marked ``nondeterministic``, a pass).
* **nearest outside**: the other modes, the other policies (:data:`conv_parity.policies.POLICIES`)
  and the variants whose facts do not hold. Each must pass (or be ``unsupported``), or be
  explained by *another* entry. A failure no entry explains means the scope is too narrow.

Whether a probe is in scope is the registry's own decision (:meth:`Entry.applies` under the
facts its target's worker reported), so the audit proves the entry as the engine reads it; the
dimension only says which value changed. A value the entry's scope fields admit but its
``where`` predicate rejects (a "shows at this dtype" predicate, say) is outside, with a note.
Probes that cannot run are skipped with the reason and not counted: a mode the backend cannot
run (OpenVINO has no gradients), a mixed policy for an op (ops have no dtype policy).

Each probe runs on its one target only (the engine runs every case on every backend it selected,
so one engine per target keeps the work to the probes). One consequence: the engine calls a
raise on a case the spec accepts Keras-wide (``unsupported``) only when several Keras backends
were asked and all raised; here such a raise outside a scope is reported as a possible finding
that says so.

:func:`plan_entry` and :func:`judge` are pure (plain data in, plain data out; tested on
synthetic entries). :func:`audit` runs the planned cases through one engine per target, which
the caller opens (the CLI: ``conv-parity registry audit``), so this module imports no engine.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import difflib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conv_parity import backends as targets
from conv_parity import facts as fact_records
from conv_parity import modes, policies
from conv_parity.case import ConvCase
from conv_parity.errors import HarnessError, UsageError

if TYPE_CHECKING:
    from conv_parity.engine import Engine
    from conv_parity.judge.verdict import Outcome
    from conv_parity.registry import Entry, Registry

#: The entry is audited; the others say why not.
AUDITED, NOT_HERE, NOT_SELECTED, NO_EXAMPLE = "audited", "not here", "not selected", "no example"
#: What a probe expects.
REPRODUCE, PASS_OR_OTHER = "reproduce", "pass or another entry"
SCOPE_TOO_NARROW = "fails outside the scope: scope too narrow (widen the entry?)"
SCOPE_TOO_WIDE = "does not reproduce: scope too wide (narrow the entry?)"

Facts = Mapping[str, Any]


@dataclass(frozen=True)
class Probe:
    """One run the audit plans: the example with one dimension changed, on one target.

    ``dimension`` is ``example`` (the example itself), ``mode``, ``policy`` or ``variant``;
    ``value`` the value it changed to. ``skip`` says why it is not run (then not counted)."""

    entry_id: str
    target: str
    dimension: str
    value: str
    in_scope: bool
    case: ConvCase | None = None
    skip: str | None = None
    note: str = ""

    @property
    def expected(self) -> str:
        return REPRODUCE if self.in_scope else PASS_OR_OTHER

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "dimension": self.dimension, "value": self.value,
                "in_scope": self.in_scope, "expected": self.expected,
                "case_id": self.case.id if self.case else None,
                "case": self.case.to_json() if self.case else None,
                "skip": self.skip, "note": self.note or None}


@dataclass(frozen=True)
class EntryPlan:
    """What the audit will run for one entry, or why it runs nothing (``status``)."""

    entry: Entry
    status: str
    reason: str = ""
    #: The target the example and its mode and policy variations run on.
    target: str | None = None
    #: The selected targets of the example's backend (its variants).
    candidates: tuple[str, ...] = ()
    probes: tuple[Probe, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Result:
    """A probe and what it showed: ``ok`` (or a finding, ``text`` saying which), ``observed``
    the verdict as a table shows it. ``counted`` is False for a skipped probe."""

    probe: Probe
    ok: bool
    observed: str
    text: str
    counted: bool = True
    message: str = ""
    #: The engine's verdict and the entry it named (None when it named none).
    verdict: str | None = None
    known_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.probe.to_json(), "observed": self.observed, "verdict": self.verdict,
                "known_id": self.known_id, "ok": self.ok, "counted": self.counted,
                "result": self.text, "message": self.message or None}


@dataclass
class EntryAudit:
    """One entry's plan and results."""

    plan: EntryPlan
    results: list[Result] = field(default_factory=list)

    @property
    def entry_id(self) -> str:
        return self.plan.entry.id

    @property
    def findings(self) -> list[Result]:
        return [r for r in self.results if r.counted and not r.ok]

    @property
    def proven(self) -> bool | None:
        """True when every counted probe is ok; None when the entry was not audited here."""
        if self.plan.status == NO_EXAMPLE:
            return False
        if self.plan.status != AUDITED:
            return None
        return not self.findings

    def summary(self) -> str:
        """One line: 'proven: ...' or the findings, or why it was not audited."""
        eid = self.entry_id
        if self.plan.status == NO_EXAMPLE:
            return f"{eid}: FINDING: {self.plan.reason}"
        if self.plan.status != AUDITED:
            return f"{eid}: {self.plan.status}: {self.plan.reason}"
        counted = [r for r in self.results if r.counted]
        inside = sum(r.probe.in_scope for r in counted)
        skipped = len(self.results) - len(counted)
        tail = f" ({skipped} skipped)" if skipped else ""
        where = f"on {self.plan.target}"
        if not self.findings:
            return (f"{eid}: proven {where}: {inside} in scope reproduced, "
                    f"{len(counted) - inside} outside pass or are explained{tail}")
        texts = "; ".join(dict.fromkeys(
            f"{r.probe.dimension}={r.probe.value}: {r.text}" for r in self.findings))
        return f"{eid}: {len(self.findings)} FINDING(S) {where}: {texts}{tail}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.entry_id, "status": self.plan.status, "reason": self.plan.reason or None,
                "target": self.plan.target, "candidates": list(self.plan.candidates),
                "notes": list(self.plan.notes), "proven": self.proven,
                "findings": len(self.findings), "summary": self.summary(),
                "probes": [r.to_json() for r in self.results]}


# ---------------------------------------------------------------------------- selection


def select(registry: Registry, ids: Sequence[str] | None) -> list[Entry]:
    """The entries named by ``ids`` (all when None), in registry order; an unknown id is a
    UsageError naming the close ones."""
    entries = list(registry.entries)
    if not ids:
        return entries
    known = [e.id for e in entries]
    unknown = [i for i in ids if i not in known]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
            close += [k for k in known if name in k and k not in close][: 5 - len(close)]
            hints.append(f"{name!r}" + (f" (close: {', '.join(close)})" if close
                                        else " (no close id)"))
        raise UsageError(f"unknown registry entry {'; '.join(hints)}; "
                         "`conv-parity registry audit` without --entries audits them all")
    wanted = set(ids)
    return [e for e in entries if e.id in wanted]


def default_targets() -> list[str]:
    """Every installed target that runs layer cases: the plain backends and their variants."""
    return [s.name for s in targets.SPECS.values() if s.cases and s.installed()]


# ---------------------------------------------------------------------------- planning


def _not_here_reason(entry: Entry, keras_version: str | None) -> str:
    from packaging.version import Version

    if keras_version is not None and Version(keras_version) not in entry.keras:
        return f"about Keras {entry.keras}; Keras {keras_version} is installed"
    needs = ", ".join(f"{lib} {spec}" for lib, spec in entry.requires.items())
    return f"needs {needs}, which is not installed here"


def _vary(case: ConvCase, *, mode: str | None = None, policy: str | None = None) -> ConvCase:
    """``case`` with its mode or its dtype policy changed, the seed, value regime and call
    form kept (the same data, called the same way)."""
    return ConvCase.make(case.layer, case.kwargs, case.input_shape,
                         dtype=policy or case.policy_name, seed=case.seed,
                         mode=mode or case.mode, values=case.values, call_form=case.call_form)


def _declared(entry: Entry) -> Entry:
    """The entry without its ``where`` predicate: what its scope fields alone admit."""
    return dataclasses.replace(entry, where={})


def _admits_policy(entry: Entry, name: str) -> bool:
    policy = policies.get(name)
    return ((not entry.policies or name in entry.policies)
            and (not entry.dtypes or policy.compute in entry.dtypes))


def _probe(entry: Entry, dimension: str, value: str, case: ConvCase, target: str,
           keras_version: str | None, facts: Mapping[str, Facts | None]) -> Probe:
    seen = facts.get(target)
    inside = entry.applies(case, target, keras_version, seen)
    note = ""
    if not inside and _declared(entry).applies(case, target, keras_version, seen):
        note = "its scope fields admit this, but its `where` predicate does not"
    skip = modes.get(case.mode).skip_reason(targets.get(target))
    return Probe(entry.id, target, dimension, value, inside, case,
                 skip=f"{target} cannot run {case.mode}: {skip}" if skip else None, note=note)


def plan_entry(entry: Entry, keras_version: str | None, selected: Sequence[str],
               facts: Mapping[str, Facts | None] | None = None,
               installed: Collection[str] | None = None) -> EntryPlan:
    """Which probes prove ``entry`` with this Keras on the ``selected`` targets, whose workers
    reported ``facts`` (a target missing there: not known yet, every facts scope holds).
    ``installed``: the installed targets (default: looked up), only to say why an entry about
    an unselected backend is not audited."""
    facts = facts or {}
    if not entry.possible_here(keras_version):
        return EntryPlan(entry, NOT_HERE, _not_here_reason(entry, keras_version))
    if not entry.example:
        return EntryPlan(entry, NO_EXAMPLE, "no example to vary: add one to the entry")
    backend = targets.keras_backend(entry.example["backend"])
    here = tuple(t for t in targets.ordered(selected) if targets.keras_backend(t) == backend)
    if not here:
        if installed is None:
            is_installed = targets.get(backend).installed()
        else:
            is_installed = any(targets.keras_backend(t) == backend for t in installed)
        if is_installed:
            return EntryPlan(entry, NOT_SELECTED, f"its example runs on {backend}, not selected")
        return EntryPlan(entry, NOT_HERE, f"its example runs on {backend}, not installed here")
    try:
        example = entry.example_case()
    except UsageError as exc:
        return EntryPlan(entry, NO_EXAMPLE, str(exc), candidates=here)
    base = next((t for t in here if entry.facts_hold(
        fact_records.for_dtype(_as_dict(facts.get(t)), example.dtype))), None)
    if base is None:
        seen = "; ".join(f"{t}: {fact_records.describe(dict(facts.get(t) or {}), tuple(entry.facts))}"
                         for t in here)
        return EntryPlan(entry, NOT_HERE, f"its facts {dict(entry.facts)} hold on no selected "
                                          f"target ({seen})", candidates=here)

    def probe(dimension: str, value: str, case: ConvCase, target: str = base) -> Probe:
        return _probe(entry, dimension, value, case, target, keras_version, facts)

    found = [probe("example", f"{example.mode}, {example.policy_name}", example)]
    for m in modes.MODES:
        if m == example.mode:
            continue
        try:
            varied = _vary(example, mode=m)
        except UsageError as exc:  # a NaN / inf input has no gradient; a NumPy call form
            # is a case in eager mode only
            why = (f"the {example.values} regime has no {m}" if example.values in ("nan", "inf")
                   else str(exc).split(". ")[0])
            found.append(Probe(entry.id, base, "mode", m, not entry.modes or m in entry.modes,
                               skip=f"not a case: {why}"))
            continue
        found.append(probe("mode", m, varied))
    if entry.policies or entry.dtypes:
        for name in policies.POLICIES:
            if name == example.policy_name:
                continue
            try:
                case = _vary(example, policy=name)
            except UsageError as exc:  # an op under a mixed policy: ops have no policy
                found.append(Probe(entry.id, base, "policy", name, _admits_policy(entry, name),
                                   skip=f"not a case: {exc}".split(". ")[0]))
                continue
            found.append(probe("policy", name, case))
    else:
        found.append(Probe(entry.id, base, "policy", f"{example.policy_name} only", True,
                           skip="not varied: the entry names no dtypes or policies, so it "
                                "claims every policy; only the example's own ran"))
    found += [probe("variant", t, example, t) for t in here if t != base]
    notes = []
    others = [b for b in entry.backends if b != backend]
    if others:
        notes.append(f"it also names {', '.join(others)}; only the example's backend "
                     f"({backend}) is audited")
    if len(here) == 1 and targets.variants_of(backend):
        notes.append(f"one target of {backend} selected: no variant to vary")
    return EntryPlan(entry, AUDITED, target=base, candidates=here, probes=tuple(found),
                     notes=tuple(notes))


# ---------------------------------------------------------------------------- judging


def _observed(out: Outcome) -> str:
    """The verdict as the table shows it: ``xfail <id> (fail-values)``, ``pass (stale <id>)``."""
    known = out.known or {}
    if out.verdict == "xfail":
        return f"xfail {known.get('id')} ({out.observed_verdict})"
    if known.get("stale"):
        return f"{out.verdict} (stale {known.get('id')})"
    return out.verdict


def judge(probe: Probe, entry: Entry, out: Outcome,
          others: Mapping[str, Entry] | None = None) -> Result:
    """Whether one run proves what its probe expects (pure). ``others``: the registry's entries
    by id, to tell whether another entry that claims a passing case is nondeterministic."""
    known = out.known or {}
    kid = known.get("id")
    observed = _observed(out)

    def result(ok: bool, text: str, counted: bool = True) -> Result:
        if not ok and probe.dimension == "example":
            text = f"the example itself {text}"
        return Result(probe, ok, observed, text, counted, out.message, out.verdict, kid)

    if out.verdict == "skip":
        return result(True, f"skipped: {out.message}", counted=False)
    if probe.in_scope:
        if out.verdict == "xfail" and kid == entry.id:
            return result(True, "reproduced")
        if out.verdict == "unsupported" and kid == entry.id and entry.keras_wide:
            return result(True, "reproduced (a Keras-wide limitation: unsupported)")
        if out.verdict == "pass" and entry.nondeterministic and kid in (None, entry.id):
            return result(True, "reproduced (nondeterministic: this run passed)")
        if out.verdict == "xfail":
            return result(False, f"is explained by {kid} instead (entries overlap?)")
        if out.verdict == "pass":
            return result(False, SCOPE_TOO_WIDE)
        if out.verdict == "unsupported":
            return result(False, "does not reproduce (unsupported: the backend raises as the "
                                 "spec or Keras itself does): scope too wide (narrow the entry?)")
        if kid == entry.id:
            return result(False, f"fails as {out.verdict}; the entry expects {entry.verdict}")
        return result(False, f"fails as {out.verdict}, not as this entry's {entry.verdict}"
                             + (f" (matched {kid})" if kid else ""))
    if out.verdict == "xfail":
        if kid == entry.id:  # the engine's facts or entry order disagree with the plan
            return result(False, "matched this entry although planned outside its scope")
        return result(True, f"explained by {kid}")
    if out.verdict == "pass":
        other = (others or {}).get(kid) if kid else None
        if known.get("stale") and not (other is not None and other.nondeterministic):
            return result(False, f"passes, but {kid} claims it: {kid}'s scope is too wide")
        return result(True, "passes")
    if out.verdict == "unsupported":
        if kid == entry.id:
            return result(False, "matched this entry although planned outside its scope")
        return result(True, "unsupported" + (f" (Keras-wide: {kid})" if kid else ""))
    if kid:
        return result(False, f"fails as {out.verdict}; {kid} expects {known.get('verdict')}")
    if out.verdict == "fail-error-parity" and out.error and out.reference_shape is not None:
        # The spec accepts the case and this backend raised: a bug of this backend, or a
        # limitation of Keras itself, which a `keras_wide` entry records (never a vote).
        return result(False, f"{SCOPE_TOO_NARROW}, or a Keras-wide limitation to register "
                             "(keras_wide = true)")
    return result(False, SCOPE_TOO_NARROW)


def _skipped(probe: Probe) -> Result:
    return Result(probe, True, "-", f"skipped: {probe.skip}", counted=False)


# ---------------------------------------------------------------------------- running


@dataclass
class Audit:
    """Every selected entry's audit, with what ran where."""

    keras_version: str | None
    selected: list[str]
    facts: dict[str, dict[str, Any]]
    entries: list[EntryAudit]

    @property
    def findings(self) -> int:
        return sum(len(a.findings) + (a.plan.status == NO_EXAMPLE) for a in self.entries)

    def final_line(self) -> str:
        proven = sum(a.proven is True for a in self.entries)
        failing = sum(a.proven is False for a in self.entries)
        counts = {s: sum(a.plan.status == s for a in self.entries)
                  for s in (NOT_HERE, NOT_SELECTED)}
        runs = sum(r.counted for a in self.entries for r in a.results)
        text = (f"{proven + failing} entries audited ({runs} runs): {proven} proven, "
                f"{failing} with findings ({self.findings} finding(s)); "
                f"{counts[NOT_HERE]} not here")
        if counts[NOT_SELECTED]:
            text += f", {counts[NOT_SELECTED]} about backends not selected"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"keras": self.keras_version, "selected": self.selected, "facts": self.facts,
                "entries": [a.to_json() for a in self.entries],
                "findings": self.findings, "summary": self.final_line()}


def _check_all(engines: Mapping[str, Engine], work: Mapping[str, list[ConvCase]]
               ) -> dict[tuple[ConvCase, str], Outcome]:
    """Each target's cases through its own engine, the targets concurrently (each engine
    runs every case on every backend it selected: one target each keeps it to the probes)."""
    found: dict[tuple[ConvCase, str], Outcome] = {}
    with cf.ThreadPoolExecutor(max_workers=max(1, len(work))) as ex:
        futures = [ex.submit(engines[t].check, cases) for t, cases in work.items() if cases]
        for future in futures:
            for out in future.result():
                found[(out.case, out.backend)] = out
    return found


def audit(registry: Registry, keras_version: str | None, selected: Sequence[str],
          open_engine: Callable[[str], Engine], ids: Sequence[str] | None = None,
          installed: Collection[str] | None = None,
          log: Callable[[str], None] = lambda _: None) -> Audit:
    """Plan every selected entry, start one engine per target it needs (``open_engine(name)``:
    strict registry, this one target), plan again with the facts the workers report, run, and
    judge. A target whose worker cannot start is a HarnessError."""
    entries = select(registry, ids)
    first = [plan_entry(e, keras_version, selected, None, installed) for e in entries]
    needed = targets.ordered({t for p in first if p.status == AUDITED for t in p.candidates})
    with contextlib.ExitStack() as stack:
        engines = {t: stack.enter_context(open_engine(t)) for t in needed}
        if needed:
            log(f"conv-parity: starting {', '.join(needed)}...")
        for engine in engines.values():
            engine.start()
        facts: dict[str, dict[str, Any]] = {}
        for t, engine in engines.items():
            info = engine.info(t)
            if not info.available:
                raise HarnessError(f"{t} cannot start: {info.import_error or 'unavailable'}")
            facts[t] = dict(info.facts)
        plans = [plan_entry(e, keras_version, selected, facts, installed) for e in entries]
        work: dict[str, list[ConvCase]] = {}
        for plan in plans:
            for p in plan.probes:
                if p.case is not None and p.skip is None:
                    work.setdefault(p.target, []).append(p.case)
        work = {t: list(dict.fromkeys(cases)) for t, cases in work.items()}
        log(f"conv-parity: {sum(map(len, work.values()))} runs for "
            f"{sum(p.status == AUDITED for p in plans)} entries "
            f"({', '.join(f'{t}: {len(c)}' for t, c in work.items()) or 'none'})")
        outcomes = _check_all(engines, work)
    by_id = {e.id: e for e in registry.entries}
    audits = []
    for plan in plans:
        results = [_skipped(p) if p.case is None or p.skip is not None
                   else judge(p, plan.entry, outcomes[(p.case, p.target)], by_id)
                   for p in plan.probes]
        audits.append(EntryAudit(plan, results))
    headline = fact_records.HEADLINE
    return Audit(keras_version, list(selected),
                 {t: {k: v for k, v in f.items() if k in headline} for t, f in facts.items()},
                 audits)


def rows(audits: Iterable[EntryAudit]) -> list[list[str]]:
    """The table's rows: entry, backend, dimension, value, scope, expected, observed, result."""
    out = []
    for a in audits:
        for r in a.results:
            p = r.probe
            if not r.counted:
                verdict = r.text
            else:
                verdict = ("ok: " if r.ok else "FINDING: ") + r.text
            if p.note:
                verdict += f" [{p.note}]"
            out.append([a.entry_id, p.target, p.dimension, p.value,
                        "in" if p.in_scope else "out", p.expected if r.counted else "-",
                        r.observed, verdict])
    return out


HEADERS = ("entry", "backend", "dimension", "value", "scope", "expected", "observed", "result")

__all__ = ["AUDITED", "HEADERS", "NOT_HERE", "NOT_SELECTED", "NO_EXAMPLE", "PASS_OR_OTHER",
           "REPRODUCE", "SCOPE_TOO_NARROW", "SCOPE_TOO_WIDE", "Audit", "EntryAudit",
           "EntryPlan", "Probe", "Result", "audit", "default_targets", "judge", "plan_entry",
           "rows", "select"]


def _as_dict(facts: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A worker's facts as the plain dict the facts helpers take (None: not known)."""
    return None if facts is None else dict(facts)
