"""The parameter grid: seeded samples of the cartesian product of every kind's arguments.

A profile is a fixed number of draws per kind from one seeded random generator, then *coverage
filling*: for every feature that hides bugs in other suites (H != W, stride > kernel, groups > 1,
batch 0, sizes that coincide, sizes that are all distinct, ...) a profile that lacks it gets
targeted draws until it has it. Then a few configurations the spec rejects, which every backend
must reject too. The same seed gives the same cases on every machine, so shards and CI runs agree;
a selection (layers, modes, policies, a shard) is a filter of those cases, never a new sample.
"""

from __future__ import annotations

import functools
import random
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from conv_parity import geometry, kinds
from conv_parity.case import ConvCase
from conv_parity.errors import InvalidConfig, UsageError
from conv_parity.integers import is_integer

PROFILES = ("smoke", "default", "full")
GRID_SEED = 20261126


@dataclass(frozen=True)
class Profile:
    per_kind: int  # random draws per kind before coverage filling
    invalid: int  # configurations the spec rejects
    dtypes: tuple[str, ...]
    max_spatial: int  # largest spatial size for 1D/2D inputs (3D uses about half)
    #: Mode -> every how many-th case of the grid also runs in that mode (1: all of them).
    #: Eager is every case. Why a share: a grad case costs ~2x an eager one, a jit case on
    #: torch (torch.compile) seconds, so the smaller profiles take a seeded subset.
    modes: tuple[tuple[str, int], ...] = (("eager", 1),)
    #: Dtype policy -> every how many-th case of the drawn grid is also run under it (before
    #: the modes' shares, so a policy's cases run in every mode). Same seeded-subset idea as
    #: ``modes``: a policy's question is mostly "does it run and return its dtype", which a
    #: share of the grid answers without multiplying the run time.
    policies: tuple[tuple[str, int], ...] = ()
    #: Value regime -> every how many-th case of the whole grid (policies and modes included)
    #: is also run with that input (0: only the cases the regime needs,
    #: :mod:`conv_parity.generate.regimes`).
    values: tuple[tuple[str, int], ...] = ()


_REGIMES = ("positive", "large", "nan", "inf", "ties", "zeros")

#: The share a mode gets when it is asked for (``--modes``) but its profile does not list it.
DEFAULT_MODE_EVERY = 4

_PROFILES = {
    "smoke": Profile(per_kind=1, invalid=4, dtypes=("float32",), max_spatial=9,
                     modes=(("eager", 1), ("predict", 6), ("grad", 4)),
                     values=(("nan", 0), ("ties", 0))),
    "default": Profile(per_kind=12, invalid=16, dtypes=("float32",), max_spatial=12,
                       modes=(("eager", 1), ("predict", 4), ("grad", 3)),
                       policies=(("float16", 12), ("bfloat16", 12), ("mixed_float16", 12),
                                 ("mixed_bfloat16", 12), ("float64", 12)),
                       values=tuple((regime, 40) for regime in _REGIMES)),
    "full": Profile(per_kind=40, invalid=60, dtypes=("float32", "float32", "float16", "float64"),
                    max_spatial=16, modes=(("eager", 1), ("predict", 1), ("jit", 4), ("grad", 1)),
                    policies=(("float16", 3), ("bfloat16", 3), ("mixed_float16", 3),
                              ("mixed_bfloat16", 3), ("float64", 3)),
                    values=tuple((regime, 12) for regime in _REGIMES)),
}


def in_mode_subset(case: ConvCase, mode: str, every: int) -> bool:
    """Whether ``case`` is in the seeded 1-in-``every`` subset that runs in ``mode``: a hash of
    the case's id and the mode, so the subset does not move when layers are filtered or the
    grid's order changes, and each mode gets a different subset."""
    return every <= 1 or zlib.crc32(f"{case.id}|{mode}".encode()) % every == 0


