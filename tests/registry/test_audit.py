"""``conv-parity registry audit``: which runs prove an entry's scope, how each is judged, and the
command end to end.

The planning and the judging are pure (synthetic entries, synthetic facts and outcomes, no
process); the orchestration runs on fake engines (XDIST's MockNode idea); one end-to-end test
audits one cheap JAX entry through the real CLI, and a slow one audits every entry.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from conv_parity import audit
from conv_parity.case import ConvCase
from conv_parity.errors import HarnessError, UsageError
from conv_parity.judge.verdict import Outcome
from conv_parity.registry import Entry, Registry

KERAS = "3.15.1"
TF = ["tensorflow", "tensorflow:onednn-on", "tensorflow:onednn-off"]
ON = {"tensorflow.onednn": True, "tensorflow.onednn_dtypes": ["float32", "bfloat16"]}
OFF = {"tensorflow.onednn": False}
FACTS = {"tensorflow": ON, "tensorflow:onednn-on": ON, "tensorflow:onednn-off": OFF}
CONV = {"layer": "Conv2D", "kwargs": {"filters": 2, "kernel_size": 3},
        "input_shape": [1, 5, 5, 3], "backend": "tensorflow", "keras": KERAS}


def _entry(**changes: Any) -> Entry:
    fields: dict[str, Any] = {
        "id": "demo", "keras": SpecifierSet(">=3.0"), "backends": ("tensorflow",),
        "layers": ("Conv2D",), "verdict": "fail-values", "link": "https://example.invalid",
        "note": "demo", "example": CONV}
    fields.update(changes)
    return Entry(**fields)


def _plan(entry: Entry, selected: list[str] | None = None,
          facts: dict[str, Any] | None = None, **kw: Any) -> audit.EntryPlan:
    return audit.plan_entry(entry, KERAS, TF if selected is None else selected,
                            FACTS if facts is None else facts, **kw)


def _rows(plan: audit.EntryPlan) -> dict[tuple[str, str], audit.Probe]:
    return {(p.dimension, p.value): p for p in plan.probes}


def _scope(plan: audit.EntryPlan) -> dict[tuple[str, str], str]:
    """(dimension, value) -> "in" / "out" / "skip", the planned answer in one mapping."""
    return {key: "skip" if p.skip else ("in" if p.in_scope else "out")
            for key, p in _rows(plan).items()}


# ---------------------------------------------------------------------------- planning


def test_facts_choose_the_variant_in_scope_and_the_one_outside() -> None:
    plan = _plan(_entry(facts={"tensorflow.onednn": False}))
    assert plan.status == audit.AUDITED
    assert plan.target == "tensorflow:onednn-off"  # the first selected target whose facts hold
    scope = _scope(plan)
    assert scope[("variant", "tensorflow:onednn-on")] == "out"
    assert scope[("variant", "tensorflow")] == "out"  # this fake CPU turns oneDNN on by default
    assert scope[("example", "eager, float32")] == "in"
    assert all(p.target == "tensorflow:onednn-off"
               for p in plan.probes if p.dimension != "variant")


def test_without_facts_every_variant_is_in_scope_and_the_plain_backend_runs_the_rest() -> None:
    plan = _plan(_entry())
    assert plan.target == "tensorflow"
    assert _scope(plan)[("variant", "tensorflow:onednn-on")] == "in"
    assert _scope(plan)[("variant", "tensorflow:onednn-off")] == "in"


def test_facts_of_a_dtype_oneDNN_does_not_serve_are_the_facts_without_it() -> None:
    """float64 runs TF's own kernels on a oneDNN build: oneDNN-off entries hold there too."""
    entry = _entry(facts={"tensorflow.onednn": False}, dtypes=("float64",),
                   example={**CONV, "dtype": "float64"})
    scope = _scope(_plan(entry))
    assert _plan(entry).target == "tensorflow"
    assert scope[("variant", "tensorflow:onednn-on")] == "in"


def test_modes_named_are_in_scope_and_the_others_outside() -> None:
    scope = _scope(_plan(_entry(modes=("eager", "grad"))))
    assert scope[("mode", "grad")] == "in"
    assert scope[("mode", "predict")] == scope[("mode", "jit")] == "out"
    assert scope[("example", "eager, float32")] == "in"


def test_every_mode_is_in_scope_when_none_is_named_and_a_backend_skips_what_it_cannot_run() -> None:
    entry = _entry(backends=("openvino",), example={**CONV, "backend": "openvino"})
    plan = _plan(entry, ["openvino"], {"openvino": {}})
    assert plan.target == "openvino"
    scope = _scope(plan)
    assert scope[("mode", "predict")] == "in"
    assert scope[("mode", "grad")] == scope[("mode", "jit")] == "skip"
    assert "openvino cannot run grad" in (_rows(plan)[("mode", "grad")].skip or "")


