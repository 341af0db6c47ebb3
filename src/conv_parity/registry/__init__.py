"""Known upstream discrepancies, as data (``known_discrepancies.toml`` beside this module).

Each entry scopes one confirmed Keras/backend bug: a Keras version specifier, the backends, the
layers, a predicate on the case, dtype / dtype-policy / mode scope, the platform facts it needs (TF's oneDNN on or
off, ...: reported by each worker, see :mod:`conv_parity.facts`), the verdict it produces, the
release that fixed it and an upstream link.
The engine turns a matching outcome into ``xfail``; a matching case that now *passes* fails the
run (strict: delete the entry), and an entry that matches no collected case is warned about.
``python -m conv_parity.registry --write docs/known-discrepancies.md`` regenerates the table.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from conv_parity import backends as targets
from conv_parity import bug_models, geometry, kinds
from conv_parity import facts as fact_records
from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.vocabulary import FAILURE_VERDICTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "known_discrepancies.toml"


def _same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    """TF-style "same" padding of one axis: (before, after), the extra one after."""
    if s <= 0:  # the spec rejects it; no padding is defined
        return 0, 0
    return geometry.same_padding(n, k, s)


def _edge_replication_visible(case: ConvCase) -> bool:
    """A same-padded pooling whose padding is asymmetric on some axis, and where copying edge
    values into the padding (instead of leaving it out) changes an average: a border window
    holds padding and at least two real elements. Symmetric padding needs no explicit pad."""
    kw = case.kwargs
    if kw.get("padding") != "same" or "pool_size" not in kw:
        return False
    window, strides = geometry.window(case), geometry.strides(case)
    pads = [_same_pads(n, k, s) for n, k, s in zip(case.spatial_shape, window, strides)]
    if all(before == after for before, after in pads):
        return False
    return any(
        (pad > 0 and min(k - pad, n) >= 2)
        for (before, after), k, n in zip(pads, window, case.spatial_shape)
        for pad in (before, after)
    )


def _same_pad_deficit(case: ConvCase) -> int:
    """The most negative raw "same" padding ``(ceil(n/s)-1)*s + k - n`` over the axes: how many
    trailing input positions a "same" window grid leaves uncovered (0 when none)."""
    window, strides = geometry.window(case), geometry.strides(case)
    raws = [(-(-n // s) - 1) * s + k - n
            for n, k, s in zip(case.spatial_shape, window, strides) if s > 0]
    return max(0, -min(raws, default=0))


def _same_raw_pads(case: ConvCase) -> list[int] | None:
    """Per axis, the raw total "same" padding of a (non-transposed) conv or pool,
    ``d*(k-1) - (n-1) % s`` (negative where the stride leaves trailing input uncovered; TF clips
    it to 0); None unless padding="same"."""
    kw = case.kwargs
    if kw.get("padding") != "same" or case.kind.is_transposed:
        return None
    window, strides = geometry.window(case), geometry.strides(case)
    dil = kw.get("dilation_rate") or (1,) * len(window)
    return [d * (k - 1) - (n - 1) % s if s > 0 else 0
            for n, k, s, d in zip(case.spatial_shape, window, strides, dil)]


def _same_pads_reversed(case: ConvCase) -> tuple[bool, bool]:
    """(symmetric "same" pads that differ from their axis-reversed order, and whether torch
    rejects the reversed pads: an axis left shorter than its effective window, or for pooling
    a pad over half the window). Keras < 3.9's torch backend passed them reversed."""
    raws = _same_raw_pads(case)
    if not raws or min(raws) < 0 or any(t % 2 for t in raws):
        return False, False
    pads = [t // 2 for t in raws]
    rev = pads[::-1]
    if rev == pads:
        return False, False
    window = geometry.window(case)
    dil = case.kwargs.get("dilation_rate") or (1,) * len(window)
    pool = case.kind.is_pool
    rejected = any(
        n + 2 * p < (k - 1) * d + 1 or (pool and p > k // 2)
        for n, k, d, p in zip(case.spatial_shape, window, dil, rev)
    )
    return True, rejected


def _transpose_odd_same_crops(case: ConvCase) -> list[int]:
    """The axes where a transposed conv's "same" crop of the full ``(n-1)*s + K`` output (K
    the dilated kernel) is odd and positive, so it cannot be split evenly (Keras < 3.15's torch
    backend, symmetric padding plus right-side output_padding, crops one too many on the
    left)."""
    kw = case.kwargs
    if not case.kind.is_transposed or kw.get("padding") != "same":
        return []
    window = geometry.window(case)
    strides = kw.get("strides") or (1,) * len(window)
    dil = kw.get("dilation_rate") or (1,) * len(window)
    op = kw.get("output_padding")
    out = []
    for i, (k, s, d) in enumerate(zip(window, strides, dil)):
        big_k = (k - 1) * d + 1
        o = (s - big_k % 2) if op is None else op[i]
        crop = big_k - big_k % 2 - o
        if crop > 0 and crop % 2:
            out.append(i)
    return out


def _covered(n: int, k: int, s: int, d: int, start: int, length: int) -> bool:
    """Whether any position of the window [start, start + length) of one axis of a full
    transposed conv receives a product (``i * s + j * d`` for an input i and a tap j)."""
    hit = {i * s + j * d for i in range(n) for j in range(k)}
    return any(p in hit for p in range(start, start + length))


def _transpose_odd_crop_visible(case: ConvCase) -> bool:
    """Whether cropping one more on the left of the odd-crop axes can change the output: not
    when both the right window and the shifted one are structurally zero (some axis whose
    window only holds the gaps between a dilated kernel's taps)."""
    odd = _transpose_odd_same_crops(case)
    if not odd:
        return False
    kw = case.kwargs
    window = geometry.window(case)
    strides = kw.get("strides") or (1,) * len(window)
    dil = kw.get("dilation_rate") or (1,) * len(window)
    op = kw.get("output_padding")

    def nonzero(shift: bool) -> bool:
        for i, (n, k, s, d) in enumerate(zip(case.spatial_shape, window, strides, dil)):
            start, length = geometry.conv_transpose_window(
                n, k, s, d, "same", None if op is None else op[i])
            if not _covered(n, k, s, d, start + (shift and i in odd), length):
                return False
        return True

    return nonzero(False) or nonzero(True)


def _same_uneven_not_trailing(case: ConvCase) -> bool:
    """Some axis has an odd (uneven) non-negative raw "same" padding, and the uneven axes are
    not exactly the last ones (an old torch average pool padded the last m axes)."""
    raws = _same_raw_pads(case)
    if not raws:
        return False
    odd = [t % 2 == 1 for t in raws]
    m = sum(odd)
    return m > 0 and odd != [False] * (len(odd) - m) + [True] * m


def _same_uneven_misplaced_rejected(case: ConvCase) -> bool:
    """With the uneven extra pad put on the last m axes instead of the uneven ones (see
    :func:`_same_uneven_not_trailing`), some axis ends up shorter than its pool window."""
    if not _same_uneven_not_trailing(case):
        return False
    raws = _same_raw_pads(case) or []
    window = geometry.window(case)
    m = sum(t % 2 for t in raws)
    r = len(raws)
    return any(n + 2 * (t // 2) + (1 if i >= r - m else 0) < k
               for i, (n, k, t) in enumerate(zip(case.spatial_shape, window, raws)))


@functools.lru_cache(maxsize=4096)
def _derived(case: ConvCase) -> dict[str, Any]:
    """Case attributes a predicate may name besides the kwargs themselves (cached: every entry
    asks for them, and they include the reference's shape rule). Callers must not mutate it."""
    kw = case.kwargs
    window, strides = geometry.window(case), geometry.strides(case)
    spatial = case.spatial_shape
    op = kw.get("output_padding")
    out_shape, empty_size = geometry.spec_output(case)
    out_spatial: tuple[int, ...] = ()
    out_channels = 0
    if out_shape is not None:
        first = kw.get("data_format") == "channels_first"
        out_spatial = out_shape[2:] if first else out_shape[1:-1]
        out_channels = out_shape[1] if first else out_shape[-1]
    same_pads = [_same_pads(n, k, s) for n, k, s in zip(spatial, window, strides)]
    raws = _same_raw_pads(case)
    reversed_pads = _same_pads_reversed(case)
    odd_crops = _transpose_odd_same_crops(case)
    edge_visible = _edge_replication_visible(case)
    return {
        "batch": case.input_shape[0],
        "channels": kinds.channels(kw, case.input_shape),
        "rank": len(case.input_shape) - 2,
        "any_stride_gt_1": max(strides) > 1,
        "unequal_strides": len(set(strides)) > 1,
        "strides_none": kw.get("strides", 0) is None,
        "any_dilation_gt_1": max(kw.get("dilation_rate") or (1,)) > 1,
        "strides_and_dilation": max(strides) > 1 and max(kw.get("dilation_rate") or (1,)) > 1,
        # the conv *layers* refuse this pair in their constructors, on every backend
        "layer_with_strides_and_dilation": not case.layer.startswith("ops.")
        and max(strides) > 1 and max(kw.get("dilation_rate") or (1,)) > 1,
        "same_pad_deficit": _same_pad_deficit(case) if kw.get("padding") == "same" else 0,
        "has_output_padding": op is not None,
        "output_padding_ge_strides": op is not None
        and any(p >= s for p, s in zip(op, strides)),
        "output_padding_has_zero": op is not None and 0 in op,
        "even_kernel_zero_output_padding": op is not None
        and any(k % 2 == 0 and p == 0 for k, p in zip(window, op)),
        "window_larger_than_input": any(k > n for k, n in zip(window, spatial)),
        "zero_size_window": 0 in window,
        "out_channels_equal_last_spatial": out_channels > 1
        and bool(out_spatial) and out_spatial[-1] == out_channels,
        # the spec rejects the case: an output axis of size 0 or less (its size: next key)
        "spec_empty_output": empty_size is not None,
        "spec_empty_output_size": empty_size,
        "spec_valid": out_shape is not None,
        "same_symmetric_window_gt_input": kw.get("padding") == "same"
        and all(b == a for b, a in same_pads)
        and any(k > n for k, n in zip(window, spatial)),
        "edge_replication_visible": edge_visible,
        # ... and beyond the tolerance of the case's dtype, on its seeded input
        "edge_replication_shows": edge_visible
        and bug_models.torch_edge_replicated_average_shows(case),
        "tf_onednn_passthrough": bug_models.tf_onednn_passthrough(case),
        # the same for a channels-first 3D conv of Keras < 3.5 (None for other cases)
        "tf_onednn_passthrough_cf3d": bug_models.tf_onednn_passthrough(case, xla_cf3d=False)
        if kw.get("data_format") == "channels_first" and len(case.input_shape) == 5 else None,
        "tf_depthwise_strided_dilated": bug_models.tf_depthwise_strided_dilated(case),
        # Keras < 3.9 torch "same" padding (negative totals, pads passed in reversed order)
        "same_pad_negative": bool(raws) and min(raws) < 0,
        "same_pads_even": bool(raws) and all(t % 2 == 0 for t in raws),
        "same_pads_reversed_differ": reversed_pads[0],
        "same_pads_reversed_rejected": reversed_pads[1],
        # Keras < 3.5 torch average pool's own "same" padding
        "same_uneven_not_trailing": _same_uneven_not_trailing(case),
        # ... and whether the zero it averages in shows at the case's dtype (bug_models)
        "zero_padded_average_shows": case.kwargs.get("padding") == "same"
        and bug_models.torch_zero_padded_average_shows(case),
        "same_uneven_misplaced_rejected": _same_uneven_misplaced_rejected(case),
        # Keras < 3.15 torch transposed "same" crops
        "transpose_odd_same_crop": bool(odd_crops),
        "transpose_odd_same_crop_visible": _transpose_odd_crop_visible(case),
        # the shortest input axis among the odd-crop axes with stride 1 (0: none)
        "transpose_odd_same_crop_stride_1": min(
            (case.spatial_shape[i] for i in odd_crops
             if (kw.get("strides") or (1,) * len(window))[i] == 1), default=0),
    }


_PROBE_CASE = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 1}, (1, 3, 3, 1))


@functools.lru_cache(maxsize=1)
def where_keys() -> frozenset[str]:
    """Every name a ``where`` predicate may use: a keyword of some kind, or a derived
    attribute (:func:`_derived`). Checked at load, so a typo is an error, not an entry that
    silently never matches."""
    kwargs = {name for kind in kinds.KINDS.values() for name in kind.params}
    return frozenset(kwargs | set(_derived(_PROBE_CASE)))


def _unknown_where_message(source: str, eid: str, unknown: list[str]) -> str:
    import difflib

    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(where_keys()), n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"{source}: entry {eid!r}: unknown `where` key {', '.join(hints)}; a key is a "
            f"layer keyword or one of the derived attributes listed at the top of "
            f"known_discrepancies.toml")


