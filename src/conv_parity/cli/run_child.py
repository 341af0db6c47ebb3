"""Start ``run``'s pytest child and wait for it, under a live progress line when wanted.

pytest prints its own output (dots, the matrix); what it cannot show is how far the run is in
a form that survives a long profile: the plugin's progress file (``plugin.progress_file``) holds
``DONE TOTAL``, and while pytest runs this module redraws "running cases: DONE/TOTAL, ETA" on
stderr below pytest's lines, which it passes through above the live line. Without the live
line (not a terminal, ``--json``, ``--no-progress``) pytest writes straight to the terminal, as
it always did. Ctrl-C gives pytest time to write its partial report.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TextIO

from conv_parity.cli.common import log
from conv_parity.cli.progress import Progress
from conv_parity.errors import HarnessError
from conv_parity.plugin.progress_file import read

#: pytest's exit code reported for a run the user interrupted (the CLI maps it to its own).
INTERRUPTED = -2
_POLL_S = 0.5


def run_pytest(cmd: list[str], *, live: bool, stdout: TextIO | None = None) -> int:
    """pytest's exit code, or :data:`INTERRUPTED`. ``live``: draw the progress line (pytest's
    output is then piped through above it); ``stdout``: where pytest's output goes otherwise."""
    if not live:
        return _wait(_start(cmd, stdout))
    with tempfile.TemporaryDirectory(prefix="conv-parity-progress-") as tmp:
        progress_path = Path(tmp) / "progress"
        proc = _start([*cmd, "--conv-progress-file", str(progress_path)], subprocess.PIPE)
        with Progress(True) as bar:
            bar.phase("conv-parity run: collecting cases")
            done = threading.Event()
            poller = threading.Thread(target=_poll, args=(progress_path, bar, done), daemon=True)
            poller.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    bar.print(line)
            except KeyboardInterrupt:
                return _interrupted(proc)
            finally:
                done.set()
                poller.join(timeout=2)
        return _wait(proc)


def _start(cmd: list[str], stdout: TextIO | int | None) -> subprocess.Popen[str]:
    try:
        return subprocess.Popen(cmd, stdout=stdout, text=True, bufsize=1)
    except OSError as exc:
        raise HarnessError(f"cannot start pytest: {exc}") from None


def _poll(path: Path, bar: Progress, done: threading.Event) -> None:
    """Move the live line to the plugin's count until pytest's output ends."""
    counting = False
    while not done.wait(_POLL_S):
        state = read(path)
        if state is None:
            continue
        if not counting:
            bar.phase("conv-parity run: running cases")
            counting = True
        bar.count(*state)


def _wait(proc: subprocess.Popen[str]) -> int:
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return _interrupted(proc)


def _interrupted(proc: subprocess.Popen[str]) -> int:
    """pytest got the same SIGINT: give it time to write its partial report, then go."""
    try:
        proc.wait(timeout=30)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        proc.kill()
        proc.wait()
    with_newline = "\n" if sys.stderr.isatty() else ""
    log(f"{with_newline}conv-parity run: interrupted")
    return INTERRUPTED


__all__ = ["INTERRUPTED", "run_pytest"]
