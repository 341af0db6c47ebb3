"""One classifier (``summary.bucket``): every rendering of one result list counts the same.

One synthetic result list covers every bucket on two backends and two layers (with different
counts per backend, so a swapped column shows). Each rendering is read back the way a person
reads it -- the pytest outcome (``plugin.enforce`` / ``plugin.mark_known``, and pytest's own
tally through pytester), the terminal matrix, its header and summary lines, report.json's
``summary``, the report.md and report.html matrices -- and must count, per backend (and per
layer where it has layers), what ``summary.bucket`` says.
"""

from __future__ import annotations

import html as html_lib
import json
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from report_samples import make_result

from conv_parity import plugin
from conv_parity.case import ConvCase
from conv_parity.judge.verdict import Outcome
from conv_parity.plugin.recorder import matrix_lines, terminal_summary
from conv_parity.report import (
    ReportWriter,
    build_doc,
    render_html,
    render_markdown,
    summarize,
    validate,
)
from conv_parity.report.matrix import (
    BUCKETS,
    CELL_COLUMNS,
    PYTEST_OUTCOMES,
    as_pytest_outcome,
    bucket,
    cell_counts,
    counts,
    counts_line,
    exit_code,
)
from conv_parity.vocabulary import FAILURE_VERDICTS

pytest_plugins = ["pytester"]

BACKENDS = ("tensorflow", "torch")
LAYERS = ("Conv2D", "MaxPooling2D")
KWARGS = {"Conv2D": {"filters": 4, "kernel_size": 3}, "MaxPooling2D": {"pool_size": 2}}
ENV = {"python": None, "platform": None, "keras": None, "numpy": None, "backends": {}}


def _known(**extra: Any) -> dict[str, Any]:
    return {"id": "entry-x", "link": "unreported", "note": None, "fixed_in": None, **extra}


#: name -> (the bucket the classifier must give, verdict, extra result fields): every bucket,
#: and every way into it that once rendered differently somewhere.
KINDS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "pass": ("conforms", "pass", {}),
    **{v: ("new", v, {}) for v in FAILURE_VERDICTS},
    "xfail-values": ("known-wrong", "xfail", {"observed_verdict": "fail-values",
                                              "known": _known()}),
    "xfail-shape": ("known-wrong", "xfail", {"observed_verdict": "fail-shape",
                                             "known": _known(fixed_in="3.15.0")}),
    "xfail-crash": ("known-cannot-run", "xfail", {"observed_verdict": "crash",
                                                  "known": _known()}),
    "xfail-error-parity": ("known-cannot-run", "xfail",
                           {"observed_verdict": "fail-error-parity", "known": _known()}),
    "unsupported": ("unsupported", "unsupported", {}),
    # an entry matched, but the backend rejected the case as the spec does: it conforms
    # (this was an XPASS(strict) failure in pytest while the matrix said ok)
    "unsupported-entry-expects-other": ("unsupported", "unsupported", {"known": _known()}),
    # an entry matched, but another failure came: a new discrepancy
    "crash-entry-expects-other": ("new", "crash", {"known": _known()}),
    "skip": ("skip", "skip", {"message": "torch is not installed"}),
    # a stale entry under a strict registry fails the run (it was ✓ in report.md/html)
    "strict-stale": ("new", "pass", {"known": _known(stale=True, strict=True),
                                     "message": "known discrepancy entry-x no longer "
                                                "reproduces"}),
    "non-strict-stale": ("not-reproduced", "pass", {"known": _known(stale=True, strict=False)}),
}
#: torch gets some kinds more than once, so the backends' counts differ.
EXTRA_TORCH = ("pass", "pass", "strict-stale", "unsupported", "xfail-values", "skip")


def _plan() -> list[tuple[str, str]]:
    """(backend, kind name) per result."""
    return [(b, k) for b in BACKENDS for k in KINDS] + [("torch", k) for k in EXTRA_TORCH]


