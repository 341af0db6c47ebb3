"""``conv-parity run``'s live line: the plugin's progress file, the child's output passed
through above the line, and the count and ETA drawn from the file."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from test_cli_e2e import INSTALLED, cli

from conv_parity.cli import run_child
from conv_parity.plugin.progress_file import read

# A stand-in for pytest: it finds --conv-progress-file, counts 0..4 of 4, prints a line per
# "test", and exits 1 (a discrepancy) so the exit code is seen to pass through.
FAKE_PYTEST = textwrap.dedent("""
    import sys, time
    path = sys.argv[sys.argv.index("--conv-progress-file") + 1]
    for done in range(5):
        open(path, "w").write(f"{done} 4\\n")
        print(f"line {done}", flush=True)
        time.sleep(0.7)
    sys.exit(1)
""")


def test_live_line_counts_from_the_file_and_passes_output_through(
        capsys: pytest.CaptureFixture[str]) -> None:
    rc = run_child.run_pytest([sys.executable, "-c", FAKE_PYTEST], live=True)
    err = capsys.readouterr().err
    assert rc == 1
    for done in range(5):
        assert f"line {done}" in err
    assert "running cases: 4/4" in err  # the last count was drawn
    assert "ETA " in err  # a total and a rate give an estimate


def test_without_the_live_line_the_child_writes_directly(tmp_path: Path) -> None:
    script = "import sys; print('plain'); sys.exit(3)"
    out = tmp_path / "out.txt"
    with out.open("w") as stream:
        rc = run_child.run_pytest([sys.executable, "-c", script], live=False, stdout=stream)
    assert rc == 3 and out.read_text() == "plain\n"


def test_progress_file_reader_tolerates_absence_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "progress"
    assert read(path) is None
    path.write_text("half")
    assert read(path) is None
    path.write_text("3 10\n")
    assert read(path) == (3, 10)


@pytest.mark.skipif("numpy" not in INSTALLED, reason="needs the numpy backend (jax)")
def test_run_shows_the_live_line_over_the_real_suite(tmp_path: Path) -> None:
    """The plugin writes the file in a real run; --progress forces the line without a tty."""
    proc = cli("run", "--profile", "smoke", "--layers", "MaxPooling1D", "--backends", "numpy",
               "--report", str(tmp_path / "report"), "--progress", "--no-daemon", timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "running cases: " in proc.stderr
    assert "conformance matrix" in proc.stdout + proc.stderr  # pytest's output came through
    quiet = cli("run", "--profile", "smoke", "--layers", "MaxPooling1D", "--backends", "numpy",
                "--report", str(tmp_path / "quiet"), "--no-daemon", timeout=300)
    assert "running cases" not in quiet.stderr and "\x1b[" not in quiet.stderr  # not a tty
