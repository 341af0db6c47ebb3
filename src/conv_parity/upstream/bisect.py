"""When did a discrepancy come, and when did it go: one case run on Keras releases side by side,
searched for the release where its verdict changes.

Each release tried runs in fresh workers of the engine (its folder first on their PYTHONPATH; the
backends are the installed ones). A release whose Keras does not import with those backends is
"no-import", never a pass. The search assumes one change of verdict between the oldest and the
newest importable release of the range (a bug that came, or one that went), and halves the range
until the two releases on either side of the change are adjacent: ~log2(n) releases are run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import Version

from conv_parity.case import ConvCase
from conv_parity.errors import HarnessError
from conv_parity.upstream.nightlies import PACKAGE as NIGHTLY_PACKAGE
from conv_parity.upstream.nightlies import is_nightly, label, nightly_date
from conv_parity.upstream.releases import ReleaseUnavailable, ensure, first_on_path

#: A release's state: "no-import", "unreachable", or the verdicts ("tensorflow=pass").
NO_IMPORT = "no-import"
UNREACHABLE = "unreachable"


@dataclass
class Tried:
    """What one release gave: its state and each backend's verdict, or why it could not run."""

    version: Version
    state: str
    verdicts: dict[str, str] = field(default_factory=dict)
    detail: str = ""
    seconds: float = 0.0

    @property
    def ran(self) -> bool:
        return self.state not in (NO_IMPORT, UNREACHABLE)

    def to_json(self) -> dict[str, Any]:
        """For report.json: version (its nightly date, if one), state, verdicts, detail."""
        return {"version": str(self.version),
                "date": str(nightly_date(self.version)) if is_nightly(self.version) else None,
                "state": self.state, "verdicts": dict(self.verdicts), "detail": self.detail,
                "seconds": round(self.seconds, 1)}


@dataclass
class Bisection:
    """The releases tried (oldest first) and the change found: ``before`` is the last release
    with the old verdict, ``after`` the first with the new one (None: no change in range)."""

    tried: list[Tried]
    before: Tried | None = None
    after: Tried | None = None
    gap: list[Version] = field(default_factory=list)  # untried releases between them (no-import)

    @property
    def direction(self) -> str | None:
        """"fixed" (failing, then passing), "introduced" (passing, then failing), "changed"."""
        if self.before is None or self.after is None:
            return None
        old_bad = _bad(self.before)
        new_bad = _bad(self.after)
        if old_bad and not new_bad:
            return "fixed"
        if new_bad and not old_bad:
            return "introduced"
        return "changed"

    def to_json(self) -> dict[str, Any]:
        """For report.json: every version tried, the change found and its one-line conclusion."""
        return {"tried": [t.to_json() for t in self.tried], "direction": self.direction,
                "before": str(self.before.version) if self.before else None,
                "after": str(self.after.version) if self.after else None,
                "gap": [str(v) for v in self.gap], "conclusion": conclusion(self)}


def conclusion(found: Bisection) -> str:
    """The change found, in one line (a nightly is named with its date)."""
    ran = [t for t in found.tried if t.ran]
    if not ran:
        return "no release in the range ran here (none imports with the installed backends)"
    if found.after is None or found.before is None:
        return (f"same verdict on every release tried ({ran[0].state}, Keras "
                f"{label(ran[0].version)} to {label(ran[-1].version)}): no change in this range")
    gap = (f"; releases between them did not import or were unreachable: "
           f"{', '.join(map(str, found.gap))}" if found.gap else "")
    b, a = found.before, found.after
    first, last = label(a.version), label(b.version)
    if found.direction == "fixed":
        return f"fixed in Keras {first} (last bad {last}: {b.state}; first good: {a.state}){gap}"
    if found.direction == "introduced":
        return (f"introduced in Keras {first} (last good {last}: {b.state}; first bad: "
                f"{a.state}){gap}")
    return f"changed in Keras {first}: {last} gave {b.state}, {first} gives {a.state}{gap}"


def _bad(t: Tried) -> bool:
    return any(v not in ("pass", "unsupported", "skip") for v in t.verdicts.values())


Probe = Callable[[Version], Tried]