def results() -> list[dict[str, Any]]:
    """The one result list: KINDS on both backends, alternating layers, torch's extras."""
    out = []
    for seed, (backend, name) in enumerate(_plan(), 1):
        _, verdict, extra = KINDS[name]
        layer = LAYERS[seed % 2]
        out.append(make_result(layer, KWARGS[layer], (1, 8, 6, 2), backend=backend,
                               verdict=verdict, seed=seed, **json.loads(json.dumps(extra))))
    return out


def expected_buckets() -> list[str]:
    return [KINDS[name][0] for _, name in _plan()]


def per_backend(rs: list[dict[str, Any]], labels: list[str]) -> dict[str, Counter]:
    out: dict[str, Counter] = {b: Counter() for b in BACKENDS}
    for r, label in zip(rs, labels):
        out[r["backend"]][label] += 1
    return out


def per_cell(rs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, int]]:
    """(layer, backend) -> matrix column -> count, from the classifier."""
    cells: dict[tuple[str, str], Counter] = {}
    for r in rs:
        cells.setdefault((r["layer"], r["backend"]), Counter())[bucket(r)] += 1
    return {key: cell_counts(c) for key, c in cells.items()}


def _parse_counts(parts: list[str], words: dict[str, str]) -> dict[str, int]:
    """``["3 ✓", "1 not reproduced"]`` -> {"ok": 3, "not-reproduced": 1} (every column)."""
    out = dict.fromkeys(CELL_COLUMNS, 0)
    for part in parts:
        n, word = part.strip().strip("*").split(" ", 1)
        out[words[word]] += int(n)
    return out


def test_the_classifier_gives_every_bucket() -> None:
    rs = results()
    assert [bucket(r) for r in rs] == expected_buckets()
    assert set(expected_buckets()) == set(BUCKETS)
    assert exit_code(rs) == 1


def test_summary_counts_and_lines_agree() -> None:
    rs = results()
    want = per_backend(rs, expected_buckets())
    assert counts(rs) == want
    names = {"conform": "conforms", "known wrong values/shapes": "known-wrong",
             "known cannot run": "known-cannot-run", "unsupported (as the spec)": "unsupported",
             "NEW discrepancies": "new",
             "known discrepancies did not reproduce here": "not-reproduced",
             "skipped": "skip"}
    for line in counts_line(rs):
        backend, rest = line.split(": ", 1)
        got = Counter()
        for part in rest.split(", "):
            n, name = part.split(" ", 1)
            got[names[name]] += int(n)
        assert got == want[backend], line


def test_terminal_matrix_agrees() -> None:
    rs = results()
    lines = matrix_lines(rs)
    head = [c.strip() for c in lines[0].split(" | ")]
    assert head == ["layer / op", *BACKENDS]
    words = {"ok": "ok", "FAIL": "fail", "xfail": "xfail", "not-reproduced": "not-reproduced",
             "unsupported": "unsupported", "skip": "skip"}
    want = per_cell(rs)
    seen = 0
    for line in lines[2:]:
        layer, *cells = [c.strip() for c in line.split(" | ")]
        for backend, text in zip(BACKENDS, cells):
            got = _parse_counts(re.findall(r"\d+ \S+", text), words)
            assert got == want[(layer, backend)], (layer, backend, text)
            seen += 1
    assert seen == len(want) == len(LAYERS) * len(BACKENDS)


def test_terminal_summary_agrees() -> None:
    rs = results()
    state = SimpleNamespace(outcomes=rs, fuzz={"filtered_known": 0}, keras_version="3.x",
                            profile="smoke", backends=list(BACKENDS), report_dir=None)
    lines: list[str] = []
    tr = SimpleNamespace(section=lambda title: lines.append(f"== {title}"),
                         write_line=lines.append)
    terminal_summary(state, tr)  # type: ignore[arg-type]
    total = Counter(expected_buckets())
    header = lines[1]
    assert f"{total['new']} NEW discrepancies" in header
    assert f"{total['unsupported']} unsupported (as the spec)" in header
    assert f"{total['conforms']} conform," in header
    assert f"{total['new']} discrepancies:" in lines
    listed = [line for line in lines if re.match(r"  \S+ on \S+: ", line)]
    assert len(listed) == total["new"]
    assert sum("stale known discrepancy entry-x" in line for line in listed) == 3
    assert any("1 known discrepancy did not reproduce here" in line for line in lines)