def with_policies(case_list: Iterable[ConvCase], profile: str,
                  policies: Iterable[str] | None = None) -> list[ConvCase]:
    """The grid plus each extra dtype policy's seeded share of it, remade under that policy
    (:func:`in_mode_subset` with ``policy:<name>``: a subset of its own). Ops take no mixed
    policy (see :mod:`conv_parity.policies`): they are left out of those.

    ``policies`` (``run --policies``, ``--conv-policies``) *narrows*: it keeps the cases whose
    policy is among those named, so a selection is a subset of the same profile and never a
    re-sample (issue 21). The drawn grid's own cases count only under their own policy
    (``float32``, and in ``full`` also the drawn float16 / float64 ones); a policy the profile
    does not list gets one case in :data:`DEFAULT_MODE_EVERY`, as an unlisted mode does.
    """
    from conv_parity import policies as records

    prof = _PROFILES[profile]
    shares = dict(prof.policies)
    named = None if policies is None else list(policies)
    for name in [*shares, *(named or ())]:
        records.get(name)
    for name in named or ():
        # integer policies have their own cases (generate/integer_dtypes.py), never a share
        if name not in shares and name not in prof.dtypes and not is_integer(name):
            shares[name] = DEFAULT_MODE_EVERY
    base = list(case_list)
    out: list[ConvCase] = list(base)
    for name, every in shares.items():
        if named is not None and name not in named:
            continue  # filtered out below anyway; each share is a hash, so skipping moves none
        for case in base:
            if case.kind.is_op and records.get(name).mixed:
                continue
            if in_mode_subset(case, f"policy:{name}", every):
                out.append(case if name == case.policy_name else ConvCase.make(
                    case.layer, case.kwargs, case.input_shape, name, mode=case.mode))
    if named is not None:
        out = [c for c in out if c.policy_name in named]
    return list(dict.fromkeys(out))


def with_modes(case_list: Iterable[ConvCase], profile: str,
               modes: Iterable[str] | None = None) -> list[ConvCase]:
    """The eager grid expanded to the modes: each mode's seeded subset of the cases, remade in
    that mode. ``modes`` (``--modes``) selects which run (default: the profile's own); a mode
    the profile does not list gets one case in :data:`DEFAULT_MODE_EVERY`."""
    from conv_parity import modes as registry

    shares = dict(_PROFILES[profile].modes)
    chosen = list(shares) if modes is None else list(modes)
    for name in chosen:
        registry.get(name)
    base = list(case_list)
    out: list[ConvCase] = []
    for name in chosen:
        every = shares.get(name, DEFAULT_MODE_EVERY)
        for case in base:
            if in_mode_subset(case, name, every):
                out.append(case if name == case.mode else ConvCase.make(
                    case.layer, case.kwargs, case.input_shape, case.policy_name, mode=name))
    return list(dict.fromkeys(out))


_kernel = geometry.window
_strides = geometry.strides


def _sizes_for_distinctness(case: ConvCase) -> list[int]:
    kw = case.kwargs
    sizes = [case.input_shape[0], kinds.channels(kw, case.input_shape), *case.spatial_shape]
    if "filters" in kw:
        sizes.append(kw["filters"])
    return sizes


