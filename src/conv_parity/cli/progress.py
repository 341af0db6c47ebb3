"""A live progress line on stderr for long commands (``model``, ``run``, ``fuzz``, ``backends``):
the phase, a count where there is one, the time elapsed and, once a count is known, the time
left (rich's estimate from the rate so far), drawn by rich.

Shown only when stderr is a terminal (or ``--progress``), never under ``--json`` unless asked,
and never on stdout: in CI logs and pipes the commands print their phase lines as before and
nothing else. The log lines a phase prints stay above the live line.
"""

from __future__ import annotations

import argparse
import sys
from types import TracebackType
from typing import Any, TextIO

from conv_parity.cli.common import log


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no-progress``; default: on when stderr is a terminal and not --json."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a live progress line on stderr (phase, count, time elapsed); "
                             "default: on when stderr is a terminal and --json is not given")


def wanted(args: argparse.Namespace, stream: TextIO | None = None) -> bool:
    """Whether the command shows the live line: ``--progress`` / ``--no-progress`` decide;
    otherwise stderr must be a terminal and ``--json`` absent."""
    chosen = getattr(args, "progress", None)
    if chosen is not None:
        return bool(chosen)
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not getattr(args, "json", False)


class Progress:
    """``with Progress(enabled) as p: p.phase("..."); p.count(3, 8)``; also a ``progress=``
    callback (``p(line)``): the line is logged and becomes the current phase."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._progress: Any = None
        self._task: Any = None
        self._text = ""

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress as RichProgress
            from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

            console = Console(file=self.stream, force_terminal=True, highlight=False)
            self._progress = RichProgress(SpinnerColumn(), TextColumn("{task.description}"),
                                          TimeElapsedColumn(), _eta_column(), console=console,
                                          transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self._text or "conv-parity", total=None)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __call__(self, line: str) -> None:
        """A phase line: printed (above the live line when it is shown), then shown live."""
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            log(line)
        self.phase(line.removeprefix("conv-parity: ").rstrip("."))

    def phase(self, text: str) -> None:
        """A new phase: a fresh task, so the last phase's count and rate give no ETA here."""
        self._text = text
        if self._progress is not None:
            self._progress.remove_task(self._task)
            self._task = self._progress.add_task(text, total=None)

    def count(self, done: int, total: int) -> None:
        """``done`` of ``total`` in the current phase (shown as "text: done/total", with the
        time left once rich can estimate a rate)."""
        if self._progress is not None:
            self._progress.update(self._task, description=f"{self._text}: {done}/{total}",
                                  completed=done, total=total)

    def print(self, line: str) -> None:
        """A line of a child's output, above the live line (or plainly when it is off)."""
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True,
                                         end="")
        else:
            self.stream.write(line)
            self.stream.flush()


def _eta_column() -> Any:
    """``ETA 0:02:13`` once the task has a total and a rate; nothing before (a phase without a
    count has no end to estimate)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class EtaColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            left = task.time_remaining
            if task.total is None or left is None:
                return Text("")
            minutes, seconds = divmod(int(left), 60)
            return Text(f"ETA {minutes // 60}:{minutes % 60:02d}:{seconds:02d}")

    return EtaColumn()


__all__ = ["Progress", "add_progress_option", "wanted"]