def _matches_condition(actual: Any, expected: Any) -> bool:
    if isinstance(actual, tuple):
        actual = list(actual)
    if isinstance(expected, dict):  # {"gt": n} / {"lt": n} / {"ne": v}
        ops = {"gt": lambda a, b: a > b, "lt": lambda a, b: a < b, "ne": lambda a, b: a != b,
               "ge": lambda a, b: a >= b, "le": lambda a, b: a <= b}
        return all(ops[op](actual, v) for op, v in expected.items())
    if isinstance(expected, list) and not isinstance(actual, list):
        return actual in expected
    return actual == expected


def old_output_padding_api(keras_version: str | None) -> bool:
    """Whether this Keras predates 3.11's rework of the transposed layers' ``output_padding``.

    Before 3.11 the layers had no ``output_padding`` parameter (it went through ``**kwargs``,
    keyword only) and validated it without allowing 0 ('... that do not satisfy value > 0'),
    although 0 is the common valid value; 3.11 made it the fifth parameter (sixth for
    Conv3DTranspose) with ``allow_zero=True``. Read from the 3.1.0-3.10.0 and 3.11.0 wheels.
    """
    return keras_version is not None and Version(keras_version) < Version("3.11.0.dev0")


def refused_by_keras(case: ConvCase, keras_version: str | None) -> bool:
    """Whether this Keras's own constructor refuses the case on every backend, so that no
    backend failure can be observed on it (the suite's verdict is a Keras-wide 'unsupported'):
    a transposed layer's ``output_padding`` holding a 0 before 3.11
    (:func:`old_output_padding_api`). Entries describe backend bugs on cases Keras accepts,
    so they skip these.
    """
    op = case.kwargs.get("output_padding")
    pads = op if isinstance(op, (tuple, list)) else (op,)
    return (
        op is not None and 0 in pads and not case.layer.startswith("ops.")
        and old_output_padding_api(keras_version)
    )