#: Features a profile must contain (name -> predicate on a valid case). Each one has hidden a
#: real bug in some backend or suite: see DESIGN.md ("Layout bugs hide behind ambiguous shapes").
FEATURES: dict[str, Callable[[ConvCase], bool]] = {
    "non-square input (H != W)": lambda c: len(c.spatial_shape) >= 2 and c.spatial_shape[0] != c.spatial_shape[1],
    "square input (H == W)": lambda c: len(c.spatial_shape) >= 2 and c.spatial_shape[0] == c.spatial_shape[1],
    "asymmetric kernel": lambda c: len(set(_kernel(c))) > 1,
    "stride > 1": lambda c: max(_strides(c), default=1) > 1,
    "dilation > 1": lambda c: max(c.kwargs.get("dilation_rate", (1,))) > 1,
    "stride > kernel": lambda c: any(s > k for s, k in zip(_strides(c), _kernel(c))),
    "stride not dividing the input": lambda c: any(
        s > 1 and n % s for s, n in zip(_strides(c), c.spatial_shape)
    ),
    "even kernel": lambda c: any(k % 2 == 0 for k in _kernel(c)),
    "odd kernel > 1": lambda c: any(k % 2 == 1 and k > 1 for k in _kernel(c)),
    "padding same": lambda c: c.kwargs.get("padding") == "same",
    "padding valid": lambda c: c.kwargs.get("padding") == "valid",
    "padding causal": lambda c: c.kwargs.get("padding") == "causal",
    "channels_first": lambda c: c.kwargs["data_format"] == "channels_first",
    "channels_last": lambda c: c.kwargs["data_format"] == "channels_last",
    "groups > 1": lambda c: c.kwargs.get("groups", 1) > 1,
    "output_padding": lambda c: c.kwargs.get("output_padding") is not None,
    "depth_multiplier > 1": lambda c: c.kwargs.get("depth_multiplier", 1) > 1,
    "use_bias off": lambda c: c.kwargs.get("use_bias") is False,
    "use_bias on": lambda c: c.kwargs.get("use_bias") is True,
    "activation": lambda c: bool(c.kwargs.get("activation")),
    "batch 0": lambda c: c.input_shape[0] == 0,
    "batch 1": lambda c: c.input_shape[0] == 1,
    "batch > 1": lambda c: c.input_shape[0] > 1,
    "channels 1": lambda c: kinds.channels(c.kwargs, c.input_shape) == 1,
    "channels > 1": lambda c: kinds.channels(c.kwargs, c.input_shape) > 1,
    "kernel larger than the input": lambda c: any(
        k > n for k, n in zip(_kernel(c), c.spatial_shape)
    ),
    "filters equal to a spatial size": lambda c: c.kwargs.get("filters") in c.spatial_shape,
    "channels equal to a spatial size": lambda c: kinds.channels(c.kwargs, c.input_shape)
    in c.spatial_shape,
    "every size distinct": lambda c: len(set(_sizes_for_distinctness(c)))
    == len(_sizes_for_distinctness(c)),
    "pool strides None": lambda c: c.kind.is_pool and "strides" in c.kwargs
    and c.kwargs["strides"] is None,
    "global pool keepdims": lambda c: c.kwargs.get("keepdims") is True,
    "3D input": lambda c: len(c.spatial_shape) == 3,
}


def _tuple(rng: random.Random, rank: int, choices: list[int], symmetric_p: float = 0.5):
    if rng.random() < symmetric_p:
        return (rng.choice(choices),) * rank
    return tuple(rng.choice(choices) for _ in range(rank))


