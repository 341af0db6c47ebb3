"""Grid profiles: deterministic, covering every bug-hiding feature, shardable."""

from __future__ import annotations

import pytest

from conv_parity import grid, kinds
from conv_parity.case import ConvCase
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
    assert 150 <= len(default) <= 800  # 42 kinds (with the global pools), modes and policies
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


def test_profiles_give_each_mode_its_seeded_share() -> None:
    from collections import Counter

    default = grid.cases("default")
    by_mode = Counter(c.mode for c in default)
    eager = by_mode["eager"]
    assert set(by_mode) == {"eager", "predict", "grad"}  # jit only in full or when asked
    assert eager // 6 <= by_mode["predict"] <= eager // 2
    assert eager // 5 <= by_mode["grad"] <= eager // 2
    assert set(Counter(c.mode for c in grid.cases("full"))) == {"eager", "predict", "jit", "grad"}
    # a grad case is an eager case of the grid remade in grad mode
    eager_configs = {(c.layer, c.kwargs_items, c.input_shape) for c in default
                     if c.mode == "eager"}
    assert all((c.layer, c.kwargs_items, c.input_shape) in eager_configs
               for c in default if c.mode == "grad")


def test_asked_modes_replace_the_profiles_and_subsets_do_not_move() -> None:
    asked = grid.cases("default", modes=["jit", "grad"])
    assert {c.mode for c in asked} == {"jit", "grad"}
    grad_all = {c for c in grid.cases("default") if c.mode == "grad"}
    assert {c for c in asked if c.mode == "grad"} == grad_all
    # filtering layers keeps each case's membership: the subset is a hash of the case's id
    conv = {c for c in grid.cases("default", layers=["Conv2D"]) if c.mode == "grad"}
    assert conv and all(grid.in_mode_subset(
        ConvCase.make(c.layer, c.kwargs, c.input_shape, c.policy_name), "grad", 3) for c in conv)
    with pytest.raises(UsageError, match="unknown mode 'fast'"):
        grid.cases("smoke", modes=["fast"])


def test_policies_get_a_seeded_share_and_smoke_stays_float32() -> None:
    """default: float32 plus a share of the grid under every other policy (ops never under a
    mixed one), each policy's share in the modes too; smoke is unchanged; --policies runs the
    whole grid under the policies named."""
    from conv_parity.policies import POLICIES

    default = grid.cases("default")
    assert {c.policy_name for c in default} == set(POLICIES)
    assert {c.mode for c in default if c.policy_name == "mixed_bfloat16"} >= {"eager", "grad"}
    assert not [c for c in default if c.kind.is_op and c.policy is not None]
    assert {c.policy_name for c in grid.cases("smoke")} == {"float32"}
    full = grid.cases("full")
    assert {c.policy_name for c in full} == set(POLICIES)
    only = grid.cases("smoke", policies=["bfloat16"])
    assert {c.policy_name for c in only} == {"bfloat16"}
    assert len({(c.layer, c.kwargs_items, c.input_shape) for c in only}) == len(
        {(c.layer, c.kwargs_items, c.input_shape) for c in grid.cases("smoke")})
