"""cli.main in-process with a fake engine / pytest: the paths real backends rarely take
(a discrepancy, a harness failure, pytest's exit codes), without paying for backend imports."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conv_parity import cli, engine
from conv_parity.case import ConvCase
from conv_parity.judge.verdict import Outcome
from conv_parity.report import validate

EXAMPLE = "Conv2D(8, kernel_size=(4, 4), strides=(2, 2), padding='same', use_bias=False)"


class _FakeEngine:
    """Stands in for Engine: torch gets a shape discrepancy with a diagnosis and a repro."""

    raise_in_check: BaseException | None = None
    daemon_error: str | None = None

    def __init__(self, backends: Any, *, timeout: float, report_dir: Any,
                 **options: Any) -> None:
        self.backends = list(backends)

    def __enter__(self) -> _FakeEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def check(self, cases: list[ConvCase]) -> list[Outcome]:
        if self.raise_in_check is not None:
            raise self.raise_in_check
        out = []
        for case, b in [(c, b) for c in cases for b in self.backends]:
            o = Outcome(case=case, backend=b, verdict="pass", message="ok",
                        reference_shape=(1, 14, 14, 8), shape=(1, 14, 14, 8),
                        symbolic_shape=(None, 14, 14, 8), dtype="float32",
                        max_abs_err=1e-7, tolerance=5e-5)
            if b == "torch":
                o.verdict, o.shape = "fail-shape", (1, 13, 13, 8)
                o.message = "torch output shape (1, 13, 13, 8) != reference shape (1, 14, 14, 8)"
                o.diagnosis = "torch output equals the reference with padding='valid'"
                o.repro = "/tmp/conv-parity/repro-x.py"
                o.max_abs_err = o.tolerance = None
            out.append(o)
        return out

    def environment(self) -> dict[str, Any]:
        return {"python": "3", "platform": "p", "keras": "3.x", "numpy": "2",
                "backends": {b: {"available": True, "keras_version": "3.x",
                                 "backend_version": "1.0"} for b in self.backends}}


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> type[_FakeEngine]:
    monkeypatch.setattr(engine, "Engine", _FakeEngine)
    monkeypatch.setattr(engine, "parse_backends",
                        lambda spec: ((spec or "jax,torch").split(","), bool(spec)))
    _FakeEngine.raise_in_check = None
    return _FakeEngine


def test_check_discrepancy_exits_1_with_diagnosis_and_repro(
    fake_engine: type[_FakeEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["check", EXAMPLE, "--input-shape", "1,28,28,3", "--backends", "jax,torch"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "fail-shape" in out and "padding='valid'" in out
    assert "repro: python /tmp/conv-parity/repro-x.py" in out
    assert "reference shape: (1, 14, 14, 8)" in out
    assert "same: ceil(28 / 2) = 14 per spatial axis" in out
    assert "(None, 14, 14, 8)" in out  # the symbolic shape column


def test_check_modes_answer_in_one_table_with_a_mode_column(
    fake_engine: type[_FakeEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["check", EXAMPLE, "--input-shape", "1,28,28,3", "--backends", "jax,torch",
                   "--modes", "eager,grad"])
    out = capsys.readouterr().out
    assert rc == 1
    header = next(line for line in out.splitlines() if "verdict" in line)
    assert header.split("|")[0].strip() == "mode"
    assert sum(line.startswith(("eager ", "grad ")) for line in out.splitlines()) == 4
    assert "torch (grad): fail-shape" in out
    assert "2/4 backend x mode results conform" in out


def test_check_unknown_mode_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", EXAMPLE, "--input-shape", "1,28,28,3", "--modes", "grads"]) == 2
    assert "unknown mode 'grads'; choose from eager, predict, jit, grad" in capsys.readouterr().err


def test_check_json_on_discrepancy(
    fake_engine: type[_FakeEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["check", EXAMPLE, "--input-shape", "1,28,28,3", "--json"])
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    validate(doc)
    assert rc == 1
    assert {r["backend"]: r["verdict"] for r in doc["results"]} == {
        "jax": "pass", "torch": "fail-shape"}
    assert doc["reference"] == {
        "shape": [1, 14, 14, 8],
        "rule": "same: ceil(28 / 2) = 14 per spatial axis; channels = filters = 8"}


def test_check_report_dir_writes_a_valid_report(
    fake_engine: type[_FakeEngine], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["check", EXAMPLE, "--input-shape", "1,28,28,3", "--report", str(tmp_path)])
    assert rc == 1
    assert {p.name for p in tmp_path.iterdir()} >= {"report.json", "report.md", "report.html"}
    validate(json.loads((tmp_path / "report.json").read_text()))


def test_harness_failure_is_one_line_and_exit_3(
    fake_engine: type[_FakeEngine], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    fake_engine.raise_in_check = RuntimeError("worker pool exploded")
    rc = cli.main(["check", EXAMPLE, "--input-shape", "1,28,28,3", "--json"])
    captured = capsys.readouterr()
    assert rc == 3
    assert captured.out == ""
    lines = [line for line in captured.err.splitlines() if "error" in line]
    assert len(lines) == 1 and "worker pool exploded" in lines[0]
    assert "CONV_PARITY_DEBUG=1" in lines[0]
    assert "Traceback" not in captured.err

    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    assert cli.main(["check", EXAMPLE, "--input-shape", "1,28,28,3"]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_spec_rejection_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["check", "Conv2D(8, 30)", "--input-shape", "1,28,28,3"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "the spec rejects this layer" in err and "kernel_size=(30, 30)" in err
    assert "--expect-error" in err


def test_expect_error_runs_a_rejected_layer(
    fake_engine: type[_FakeEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["check", "Conv2D(8, 30)", "--input-shape", "1,28,28,3", "--expect-error",
                   "--backends", "jax", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0  # the fake's jax "passes"; the verdict logic is the engine's
    assert doc["reference"]["shape"] is None
    assert doc["reference"]["rule"].startswith("rejected by the spec: output size would be")


def test_argparse_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", EXAMPLE]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--input-shape" in err
    assert cli.main(["run", "--profile", "huge"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert cli.main(["frobnicate"]) == 2
    assert cli.main(["check", EXAMPLE, "--input-shape", "1,28,28,3", "--", "-x"]) == 2


# ------------------------------------------------------------------------------ run


def _fake_pytest(monkeypatch: pytest.MonkeyPatch, rc: int, report: dict | None) -> list:
    calls: list = []

    class FakePopen:
        def __init__(self, cmd: list[str], **kwargs: Any) -> None:
            calls.append(cmd)
            folder = Path(cmd[cmd.index("--conv-report") + 1])
            if report is not None:
                (folder / "report.json").write_text(json.dumps(report))

        def wait(self, timeout: float | None = None) -> int:
            return rc

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    monkeypatch.setattr(engine, "parse_backends", lambda spec: (["numpy"], bool(spec)))
    return calls


_REPORT_OK = {"summary": {"by_verdict": {"pass": 3, "fail-values": 0}}, "results": []}
_REPORT_BAD = {"summary": {"by_verdict": {"pass": 2, "fail-values": 1}}, "results": []}


@pytest.mark.parametrize(
    ("rc", "report", "expected"),
    [(0, _REPORT_OK, 0), (1, _REPORT_BAD, 1), (0, _REPORT_BAD, 1), (1, None, 3),
     (2, _REPORT_OK, 3), (3, _REPORT_OK, 3), (4, None, 3), (5, None, 2)],
)
def test_run_maps_pytest_exit_codes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rc: int, report: dict | None,
    expected: int,
) -> None:
    _fake_pytest(monkeypatch, rc, report)
    assert cli.main(["run", "--profile", "smoke", "--report", str(tmp_path)]) == expected


def test_run_command_line_is_isolated_and_passes_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = _fake_pytest(monkeypatch, 0, _REPORT_OK)
    rc = cli.main(["run", "--profile", "smoke", "--backends", "numpy", "--report", str(tmp_path),
                   "--shard", "2/3", "-n", "2", "--layers", "Conv2D", "--json",
                   "--modes", "grad, eager", "--", "-q"])
    assert rc == 0
    cmd = calls[0]
    joined = " ".join(cmd)
    for part in ("--pyargs conv_parity.suite", "-p conv_parity", "--noconftest",
                 "-p no:cacheprovider", "--conv-profile smoke", "--conv-backends numpy",
                 "--conv-shard 2/3", "--conv-layers Conv2D", "-n 2 --dist loadgroup",
                 "--conv-modes grad,eager"):
        assert part in joined
    assert cmd[cmd.index("-o") + 1] == "addopts="
    assert cmd[-1] == "-q"
    assert json.loads(capsys.readouterr().out) == _REPORT_OK


@pytest.mark.parametrize(
    "argv",
    [["--shard", "0/2"], ["--shard", "x"], ["--layers", "Dense"], ["--backends", "nope"],
     ["-n", "-1"], ["--modes", "eager,backward"], ["--modes", ","]],
)
def test_run_validates_before_starting_pytest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str]
) -> None:
    calls: list = []
    monkeypatch.setattr(subprocess, "Popen", lambda cmd, **kw: calls.append(cmd))
    assert cli.main(["run", "--report", str(tmp_path), *argv]) == 2
    assert calls == []
