"""What one worker process holds while it serves: the Keras it imported, its target, the
injected bug of a test-only mutant, and how much it has served.

One object passed to every request handler (:mod:`conv_parity.workers.handlers`) instead of
module globals, so a handler's inputs are visible in its signature and a benchmark or a test
can build a context around a Keras it imported itself.
"""

from __future__ import annotations

import os
import re
import traceback
from dataclasses import dataclass, field
from typing import Any

from conv_parity.backends import BackendSpec


@dataclass
class WorkerContext:
    """The serving state of one worker (see the module docstring)."""

    keras: Any  # the module imported as Keras (tf_keras for the keras2 target)
    spec: BackendSpec | None = None  # this worker's target
    mutation: str | None = None  # the injected bug of a mutant target (gated by env)
    served: int = 0  # requests answered: the pool retires a worker after max_cases
    _statm_fd: int | None = field(default=None, repr=False)

    def rss_mb(self) -> float:
        """Resident set size now, in MiB: one ``pread`` of a kept-open /proc/self/statm per
        case (opening and reading the file each time took ~0.1 ms per case on this VM)."""
        try:
            if self._statm_fd is None:
                self._statm_fd = os.open("/proc/self/statm", os.O_RDONLY)
            pages = int(os.pread(self._statm_fd, 256, 0).split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
        except Exception:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """Text without terminal colour codes (Keras colours some messages): reports are files.
    ``strip_ansi("\x1b[1mbold\x1b[0m") == "bold"``."""
    return _ANSI.sub("", text)


def error_record(exc: BaseException, phase: str) -> dict[str, Any]:
    """An exception of the code under test as data: type, message, phase, traceback tail."""
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "type": type(exc).__name__,
        "message": strip_ansi(str(exc))[:4000],
        "phase": phase,
        "traceback": strip_ansi("".join(tb[-6:]))[-4000:],
    }


__all__ = ["WorkerContext", "error_record", "strip_ansi"]
