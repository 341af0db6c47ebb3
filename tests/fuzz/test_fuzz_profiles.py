"""Hypothesis profiles and CI shard seeds."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from conv_parity import fuzzing


class _Config:
    def __init__(self, profile: str | None, report: str | None = None) -> None:
        self.options = {"hypothesis_profile": profile, "conv_report": report}

    def getoption(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def getini(self, name: str) -> Any:
        return None


def test_profiles_registered(tmp_path: Any) -> None:
    fuzzing.register_hypothesis_profiles(_Config(None, str(tmp_path)))
    dev, ci, nightly = (settings.get_profile(p) for p in fuzzing.PROFILES)
    assert dev.max_examples <= 20 and dev.deadline is None
    assert ci.derandomize and ci.print_blob and ci.database is None and ci.deadline is None
    assert not nightly.derandomize and nightly.database is not None
    assert str(tmp_path) in str(nightly.database.path)
    for p in (dev, ci, nightly):
        assert Phase.shrink in p.phases and Phase.explain not in p.phases


def _fuzz_test() -> Any:
    draws: list[int] = []

    @given(st.integers(0, 10**9))
    def probe(x: int) -> None:
        draws.append(x)

    probe.draws = draws  # type: ignore[attr-defined]
    return probe


def _item(profile: str | None) -> Any:
    return SimpleNamespace(config=_Config(profile), obj=_fuzz_test())


def test_seed_for_shard_distinct_per_shard() -> None:
    seeds = []
    for shard in ("1/4", "2/4", "3/4", "4/4"):
        item = _item("ci")
        fuzzing.seed_for_shard(item, shard)
        seeds.append(item.obj._hypothesis_internal_use_seed)
    assert None not in seeds and len(set(seeds)) == 4
    again = _item("ci")
    fuzzing.seed_for_shard(again, "2/4")
    assert again.obj._hypothesis_internal_use_seed == seeds[1]  # fixed: reproducible


def test_seed_for_shard_changes_the_draws_under_ci() -> None:
    fuzzing.register_hypothesis_profiles()
    ci = settings.get_profile("ci")
    runs = {}
    for shard in ("1/2", "2/2", "1/2"):
        item = _item("ci")
        fuzzing.seed_for_shard(item, shard)
        settings(ci, max_examples=5)(item.obj)()
        runs.setdefault(shard, []).append(item.obj.draws)
    assert runs["1/2"][0] == runs["1/2"][1]
    assert runs["1/2"][0] != runs["2/2"][0]


def test_seed_for_shard_leaves_other_cases_alone() -> None:
    for profile, shard in (("ci", None), ("dev", "1/2"), ("nightly", "1/2")):
        item = _item(profile)
        fuzzing.seed_for_shard(item, shard)
        assert item.obj._hypothesis_internal_use_seed is None
    plain = SimpleNamespace(config=_Config("ci"), obj=lambda: None)
    fuzzing.seed_for_shard(plain, "1/2")  # not a hypothesis test: ignored


def test_suite_settings_scale_the_profile_budget() -> None:
    fuzzing.register_hypothesis_profiles()
    current = fuzzing.active_profile()
    base = settings.get_profile("dev") if current in (None, "default") else settings.default
    s = fuzzing.suite_settings(0.5)
    assert s.deadline is None
    assert s.max_examples == max(1, round(base.max_examples * 0.5))