def search(releases: Sequence[Version], probe: Probe,
           on_tried: Callable[[Tried], None] | None = None) -> Bisection:
    """Bisect ``releases`` (oldest first) with ``probe``; each release is probed at most once."""
    seen: dict[Version, Tried] = {}

    def state(i: int) -> Tried:
        v = releases[i]
        if v not in seen:
            seen[v] = probe(v)
            if on_tried:
                on_tried(seen[v])
        return seen[v]

    def finish(before: Tried | None = None, after: Tried | None = None,
               gap: Sequence[Version] = ()) -> Bisection:
        return Bisection(sorted(seen.values(), key=lambda t: t.version), before, after, list(gap))

    n = len(releases)
    hi = n - 1
    while hi >= 0 and not state(hi).ran:
        hi -= 1
    if hi < 0:
        return finish()
    lo = 0
    if not state(lo).ran:  # look for the oldest importable release (too-old ones are below it)
        bad_lo, good_hi = 0, hi
        while good_hi - bad_lo > 1:
            mid = (bad_lo + good_hi) // 2
            if state(mid).ran:
                good_hi = mid
                if state(mid).state != state(hi).state:
                    break  # already on the other side of the change: enough to bisect from
            else:
                bad_lo = mid
        lo = good_hi
    if state(lo).state == state(hi).state:
        return finish()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        probe_at = next((j for j in [*range(mid, hi), *range(mid - 1, lo, -1)]
                         if state(j).ran), None)
        if probe_at is None:  # nothing between them imports: the change is somewhere in there
            break
        if state(probe_at).state == state(lo).state:
            lo = probe_at
        else:
            hi = probe_at
    gap = [releases[j] for j in range(lo + 1, hi)]
    return finish(state(lo), state(hi), gap)


def run_release(cases: Sequence[ConvCase], backends: Sequence[str], folder: Path,
                version: Version, timeout: float = 120.0) -> Tried:
    """The raw verdicts (no registry: a bisect judges the behaviour itself) of ``cases`` on
    ``backends`` in fresh workers running the Keras in ``folder``."""
    import time

    from conv_parity.engine import Engine
    from conv_parity.registry import Registry

    started = time.monotonic()
    verdicts: dict[str, str] = {}
    no_import: list[str] = []
    with first_on_path(folder), Engine(list(backends), timeout=timeout,
                                           registry=Registry([]), diagnose=False) as engine:
        for backend in engine.backends:
            info = engine.info(backend)
            if not info.available:
                no_import.append(f"{backend}: {(info.import_error or '').strip()[:200]}")
                continue
            if info.keras_version and Version(info.keras_version) != version:
                raise HarnessError(f"the {backend} worker imported Keras {info.keras_version} "
                                   f"from {folder}, not {version}")
        outcomes = engine.check(list(cases))
    for o in outcomes:
        if (o.error or {}).get("type") == "BackendUnavailable":
            continue
        verdict = o.observed_verdict or o.verdict
        key = o.backend if len(cases) == 1 else f"{o.backend}[{o.case.id}]"
        verdicts[key] = verdict
    seconds = time.monotonic() - started
    if not verdicts:
        return Tried(version, NO_IMPORT, detail="; ".join(no_import) or "no backend ran",
                     seconds=seconds)
    state = ", ".join(f"{k}={v}" for k, v in sorted(verdicts.items()))
    return Tried(version, state, verdicts, detail="; ".join(no_import), seconds=seconds)


def release_probe(cases: Sequence[ConvCase], backends: Sequence[str], cache: Path,
                  timeout: float = 120.0) -> Probe:
    """A probe for :func:`search`: install the release (or the nightly) when missing, then run
    it."""
    import time

    def probe(version: Version) -> Tried:
        started = time.monotonic()
        package = NIGHTLY_PACKAGE if is_nightly(version) else "keras"
        try:
            folder = ensure(version, cache, package=package)
        except ReleaseUnavailable as exc:
            return Tried(version, UNREACHABLE, detail=str(exc),
                         seconds=time.monotonic() - started)
        tried = run_release(cases, backends, folder, version, timeout)
        tried.seconds = time.monotonic() - started
        return tried

    return probe


__all__ = ["NO_IMPORT", "UNREACHABLE", "Bisection", "Tried", "conclusion", "release_probe",
           "run_release", "search"]
