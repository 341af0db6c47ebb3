"""The nightly watch section from synthetic report documents (no workers, no network): what
stopped reproducing, what is new, what changed, how report.md and the terminal show it, and which
new failures get a bisect over the last nightlies."""

from __future__ import annotations

from typing import Any

import pytest
from packaging.version import Version

from conv_parity.report import build_doc, load_report, render_markdown, watch, write_all
from conv_parity.upstream import watch as upstream_watch
from conv_parity.upstream.bisect import Tried

NIGHTLY = "3.16.0.dev2026102704"
CASE = {"layer": "Conv2D", "kwargs": {"filters": 2, "kernel_size": [3, 3]},
        "input_shape": [1, 5, 5, 2], "dtype": "float32", "seed": 1, "mode": "eager"}


def _r(case_id: str, backend: str, verdict: str, known: dict | None = None,
       observed: str | None = None) -> dict[str, Any]:
    return {"case_id": case_id, "case": CASE, "layer": "Conv2D", "backend": backend,
            "verdict": verdict,
            "message": f"{backend} said {verdict}", "known": known, "observed_verdict": observed}


def _doc(keras: str, results: list[dict]) -> dict[str, Any]:
    env = {"python": None, "platform": None, "keras": keras, "numpy": None, "backends": {}}
    return build_doc(results, {"profile": "smoke"}, env, True)


ENTRY = {"id": "jax-pool-op-list-arguments", "keras": ">=3.0", "fixed_in": None}
SCOPED = {"id": "jax-pool-op-strides-none", "keras": "<3.16.0.dev0,>=3.0", "fixed_in": None}
BASE = _doc("3.15.1", [
    _r("pool-a", "jax", "xfail", ENTRY, "fail-error-parity"),    # fixed on the nightly
    _r("pool-a", "numpy", "xfail", ENTRY, "fail-error-parity"),  # fixed on the nightly
    _r("conv-b", "torch", "pass"),                               # regresses
    _r("conv-c", "jax", "fail-values"),                          # fails on both
    _r("conv-d", "numpy", "pass"),                               # unchanged
    _r("conv-e", "torch", "unsupported"),                        # only on the installed
    _r("pool-g", "jax", "xfail", SCOPED, "fail-error-parity"),   # the scope ends too early
])
WATCHED = _doc(NIGHTLY, [
    _r("pool-a", "jax", "pass", {**ENTRY, "stale": True, "strict": False}),
    _r("pool-a", "numpy", "pass", {**ENTRY, "stale": True, "strict": False}),
    _r("conv-b", "torch", "fail-shape"),
    _r("conv-c", "jax", "fail-values"),
    _r("conv-d", "numpy", "pass"),
    _r("conv-f", "jax", "crash"),                                # only on the nightly
    _r("pool-g", "jax", "fail-error-parity"),
])


@pytest.fixture
def section() -> dict[str, Any]:
    return watch.compare(WATCHED, BASE, "a second run of the same cases", "2026-10-27")


def test_an_entry_that_stopped_reproducing_gets_the_nightly_as_fixed_in(section):
    [entry] = section["stopped"]
    assert entry["id"] == "jax-pool-op-list-arguments" and entry["fixed_in"] == NIGHTLY
    assert [(r["backend"], r["baseline"]) for r in entry["results"]] == [
        ("jax", "known fail-error-parity (jax-pool-op-list-arguments)"),
        ("numpy", "known fail-error-parity (jax-pool-op-list-arguments)")]


def test_new_failures_say_whether_the_installed_release_had_them(section):
    got = {(i["case_id"], i["backend"]): (i["verdict"], i["baseline"], i["regression"])
           for i in section["new"]}
    assert got == {("conv-b", "torch"): ("fail-shape", "pass", True),
                   ("conv-c", "jax"): ("fail-values", "NEW fail-values", False),
                   ("conv-f", "jax"): ("crash", None, True),
                   ("pool-g", "jax"): ("fail-error-parity",
                                       "known fail-error-parity (jax-pool-op-strides-none)",
                                       False)}
    assert [i["baseline_entry"] for i in section["new"]] == [
        None, None, None, {"id": "jax-pool-op-strides-none", "keras": "<3.16.0.dev0,>=3.0"}]


def test_changed_lists_every_result_whose_state_moved(section):
    got = {(c["case_id"], c["backend"]): (c["before"], c["after"]) for c in section["changed"]}
    assert got == {
        ("pool-a", "jax"): ("known fail-error-parity (jax-pool-op-list-arguments)",
                            "stale: passes (jax-pool-op-list-arguments)"),
        ("pool-a", "numpy"): ("known fail-error-parity (jax-pool-op-list-arguments)",
                              "stale: passes (jax-pool-op-list-arguments)"),
        ("conv-b", "torch"): ("pass", "NEW fail-shape"),
        ("pool-g", "jax"): ("known fail-error-parity (jax-pool-op-strides-none)",
                            "NEW fail-error-parity")}
    assert (section["compared"], section["only_watched"], section["only_baseline"]) == (6, 1, 1)