def test_dtypes_admit_their_policies_and_the_others_are_the_nearest_outside() -> None:
    entry = _entry(dtypes=("float16",), example={**CONV, "dtype": "float16"})
    scope = _scope(_plan(entry))
    assert scope[("policy", "mixed_float16")] == "in"  # computes in float16
    for name in ("bfloat16", "mixed_bfloat16", "float32", "float64"):
        assert scope[("policy", name)] == "out"
    assert ("policy", "float16") not in scope  # the example itself


def test_policies_are_narrower_than_dtypes() -> None:
    entry = _entry(policies=("mixed_float16",), example={**CONV, "dtype": "mixed_float16"})
    scope = _scope(_plan(entry))
    assert scope[("example", "eager, mixed_float16")] == "in"
    assert scope[("policy", "float16")] == "out"


def test_an_op_takes_no_mixed_policy_so_those_are_skipped_with_the_reason() -> None:
    example = {"layer": "ops.conv", "kwargs": {"filters": 2, "kernel_size": 3},
               "input_shape": [1, 5, 5, 3], "dtype": "float16", "backend": "tensorflow",
               "keras": KERAS}
    entry = _entry(layers=("ops.conv",), dtypes=("float16",), example=example)
    plan = _plan(entry)
    probe = _rows(plan)[("policy", "mixed_float16")]
    assert probe.skip and "ops have no dtype policy" in probe.skip
    assert probe.in_scope  # admitted by the entry, just not a case
    assert _scope(plan)[("policy", "float64")] == "out"


def test_no_dtype_scope_runs_the_examples_policy_only_and_says_so() -> None:
    plan = _plan(_entry())
    policy_rows = [p for p in plan.probes if p.dimension == "policy"]
    assert len(policy_rows) == 1
    assert policy_rows[0].value == "float32 only"
    assert "names no dtypes or policies" in (policy_rows[0].skip or "")


def test_the_varied_cases_keep_the_example_data_and_change_one_thing() -> None:
    plan = _plan(_entry(dtypes=("float32",)))
    example = _rows(plan)[("example", "eager, float32")].case
    assert example is not None
    for p in plan.probes:
        if p.case is None:
            continue
        assert p.case.seed == example.seed and p.case.kwargs == example.kwargs
        changed = {f for f in ("mode", "dtype", "policy")
                   if getattr(p.case, f) != getattr(example, f)}
        changed |= {"target"} if p.target != plan.target else set()
        assert len(changed) <= (2 if p.dimension == "policy" else 1), (p, changed)


def test_a_value_regime_is_kept_and_a_nan_input_has_no_gradient_to_vary_to() -> None:
    example = {"layer": "MaxPooling2D", "kwargs": {"pool_size": 2}, "input_shape": [1, 4, 4, 2],
               "values": "nan", "backend": "tensorflow", "keras": KERAS}
    plan = _plan(_entry(layers=("MaxPooling2D",), where={"values": "nan"}, example=example))
    rows = _rows(plan)
    assert "nan regime has no grad" in (rows[("mode", "grad")].skip or "")
    varied = rows[("mode", "predict")].case
    assert varied is not None and varied.values == "nan"


def test_a_where_predicate_that_rejects_a_value_puts_it_outside_with_a_note() -> None:
    entry = _entry(where={"batch": 1}, example={**CONV, "input_shape": [1, 5, 5, 3]})
    assert _scope(_plan(entry))[("mode", "grad")] == "in"
    # the variants carry the example unchanged: a predicate the example fails rejects them all
    entry = _entry(where={"batch": 2})
    variant = _rows(_plan(entry))[("variant", "tensorflow:onednn-on")]
    assert not variant.in_scope and "where" in variant.note


def test_entries_that_cannot_run_here_say_why() -> None:
    old = _plan(_entry(keras=SpecifierSet("<3.5")))
    assert old.status == audit.NOT_HERE and "Keras <3.5" in old.reason and KERAS in old.reason
    other = _plan(_entry(), ["jax"], {}, installed=["jax", "tensorflow"])
    assert other.status == audit.NOT_SELECTED and "tensorflow" in other.reason
    missing = _plan(_entry(), ["jax"], {}, installed=["jax"])
    assert missing.status == audit.NOT_HERE and "not installed" in missing.reason
    nowhere = _plan(_entry(facts={"tensorflow.onednn": False}), ["tensorflow:onednn-on"])
    assert nowhere.status == audit.NOT_HERE and "hold on no selected target" in nowhere.reason
    assert _plan(_entry(example={})).status == audit.NO_EXAMPLE


