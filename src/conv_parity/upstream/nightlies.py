"""keras-nightly builds side by side, like the releases of :mod:`conv_parity.upstream.releases`:
which ones pip serves, the date each was built, a date range that selects some, and each one
unpacked into the same cache (``<cache>/keras-nightly-<version>``) with ``pip install --no-deps
--target``, then reused.

A nightly's version carries its build time: ``3.16.0.dev2026102704`` was built on 2026-10-27
at 04 h (``.devYYYYMMDDHH``). The date is what people name a nightly by, so ranges are dates.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.version import InvalidVersion, Version

from conv_parity.errors import UsageError
from conv_parity.upstream.releases import (
    ReleaseUnavailable,
    ensure,
    keras3_versions,
    pip_index_versions,
    release_dir,
)

#: The distribution name of the nightly builds on PyPI.
PACKAGE = "keras-nightly"
_DEV = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})$")


def nightly_date(version: Version | str) -> dt.date:
    """The build date of a nightly: nightly_date("3.16.0.dev2026102704") == date(2026, 10, 27);
    UsageError for a version that is not a nightly's."""
    v = Version(str(version))
    match = _DEV.match(str(v.dev)) if v.dev is not None else None
    if match is None:
        raise UsageError(f"{version}: not a keras-nightly version (expected X.Y.Z.devYYYYMMDDHH)")
    year, month, day, _hour = (int(g) for g in match.groups())
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise UsageError(f"{version}: its .dev number is not a date") from None


def is_nightly(version: Version | str) -> bool:
    """Whether ``version`` is a nightly's (X.Y.Z.devYYYYMMDDHH)."""
    try:
        nightly_date(version)
    except (UsageError, InvalidVersion):
        return False
    return True


def parse_nightlies(texts: Iterable[str]) -> list[Version]:
    """The Keras 3 nightlies among ``texts``, oldest first; other text is left out:
    parse_nightlies(["3.16.0.dev2026102704", "3.15.0", "x"]) == [Version("3.16.0.dev2026102704")]."""
    return keras3_versions(texts, is_nightly)


def index_nightlies(python: str = sys.executable, timeout: float = 120.0) -> list[Version]:
    """The nightlies pip's index serves, oldest first (``pip index versions keras-nightly
    --pre``); ReleaseUnavailable when pip cannot reach an index."""
    return parse_nightlies(pip_index_versions(PACKAGE, "--pre", "--disable-pip-version-check",
                                              python=python, timeout=timeout))


def cached_nightlies(cache: Path) -> list[Version]:
    """The nightlies already unpacked in ``cache`` (``keras-nightly-<version>/``)."""
    found = []
    if cache.is_dir():
        for child in cache.iterdir():
            text = child.name.removeprefix(f"{PACKAGE}-")
            if text != child.name and (child / "keras" / "__init__.py").is_file():
                found.append(text)
    return parse_nightlies(found)


def _date(text: str, spec: str) -> dt.date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--nightly {spec!r}: {text!r} is not a date; expected a range like "
                         f"2026-10-01..2026-12-01 or one date like 2026-10-27") from None


def date_range(spec: str | None) -> tuple[dt.date | None, dt.date | None]:
    """The dates of a --nightly range ("2026-10-01..2026-12-01": both ends inclusive, either may
    be left out; "2026-10-27": that day; None or "": every day); UsageError naming a bad one."""
    if not spec:
        return None, None
    if ".." in spec:
        lo_text, hi_text = spec.split("..", 1)
        lo, hi = _date(lo_text, spec), _date(hi_text, spec)
    else:
        lo = hi = _date(spec, spec)
    if lo is not None and hi is not None and lo > hi:
        raise UsageError(f"--nightly {spec!r}: the range ends before it starts")
    return lo, hi


def select_nightlies(versions: Sequence[Version], spec: str | None) -> list[Version]:
    """The nightlies built in the dates of ``spec`` (see :func:`date_range`), oldest first."""
    lo, hi = date_range(spec)
    chosen = [v for v in versions
              if (lo is None or nightly_date(v) >= lo) and (hi is None or nightly_date(v) <= hi)]
    if not chosen:
        known = (f"{nightly_date(versions[0])} to {nightly_date(versions[-1])}"
                 if versions else "none")
        raise UsageError(f"--nightly {spec!r} holds none of the nightlies known here "
                         f"({len(versions)}: {known})")
    return sorted(chosen)


def last_nightlies(versions: Sequence[Version], upto: Version, count: int) -> list[Version]:
    """The ``count`` newest nightlies up to and including ``upto``, oldest first."""
    if count < 1:
        raise UsageError(f"the number of nightlies must be >= 1, got {count}")
    return [v for v in sorted(versions) if v <= upto][-count:]


def nightly_dir(version: Version | str, cache: Path) -> Path | None:
    """The unpacked nightly in ``cache``, if it is there."""
    return release_dir(version, cache, package=PACKAGE)


def ensure_nightly(version: Version | str, cache: Path, python: str = sys.executable) -> Path:
    """The folder holding keras-nightly ``version`` (installed there first when missing)."""
    return ensure(version, cache, python, package=PACKAGE)


def known_nightlies(cache: Path) -> tuple[list[Version], str]:
    """The nightlies pip serves, else (pip cannot reach an index) those in ``cache``, with a
    line that says so ("" when pip answered)."""
    try:
        return index_nightlies(), ""
    except ReleaseUnavailable as exc:
        found = cached_nightlies(cache)
        return found, f"{exc}; using the {len(found)} nightlies in {cache}"


def candidates(keras: str | None, nightly: str | None,
               cache: Path) -> tuple[list[Version], list[Version], list[str]]:
    """What a bisect searches: the releases in ``keras`` (a --keras range), the nightlies built
    in ``nightly`` (a --nightly date range), or both merged in version order (a 3.16.0.dev
    nightly sorts after every 3.15.x release). Returns (chosen, the releases known, notes)."""
    from conv_parity.upstream import releases

    notes = []
    try:
        known = releases.index_versions()
    except ReleaseUnavailable as exc:
        known = releases.cached_versions(cache)
        notes.append(f"{exc}; using the {len(known)} releases in {cache}")
    chosen: list[Version] = []
    if nightly is None or keras is not None:
        chosen += releases.select(known, keras)
    if nightly is not None:
        served, note = known_nightlies(cache)
        notes += [note] if note else []
        chosen += select_nightlies(served, nightly)
    return sorted(set(chosen)), known, notes


def label(version: Version | str) -> str:
    """How a version is named where nightlies and releases meet: ``3.16.0.dev2026102704
    (nightly 2026-10-27)`` or ``3.15.1``."""
    return f"{version} (nightly {nightly_date(version)})" if is_nightly(version) else str(version)


__all__ = ["PACKAGE", "cached_nightlies", "candidates", "date_range", "ensure_nightly", "index_nightlies", "is_nightly",
           "known_nightlies", "label", "last_nightlies", "nightly_date", "nightly_dir", "parse_nightlies",
           "select_nightlies"]