def test_the_same_run_twice_finds_nothing():
    same = watch.compare(BASE, BASE, "itself")
    assert (same["stopped"], same["changed"], same["compared"]) == ([], [], 7)
    assert [i["case_id"] for i in same["new"]] == ["conv-c"]  # a failure, but not a regression
    assert not same["new"][0]["regression"]


def test_terminal_lines_name_every_item(section):
    section["new"][0]["bisect"] = {"conclusion": "introduced in Keras 3.16.0.dev2026102604 "
                                                 "(nightly 2026-10-26) (...)"}
    text = "\n".join(watch.text_lines(section))
    assert text.startswith(f"Nightly watch: Keras {NIGHTLY} (nightly 2026-10-27) against the "
                           f"installed Keras 3.15.1 (a second run of the same cases): 6 results "
                           f"compared, 1 only on {NIGHTLY}, 1 only on 3.15.1")
    assert ("bisect: not bisected: known on the installed release as jax-pool-op-strides-none, "
            "whose keras scope <3.16.0.dev0,>=3.0 leaves this Keras out: widen it") in text
    assert ("- jax-pool-op-list-arguments: 2 result(s) on jax, numpy pass (keras >=3.0): "
            f'propose fixed_in = "{NIGHTLY}"') in text
    assert "- conv-b on torch: fail-shape (Keras 3.15.1: pass)" in text
    assert "bisect: introduced in Keras 3.16.0.dev2026102604 (nightly 2026-10-26)" in text
    assert "bisect: not bisected: the installed release gives NEW fail-values too" in text
    assert "- conv-b on torch: pass -> NEW fail-shape" in text


def test_report_md_carries_the_section_first(section, tmp_path):
    write_all({**WATCHED, "watch": section}, tmp_path)  # validated, as `run --keras` writes it
    assert load_report(tmp_path / "report.json")["watch"] == section
    md = (tmp_path / "report.md").read_text()
    start = md.index("## Nightly watch")
    assert start < md.index("## Conformance matrix")
    part = md[start:md.index("## Conformance matrix")]
    assert "### Entries that stopped reproducing (1)" in part
    assert f"| jax-pool-op-list-arguments | 2 | jax, numpy | &gt;=3.0 | fixed\\_in = \"{NIGHTLY}\" |" \
        in part
    assert "### New failures (4)" in part and "### Results changed since Keras 3.15.1 (4)" in part
    assert "## Nightly watch" not in render_markdown(WATCHED)
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Nightly watch</h2>" in page and "<h3>New failures (4)</h3>" in page
    assert f"<td>fixed_in = &quot;{NIGHTLY}&quot;</td>" in page


def _fake_bisect(monkeypatch, probed: list[str], first_bad: str):
    """release_probe replaced: a nightly fails from ``first_bad`` on (no workers)."""
    def release_probe(cases, backends, cache, timeout):
        def probe(v: Version) -> Tried:
            probed.append(str(v))
            verdict = "fail-shape" if v >= Version(first_bad) else "pass"
            return Tried(v, f"{backends[0]}={verdict}", {backends[0]: verdict})
        return probe
    monkeypatch.setattr(upstream_watch, "release_probe", release_probe)


SERVED = [Version(f"3.16.0.dev202610{d:02d}04") for d in range(18, 28)]


def test_bisect_new_searches_the_last_nightlies_of_each_regression(section, monkeypatch,
                                                                   tmp_path):
    probed: list[str] = []
    _fake_bisect(monkeypatch, probed, "3.16.0.dev2026102304")
    target = upstream_watch.Target(Version(NIGHTLY), tmp_path, SERVED)
    upstream_watch.bisect_new(section, target, tmp_path, nightly_count=8, limit=1)
    b, c, f, g = section["new"]
    assert b["bisect"]["direction"] == "introduced"
    assert (b["bisect"]["before"], b["bisect"]["after"]) == ("3.16.0.dev2026102204",
                                                             "3.16.0.dev2026102304")
    assert b["bisect"]["conclusion"].startswith(
        "introduced in Keras 3.16.0.dev2026102304 (nightly 2026-10-23) (last good "
        "3.16.0.dev2026102204 (nightly 2026-10-22)")
    assert min(probed) == "3.16.0.dev2026102004" and len(probed) <= 5  # the last 8, halved
    assert c["bisect"] is None
    assert "bisect: not bisected: the installed release gives" in "\n".join(
        watch.text_lines(section))
    assert f["bisect"] is None and "the first 1 new failures were" in f["bisect_note"]
    assert g["bisect"] is None and "bisect_note" not in g  # the entry's scope, not a regression
    assert "the 8 nightlies from 2026-10-20 to 2026-10-27" in section["notes"][0]


def test_bisect_new_leaves_a_release_to_conv_parity_bisect(section, monkeypatch, tmp_path):
    probed: list[str] = []
    _fake_bisect(monkeypatch, probed, NIGHTLY)
    target = upstream_watch.Target(Version("3.14.1"), tmp_path, [])
    upstream_watch.bisect_new(section, target, tmp_path)
    assert probed == []
    assert all("is a release" in i["bisect_note"] for i in section["new"])
