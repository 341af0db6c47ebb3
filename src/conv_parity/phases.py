"""Where a command's time goes: a timeline of named phases with the seconds and the peak
memory of each, for ``--verbose`` and report.json's ``phases``.

Why a module of its own: ``model`` spends minutes in stages owned by different modules (load,
extract, round trips, workers and per-layer cases, end to end), and a breakdown must not make
any of them depend on the CLI. A :class:`Phases` is fed either by explicit marks
(``with phases.phase("extract"):``) or by the progress messages a stage already prints
(:meth:`Phases.progress`): each message that names a phase starts it and ends the one before.
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


def _peak_rss_mb() -> float:
    """This process's peak resident set so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Phase:
    name: str
    start: float
    seconds: float | None = None
    peak_rss_mb: float | None = None  # this process's peak at the phase's end

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": round(self.seconds or 0.0, 3),
                "peak_rss_mb": None if self.peak_rss_mb is None else round(self.peak_rss_mb, 1)}


@dataclass
class Phases:
    """An ordered timeline; one phase runs at a time (a new mark ends the current one)."""

    clock: Callable[[], float] = time.monotonic
    done: list[Phase] = field(default_factory=list)
    current: Phase | None = None

    def mark(self, name: str) -> None:
        """End the running phase (if any) and start ``name``."""
        now = self.clock()
        self._end(now)
        self.current = Phase(name, now)

    def _end(self, now: float) -> None:
        if self.current is not None:
            self.current.seconds = now - self.current.start
            self.current.peak_rss_mb = _peak_rss_mb()
            self.done.append(self.current)
            self.current = None

    def stop(self) -> None:
        """End the running phase."""
        self._end(self.clock())

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.mark(name)
        try:
            yield
        finally:
            self.stop()

    def progress(self, say: Callable[[str], None],
                 name_of: Callable[[str], str | None]) -> Callable[[str], None]:
        """A progress callback that passes each message on to ``say`` and starts the phase
        ``name_of(message)`` names (None: the message belongs to the running phase)."""
        def hook(message: str) -> None:
            name = name_of(message)
            if name is not None:
                self.mark(name)
            say(message)
        return hook

    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.done]

    def total(self) -> float:
        return sum(p.seconds or 0.0 for p in self.done)

    def lines(self) -> list[str]:
        """One line per phase: seconds, share of the total, the peak memory so far."""
        total = self.total() or 1.0
        width = max((len(p.name) for p in self.done), default=0)
        return [f"  {p.name:<{width}}  {p.seconds or 0.0:7.2f} s  "
                f"{100 * (p.seconds or 0.0) / total:5.1f}%  peak {p.peak_rss_mb or 0:.0f} MiB"
                for p in self.done]


__all__ = ["Phase", "Phases"]
