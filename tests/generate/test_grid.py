"""Grid profiles: deterministic, covering every bug-hiding feature, shardable."""

from __future__ import annotations

import pytest

from conv_parity import kinds
from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.generate import grid
from conv_parity.reference import output_shape


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_profiles_cover_every_feature(profile: str) -> None:
    cases = grid.cases(profile)
    assert grid.missing_features(cases) == []


def test_profiles_are_deterministic_and_sized() -> None:
    smoke, default = grid.cases("smoke"), grid.cases("default")
    assert smoke == grid.cases("smoke")
    # the value-regime and call-form cases (issue 23) add about 10% to each, the integer
    # cases (issue 23 item 3) 8 to smoke and 100 to default, the adaptive kinds (item 5) 9 to
    # smoke and 126 to default
    assert 20 <= len(smoke) <= 80
    assert 150 <= len(default) <= 1100  # every kind, modes, policies, regimes, forms, ints
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
    mixed one), each policy's share in the modes too; smoke is unchanged; --policies keeps the
    cases under the policies named, and a policy the profile does not list gets its seeded
    share (one case in DEFAULT_MODE_EVERY), as an unlisted mode does."""
    from conv_parity.policies import INT_DTYPES, POLICIES

    default = grid.cases("default")
    assert {c.policy_name for c in default} == set(POLICIES)
    assert {c.mode for c in default if c.policy_name == "mixed_bfloat16"} >= {"eager", "grad"}
    assert not [c for c in default if c.kind.is_op and c.policy is not None]
    smoke = grid.cases("smoke")
    # beside its handful of integer cases (tests/generate/test_integer_dtypes.py)
    assert {c.policy_name for c in smoke if c.policy_name not in INT_DTYPES} == {"float32"}
    full = grid.cases("full")
    assert {c.policy_name for c in full} == set(POLICIES)
    only = grid.cases("smoke", policies=["bfloat16"])
    assert only and {c.policy_name for c in only} == {"bfloat16"}
    smoke_configs = {(c.layer, c.kwargs_items, c.input_shape) for c in smoke}
    only_configs = {(c.layer, c.kwargs_items, c.input_shape) for c in only}
    assert only_configs < smoke_configs  # a share of smoke's configurations, not all of them
    assert all(grid.in_mode_subset(ConvCase.make(layer, dict(items), shape), "policy:bfloat16",
                                   grid.DEFAULT_MODE_EVERY)
               for layer, items, shape in only_configs)
    assert grid.cases("smoke", policies=["float32"]) == [
        c for c in smoke if c.policy_name == "float32"]


# Selections narrow; they never re-sample (issue 21): a case's id and seed are the same whether
# or not others are selected, so its verdict is a function of the case, never of the run.

def _ids(case_list: list[ConvCase]) -> set[str]:
    return {f"{c.id}|{c.seed}" for c in case_list}


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_layer_selections_are_subsets_whose_union_is_the_profile(profile: str) -> None:
    whole = grid.cases(profile)
    union: set[str] = set()
    for name in kinds.KINDS:
        picked = grid.cases(profile, layers=[name])
        assert {c.layer for c in picked} <= {name}
        assert _ids(picked) == _ids([c for c in whole if c.layer == name]), name
        union |= _ids(picked)
    assert union == _ids(whole)
    pair = grid.cases(profile, layers=["Conv2D", "AveragePooling3D"])
    assert pair == [c for c in whole if c.layer in ("Conv2D", "AveragePooling3D")]


def test_a_layer_selection_keeps_the_profiles_invalid_cases_of_that_layer() -> None:
    from conv_parity.errors import InvalidConfig

    def invalid(case: ConvCase) -> bool:
        try:
            output_shape(case.layer, case.input_shape, **case.kwargs)
        except InvalidConfig:
            return True
        return False

    whole = [c for c in grid.cases("default") if c.layer == "Conv2D" and invalid(c)]
    assert whole and whole == [c for c in grid.cases("default", layers=["Conv2D"]) if invalid(c)]


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_mode_selections_are_subsets_and_do_not_depend_on_each_other(profile: str) -> None:
    whole = grid.cases(profile)
    listed = [name for name, _ in grid._PROFILES[profile].modes]
    union: set[str] = set()
    for mode in listed:
        picked = grid.cases(profile, modes=[mode])
        assert _ids(picked) == _ids([c for c in whole if c.mode == mode]), mode
        union |= _ids(picked)
    assert union == _ids(whole)
    # a mode the profile does not list: its share is the same alone or beside others
    jit = grid.cases(profile, modes=["jit"])
    assert jit and _ids(jit) == _ids([c for c in grid.cases(profile, modes=["jit", *listed])
                                      if c.mode == "jit"])


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_policy_selections_are_subsets_and_do_not_depend_on_each_other(profile: str) -> None:
    from conv_parity.policies import POLICIES

    whole = grid.cases(profile)
    union: set[str] = set()
    for policy in POLICIES:
        picked = grid.cases(profile, policies=[policy])
        assert {c.policy_name for c in picked} <= {policy}
        if {c.policy_name for c in whole} >= {policy}:
            assert _ids(picked) == _ids([c for c in whole if c.policy_name == policy]), policy
            union |= _ids(picked)
        else:  # unlisted (smoke): a seeded share of the drawn grid, whatever else is named
            assert picked and not _ids(picked) & _ids(whole)
        both = grid.cases(profile, policies=[policy, "float32"])
        assert _ids(both) == _ids(picked) | _ids(grid.cases(profile, policies=["float32"]))
    assert union == _ids(whole)


def test_selections_combine_as_one_filter_of_the_profile() -> None:
    whole = grid.cases("default")
    layers = ("Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D")
    picked = grid.cases("default", layers=layers, modes=["eager", "grad"],
                        policies=["mixed_bfloat16", "float32"])
    assert picked == [c for c in whole if c.layer in layers and c.mode in ("eager", "grad")
                      and c.policy_name in ("mixed_bfloat16", "float32")]
    assert {(c.policy_name, c.mode) for c in picked} == {
        (p, m) for p in ("mixed_bfloat16", "float32") for m in ("eager", "grad")}


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_shards_of_a_selection_are_the_selection_of_the_shards(profile: str) -> None:
    whole = grid.cases(profile)
    picked = grid.cases(profile, layers=["Conv1D", "MaxPooling2D", "ops.conv"])
    for spec in ("1/3", "2/3", "3/3"):
        assert grid.shard(picked, spec) == [c for c in grid.shard(whole, spec) if c in picked]
    assert _ids([c for i in (1, 2, 3) for c in grid.shard(whole, f"{i}/3")]) == _ids(whole)


def test_adaptive_kinds_cover_their_features() -> None:
    """Every adaptive kind in both profiles; default has each of ADAPTIVE_FEATURES per kind,
    smoke each of them among the adaptive kinds together (one draw per kind)."""
    adaptive = [k.name for k in kinds.KINDS.values() if k.is_adaptive]
    assert len(adaptive) == 8
    for profile in ("smoke", "default"):
        got = [c for c in grid.cases(profile) if c.kind.is_adaptive and c.mode == "eager"
               and c.values == "normal" and c.call_form == "tensor"]
        assert {c.layer for c in got} == set(adaptive), profile
        groups = [got] if profile == "smoke" else [
            [c for c in got if c.layer == name] for name in adaptive]
        for group in groups:
            missing = [f for f, pred in grid.ADAPTIVE_FEATURES.items()
                       if not any(pred(c) for c in group)
                       and not (f.endswith("D input") and group[0].kind.rank is not None)
                       and not (f.startswith("non-square") and group[0].kind.rank == 1)]
            assert not missing, (profile, group[0].layer, missing)


def test_adaptive_draws_leave_the_other_kinds_alone(monkeypatch) -> None:
    """The adaptive kinds draw from generators of their own: a kind table without them gives
    the rest of the grid as the same cases in the same order (they joined in issue 23)."""
    whole = [c for c in grid._drawn("default", grid.GRID_SEED) if not c.kind.is_adaptive]
    grid._drawn.cache_clear()
    monkeypatch.setattr(kinds, "KINDS",
                        {n: k for n, k in kinds.KINDS.items() if not k.is_adaptive})
    try:
        assert list(grid._drawn("default", grid.GRID_SEED)) == whole
    finally:
        grid._drawn.cache_clear()
