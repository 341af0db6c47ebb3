"""The nightly watch's process half: which Keras to watch (``--keras nightly``, a nightly's date
or a version), installed into the release cache, and a bisect over the last nightlies for each
new failure that the installed release did not have.

The comparison itself is pure (:mod:`conv_parity.report.watch`); ``conv-parity run --keras``
(the front door) runs the suite on both Kerases and calls these in between.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.upstream import nightlies
from conv_parity.upstream.bisect import Tried, release_probe, search
from conv_parity.upstream.releases import ReleaseUnavailable, ensure

#: How many nightlies a new failure is bisected over (the watched one included), and how many
#: new failures are bisected: each bisect runs ~log2(N) + 2 nightlies in fresh workers.
DEFAULT_BISECT_NIGHTLIES = 8
DEFAULT_BISECT_LIMIT = 3


@dataclass
class Target:
    """The Keras under watch: its version, its folder in the cache, the nightlies known (pip's
    or, offline, the cache's: what a bisect can search) and what was said on the way."""

    version: Version
    folder: Path
    served: list[Version] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def nightly_date(self) -> str | None:
        return str(nightlies.nightly_date(self.version)) if nightlies.is_nightly(self.version) \
            else None


def _pick(spec: str, served: list[Version]) -> Version:
    """``nightly``: the newest served; a date: that day's newest nightly."""
    if spec == "nightly":
        if not served:
            raise UsageError("--keras nightly: no keras-nightly is known here (pip reached no "
                             "index and the cache holds none)")
        return served[-1]
    return nightlies.select_nightlies(served, spec)[-1]


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def resolve(spec: str, cache: Path) -> Target:
    """The Keras that ``spec`` names (``nightly``: the newest keras-nightly; a date such as
    2026-10-27: that day's nightly; a version: that release or nightly), installed into
    ``cache`` when missing (UsageError when pip cannot fetch it)."""
    spec = spec.strip()
    served: list[Version] = []
    notes: list[str] = []
    if spec == "nightly" or _is_date(spec):
        served, note = nightlies.known_nightlies(cache)
        notes += [note] if note else []
        version = _pick(spec, served)
    else:
        try:
            version = Version(spec)
        except InvalidVersion:
            raise UsageError(f"--keras {spec!r}: expected 'nightly', a nightly's date "
                             f"(2026-10-27) or a version (3.16.0.dev2026102704, 3.14.1)") from None
        if nightlies.is_nightly(version):  # the bisects search the nightlies before it
            served, note = nightlies.known_nightlies(cache)
            notes += [note] if note else []
    package = nightlies.PACKAGE if nightlies.is_nightly(version) else "keras"
    try:
        folder = ensure(version, cache, package=package)
    except ReleaseUnavailable as exc:
        raise UsageError(f"--keras {spec}: {exc}") from None
    return Target(version, folder, served, notes)


def _tagged(on_tried: Callable[[str, Tried], None] | None,
            case_id: str) -> Callable[[Tried], None] | None:
    """``on_tried`` told which case each version tried was for."""
    if on_tried is None:
        return None
    report = on_tried
    return lambda t: report(case_id, t)


def bisect_new(section: MutableMapping[str, Any], target: Target, cache: Path,
               nightly_count: int = DEFAULT_BISECT_NIGHTLIES,
               limit: int = DEFAULT_BISECT_LIMIT, timeout: float = 120.0,
               on_tried: Callable[[str, Tried], None] | None = None) -> None:
    """Fill ``bisect`` of the section's new failures that conformed on the installed release
    (at most ``limit`` of them) with a search over the last ``nightly_count`` nightlies up to the
    watched one; the others get a ``bisect_note`` saying why not."""
    if not nightlies.is_nightly(target.version):
        for item in section["new"]:
            item["bisect_note"] = (f"not bisected: Keras {target.version} is a release (conv-parity "
                                   f"bisect CASE --keras RANGE searches releases)")
        return
    versions = nightlies.last_nightlies(target.served or [target.version], target.version,
                                        nightly_count)
    done = 0
    for item in section["new"]:
        if not item.get("regression"):
            continue
        if done >= limit:
            item["bisect_note"] = (f"not bisected: the first {limit} new failures were "
                                   f"(--bisect-limit)")
            continue
        if len(versions) < 2:
            item["bisect_note"] = "not bisected: no earlier nightly is known here"
            continue
        case = ConvCase.from_json(item["case"])
        probe = release_probe([case], [item["backend"]], cache, timeout)
        found = search(versions, probe, on_tried=_tagged(on_tried, str(item["case_id"])))
        item["bisect"] = found.to_json()
        done += 1
    if done:
        section["notes"].append(
            f"bisects searched the {len(versions)} nightlies from "
            f"{nightlies.nightly_date(versions[0])} to {nightlies.nightly_date(versions[-1])} "
            f"(--bisect-nightlies), with raw verdicts (no registry)")


__all__ = ["DEFAULT_BISECT_LIMIT", "DEFAULT_BISECT_NIGHTLIES", "Target", "bisect_new",
           "resolve"]
