"""Known upstream discrepancies, as data (``known_discrepancies.toml`` beside this module).

Each entry scopes one confirmed Keras/backend bug: a Keras version specifier, the backends, the
layers, a predicate on the case, dtype / dtype-policy / mode scope, the platform facts it needs (TF's oneDNN on or
off, ...: reported by each worker, see :mod:`conv_parity.facts`), the verdict it produces, the
release that fixed it and an upstream link.
The engine turns a matching outcome into ``xfail``; a matching case that now *passes* fails the
run (strict: delete the entry), and an entry that matches no collected case is warned about.
``python -m conv_parity.registry --write docs/known-discrepancies.md`` regenerates the table.

The package: :mod:`.predicates` (derived attributes a ``where`` may name, Keras-wide refusals),
:mod:`.entries` (one entry: scope, matching, parsing), this module (the loaded table and its
Markdown), :mod:`.__main__` (the generated page).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.registry.entries import Entry, _parse_entry
from conv_parity.registry.predicates import (
    _derived,
    old_output_padding_api,
    refused_by_keras,
    where_keys,
)
from conv_parity.registry.source import DEFAULT_PATH, read_table

__all__ = [
    "DEFAULT_PATH", "Entry", "Registry", "_derived", "_parse_entry", "installed_keras_version",
    "old_output_padding_api", "refused_by_keras", "where_keys",
]



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
        table, source = read_table("discrepancy", path)
        return cls(_parse_entry(raw, str(source)) for raw in table)

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
    """The installed Keras version without importing Keras (keras or keras-nightly): the
    distribution that owns the ``keras`` package Python would import, where both are on the
    path (a nightly overlaid with PYTHONPATH on a release: the workers import the nightly)."""
    import importlib.util
    from importlib import metadata
    from pathlib import Path

    spec = importlib.util.find_spec("keras")
    where = Path(spec.origin).resolve().parent.parent if spec and spec.origin else None
    found = []
    for dist in ("keras", "keras-nightly"):
        try:
            d = metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            continue
        if where is not None and Path(str(d.locate_file(""))).resolve() == where:
            return d.version
        found.append(d.version)
    return found[0] if found else None