def draw_kwargs(kind: kinds.Kind, rng: random.Random, max_spatial: int) -> tuple[dict, tuple]:
    """One random configuration of `kind`: (raw kwargs, input shape). May be invalid."""
    rank = kind.rank or rng.choice([1, 2, 2, 3])
    fmt = rng.choice(kinds.DATA_FORMATS)
    hi = max_spatial if rank < 3 else max(3, max_spatial // 2)
    if rank >= 2 and rng.random() < 0.3:
        spatial = (rng.randint(1, hi),) * rank
    else:
        spatial = tuple(rng.randint(1, hi) for _ in range(rank))
    batch = rng.choices([0, 1, 2, 3], weights=[0.05, 0.45, 0.35, 0.15])[0]
    c_in = rng.choice([1, 2, 3, 4, 6, 8])
    kw: dict[str, Any] = {"data_format": fmt}
    kmax = 5 if rank < 3 else 3
    if kind.is_global:
        kw["keepdims"] = rng.random() < 0.5
    elif kind.is_adaptive:  # shrinking, growing (bins repeat) and equal sizes
        kw["output_size"] = tuple(rng.randint(1, n + 2) for n in spatial)
    elif kind.is_pool:
        kw["pool_size"] = _tuple(rng, rank, list(range(1, kmax)))
        kw["strides"] = None if rng.random() < 0.4 else _tuple(rng, rank, [1, 2, 3])
        kw["padding"] = rng.choice(["valid", "same"])
    else:
        kw["kernel_size"] = _tuple(rng, rank, list(range(1, kmax + 1)))
        kw["strides"] = _tuple(rng, rank, [1, 1, 2, 3])
        dilate = rng.random() < 0.3
        kw["dilation_rate"] = _tuple(rng, rank, [1, 2]) if dilate else (1,) * rank
        paddings = ["valid", "same"]
        if kind.name == "Conv1D":
            paddings.append("causal")
        kw["padding"] = rng.choice(paddings)
        fam = kind.family
        if fam in ("conv", "conv_transpose", "separable"):
            kw["filters"] = rng.choice([1, 2, 3, 4, 5, 8])
        if fam == "conv" and rng.random() < 0.3:
            g = rng.choice([d for d in (2, 3, 4) if c_in % d == 0] or [1])
            kw["groups"] = g
            kw["filters"] = g * rng.choice([1, 2])
        if fam in ("depthwise", "separable"):
            kw["depth_multiplier"] = rng.choice([1, 1, 2, 3])
        if fam == "conv_transpose" and rng.random() < 0.35:
            kw["output_padding"] = tuple(rng.randrange(0, s) for s in kw["strides"])
        if not kind.is_op:
            kw["use_bias"] = rng.random() < 0.7
            if rng.random() < 0.15:
                kw["activation"] = rng.choice(["relu", "tanh", "sigmoid"])
    shape = (batch, *spatial, c_in) if fmt == "channels_last" else (batch, c_in, *spatial)
    return kw, shape


def _try_case(kind: kinds.Kind, rng: random.Random, prof: Profile, dtype: str) -> ConvCase | None:
    from conv_parity import reference

    kw, shape = draw_kwargs(kind, rng, prof.max_spatial)
    try:
        case = ConvCase.make(kind.name, kw, shape, dtype=dtype)
        reference.output_shape(kind.name, shape, **case.kwargs)
    except (InvalidConfig, UsageError):
        return None
    return case


def _valid_case(kind: kinds.Kind, rng: random.Random, prof: Profile,
                want: Callable[[ConvCase], bool] | None = None,
                tries: int = 400) -> ConvCase | None:
    dtype = rng.choice(prof.dtypes)
    for _ in range(tries):
        case = _try_case(kind, rng, prof, dtype)
        if case is not None and (want is None or want(case)):
            return case
    return None


_INVALID_MAKERS: list[tuple[str, Callable[[random.Random], tuple[str, dict, tuple]]]] = [
    ("kernel larger than the input with valid padding",
     lambda r: ("Conv2D", {"filters": 2, "kernel_size": (5, 3), "padding": "valid"},
                (1, r.randint(1, 4), 6, 2))),
    ("groups not dividing the channels",
     lambda r: ("Conv2D", {"filters": 4, "kernel_size": 3, "groups": 2, "padding": "same"},
                (1, 6, 5, r.choice([3, 5])))),
    ("filters not divisible by groups",
     lambda r: ("Conv1D", {"filters": 3, "kernel_size": 2, "groups": 2}, (2, 7, 4))),
    ("output_padding >= strides",
     lambda r: ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2,
                                    "output_padding": (2, r.choice([0, 2]))}, (1, 5, 4, 3))),
    ("pool larger than the input with valid padding",
     lambda r: (r.choice(["MaxPooling2D", "AveragePooling2D"]),
                {"pool_size": (4, 4), "padding": "valid"}, (1, 3, 6, 2))),
    ("zero stride",
     lambda r: ("Conv1D", {"filters": 2, "kernel_size": 2, "strides": 0}, (1, 8, 2))),
    ("dilated kernel larger than the input",
     lambda r: ("Conv1D", {"filters": 2, "kernel_size": 3, "dilation_rate": 4}, (1, 8, 2))),
    ("causal padding on a 2D conv",
     lambda r: ("Conv2D", {"filters": 2, "kernel_size": 2, "padding": "causal"}, (1, 5, 5, 1))),
]


def _invalid_cases(rng: random.Random, count: int) -> list[ConvCase]:
    from conv_parity import reference

    out: list[ConvCase] = []
    for i in range(count):
        _, maker = _INVALID_MAKERS[i % len(_INVALID_MAKERS)]
        layer, kw, shape = maker(rng)
        try:
            case = ConvCase.make(layer, kw, shape)
        except UsageError:
            continue
        try:
            reference.output_shape(layer, shape, **case.kwargs)
        except InvalidConfig:
            out.append(case)
    return out


