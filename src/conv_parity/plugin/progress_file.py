"""How far a pytest session is, in a file another process can read: ``DONE TOTAL``.

``conv-parity run`` starts pytest as a child with its own terminal output; to draw a live line
(phase, count, ETA) above that output it needs the count, which only the session knows. The
session rewrites one small file after each test (atomically, so a reader never sees half a
line); under xdist only the controller, which sees every report, writes it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


class ProgressFile:
    """A registered plugin object: the collected total, then one more per finished test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.total = 0
        self.done = 0

    def _write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(f"{self.done} {self.total}\n", encoding="ascii")
        os.replace(tmp, self.path)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = len(session.items)
        self._write()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # a test ends on its call report, or on a setup report that did not pass (skip, error)
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.done += 1
            self._write()


def read(path: Path) -> tuple[int, int] | None:
    """``(done, total)`` from the file, or None before pytest has collected."""
    try:
        done, total = path.read_text(encoding="ascii").split()
        return int(done), int(total)
    except (OSError, ValueError):
        return None


__all__ = ["ProgressFile", "read"]