def test_an_unknown_entry_id_is_a_usage_error_naming_the_close_ones() -> None:
    registry = Registry.load()
    with pytest.raises(UsageError, match="close: tf-pool3d-same-negative-padding"):
        audit.select(registry, ["tf-pool3d-same-negative-paddin"])
    assert [e.id for e in audit.select(registry, ["tf-pool3d-same-negative-padding"])] == \
        ["tf-pool3d-same-negative-padding"]


# ---------------------------------------------------------------------------- judging

CASE = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 3))
INSIDE = audit.Probe("demo", "tensorflow", "mode", "grad", True, CASE)
OUTSIDE = audit.Probe("demo", "tensorflow", "mode", "jit", False, CASE)


def _out(verdict: str, known: str | None = None, *, stale: bool = False,
         observed: str | None = None, expects: str = "fail-values") -> Outcome:
    info = None if known is None else {"id": known, "verdict": expects,
                                        **({"stale": True, "strict": True} if stale else {})}
    return Outcome(CASE, "tensorflow", verdict, "msg", known=info, observed_verdict=observed)


@pytest.mark.parametrize(("probe", "outcome", "ok", "words"), [
    (INSIDE, _out("xfail", "demo", observed="fail-values"), True, "reproduced"),
    (INSIDE, _out("pass", "demo", stale=True), False, audit.SCOPE_TOO_WIDE),
    (INSIDE, _out("xfail", "other", observed="fail-values"), False, "explained by other instead"),
    (INSIDE, _out("crash", "demo"), False, "fails as crash; the entry expects fail-values"),
    (INSIDE, _out("unsupported"), False, "does not reproduce (unsupported"),
    (INSIDE, _out("fail-shape"), False, "fails as fail-shape, not as this entry's fail-values"),
    (OUTSIDE, _out("pass"), True, "passes"),
    (OUTSIDE, _out("unsupported"), True, "unsupported"),
    (OUTSIDE, _out("xfail", "other", observed="fail-shape"), True, "explained by other"),
    (OUTSIDE, _out("fail-values"), False, audit.SCOPE_TOO_NARROW),
    (OUTSIDE, _out("fail-values", "other", expects="crash"), False,
     "fails as fail-values; other expects crash"),
    (OUTSIDE, _out("pass", "other", stale=True), False, "other's scope is too wide"),
    (OUTSIDE, _out("xfail", "demo", observed="fail-values"), False, "planned outside"),
])
def test_judge(probe: audit.Probe, outcome: Outcome, ok: bool, words: str) -> None:
    result = audit.judge(probe, _entry(), outcome)
    assert result.ok is ok and result.counted
    assert words in result.text


def test_a_finding_on_the_example_itself_says_so() -> None:
    example = audit.Probe("demo", "tensorflow", "example", "eager, float32", True, CASE)
    result = audit.judge(example, _entry(), _out("pass", "demo", stale=True))
    assert result.text == f"the example itself {audit.SCOPE_TOO_WIDE}"


def test_a_raise_outside_on_a_case_the_spec_accepts_may_be_keras_wide() -> None:
    """One backend asked: the engine cannot call every backend's raise Keras-wide."""
    out = _out("fail-error-parity")
    out.error, out.reference_shape = {"type": "ValueError", "message": "no"}, (1, 3, 3, 2)
    result = audit.judge(OUTSIDE, _entry(), out)
    assert not result.ok and "or a Keras-wide limitation" in result.text


def test_a_keras_wide_entry_reproduces_as_unsupported() -> None:
    wide = dataclasses.replace(_entry(), keras_wide=True)
    assert audit.judge(INSIDE, wide, _out("unsupported", "demo")).text.startswith("reproduced")
    assert not audit.judge(INSIDE, _entry(), _out("unsupported", "demo")).ok
    assert not audit.judge(OUTSIDE, wide, _out("unsupported", "demo")).ok


def test_a_skipped_run_is_not_counted() -> None:
    result = audit.judge(INSIDE, _entry(), _out("skip"))
    assert result.ok and not result.counted and result.text.startswith("skipped")


def test_a_nondeterministic_entry_that_passed_still_counts_as_reproduced() -> None:
    flaky = dataclasses.replace(_entry(), nondeterministic=True)
    result = audit.judge(INSIDE, flaky, _out("pass", "demo", stale=True))
    assert result.ok and result.text == "reproduced (nondeterministic: this run passed)"
    # ... and a case outside another entry's scope that passes is no finding against it
    assert audit.judge(OUTSIDE, _entry(), _out("pass", "demo", stale=True),
                       {"demo": flaky}).ok


# ---------------------------------------------------------------------------- orchestration