def cases(profile: str = "default", seed: int = GRID_SEED,
          layers: Iterable[str] | None = None,
          modes: Iterable[str] | None = None,
          policies: Iterable[str] | None = None) -> list[ConvCase]:
    """The cases of a profile, deterministic for a given seed; duplicates removed, order stable.
    Each extra dtype policy gets its share of them (:func:`with_policies`), then each mode (the
    profile's, or ``modes``) its share (:func:`with_modes`).

    ``layers``, ``modes`` and ``policies`` select a *subset* of the same cases: the whole grid
    is drawn as without a selection and then filtered, so a case's id, seed and verdict do not
    depend on what else was selected (issue 21: drawing only the selected kinds gave
    ``--layers AveragePooling3D`` 31 cases none of which the default profile runs)."""
    if profile not in _PROFILES:
        raise UsageError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    chosen = None if layers is None else {kinds.get_kind(name).name for name in layers}
    drawn = _drawn(profile, seed)
    base = drawn if chosen is None else [c for c in drawn if c.layer in chosen]
    out = with_modes(with_policies(base, profile, policies), profile, modes)
    named_policies = None if policies is None else set(policies)
    named_modes = None if modes is None else set(modes)
    # value-regime and call-form cases: drawn on the whole grid, then filtered
    for case in (*_regime_cases(profile, seed), *_call_form_cases(profile, seed),
                 *_integer_cases(profile, seed)):
        if ((chosen is None or case.layer in chosen)
                and (named_policies is None or case.policy_name in named_policies)
                and (named_modes is None or case.mode in named_modes)):
            out.append(case)
    return list(dict.fromkeys(out))


@functools.lru_cache(maxsize=8)
def _regime_cases(profile: str, seed: int) -> tuple[ConvCase, ...]:
    """The value-regime cases of a profile, chosen on its whole grid (every policy and mode)."""
    from conv_parity.generate.regimes import value_cases

    prof = _PROFILES[profile]
    if not prof.values:
        return ()
    whole = with_modes(with_policies(_drawn(profile, seed), profile), profile)
    return tuple(value_cases(whole, prof.values))


@functools.lru_cache(maxsize=8)
def _call_form_cases(profile: str, seed: int) -> tuple[ConvCase, ...]:
    """The call-form cases of a profile (:mod:`conv_parity.generate.call_forms`)."""
    from conv_parity.generate.call_forms import call_form_cases

    whole = with_modes(with_policies(_drawn(profile, seed), profile), profile)
    return tuple(call_form_cases(whole, profile))


@functools.lru_cache(maxsize=8)
def _integer_cases(profile: str, seed: int) -> tuple[ConvCase, ...]:
    """The integer-dtype cases of a profile (:mod:`conv_parity.generate.integer_dtypes`)."""
    from conv_parity.generate.integer_dtypes import integer_cases

    whole = with_modes(with_policies(_drawn(profile, seed), profile), profile)
    return tuple(integer_cases(whole, profile))


