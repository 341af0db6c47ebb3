"""Grid profiles: deterministic, covering every bug-hiding feature, shardable."""

from __future__ import annotations

import pytest

from conv_parity import grid, kinds
from conv_parity.errors import UsageError
from conv_parity.reference import output_shape


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_profiles_cover_every_feature(profile: str) -> None:
    cases = grid.cases(profile)
    assert grid.missing_features(cases) == []


def test_profiles_are_deterministic_and_sized() -> None:
    smoke, default = grid.cases("smoke"), grid.cases("default")
    assert smoke == grid.cases("smoke")
    assert 20 <= len(smoke) <= 60
    assert 150 <= len(default) <= 600
    assert {c.layer for c in default} == set(kinds.KINDS)
    assert len({c.id for c in default}) == len(default)


def test_each_profile_has_invalid_cases_the_spec_rejects() -> None:
    from conv_parity.errors import InvalidConfig

    invalid = 0
    for case in grid.cases("default"):
        try:
            output_shape(case.layer, case.input_shape, **case.kwargs)
        except InvalidConfig:
            invalid += 1
    assert invalid >= 8


def test_shards_partition_the_cases() -> None:
    cases = grid.cases("default")
    shards = [grid.shard(cases, f"{i}/3") for i in (1, 2, 3)]
    assert sorted(c.id for s in shards for c in s) == sorted(c.id for c in cases)
    assert all(shards)


@pytest.mark.parametrize("spec", ["0/3", "4/3", "x", "1/0", "1-3"])
def test_bad_shard_specs(spec: str) -> None:
    with pytest.raises(UsageError, match="shard"):
        grid.parse_shard(spec)


def test_unknown_profile_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="profile 'huge'"):
        grid.cases("huge")
