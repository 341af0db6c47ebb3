"""run_campaign: distinct root causes, minimised; report; a tiny real campaign on jax."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conv_parity import kinds
from conv_parity.case import ConvCase
from conv_parity.engine import installed_backends
from conv_parity.fuzzing import CampaignEvent, CampaignOptions, root_cause, run_campaign
from conv_parity.judge.verdict import Outcome
from conv_parity.registry import Registry, _parse_entry
from conv_parity.report import validate
from conv_parity.report.writer import default_environment


class _FakeEngine:
    """Two synthetic bugs on backend 'jax': channels_first Conv2D, and pools with batch >= 2."""

    backends = ("jax",)

    def __init__(self) -> None:
        self.calls = 0

    def check(self, cases: list[ConvCase]) -> list[Outcome]:
        out = []
        for case in cases:
            self.calls += 1
            kw = case.kwargs
            if case.layer == "Conv2D" and kw["data_format"] == "channels_first":
                out.append(Outcome(case, "jax", "fail-values", "bug A", diagnosis_code="layout"))
            elif case.kind.is_pool and case.input_shape[0] >= 2:
                out.append(Outcome(case, "jax", "fail-shape", "bug B", diagnosis_code=None))
            else:
                out.append(Outcome(case, "jax", "pass", "ok"))
        return out

    def environment(self) -> dict[str, Any]:
        return default_environment()

    def close(self) -> None:  # pragma: no cover - run_campaign does not own this engine
        raise AssertionError("a passed-in engine must not be closed")


def test_campaign_collects_distinct_minimised_root_causes(tmp_path: Path) -> None:
    events: list[CampaignEvent] = []
    result = run_campaign(max_examples=300, seed=3, report_dir=tmp_path, progress=events.append,
                          registry=Registry([]), layers=["Conv2D", "MaxPooling2D"],
                          engine=_FakeEngine())
    keys = {tuple(d["root_cause"].values()) for d in result.discrepancies}
    assert keys == {("Conv2D", "jax", "fail-values", "layout"),
                    ("MaxPooling2D", "jax", "fail-shape", None)}
    by_layer = {d["layer"]: d for d in result.discrepancies}
    assert all(d["minimised"] for d in result.discrepancies)
    conv = ConvCase.from_json(by_layer["Conv2D"]["case"])
    assert conv.input_shape[0] == 1 and conv.kwargs["kernel_size"] == (1, 1)
    assert kinds.channels(conv.kwargs, conv.input_shape) == 1
    assert conv.kwargs["strides"] == (1, 1) and conv.kwargs["padding"] == "valid"
    pool = ConvCase.from_json(by_layer["MaxPooling2D"]["case"])
    assert pool.input_shape[0] == 2 and pool.kwargs["data_format"] == "channels_last"
    assert pool.kwargs["pool_size"] == (1, 1)
    assert 0 < result.examples <= 300
    assert result.stopped_by == "max_examples"
    doc = json.loads((tmp_path / "report.json").read_text())
    validate(doc)
    assert doc["fuzz"]["examples"] == result.examples
    assert doc["fuzz"]["distinct_discrepancies"] == 2
    assert (tmp_path / "report.md").exists() and (tmp_path / "report.html").exists()
    assert {e.kind for e in events} >= {"example", "found", "minimised", "done"}
    assert str(events[-1]).endswith("done")


def test_campaign_time_budget_stops(tmp_path: Path) -> None:
    result = run_campaign(time_budget=0.5, seed=1, registry=Registry([]), layers=["Conv1D"],
                          engine=_FakeEngine())
    assert result.stopped_by == "time_budget"
    assert result.seconds < 5
    assert result.discrepancies == []


def test_campaign_takes_options_and_keywords_override_them() -> None:
    options = CampaignOptions(max_examples=100, seed=1, registry=Registry([]), layers=["Conv1D"],
                              engine=_FakeEngine())
    result = run_campaign(options, max_examples=4)
    assert result.stopped_by == "max_examples" and result.examples == 4
    assert result.run["max_examples"] == 4 and result.seed == 1
    with pytest.raises(TypeError, match="max_exampels"):
        run_campaign(options, max_exampels=4)


def test_root_cause_uses_error_type_without_diagnosis() -> None:
    case = ConvCase.make("Conv1D", {"filters": 1, "kernel_size": 1}, (1, 2, 1))
    o = Outcome(case, "torch", "fail-error-parity", "x", error={"type": "RuntimeError",
                                                               "message": "m"})
    assert root_cause(o) == ("Conv1D", "torch", "fail-error-parity", "RuntimeError")


@pytest.mark.skipif("jax" not in installed_backends(), reason="drives the jax backend, not installed")
def test_tiny_real_campaign_on_jax(tmp_path: Path) -> None:
    result = run_campaign(max_examples=5, backends=["jax"], seed=0, report_dir=tmp_path)
    assert 1 <= result.examples <= 5
    assert result.backends == ["jax"]
    doc = result.to_json()
    assert {"schema_version", "environment", "results"} <= set(doc)
    assert doc["environment"]["backends"]["jax"]["available"]
    validate(json.loads((tmp_path / "report.json").read_text()))
    assert result.examples_per_second > 0


class _GradOnlyBugEngine(_FakeEngine):
    """A synthetic bug seen only in grad mode (a backward-only bug)."""

    def check(self, cases: list[ConvCase]) -> list[Outcome]:
        out = []
        for case in cases:
            self.calls += 1
            if case.mode == "grad" and not case.kind.is_pool:
                out.append(Outcome(case, "jax", "fail-values", "dkernel off"))
            else:
                out.append(Outcome(case, "jax", "pass", "ok"))
        return out


def test_campaign_draws_modes_and_keeps_the_mode_in_the_root_cause() -> None:
    engine = _GradOnlyBugEngine()
    result = run_campaign(max_examples=60, seed=5, registry=Registry([]), layers=["Conv1D"],
                          engine=engine, modes=["eager", "grad"])
    (found,) = result.discrepancies
    assert found["root_cause"]["layer"] == "Conv1D[grad]"
    assert found["case"]["mode"] == "grad" and found["case_id"].endswith("-grad")
    assert result.to_json()["run"]["modes"] == ["eager", "grad"]
    eager_only = run_campaign(max_examples=30, seed=5, registry=Registry([]),
                              layers=["Conv1D"], engine=_GradOnlyBugEngine())
    assert eager_only.discrepancies == []  # eager never sees a backward-only bug


class _TwoBackendEngine:
    """One synthetic bug on jax *and* torch: channels_first Conv2D; records what it ran."""

    backends = ("jax", "torch")

    def __init__(self) -> None:
        self.cases: set[ConvCase] = set()

    def check(self, cases: list[ConvCase]) -> list[Outcome]:
        out = []
        for case in cases:
            self.cases.add(case)
            bug = case.layer == "Conv2D" and case.kwargs["data_format"] == "channels_first"
            for backend in self.backends:
                out.append(Outcome(case, backend, "fail-values", "bug", diagnosis_code="layout")
                           if bug else Outcome(case, backend, "pass", "ok"))
        return out

    def environment(self) -> dict[str, Any]:
        return default_environment()


def _channels_first_registry(backends: list[str]) -> Registry:
    return Registry([_parse_entry({
        "id": "synthetic-channels-first", "keras": ">=3", "backends": backends,
        "layers": ["Conv2D"], "verdict": "fail-values", "link": "unreported", "note": "test",
        "where": {"data_format": "channels_first"},
    }, "test")])


def _channels_first(case: ConvCase) -> bool:
    return case.kwargs["data_format"] == "channels_first"


def test_a_discrepancy_known_on_one_backend_is_still_found_on_another(tmp_path: Path) -> None:
    """Issue 21: the registry knows the bug on jax only, so channels_first Conv2D still runs and
    the same bug on torch is found; jax's pairs are filtered and counted, not the cases."""
    engine = _TwoBackendEngine()
    result = run_campaign(max_examples=60, seed=7, registry=_channels_first_registry(["jax"]),
                          layers=["Conv2D"], engine=engine, report_dir=tmp_path)
    keys = {tuple(d["root_cause"].values()) for d in result.discrepancies}
    assert keys == {("Conv2D", "torch", "fail-values", "layout")}
    ran_first = [c for c in engine.cases if _channels_first(c)]
    assert ran_first and result.filtered_known == 0
    assert result.filtered_pairs == len(ran_first)  # one jax pair per distinct case run
    assert result.pairs == 2 * len(engine.cases) == 2 * (result.examples
                                                           + result.shrink_examples)
    assert 0 < result.filtered_pair_share < 1
    fuzz = json.loads((tmp_path / "report.json").read_text())["fuzz"]
    assert fuzz["filtered_known"] == 0 and fuzz["filtered_pairs"] == result.filtered_pairs
    assert fuzz["pairs"] == result.pairs


def test_a_discrepancy_known_on_every_backend_filters_the_case() -> None:
    engine = _TwoBackendEngine()
    result = run_campaign(max_examples=40, seed=7,
                          registry=_channels_first_registry(["jax", "torch"]),
                          layers=["Conv2D"], engine=engine)
    assert result.discrepancies == []
    assert not [c for c in engine.cases if _channels_first(c)]  # never run
    assert result.filtered_known > 0
    assert result.filtered_pairs == 2 * result.filtered_known
    assert result.pairs == 2 * (len(engine.cases) + result.filtered_known)


def test_fuzz_text_output_says_how_many_pairs_were_filtered(
        capsys: pytest.CaptureFixture[str]) -> None:
    from conv_parity.cli.fuzz import _print_fuzz
    from conv_parity.fuzzing import CampaignResult

    result = CampaignResult([], examples=30, filtered_known=2, seconds=1.5, seed=4,
                            filtered_pairs=19, pairs=64)
    _print_fuzz(result, [])
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["30 examples in 1.5 s (seed 4)",
                       "19 of 64 (case, backend) pairs filtered as known discrepancies (30%); "
                       "2 drawn cases known on every backend were not run",
                       "no discrepancy found"]
