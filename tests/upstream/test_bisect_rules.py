"""The bisect's pure parts on synthetic data: the release list, the search, the registry edit."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from conv_parity.errors import UsageError
from conv_parity.registry import DEFAULT_PATH, Registry
from conv_parity.upstream import registry_edit, releases
from conv_parity.upstream.bisect import NO_IMPORT, UNREACHABLE, Bisection, Tried, search

V = [Version(v) for v in ("3.1.0", "3.2.0", "3.3.3", "3.4.1", "3.5.0", "3.6.0", "3.7.0",
                          "3.8.0", "3.9.0", "3.10.0")]


def test_parse_versions_keeps_keras3_finals_oldest_first():
    got = releases.parse_versions(["3.2.0", "2.15.0", "3.1.0rc1", "x", " 3.1.0", "3.10.0"])
    assert got == [Version("3.1.0"), Version("3.2.0"), Version("3.10.0")]


def test_select_short_upper_end_covers_its_patches():
    vs = [Version(v) for v in ("3.0.5", "3.1.0", "3.14.0", "3.15.0", "3.15.1")]
    assert releases.select(vs, "3.1..3.15") == vs[1:]
    assert releases.select(vs, "3.14..3.14") == [Version("3.14.0")]
    assert releases.select(vs, None) == vs[1:]  # 3.0.x is below the default oldest
    with pytest.raises(UsageError, match=r"3\.1\.\.3\.15"):
        releases.select(vs, "three..four")
    with pytest.raises(UsageError, match="holds none"):
        releases.select(vs, "4.0..4.1")


def test_cached_versions_reads_both_layouts(tmp_path: Path):
    for name in ("keras-3.4.1", "3.10.0", "junk", "keras-3.9.0"):
        (tmp_path / name / "keras").mkdir(parents=True)
    for name in ("keras-3.4.1", "3.10.0"):
        (tmp_path / name / "keras" / "__init__.py").write_text("")
    assert releases.cached_versions(tmp_path) == [Version("3.4.1"), Version("3.10.0")]
    assert releases.release_dir("3.10.0", tmp_path) == tmp_path / "3.10.0"
    assert releases.release_dir("3.9.0", tmp_path) is None  # half an install is not one


def test_first_on_path_restores_pythonpath(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", "/a")
    with releases.first_on_path(tmp_path):
        import os

        assert os.environ["PYTHONPATH"] == f"{tmp_path}{os.pathsep}/a"
    assert os.environ["PYTHONPATH"] == "/a"


def _probe(states: dict[str, str], calls: list[str]):
    def probe(v: Version) -> Tried:
        calls.append(str(v))
        s = states[str(v)]
        return Tried(v, s, {} if s in (NO_IMPORT, UNREACHABLE) else {"tensorflow": s})
    return probe


def test_search_finds_the_fix_in_log_steps():
    states = {str(v): ("fail-values" if v < Version("3.7.0") else "pass") for v in V}
    calls: list[str] = []
    found = search(V, _probe(states, calls))
    assert (str(found.before.version), str(found.after.version)) == ("3.6.0", "3.7.0")
    assert found.direction == "fixed"
    assert len(calls) <= 6 and len(set(calls)) == len(calls)


def test_search_introduced_and_no_import_at_the_old_end():
    states = {str(v): ("pass" if v < Version("3.5.0") else "fail-shape") for v in V}
    for old in ("3.1.0", "3.2.0", "3.3.3"):
        states[old] = NO_IMPORT
    found = search(V, _probe(states, []))
    assert found.direction == "introduced"
    assert (str(found.before.version), str(found.after.version)) == ("3.4.1", "3.5.0")
    assert [t.state for t in found.tried if str(t.version) == "3.1.0"] == [NO_IMPORT]


def test_search_steps_over_unreachable_and_reports_the_gap():
    states = {str(v): ("fail-values" if v < Version("3.6.0") else "pass") for v in V}
    states["3.5.0"] = UNREACHABLE
    states["3.6.0"] = UNREACHABLE
    found = search(V, _probe(states, []))
    assert (str(found.before.version), str(found.after.version)) == ("3.4.1", "3.7.0")
    assert found.gap == [Version("3.5.0"), Version("3.6.0")]


def test_search_without_a_change_says_none():
    found = search(V, _probe({str(v): "pass" for v in V}, []))
    assert found.after is None and found.direction is None
    found = search(V, _probe({str(v): NO_IMPORT for v in V}, []))
    assert not any(t.ran for t in found.tried)


def _entry(entry_id: str):
    return next(e for e in Registry.load().entries if e.id == entry_id)


def test_proposal_keeps_an_equivalent_specifier_and_adds_fixed_in():
    entry = _entry("tf-depthwise-channels-first-cpu-before-3.15")  # keras "<3.15", no fixed_in
    known = [Version(v) for v in ("3.13.2", "3.14.0", "3.14.1", "3.15.0", "3.15.1")]
    found = Bisection([], Tried(Version("3.14.1"), "tf=fail-error-parity",
                                {"tf": "fail-error-parity"}),
                      Tried(Version("3.15.0"), "tf=pass", {"tf": "pass"}))
    assert registry_edit.proposed_fields(entry, found, known) == {"fixed_in": "3.15.0"}
    later = Bisection([], found.before, Tried(Version("3.15.1"), "tf=pass", {"tf": "pass"}))
    assert registry_edit.proposed_fields(entry, later, known) == {
        "keras": "<3.15.1", "fixed_in": "3.15.1"}


def test_proposal_respects_a_recorded_fix_between_the_releases_tried():
    entry = _entry("torch-avgpool-same-zero-padded-before-3.5")  # "<3.5", fixed_in 3.5.0
    known = [Version(v) for v in ("3.4.1", "3.10.0", "3.14.0")]
    found = Bisection([], Tried(Version("3.4.1"), "torch=fail-values", {"torch": "fail-values"}),
                      Tried(Version("3.10.0"), "torch=pass", {"torch": "pass"}))
    assert registry_edit.proposed_fields(entry, found, known) == {}


def test_edit_applies_atomically_and_refuses_a_bad_registry(tmp_path: Path):
    path = tmp_path / "known.toml"
    old = DEFAULT_PATH.read_text()
    path.write_text(old)
    new = registry_edit.edit_text(old, "tf-depthwise-channels-first-cpu-before-3.15",
                                  {"keras": "<3.15.1", "fixed_in": "3.15.1"})
    diff = registry_edit.unified_diff(old, new, "known.toml")
    assert '-keras = "<3.15"' in diff and '+keras = "<3.15.1"' in diff
    added = [ln for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    assert added == ['+keras = "<3.15.1"', '+fixed_in = "3.15.1"']
    registry_edit.write_registry(path, new)
    entry = next(e for e in Registry.load(path).entries
                 if e.id == "tf-depthwise-channels-first-cpu-before-3.15")
    assert entry.fixed_in == "3.15.1" and str(entry.keras) == "<3.15.1"
    broken = registry_edit.edit_text(new, "tf-depthwise-channels-first-cpu-before-3.15",
                                     {"keras": "not a specifier"})
    with pytest.raises(UsageError):
        registry_edit.write_registry(path, broken)
    assert path.read_text() == new  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["known.toml"]  # no temporary left
    with pytest.raises(UsageError, match="no-such-entry"):
        registry_edit.edit_text(old, "no-such-entry", {"fixed_in": "3.9.0"})