@functools.lru_cache(maxsize=8)
def _drawn(profile: str, seed: int) -> tuple[ConvCase, ...]:
    """The drawn grid of a profile (every kind, eager, before policies and modes): random
    draws per kind, coverage filling, then the invalid configurations. Cached: a selection
    is a filter of it and the pytest plugin, the CLI and the tests ask for it repeatedly."""
    prof = _PROFILES[profile]
    rng = random.Random(seed)
    out: dict[ConvCase, None] = {}
    windowed = [k for k in kinds.KINDS.values() if not k.is_adaptive]
    for kind in windowed:
        # a global pool varies only its sizes, data format and keepdims: a third of the draws
        for _ in range(max(1, prof.per_kind // 3) if kind.is_global else prof.per_kind):
            case = _valid_case(kind, rng, prof)
            if case is not None:
                out.setdefault(case)
    # Coverage filling: targeted draws for every feature the random draws missed.
    names = [k.name for k in windowed]
    for predicate in FEATURES.values():
        if any(predicate(c) for c in out):
            continue
        for name in rng.sample(names, len(names)):
            case = _valid_case(kinds.KINDS[name], rng, prof, want=predicate, tries=300)
            if case is not None:
                out.setdefault(case)
                break
    for case in _invalid_cases(rng, prof.invalid):
        out.setdefault(case)
    for case in adaptive_cases(prof, seed):
        out.setdefault(case)
    return tuple(out)


#: What adaptive pooling's bins hide bugs behind (the reference's docstring): bins that
#: overlap (the output does not divide the input), an output larger than the input (bins
#: repeat elements), output 1 (global pooling), both layouts (the symbolic shape of
#: channels_last is wrong in Keras 3.13-3.15), every rank.
ADAPTIVE_FEATURES: dict[str, Callable[[ConvCase], bool]] = {
    "bins overlap": lambda c: any(n % m for n, m in zip(c.spatial_shape, c.kwargs["output_size"])),
    "output larger than the input": lambda c: any(
        m > n for n, m in zip(c.spatial_shape, c.kwargs["output_size"])),
    "output 1": lambda c: 1 in c.kwargs["output_size"],
    "channels_first": FEATURES["channels_first"],
    "channels_last": FEATURES["channels_last"],
    "non-square input (H != W)": FEATURES["non-square input (H != W)"],
    "1D input": lambda c: len(c.spatial_shape) == 1,
    "2D input": lambda c: len(c.spatial_shape) == 2,
    "3D input": FEATURES["3D input"],
}


def adaptive_cases(prof: Profile, seed: int) -> list[ConvCase]:
    """The adaptive kinds' cases: half the draws of a kind, then filling for every
    :data:`ADAPTIVE_FEATURES` entry missing (per kind; in a profile of one draw per kind, over
    the adaptive kinds together, so the smoke run stays small). Drawn from generators of
    their own, so the kinds drawn before them keep their cases (they joined in issue 23)."""
    adaptive = [k for k in kinds.KINDS.values() if k.is_adaptive]
    rngs = {k.name: random.Random(f"{seed}:{k.name}") for k in adaptive}
    groups: list[list[ConvCase]] = []
    for kind in adaptive:
        draws = (_valid_case(kind, rngs[kind.name], prof)
                 for _ in range(max(1, prof.per_kind // 2)))
        groups.append([c for c in draws if c is not None])
    if prof.per_kind < 4:
        groups = [[c for g in groups for c in g]]
    fill = random.Random(f"{seed}:adaptive")
    for mine in groups:
        for predicate in ADAPTIVE_FEATURES.values():
            if any(predicate(c) for c in mine):
                continue
            names = sorted({c.layer for c in mine}) or [k.name for k in adaptive]
            for name in fill.sample(names, len(names)):
                case = _valid_case(kinds.KINDS[name], rngs[name], prof, want=predicate,
                                   tries=200)
                if case is not None:
                    mine.append(case)
                    break
    return list(dict.fromkeys(c for g in groups for c in g))


def missing_features(case_list: Iterable[ConvCase]) -> list[str]:
    """Features of FEATURES no valid case in `case_list` has (used by tests and `--conv-profile`)."""
    from conv_parity import reference

    valid = []
    for c in case_list:
        try:
            reference.output_shape(c.layer, c.input_shape, **c.kwargs)
            valid.append(c)
        except InvalidConfig:
            pass
    return [f for f, pred in FEATURES.items() if not any(pred(c) for c in valid)]


def shard(case_list: list[ConvCase], spec: str) -> list[ConvCase]:
    """The I-th of N deterministic, disjoint, covering slices ("I/N", 1-based) of `case_list`.

    Cases are assigned by a hash of their id, so a shard's content does not depend on which
    other cases exist (adding a case to the grid moves no other case between machines).
    """
    index, total = parse_shard(spec)
    return [c for c in case_list if zlib.crc32(c.id.encode()) % total == index - 1]


def parse_shard(spec: str) -> tuple[int, int]:
    try:
        i_str, n_str = str(spec).split("/")
        index, total = int(i_str), int(n_str)
    except ValueError:
        raise UsageError(f"shard must look like I/N (e.g. 1/4), got {spec!r}") from None
    if total < 1 or not 1 <= index <= total:
        raise UsageError(f"shard {spec!r}: need 1 <= I <= N")
    return index, total