@dataclass(frozen=True)
class Entry:
    """One known discrepancy."""

    id: str
    keras: SpecifierSet
    backends: tuple[str, ...]
    layers: tuple[str, ...]
    verdict: str
    link: str
    note: str
    where: Mapping[str, Any] = field(default_factory=dict)
    dtypes: tuple[str, ...] = ()  # compute dtypes (a mixed policy's too)
    modes: tuple[str, ...] = ()
    #: Dtype policies by name (``mixed_float16`` but not ``float16``, say): narrower than
    #: ``dtypes`` where the variable dtype matters.
    policies: tuple[str, ...] = ()
    repro: str = ""
    requires: Mapping[str, SpecifierSet] = field(default_factory=dict)  # library -> versions
    #: Platform facts (conv_parity.facts) the bug needs, e.g. {"tensorflow.onednn": False}.
    facts: Mapping[str, Any] = field(default_factory=dict)
    #: The first Keras release without the bug, where one is known ("3.15.0").
    fixed_in: str | None = None
    #: One case the entry explains: {layer, kwargs, input_shape, [mode], [dtype], backend,
    #: keras}, under the entry's facts (tests: it matches this entry and no other).
    example: Mapping[str, Any] = field(default_factory=dict)
    #: The bug shows only on some calls (uninitialised memory, a race): it explains any of its
    #: ``outcomes`` whatever the values, and a call on which it did not show is no stale entry.
    nondeterministic: bool = False
    #: The observed verdicts the entry explains (default: ``verdict`` alone); a flaky kernel
    #: that sometimes aborts and sometimes returns garbage lists ``crash`` and ``fail-values``.
    outcomes: tuple[str, ...] = ()
    #: Every backend is limited the same way (Keras's shared code refuses the case): the
    #: verdict is ``unsupported``, knowledge recorded here, never a vote among the backends
    #: that happened to be selected.
    keras_wide: bool = False

    def explains(self, observed: str | None) -> bool:
        """Whether an observed verdict is one this entry accounts for."""
        return observed in (self.outcomes or (self.verdict,))

    def example_case(self) -> ConvCase:
        """The example as a case; UsageError naming the entry when it is malformed."""
        ex = self.example
        try:
            return ConvCase.make(ex["layer"], ex.get("kwargs", {}), ex["input_shape"],
                                 dtype=ex.get("dtype", "float32"), mode=ex.get("mode", "eager"))
        except (KeyError, TypeError, UsageError) as exc:
            raise UsageError(f"known discrepancy {self.id!r}: bad example {dict(ex)!r}: "
                             f"{exc}") from None

    def possible_here(self, keras_version: str | None) -> bool:
        """Whether this Keras (and the libraries installed here) are ones the entry is about."""
        if keras_version is not None and Version(keras_version) not in self.keras:
            return False
        for library, spec in self.requires.items():
            installed = _library_version(library)
            if installed is None or Version(installed) not in spec:
                return False
        return True

    def facts_hold(self, facts: Mapping[str, Any] | None) -> bool:
        """Whether the facts a worker reported are the ones the entry is about. ``None`` (not
        known yet: collection, fuzz filtering) holds for every scope, so what those decide
        does not depend on the machine."""
        if facts is None:
            return True
        return all(key in facts and _matches_condition(facts[key], value)
                   for key, value in self.facts.items())

    def applies(self, case: ConvCase, backend: str, keras_version: str | None,
                facts: Mapping[str, Any] | None = None) -> bool:
        """Whether the entry explains ``case`` on ``backend`` (a target name: a variant is its
        Keras backend under other facts) with this Keras and these facts (see facts_hold)."""
        if targets.keras_backend(backend) not in self.backends or case.layer not in self.layers:
            return False
        if not self.facts_hold(fact_records.for_dtype(facts, case.dtype)):
            return False
        if refused_by_keras(case, keras_version):
            return False
        if self.dtypes and case.dtype not in self.dtypes:
            return False
        if self.modes and case.mode not in self.modes:
            return False
        if self.policies and case.policy_name not in self.policies:
            return False
        if not self.possible_here(keras_version):
            return False
        attrs = {**case.kwargs, **_derived(case)}
        return all(
            key in attrs and _matches_condition(attrs[key], value)
            for key, value in self.where.items()
        )

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "link": self.link, "note": self.note, "verdict": self.verdict,
                "keras": str(self.keras),
                "requires": {lib: str(v) for lib, v in self.requires.items()},
                "facts": dict(self.facts), "fixed_in": self.fixed_in,
                "nondeterministic": self.nondeterministic,
                "outcomes": list(self.outcomes or (self.verdict,)),
                "keras_wide": self.keras_wide}

    def upgrade_hint(self) -> str:
        """'fixed in Keras 3.15.0: upgrade' where a fix release is known, else ''."""
        return f"fixed in Keras {self.fixed_in}: upgrade" if self.fixed_in else ""