class FakeEngine:
    """One target's engine: a failure explained by the entry where it applies, else a pass."""

    def __init__(self, target: str, entry: Entry, facts: dict[str, Any], log: list) -> None:
        self.target, self.entry, self.facts, self.log = target, entry, facts, log

    def __enter__(self) -> FakeEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.log.append(("closed", self.target))

    def start(self) -> None:
        self.log.append(("started", self.target))

    def info(self, target: str) -> Any:
        return SimpleNamespace(available=True, facts=self.facts, import_error=None)

    def check(self, cases: list[ConvCase]) -> list[Outcome]:
        self.log.append(("check", self.target, len(cases)))
        outs = []
        for case in cases:
            if self.entry.applies(case, self.target, KERAS, self.facts):
                outs.append(Outcome(case, self.target, "xfail", "known", observed_verdict="x",
                                    known={"id": self.entry.id}))
            else:
                outs.append(Outcome(case, self.target, "pass", "ok"))
        return outs


def test_audit_runs_each_target_its_own_cases_and_proves_a_true_scope() -> None:
    entry = _entry(facts={"tensorflow.onednn": False}, modes=("eager", "grad"))
    registry = Registry([entry])
    log: list = []
    done = audit.audit(registry, KERAS, TF,
                       lambda t: FakeEngine(t, entry, FACTS[t], log), installed=TF)
    assert [a.proven for a in done.entries] == [True]
    checks = {e[1]: e[2] for e in log if e[0] == "check"}
    assert checks == {"tensorflow:onednn-off": 4, "tensorflow:onednn-on": 1, "tensorflow": 1}
    assert {e[1] for e in log if e[0] == "closed"} == set(TF)
    assert done.findings == 0 and "1 proven" in done.final_line()
    table = audit.rows(done.entries)
    assert table[3][:6] == \
        ["demo", "tensorflow:onednn-off", "mode", "grad", "in", audit.REPRODUCE]
    json.dumps(done.to_json())


def test_audit_reports_a_scope_too_narrow() -> None:
    """The real bug also shows in jit, which the entry leaves out: one finding."""
    entry = _entry(modes=("eager", "grad"))
    truth = _entry(modes=("eager", "grad", "jit"), id="truth")
    registry = Registry([entry])

    class Wider(FakeEngine):
        def check(self, cases: list[ConvCase]) -> list[Outcome]:
            return [Outcome(o.case, o.backend, "fail-values", "wrong") if o.verdict == "pass"
                    and truth.applies(o.case, self.target, KERAS, self.facts) else o
                    for o in super().check(cases)]

    done = audit.audit(registry, KERAS, ["tensorflow"],
                       lambda t: Wider(t, entry, FACTS[t], []), installed=TF)
    (a,) = done.entries
    assert a.proven is False
    assert [(r.probe.value, r.text) for r in a.findings] == [("jit", audit.SCOPE_TOO_NARROW)]
    assert "FINDING" in a.summary() and done.findings == 1


class _Broken(FakeEngine):
    def info(self, target: str) -> Any:
        return SimpleNamespace(available=False, facts={}, import_error="No module named x")


def test_a_target_that_cannot_start_is_a_harness_error() -> None:
    entry = _entry()
    with pytest.raises(HarnessError, match="tensorflow cannot start: No module named x"):
        audit.audit(Registry([entry]), KERAS, ["tensorflow"],
                    lambda t: _Broken(t, entry, {}, []), installed=TF)


# ---------------------------------------------------------------------------- end to end


def _cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CONV_PARITY_DEBUG"}
    return subprocess.run([sys.executable, "-m", "conv_parity.cli", "registry", "audit", *args],
                          capture_output=True, text=True, timeout=timeout, env=env, check=False)


@pytest.mark.slow  # 15-70 s on 2 cores: `pytest -m slow` (CI time, issue 25)
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax not installed")
def test_audit_one_jax_entry_through_the_cli() -> None:
    """A JAX pooling bug in eager and grad only: both reproduce, predict and jit pass."""
    proc = _cli("--entries", "pool-empty-output-not-rejected", "--backends", "jax", "--json",
                timeout=600)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    doc = json.loads(proc.stdout)  # one JSON document, logs on stderr
    (entry,) = doc["entries"]
    assert entry["id"] == "pool-empty-output-not-rejected" and entry["proven"] is True
    probes = {(p["dimension"], p["value"]): p for p in entry["probes"]}
    assert probes[("mode", "grad")]["in_scope"] and probes[("mode", "grad")]["ok"]
    assert not probes[("mode", "predict")]["in_scope"]
    assert probes[("mode", "predict")]["observed"] in ("pass", "unsupported")
    assert "claims every policy" in probes[("policy", "float32 only")]["result"]
    assert "1 proven" in doc["summary"]


@pytest.mark.slow
def test_every_registry_scope_is_proven() -> None:
    """The whole audit, every entry on every installed target (tens of minutes on 2 cores).
    Its table is the list of findings to fix in known_discrepancies.toml."""
    proc = _cli(timeout=7200)
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-2000:]
