"""Where variants of one backend disagree, and the platform facts: pure rules, no processes."""

from __future__ import annotations

from conv_parity import facts
from conv_parity.variants import disagreements, observed_verdict, summary_lines


def _r(case_id: str, backend: str, verdict: str, observed: str | None = None) -> dict:
    return {"case_id": case_id, "backend": backend, "verdict": verdict,
            "observed_verdict": observed}


def test_variants_disagree_on_what_they_observed_not_on_xfail() -> None:
    results = [
        _r("A", "tensorflow:onednn-off", "xfail", "fail-error-parity"),
        _r("A", "tensorflow:onednn-on", "pass"),
        _r("A", "torch", "pass"),
        _r("B", "tensorflow:onednn-off", "pass"),
        _r("B", "tensorflow:onednn-on", "pass"),
        _r("C", "torch", "pass"),
        _r("C", "torch:mkldnn-off", "skip"),  # observed nothing
        _r("D", "jax", "fail-values"),  # one target of jax: nothing to disagree with
    ]
    (found,) = disagreements(results)
    assert found.case_id == "A" and found.keras_backend == "tensorflow"
    assert found.observed == (("tensorflow:onednn-on", "pass"),
                              ("tensorflow:onednn-off", "fail-error-parity"))
    assert found.text() == ("A on tensorflow: tensorflow:onednn-on pass, "
                            "tensorflow:onednn-off fail-error-parity")
    assert observed_verdict(results[0]) == "fail-error-parity"


def test_summary_lines_count_and_cut() -> None:
    results = [r for i in range(25) for r in (_r(f"c{i:02}", "torch", "pass"),
                                               _r(f"c{i:02}", "torch:mkldnn-off", "fail-values"))]
    lines = summary_lines(results, limit=20)
    assert lines[0] == "25 cases where variants of one backend disagree:"
    assert len(lines) == 22 and lines[-1] == "  ... and 5 more (see the report)"
    assert summary_lines([_r("x", "torch", "pass")]) == []


def test_unknown_targets_in_a_merged_report_are_ignored() -> None:
    assert disagreements([_r("A", "mxnet", "pass"), _r("A", "mxnet:fast", "fail-values")]) == []


def test_cpu_facts_name_the_isa_that_selects_kernels() -> None:
    cpu = facts.cpu()
    assert cpu["cpu.model"] and cpu["cpu.count"] >= 1
    assert set(cpu["cpu.isa"]) <= set(facts.ISA_FLAGS)
    assert cpu["cpu.amx"] == ("amx_tile" in cpu["cpu.isa"])


def test_a_failing_probe_is_recorded_not_raised() -> None:
    def broken_facts() -> dict:
        raise RuntimeError("no such library")

    got = facts.collect((broken_facts,))
    assert got["broken.error"] == "RuntimeError: no such library"
    assert got["cpu.model"]


def test_describe_shows_switches_as_on_and_off() -> None:
    text = facts.describe({"tensorflow.onednn": False, "cpu.isa": ["avx2", "amx_tile"],
                           "torch.num_threads": 2}, ("tensorflow.onednn", "cpu.isa"))
    assert text == "onednn=off, isa=avx2+amx_tile"
