"""Every `conv-parity` command the README and the docs show, run, with its shown output compared.

A doctest for shell: each fenced block's commands run in a folder holding the files they name
(:mod:`shown_files`), through the installed console script. A command must exit as the page
says (``$ echo $?`` after it, else :data:`EXIT_CODES`, else 0). Where the page shows output
after a ``$ command`` line, every shown line must appear in the real output once the parts that
vary by machine and run are masked: timings, seeds, versions, max |err| and tolerance figures,
pids and paths. Lines the page elides (``...``) are not compared. Slow (minutes per model, a
default-profile run): ``pytest -m slow tests/docs``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from shown_files import build_all

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: Exit codes the pages state in prose rather than with ``echo $?``.
EXIT_CODES = {
    # "Exit 1: the file does not load in Keras 3 as it is" (a Keras 2 file with blockers).
    "conv-parity model legacy.h5": 1,
    "conv-parity model legacy_model.h5": 1,
}


@dataclass
class Shown:
    """One shown command: where it is, what runs before it, what the page says it prints."""

    page: str
    line: int
    command: str
    setup: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    exit_code: int | None = None
    #: The block shows the worker daemon: its commands run with the daemon on (in a private
    #: folder of the test's), the others with it off.
    daemon: bool = False

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _shown() -> list[Shown]:
    found: list[Shown] = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            first = text.count("\n", 0, match.start(1)) + 1
            block = _block(page.name, first, match.group(1).splitlines())
            daemon = any(s.command.startswith("conv-parity daemon") for s in block)
            for s in block:
                s.daemon = daemon
            found += block
    return found


def _block(page: str, first: int, lines: list[str]) -> list[Shown]:
    """The commands of one fenced block; a transcript's output lines go to the command above."""
    out: list[Shown] = []
    setup: list[str] = []
    current: Shown | None = None
    awaiting_exit = False
    for offset, raw in enumerate(lines):
        line = raw.strip()
        prompt = line.startswith("$ ")
        body = line.removeprefix("$ ")
        if awaiting_exit and current is not None and line.isdigit():
            current.exit_code, awaiting_exit = int(line), False
        elif body.startswith("python -c "):
            setup.append(body)
        elif body.startswith("echo $?"):
            awaiting_exit = True
        elif body.startswith("conv-parity ") and "..." not in body:
            current = Shown(page, first + offset, body.split("  #")[0].strip(), list(setup))
            out.append(current)
            if not prompt:
                current = None  # a plain list of commands: no output shown after it
        elif prompt:
            current = None
        elif current is not None and line:
            current.output.append(line)
    return out


def _distinct(shown: list[Shown]) -> list[Shown]:
    """One run per distinct command (and set-up): a command several pages show runs once and
    must print what each of them shows and exit as each says."""
    merged: dict[tuple[str, tuple[str, ...], bool], Shown] = {}
    for s in shown:
        key = (s.command, tuple(s.setup), s.daemon)
        if key not in merged:
            merged[key] = Shown(s.page, s.line, s.command, list(s.setup), list(s.output),
                                s.exit_code, s.daemon)
            continue
        first = merged[key]
        first.output += s.output
        if s.exit_code is not None:
            assert first.exit_code in (None, s.exit_code), f"{s.id} and {first.id} disagree"
            first.exit_code = s.exit_code
    return list(merged.values())


SHOWN = _shown()
DISTINCT = _distinct(SHOWN)

_MASKS = [
    (re.compile(r"\(\d+(\.\d+)? s\)"), "(T s)"),  # timings
    (re.compile(r"\b[-\d.e+]+(?:e[-+]?\d+)? \(tol [^)]*\)"), "ERR (tol TOL)"),
    (re.compile(r"\bseed \d+"), "seed S"),
    (re.compile(r"\b\d+\.\d+\.\d+[^\s|),]*"), "V"),  # versions
    (re.compile(r"\b(pid|daemon|up|idle|key) [0-9a-f]+( of \d+)?( s)?"), r"\1 N"),
    (re.compile(r"folder [^;]+;"), "folder PATH;"),
    (re.compile(r"\d+/\d+ lends warm"), "N/N lends warm"),
]


def normalize(line: str) -> str:
    """One output line with what varies by machine and run masked, cells' padding dropped."""
    for pattern, repl in _MASKS:
        line = pattern.sub(repl, line)
    if set(line.replace("+", "").replace("|", "").strip()) <= {"-"}:
        return "---"  # a table rule: its width follows the cells
    return " | ".join(" ".join(cell.split()) for cell in line.split("|")).strip()


def _compared(output: list[str]) -> list[str]:
    return [normalize(line) for line in output if "..." not in line and normalize(line) != "---"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shown")
    if shutil.which("conv-parity", path=_path()) is None:
        pytest.skip("the conv-parity console script is not installed")
    try:
        build_all(folder)
    except RuntimeError as exc:
        pytest.skip(f"cannot build the files the pages name here: {str(exc)[:300]}")
    return folder


@pytest.fixture(scope="module")
def daemon_env(workspace: Path) -> Iterator[dict[str, str]]:
    """The environment of the daemon blocks: the service on (CI=true would turn it off), in
    a folder of the test's own; the daemon is stopped afterwards."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "CONV_PARITY_DAEMON")}
    folder = workspace / "daemon"
    folder.mkdir(mode=0o700, exist_ok=True)
    env.update(PATH=_path(), CONV_PARITY_DAEMON_DIR=str(folder))
    yield env
    subprocess.run("conv-parity daemon stop", shell=True, env=env, capture_output=True,
                   timeout=120, check=False, executable="/bin/bash")


def _path() -> str:
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def test_the_pages_show_commands() -> None:
    """The parser finds the README's transcripts and their exit code (a parser that found
    nothing would leave every other test here vacuous)."""
    readme = [s for s in SHOWN if s.page == "README.md"]
    assert len(readme) >= 8
    first = readme[0]
    assert first.exit_code == 0 and any("backends conform" in line for line in first.output)
    assert normalize("tensorflow | 3.15.1 / tensorflow 2.21.0 | (1, 4, 4) | 2.6 (tol 2.9e-06)"
                     " | xfail") == "tensorflow | V / tensorflow V | (1, 4, 4) | ERR (tol TOL) "\
                                    "| xfail"


@pytest.mark.slow
@pytest.mark.parametrize("shown", DISTINCT, ids=lambda s: s.id)
def test_shown_command_runs_as_shown(shown: Shown, workspace: Path,
                                     request: pytest.FixtureRequest) -> None:
    if shown.daemon:
        env = dict(request.getfixturevalue("daemon_env"))
    else:
        env = {**os.environ, "PATH": _path(), "CONV_PARITY_DAEMON": "0"}
    env.pop("CONV_PARITY_DEBUG", None)
    for step in shown.setup:
        subprocess.run(step, shell=True, cwd=workspace, env=env, check=True, timeout=600,
                       executable="/bin/bash")
    proc = subprocess.run(shown.command, shell=True, cwd=workspace, env=env, text=True,
                          capture_output=True, timeout=2400, executable="/bin/bash",
                          check=False)
    said = f"{shown.id}: `{shown.command}`\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n" \
           f"{proc.stderr[-4000:]}"
    want = shown.exit_code if shown.exit_code is not None else EXIT_CODES.get(shown.command, 0)
    assert proc.returncode == want, f"exit {proc.returncode}, the page says {want}\n{said}"
    real = {normalize(line) for line in (proc.stdout + proc.stderr).splitlines()}
    missing = [line for line in _compared(shown.output) if line not in real]
    assert not missing, "shown but not printed:\n  " + "\n  ".join(missing) + "\n" + said
