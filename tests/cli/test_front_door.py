"""What a new user meets first (issue 27): help that offers only what works, refusals before any
worker starts, a sensible pytest header, one repro script per failure, progress on stderr."""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import pytest

from conv_parity import backends as targets
from conv_parity._version import __version__
from conv_parity.cli.main import build_parser, main
from conv_parity.errors import UsageError


def _help(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(sub.choices[command].format_help().split())


@pytest.mark.parametrize("command", ["check", "run", "fuzz"])
def test_keras2_is_offered_only_where_it_works(command: str) -> None:
    text = _help(command)
    assert "tensorflow:onednn-on" in text
    assert "keras2" not in text


def test_model_help_offers_keras2_and_says_how_it_joins() -> None:
    assert "torch:mkldnn-off, keras2;" in _help("model")
    assert "keras2 joins a Keras 2 .h5's end to end by itself" in _help("model")


def test_keras2_is_refused_before_any_worker_starts(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(targets.BackendSpec, "installed", lambda self: True)
    rc = main(["check", "Conv2D(2, 3)", "--input-shape", "1,5,5,1", "--backends", "keras2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "starting" not in err
    assert "keras2 runs whole models only" in err and "choose from tensorflow, torch" in err


def test_unknown_backend_gets_a_suggestion() -> None:
    with pytest.raises(UsageError, match=r"unknown backend 'tensorflw'; did you mean "
                                         r"'tensorflow'\?"):
        targets.get("tensorflw")


def test_run_names_its_own_config_file_not_dev_null(tmp_path: Path) -> None:
    """`conv-parity run` isolates the suite from the user's pytest settings with the suite's
    own empty ini file; pytest's header names it instead of a path climbing to /dev/null."""
    from conv_parity.cli import run

    args = build_parser().parse_args(["run", "--profile", "smoke"])
    cmd = run.pytest_command(args, ["numpy"], tmp_path)
    ini = Path(cmd[cmd.index("-c") + 1])
    assert ini.name == run.RUN_INI and ini.is_file()
    assr = subprocess.run([*cmd, "--collect-only", "-p", "no:randomly"], capture_output=True,
                          text=True, timeout=120, check=False)
    # pytest 9 prints "configfile:" on its own line, earlier releases after "rootdir: ...,"
    header = [line for line in assr.stdout.splitlines() if "configfile:" in line]
    assert header, assr.stdout[-2000:] + assr.stderr[-2000:]
    assert header[0].endswith("configfile: conv-parity-run.ini")
    assert "dev/null" not in assr.stdout
    # and the plugin's own header line says what it will run
    assert (f"conv-parity {__version__}: profile smoke; backends numpy; registry not strict; "
            f"report {tmp_path}") in assr.stdout


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs tensorflow")
def test_one_repro_script_per_failure_not_per_known_discrepancy(tmp_path: Path) -> None:
    """A reproduced known discrepancy (xfail) gets no script unless asked (``repro="all"``):
    a report folder holds one script per failing (case, backend), as the README says."""
    from conv_parity.case import ConvCase
    from conv_parity.engine import Engine

    case = ConvCase.make("DepthwiseConv1D", {"kernel_size": 1, "depth_multiplier": 2,
                                             "data_format": "channels_first"}, (1, 2, 4))
    with Engine("tensorflow", report_dir=tmp_path / "failures") as engine:
        (out,) = engine.check([case])
    assert out.verdict == "xfail", out.message
    assert out.repro is None
    assert not list((tmp_path / "failures").glob("repro/*.py"))
    with Engine("tensorflow", report_dir=tmp_path / "all", repro="all") as engine:
        (out,) = engine.check([case])
    assert out.verdict == "xfail" and out.repro and Path(out.repro).is_file()


def test_repro_choice_is_checked() -> None:
    from conv_parity.engine import Engine

    with pytest.raises(UsageError, match=r"repro must be one of failures, all, got 'some'"):
        Engine("numpy", repro="some")


def test_run_passes_repro_to_pytest(tmp_path: Path) -> None:
    from conv_parity.cli import run

    args = build_parser().parse_args(["run", "--repro", "all"])
    cmd = run.pytest_command(args, ["numpy"], tmp_path)
    assert cmd[cmd.index("--conv-repro") + 1] == "all"
    args = build_parser().parse_args(["run"])
    cmd = run.pytest_command(args, ["numpy"], tmp_path)
    assert cmd[cmd.index("--conv-repro") + 1] == "failures"


def test_main_module_runs(tmp_path: Path) -> None:
    """`python -m conv_parity --version` works as well as the console script."""
    proc = subprocess.run([sys.executable, "-m", "conv_parity", "--version"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("conv-parity ")


# --------------------------------------------------------------------------- progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_shown_on_a_terminal_only_and_never_under_json() -> None:
    from conv_parity.cli.progress import wanted

    ns = argparse.Namespace
    assert wanted(ns(progress=None, json=False), _Tty())
    assert not wanted(ns(progress=None, json=False), io.StringIO())  # a pipe, a CI log
    assert not wanted(ns(progress=None, json=True), _Tty())
    assert wanted(ns(progress=True, json=True), io.StringIO())
    assert not wanted(ns(progress=False, json=False), _Tty())


def test_progress_line_keeps_phase_lines_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    from conv_parity.cli.progress import Progress

    stream = _Tty()
    with Progress(True, stream) as progress:
        progress("conv-parity: starting 3 backend workers (tensorflow, jax, torch)...")
        progress.count(1, 3)
    text = stream.getvalue()
    assert "conv-parity: starting 3 backend workers (tensorflow, jax, torch)..." in text
    assert capsys.readouterr().out == ""
    with Progress(False) as quiet:  # off: the phase line is logged as before, nothing else
        quiet("conv-parity: round trips...")
        quiet.count(1, 2)
    assert capsys.readouterr() == ("", "conv-parity: round trips...\n")


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs the numpy backend")
def test_backends_progress_goes_to_stderr_and_json_stays_clean() -> None:
    """--progress forced with --json: stdout is still exactly one JSON document; without a
    terminal and without --progress, stderr carries no cursor codes."""
    import json

    cmd = [sys.executable, "-m", "conv_parity", "backends", "--backends", "numpy"]
    forced = subprocess.run([*cmd, "--json", "--progress"], capture_output=True, text=True,
                            timeout=300, check=False)
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert json.loads(forced.stdout)["backends"][0]["backend"] == "numpy"
    assert "importing numpy" in forced.stderr
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "\x1b[" not in plain.stderr and "importing numpy" in plain.stderr


def test_a_misspelt_keyword_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["check", "Conv2D(2, 3, stride=2)", "--input-shape", "1,5,5,1"])
    assert rc == 2
    assert "Conv2D does not take 'stride' (did you mean 'strides'?)" in capsys.readouterr().err
    from conv_parity import kinds

    with pytest.raises(UsageError, match=r"does not take 'dilation' \(did you mean "
                                         r"'dilation_rate'\?\)"):
        kinds.canonicalize("Conv2D", {"filters": 2, "kernel_size": 3, "dilation": 2},
                           (1, 5, 5, 1))


def test_fuzz_progress_counts_examples_with_an_eta(capsys: pytest.CaptureFixture[str]) -> None:
    from conv_parity.cli.fuzz import _CampaignProgress
    from conv_parity.cli.progress import Progress
    from conv_parity.fuzzing import CampaignEvent

    by_count = _CampaignProgress(max_examples=100)
    assert by_count.eta(CampaignEvent("example", 25, 10.0, 0)) == pytest.approx(30.0)
    by_time = _CampaignProgress(time_budget=60)
    assert by_time.eta(CampaignEvent("example", 3, 45.0, 0)) == pytest.approx(15.0)
    stream = _Tty()
    with Progress(True, stream) as live:
        sink = _CampaignProgress(live, max_examples=100)
        sink(CampaignEvent("example", 25, 10.0, 1))
        assert live._text == "25 examples, 1 distinct discrepancies, ETA 30 s"
        sink(CampaignEvent("found", 26, 11.0, 2, "Conv2D-x", ("Conv2D", "jax", "fail-values")))
    assert "new discrepancy Conv2D/jax/fail-values on Conv2D-x" in stream.getvalue()
    assert capsys.readouterr().out == ""
