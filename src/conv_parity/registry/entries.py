"""One known discrepancy (:class:`Entry`): what it scopes, when it applies, and how a TOML
table becomes one, validated at load (:func:`_parse_entry`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from conv_parity import backends as targets
from conv_parity import facts as fact_records
from conv_parity import kinds
from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.registry.predicates import (
    _derived,
    _matches_condition,
    _unknown_where_message,
    refused_by_keras,
    where_keys,
)
from conv_parity.vocabulary import FAILURE_VERDICTS


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
    #: One case the entry explains: {layer, kwargs, input_shape, [mode], [dtype], [values],
    #: [call_form], backend, keras}, under the entry's facts (tests: it matches this entry
    #: and no other).
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
                                 dtype=ex.get("dtype", "float32"), mode=ex.get("mode", "eager"),
                                 values=ex.get("values", "normal"),
                                 call_form=ex.get("call_form", "tensor"))
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
        if d not in policy_records.ALL_DTYPES:
            raise UsageError(f"{source}: entry {eid!r}: unknown dtype {d!r}")
    return Entry(
        id=eid, keras=spec, backends=backends, layers=layers, verdict=verdict, requires=requires,
        facts=dict(facts), fixed_in=fixed_in,
        link=need("link"), note=need("note"), where=where, outcomes=outcomes, **flags,
        dtypes=tuple(raw.get("dtypes", ())), modes=tuple(raw.get("modes", ())),
        policies=tuple(raw.get("policies", ())), repro=raw.get("repro", ""),
        example=dict(raw.get("example", {})),
    )
