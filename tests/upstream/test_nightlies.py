"""keras-nightly versions without the network: dates from versions, date ranges, the cache
layout, the merged release + nightly list of a bisect, and which Keras `run --keras` watches."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from packaging.version import Version

from conv_parity.errors import UsageError
from conv_parity.upstream import nightlies, releases
from conv_parity.upstream import watch as upstream_watch

N = [Version(v) for v in ("3.15.0.dev2026062405", "3.16.0.dev2026092318", "3.16.0.dev2026100104",
                          "3.16.0.dev2026102604", "3.16.0.dev2026102704")]


def test_nightly_date_reads_the_dev_number():
    assert nightlies.nightly_date("3.16.0.dev2026102704") == dt.date(2026, 10, 27)
    assert nightlies.nightly_date(Version("3.16.0.dev2026092318")) == dt.date(2026, 9, 23)
    for bad in ("3.15.1", "3.16.0.dev1", "3.16.0rc1"):
        with pytest.raises(UsageError, match="not a keras-nightly version"):
            nightlies.nightly_date(bad)
    with pytest.raises(UsageError, match="not a date"):
        nightlies.nightly_date("3.16.0.dev2026023104")  # 31 February
    assert nightlies.is_nightly("3.16.0.dev2026102704")
    assert not nightlies.is_nightly("3.15.1") and not nightlies.is_nightly("banana")


def test_parse_nightlies_keeps_keras3_nightlies_oldest_first():
    got = nightlies.parse_nightlies([" 3.16.0.dev2026102704", "3.15.1", "x", "2.16.0.dev2024010100",
                                     "3.15.0.dev2026062405", "3.16.0.dev1"])
    assert got == [Version("3.15.0.dev2026062405"), Version("3.16.0.dev2026102704")]


def test_select_nightlies_by_date_range():
    assert nightlies.select_nightlies(N, "2026-10-01..2026-10-26") == N[2:4]
    assert nightlies.select_nightlies(N, "2026-10-26..") == N[3:]
    assert nightlies.select_nightlies(N, "..2026-09-23") == N[:2]
    assert nightlies.select_nightlies(N, "2026-10-27") == N[4:]
    assert nightlies.select_nightlies(N, None) == N
    with pytest.raises(UsageError, match=r"holds none of the nightlies known here \(5: "
                                         r"2026-06-24 to 2026-10-27\)"):
        nightlies.select_nightlies(N, "2026-11-01..2026-12-01")
    with pytest.raises(UsageError, match="'yesterday' is not a date"):
        nightlies.select_nightlies(N, "yesterday..")
    with pytest.raises(UsageError, match="ends before it starts"):
        nightlies.date_range("2026-10-27..2026-10-01")


def test_last_nightlies_ends_at_the_watched_one():
    assert nightlies.last_nightlies(N, N[3], 2) == N[2:4]
    assert nightlies.last_nightlies(N, N[4], 100) == N
    with pytest.raises(UsageError, match=">= 1"):
        nightlies.last_nightlies(N, N[4], 0)


def test_cache_layout_keeps_nightlies_apart_from_releases(tmp_path: Path):
    for name in ("keras-nightly-3.16.0.dev2026102704", "keras-3.15.1",
                 "keras-nightly-3.16.0.dev2026102604"):
        (tmp_path / name / "keras").mkdir(parents=True)
    for name in ("keras-nightly-3.16.0.dev2026102704", "keras-3.15.1"):
        (tmp_path / name / "keras" / "__init__.py").write_text("")
    assert nightlies.cached_nightlies(tmp_path) == [Version("3.16.0.dev2026102704")]
    assert releases.cached_versions(tmp_path) == [Version("3.15.1")]
    assert nightlies.nightly_dir("3.16.0.dev2026102704", tmp_path) == \
        tmp_path / "keras-nightly-3.16.0.dev2026102704"
    assert nightlies.nightly_dir("3.16.0.dev2026102604", tmp_path) is None  # half an install
    assert nightlies.ensure_nightly("3.16.0.dev2026102704", tmp_path) == \
        tmp_path / "keras-nightly-3.16.0.dev2026102704"  # cached: no pip


def test_label_names_a_nightly_by_its_date():
    assert nightlies.label("3.16.0.dev2026102704") == "3.16.0.dev2026102704 (nightly 2026-10-27)"
    assert nightlies.label(Version("3.15.1")) == "3.15.1"


@pytest.fixture
def offline(monkeypatch):
    """pip's index answers with fixed lists (no network)."""
    monkeypatch.setattr(releases, "index_versions",
                        lambda *a, **k: [Version(v) for v in ("3.14.1", "3.15.0", "3.15.1")])
    monkeypatch.setattr(nightlies, "index_nightlies", lambda *a, **k: list(N))