def test_report_json_summary_agrees(tmp_path: Path) -> None:
    rs = results()
    want = per_backend(rs, expected_buckets())
    summary = summarize(rs)
    assert summary["by_bucket"] == {b: sum(want[x][b] for x in BACKENDS) for b in BUCKETS}
    assert summary["by_backend_bucket"] == {x: {b: want[x][b] for b in BUCKETS}
                                            for x in BACKENDS}
    cells: dict[str, dict[str, Counter]] = {}
    for r in rs:
        cells.setdefault(r["layer"], {}).setdefault(r["backend"], Counter())[bucket(r)] += 1
    assert summary["bucket_matrix"] == {k: {b: dict(c) for b, c in v.items()}
                                        for k, v in cells.items()}
    # the verdict counts keep their meaning: the verdict field as written
    assert summary["by_verdict"]["pass"] == sum(r["verdict"] == "pass" for r in rs)
    # the writer summarizes slim copies of the results: they must keep what bucket() reads
    writer = ReportWriter(tmp_path, {})
    for r in rs:
        writer.add(r)
    writer.close(complete=True)
    written = json.loads((tmp_path / "report.json").read_text())
    for key in ("by_bucket", "by_backend_bucket", "bucket_matrix"):
        assert written["summary"][key] == summary[key], key
    doc = build_doc(rs, {}, ENV, True)
    validate(doc)
    doc["summary"]["by_bucket"]["new"] -= 1
    with pytest.raises(ValueError, match=r"summary\.by_bucket\.new"):
        validate(doc)


def test_report_md_matrix_agrees() -> None:
    rs = results()
    md = render_markdown(build_doc(rs, {}, ENV, True))
    lines = md.splitlines()
    at = lines.index("| layer / op | " + " | ".join(BACKENDS) + " |")
    words = {"✓": "ok", "✗": "fail", "xfail": "xfail", "not reproduced": "not-reproduced",
             "unsupported": "unsupported", "skip": "skip"}
    want = per_cell(rs)
    for line in lines[at + 2: at + 2 + len(LAYERS)]:
        layer, *cells = [c.strip() for c in line.strip("|").split(" | ")]
        for backend, text in zip(BACKENDS, cells):
            assert _parse_counts(text.split(" · "), words) == want[(layer, backend)], text
    n_new = Counter(expected_buckets())["new"]
    assert f"✗ **{n_new} failing**" in md
    assert f"## Failures ({n_new})" in md
    assert "## Stale known discrepancies (3)" in md
    assert "## Known discrepancies that did not reproduce here (2)" in md
    assert md.count("**stale known discrepancy entry-x**") == 3  # listed among the failures


def test_report_html_matrix_agrees() -> None:
    rs = results()
    page = render_html(build_doc(rs, {}, ENV, True))
    words = {"✓": "ok", "✗": "fail", "xfail": "xfail", "not reproduced": "not-reproduced",
             "unsupported": "unsupported", "skip": "skip"}
    want = per_cell(rs)
    found = re.findall(r'<td class="cell( bad)?" data-filter-backend="([^"]+)" '
                       r'data-filter-layer="([^"]+)"[^>]*>(.*?)</td>', page)
    assert len(found) == len(want)
    for bad, backend, layer, inner in found:
        spans = [html_lib.unescape(s) for s in
                 re.findall(r'<span class="n [a-z-]+">([^<]+)</span>', inner)]
        got = _parse_counts(spans, words)
        assert got == want[(layer, backend)], inner
        assert bool(bad) == bool(got["fail"])
    n_new = Counter(expected_buckets())["new"]
    assert page.count('data-fail="1"') == n_new
    assert f"<h3>Failures ({n_new})</h3>" in page
    assert f"<b>{n_new}</b>failing" in page
    assert "<b>Stale known discrepancies:</b> 3 results" in page
    assert "did not reproduce here:</b> 2 results" in page