_VERSIONS: dict[str, str | None] = {}


def _library_version(name: str) -> str | None:
    """An installed distribution's version (the workers run in this same environment)."""
    from importlib import metadata

    if name not in _VERSIONS:
        try:
            _VERSIONS[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            _VERSIONS[name] = None
    return _VERSIONS[name]


def _parse_entry(raw: Mapping[str, Any], source: str) -> Entry:
    def need(key: str) -> Any:
        if key not in raw:
            raise UsageError(f"{source}: entry {raw.get('id', '?')!r} lacks {key!r}")
        return raw[key]

    eid = need("id")
    try:
        spec = SpecifierSet(need("keras"))
    except InvalidSpecifier:
        raise UsageError(f"{source}: entry {eid!r}: bad keras specifier {raw['keras']!r}") from None
    backends = tuple(need("backends"))
    for b in backends:
        if b not in targets.KERAS_BACKENDS:
            raise UsageError(f"{source}: entry {eid!r}: unknown backend {b!r} (entries name "
                             f"Keras backends: {', '.join(targets.KERAS_BACKENDS)}; scope a "
                             "variant's setting with `facts`)")
    layers = tuple(need("layers"))
    for name in layers:
        kinds.get_kind(name)
    verdict = need("verdict")
    if verdict not in FAILURE_VERDICTS:
        raise UsageError(f"{source}: entry {eid!r}: verdict must be one of {FAILURE_VERDICTS}")
    outcomes = tuple(raw.get("outcomes", ()))
    for o in outcomes:
        if o not in FAILURE_VERDICTS:
            raise UsageError(f"{source}: entry {eid!r}: outcome {o!r} is not a failure verdict "
                             f"(one of {', '.join(FAILURE_VERDICTS)})")
    if outcomes and verdict not in outcomes:
        raise UsageError(f"{source}: entry {eid!r}: outcomes {list(outcomes)} must include its "
                         f"verdict {verdict!r}")
    flags = {}
    for flag in ("nondeterministic", "keras_wide"):
        value = raw.get(flag, False)
        if not isinstance(value, bool):
            raise UsageError(f"{source}: entry {eid!r}: {flag} must be true or false, "
                             f"got {value!r}")
        flags[flag] = value
    where = dict(raw.get("where", {}))
    unknown = sorted(set(where) - where_keys())
    if unknown:
        raise UsageError(_unknown_where_message(source, eid, unknown))
    try:
        requires = {lib: SpecifierSet(v) for lib, v in dict(raw.get("requires", {})).items()}
    except InvalidSpecifier:
        raise UsageError(f"{source}: entry {eid!r}: bad version specifier in requires") from None
    facts = raw.get("facts", {})
    if not isinstance(facts, Mapping):
        raise UsageError(f"{source}: entry {eid!r}: facts must be a table, got {facts!r}")
    fixed_in = raw.get("fixed_in")
    if fixed_in is not None:
        try:
            Version(fixed_in)
        except Exception:
            raise UsageError(f"{source}: entry {eid!r}: fixed_in must be a Keras version like "
                             f"'3.15.0', got {fixed_in!r}") from None
    from conv_parity import modes as mode_records
    from conv_parity import policies as policy_records

    for m in raw.get("modes", ()):
        if m not in mode_records.MODES:
            raise UsageError(f"{source}: entry {eid!r}: unknown mode {m!r}")
    for p in raw.get("policies", ()):
        if p not in policy_records.POLICIES:
            raise UsageError(f"{source}: entry {eid!r}: unknown policy {p!r} (one of "
                             f"{', '.join(policy_records.POLICIES)})")
    for d in raw.get("dtypes", ()):
        if d not in policy_records.DTYPES:
            raise UsageError(f"{source}: entry {eid!r}: unknown dtype {d!r}")
    return Entry(
        id=eid, keras=spec, backends=backends, layers=layers, verdict=verdict, requires=requires,
        facts=dict(facts), fixed_in=fixed_in,
        link=need("link"), note=need("note"), where=where, outcomes=outcomes, **flags,
        dtypes=tuple(raw.get("dtypes", ())), modes=tuple(raw.get("modes", ())),
        policies=tuple(raw.get("policies", ())), repro=raw.get("repro", ""),
        example=dict(raw.get("example", {})),
    )


class Registry:
    """The loaded entries, and which ones matched a collected case (for the stale warning)."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.entries = list(entries)
        ids = [e.id for e in self.entries]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise UsageError(f"known discrepancies: duplicate ids {dupes}")
        self.used: set[str] = set()

    @classmethod
    def load(cls, path: Path | str | None = None) -> Registry:
        path = Path(path) if path is not None else DEFAULT_PATH
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read known discrepancies {path}: {exc}") from None
        return cls(_parse_entry(raw, str(path)) for raw in data.get("discrepancy", []))

    def match(self, case: ConvCase, backend: str, keras_version: str | None,
              facts: Mapping[str, Any] | None = None,
              observed: str | None = None) -> Entry | None:
        """The entry that explains the case (``facts=None``: facts not known, every scope
        holds). When several apply, the first whose verdict is the ``observed`` one wins (a
        channels-first conv can be both 'raises without oneDNN' and 'bias on the wrong axis');
        without such an entry, the first that applies."""
        found = [e for e in self.entries if e.applies(case, backend, keras_version, facts)]
        if not found:
            return None
        entry = next((e for e in found if e.explains(observed)), found[0])
        self.used.add(entry.id)
        return entry

    def note_collected(self, case: ConvCase, backend: str, keras_version: str | None) -> None:
        """Mark every entry that could explain ``case`` (under any facts) as used: which one
        does is decided when it runs, from the worker's facts and the observed verdict."""
        for entry in self.entries:
            if entry.applies(case, backend, keras_version):
                self.used.add(entry.id)

    def unused(
        self, keras_version: str | None = None, backends: Sequence[str] | None = None
    ) -> list[Entry]:
        """Entries no case matched, among those that could match with ``keras_version`` (and
        the libraries installed here) on ``backends`` (default: any): an entry about another
        Keras release, or only about backends not run, is not stale."""
        return [e for e in self.entries
                if e.id not in self.used and e.possible_here(keras_version)
                and (backends is None or set(e.backends) & set(backends))]

    def to_markdown(self) -> str:
        lines = [
            "# Known discrepancies",
            "",
            "Generated from `src/conv_parity/known_discrepancies.toml` by "
            "`python -m conv_parity.registry --write docs/known-discrepancies.md`; do not edit.",
            "",
        ]
        if not self.entries:
            lines.append("No known discrepancies are registered.")
            return "\n".join(lines) + "\n"
        lines += [
            "| id | Keras | backends | layers | when | verdict | upstream | note | example |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for e in self.entries:
            when = ", ".join(f"{k}={v}" for k, v in e.where.items()) or "always"
            if e.requires:
                when += "; " + ", ".join(f"{lib} {v}" for lib, v in e.requires.items())
            if e.facts:
                when += "; " + ", ".join(f"{k}={_fact_text(v)}" for k, v in e.facts.items())
            if e.fixed_in:
                when += f"; fixed in Keras {e.fixed_in}"
            if e.dtypes:
                when += f"; dtype in {list(e.dtypes)}"
            if e.policies:
                when += f"; policy in {list(e.policies)}"
            if e.modes:
                when += f"; mode in {list(e.modes)}"
            if e.nondeterministic:
                when += "; nondeterministic (shows on some calls only)"
            if e.outcomes:
                when += f"; explains {', '.join(e.outcomes)}"
            if e.keras_wide:
                when += "; Keras-wide (verdict unsupported)"
            cells = [e.id, f"`{e.keras}`", ", ".join(e.backends), ", ".join(e.layers), when,
                     e.verdict, e.link, e.note.replace("\n", " ").replace("|", "\\|"),
                     _example_text(e)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _example_text(entry: Entry) -> str:
    """The example as a case id with where it shows (the id spells the configuration)."""
    if not entry.example:
        return ""
    ex = entry.example
    return f"`{entry.example_case().id}` on {ex['backend']}, Keras {ex['keras']}"


def _fact_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def installed_keras_version() -> str | None:
    """The installed Keras version without importing Keras (keras or keras-nightly)."""
    from importlib import metadata

    for dist in ("keras", "keras-nightly"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None