def test_candidates_merge_releases_and_nightlies_in_version_order(offline, tmp_path):
    chosen, known, notes = nightlies.candidates("3.15..", "2026-10-26..", tmp_path)
    assert [str(v) for v in chosen] == ["3.15.0", "3.15.1", "3.16.0.dev2026102604",
                                        "3.16.0.dev2026102704"]
    assert known[-1] == Version("3.15.1") and notes == []
    only, _, _ = nightlies.candidates(None, "2026-09-01..2026-10-01", tmp_path)
    assert only == N[1:3]
    releases_only, _, _ = nightlies.candidates("3.15", None, tmp_path)
    assert releases_only == [Version("3.15.0"), Version("3.15.1")]


def test_candidates_fall_back_to_the_cache_when_pip_is_offline(monkeypatch, tmp_path):
    def down(*_a, **_k):
        raise releases.ReleaseUnavailable("pip index versions keras-nightly failed: no index")

    monkeypatch.setattr(nightlies, "index_nightlies", down)
    monkeypatch.setattr(releases, "index_versions", lambda *a, **k: [Version("3.15.1")])
    (tmp_path / "keras-nightly-3.16.0.dev2026102604" / "keras").mkdir(parents=True)
    (tmp_path / "keras-nightly-3.16.0.dev2026102604" / "keras" / "__init__.py").write_text("")
    chosen, _, notes = nightlies.candidates(None, "2026-10-01..", tmp_path)
    assert chosen == [Version("3.16.0.dev2026102604")]
    assert notes == [f"pip index versions keras-nightly failed: no index; using the 1 nightlies "
                     f"in {tmp_path}"]


@pytest.mark.parametrize(("spec", "version", "package"), [
    ("nightly", "3.16.0.dev2026102704", "keras-nightly"),
    ("2026-10-01", "3.16.0.dev2026100104", "keras-nightly"),
    ("3.16.0.dev2026092318", "3.16.0.dev2026092318", "keras-nightly"),
    ("3.14.1", "3.14.1", "keras"),
])
def test_watch_resolve_installs_what_the_spec_names(offline, monkeypatch, tmp_path, spec,
                                                    version, package):
    installed = []

    def fake_ensure(v, cache, python=None, timeout=0.0, package="keras"):
        installed.append((str(v), package))
        return cache / f"{package}-{v}"

    monkeypatch.setattr(upstream_watch, "ensure", fake_ensure)
    target = upstream_watch.resolve(spec, tmp_path)
    assert (str(target.version), target.folder) == (version, tmp_path / f"{package}-{version}")
    assert installed == [(version, package)]
    assert target.nightly_date == (str(nightlies.nightly_date(version))
                                   if package == "keras-nightly" else None)
    assert (target.served == N) == (package == "keras-nightly")  # a release needs no nightlies


def test_watch_resolve_rejects_what_pip_cannot_fetch(offline, monkeypatch, tmp_path):
    def fail(*_a, **_k):
        raise releases.ReleaseUnavailable("keras 9.9.9: pip could not install it: no match")

    monkeypatch.setattr(upstream_watch, "ensure", fail)
    with pytest.raises(UsageError, match=r"--keras 9\.9\.9: keras 9\.9\.9: pip could not install"):
        upstream_watch.resolve("9.9.9", tmp_path)
    with pytest.raises(UsageError, match="holds none of the nightlies"):
        upstream_watch.resolve("2025-01-01", tmp_path)