def _outcome(r: dict[str, Any]) -> Outcome:
    return Outcome(case=ConvCase.from_json(r["case"]), backend=r["backend"],
                   verdict=r["verdict"], message=r["message"], known=r.get("known"),
                   observed_verdict=r.get("observed_verdict"))


class _Item:
    """What mark_known needs of a pytest item."""

    def __init__(self) -> None:
        self.markers: list[Any] = []

    def add_marker(self, marker: Any) -> None:
        self.markers.append(marker)


def _run(outcome: Outcome, fail_on_known: bool) -> str:
    """The pytest outcome that mark_known + enforce produce (as pytest would report it)."""
    item = _Item()
    plugin.mark_known(item, outcome, fail_on_known=fail_on_known)  # type: ignore[arg-type]
    xfail = [m for m in item.markers if m.name == "xfail"]
    try:
        plugin.enforce(outcome, fail_on_known=fail_on_known)
    except pytest.skip.Exception:
        assert not xfail
        return "skipped"
    except plugin.KnownDiscrepancy:
        (mark,) = xfail
        assert mark.kwargs["strict"] and mark.kwargs["raises"] is plugin.KnownDiscrepancy
        return "xfailed"
    except plugin.ConformanceFailure:
        assert not xfail  # a marker would turn this into something else
        return "failed"
    assert not xfail  # a passing test with a strict xfail mark would be XPASS(strict)
    return "passed"


@pytest.mark.parametrize("fail_on_known", [False, True])
def test_pytest_outcomes_agree(fail_on_known: bool) -> None:
    rs = results()
    got = per_backend(rs, [_run(_outcome(r), fail_on_known) for r in rs])
    want = per_backend(rs, [as_pytest_outcome(r, fail_on_known) for r in rs])
    assert got == want
    for r in rs:
        kind = bucket(r)
        expected = PYTEST_OUTCOMES[kind]
        if fail_on_known and expected == "xfailed":
            expected = "failed"
        assert as_pytest_outcome(r, fail_on_known) == expected
        assert _outcome(r).failed == (kind == "new")  # the engine's own notion agrees


def test_a_strict_stale_entry_fails_with_its_name() -> None:
    (r,) = [r for r in results() if (r.get("known") or {}).get("strict")][:1]
    with pytest.raises(plugin.ConformanceFailure, match="on tensorflow: stale known "
                       "discrepancy entry-x\nknown discrepancy entry-x no longer reproduces"):
        plugin.enforce(_outcome(r))


_PYTESTER_SUITE = """
import json, pytest
from conv_parity import plugin
from conv_parity.case import ConvCase
from conv_parity.judge.verdict import Outcome

RESULTS = json.load(open({path!r}))

@pytest.mark.parametrize("r", RESULTS, ids=[f"{{i}}-{{r['backend']}}" for i, r in
                                            enumerate(RESULTS)])
def test_case(request, r):
    o = Outcome(case=ConvCase.from_json(r["case"]), backend=r["backend"], verdict=r["verdict"],
                message=r["message"], known=r.get("known"),
                observed_verdict=r.get("observed_verdict"))
    plugin.mark_known(request.node, o)
    plugin.enforce(o)
"""


def test_pytest_tallies_what_the_classifier_says(pytester: pytest.Pytester) -> None:
    """pytest itself (markers added during the call, XPASS(strict) rules and all) reports the
    classifier's counts: no hidden XPASS(strict) failures."""
    rs = results()
    path = pytester.path / "results.json"
    path.write_text(json.dumps(rs))
    pytester.makepyfile(test_buckets=_PYTESTER_SUITE.format(path=str(path)))
    result = pytester.runpytest("-p", "no:conv_parity", "-p", "no:cacheprovider", "-q")
    tally = Counter(as_pytest_outcome(r) for r in rs)
    result.assert_outcomes(passed=tally["passed"], failed=tally["failed"],
                           xfailed=tally["xfailed"], skipped=tally["skipped"])
    assert "XPASS" not in result.stdout.str()

