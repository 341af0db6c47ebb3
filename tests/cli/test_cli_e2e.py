"""End to end through the real ``conv-parity`` console script, in subprocesses.

Backend imports cost seconds each, so each expensive command runs once (module fixtures) and
several tests read its result; `run` uses the smoke profile on the two cheapest backends.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conv_parity import backends as targets
from conv_parity.engine import installed_backends
from conv_parity.report import FAILURE_VERDICTS, OK_VERDICTS, build_doc, validate
from conv_parity.report.matrix import exit_code

EXAMPLE = "Conv2D(8, kernel_size=(4, 4), strides=(2, 2), padding='same', use_bias=False)"
INSTALLED = installed_backends()


def _console_script() -> list[str]:
    """The installed entry point next to this interpreter, else on PATH, else -m."""
    here = Path(sys.executable).parent / "conv-parity"
    if here.exists():
        return [str(here)]
    found = shutil.which("conv-parity")
    if found:
        return [found]
    return [sys.executable, "-m", "conv_parity.cli"]


def cli(*args: str, timeout: float = 300, cwd: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CONV_PARITY_DEBUG"}
    return subprocess.run([*_console_script(), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd, check=False)


def _consistent(rc: int, verdicts: list[str]) -> None:
    assert all(v in OK_VERDICTS or v in FAILURE_VERDICTS for v in verdicts)
    assert rc == (1 if any(v in FAILURE_VERDICTS for v in verdicts) else 0), (rc, verdicts)


# ------------------------------------------------------------------------------ check


@pytest.fixture(scope="module")
def example_run() -> subprocess.CompletedProcess[str]:
    if not INSTALLED:
        pytest.skip("no Keras backend installed")
    return cli("check", EXAMPLE, "--input-shape", "1,28,28,3", "--json")


def test_check_example_json_on_every_installed_backend(
    example_run: subprocess.CompletedProcess[str],
) -> None:
    proc = example_run
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document, nothing else on stdout
    validate(doc)  # the report.json schema
    assert doc["schema_version"] == 1
    env = doc["environment"]
    assert env["python"] and env["keras"]
    assert set(env["backends"]) == set(INSTALLED)
    assert doc["reference"]["shape"] == [1, 14, 14, 8]
    assert "ceil(28 / 2) = 14" in doc["reference"]["rule"]
    results = doc["results"]
    assert sorted(r["backend"] for r in results) == sorted(INSTALLED)
    for r in results:
        assert r["case"]["layer"] == "Conv2D"
        assert r["case"]["input_shape"] == [1, 28, 28, 3]
        assert r["case"]["kwargs"]["kernel_size"] == [4, 4]
        assert r["case"]["kwargs"]["use_bias"] is False
        assert r["case"]["dtype"] == "float32" and isinstance(r["case"]["seed"], int)
        assert r["reference_shape"] == [1, 14, 14, 8]
        assert r["case_id"].startswith("Conv2D-f8-k4x4-s2x2-same")
        if r["verdict"] == "pass":
            assert r["shape"] == [1, 14, 14, 8]
            assert r["max_abs_err"] <= r["tolerance"]
    _consistent(proc.returncode, [r["verdict"] for r in results])
    assert "Traceback" not in proc.stderr


def test_check_table_on_one_backend() -> None:
    backend = "numpy" if "numpy" in INSTALLED else (INSTALLED or [None])[0]
    if backend is None:
        pytest.skip("no Keras backend installed")
    proc = cli("check", "DepthwiseConv2D(3, depth_multiplier=2, padding='valid')",
               "--input-shape", "2,9,7,3", "--backends", backend, "--seed", "5")
    assert proc.returncode in (0, 1), proc.stderr
    out = proc.stdout
    assert "backend" in out and "verdict" in out and backend in out
    assert "reference shape: (2, 7, 5, 6)" in out
    assert "valid: H: 9 - 3 + 1 = 7, W: 7 - 3 + 1 = 5" in out
    assert "channels = 3 * depth_multiplier 2 = 6" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["Conv2D(", "--input-shape", "1,28,28,3"], "cannot parse"),
        (["__import__('os')", "--input-shape", "1,28,28,3"], "not a convolution or pooling"),
        (["Dense(3)", "--input-shape", "1,28,28,3"], "Dense is not a convolution"),
        (["Conv2D(8, 3, kernal_size=3)", "--input-shape", "1,28,28,3"], "'kernal_size'"),
        (["Conv2D(8, 3, strides=-2)", "--input-shape", "1,28,28,3"], "strides must be"),
        ([EXAMPLE, "--input-shape", "1,28,28"], "takes inputs of rank 4"),
        ([EXAMPLE, "--input-shape", "1,28,28,3", "--backends", "torch,theano"], "'theano'"),
        ([EXAMPLE], "--input-shape"),
    ],
)
def test_bad_input_exits_2_with_one_useful_line(args: list[str], needle: str) -> None:
    proc = cli("check", *args, timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "e.g." in lines[0] or "choose from" in lines[0]
    assert "Traceback" not in proc.stderr


def test_help_and_version() -> None:
    proc = cli("--help", timeout=60)
    assert proc.returncode == 0 and "conv-parity check" in proc.stdout
    for sub in ("check", "run", "fuzz", "backends", "report", "registry", "registry audit"):
        proc = cli(*sub.split(), "--help", timeout=60)
        assert proc.returncode == 0, sub
        assert "examples:" in proc.stdout, sub
    proc = cli("--version", timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("conv-parity ")


# ------------------------------------------------------------------------------ backends


@pytest.mark.slow  # whole-process CLI / model runs: `pytest -m slow` (CI time, issue 25)
def test_backends_json_lists_what_is_installed() -> None:
    proc = cli("backends", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    rows = {r["backend"]: r for r in doc["backends"]}
    assert list(rows) == list(targets.SPECS)  # every backend and variant
    for name, row in rows.items():
        modules = targets.get(name).modules  # keras2 needs tf_keras besides TensorFlow
        assert row["installed"] == all(importlib.util.find_spec(m) is not None for m in modules)
        if row["available"]:
            assert row["keras_version"] and row["backend_version"]
            assert row["import_seconds"] is not None and row["device"]
        elif row["installed"]:
            assert row["import_error"]


# ------------------------------------------------------------------------------ run + report


RUN_BACKENDS = [b for b in ("jax", "numpy") if b in INSTALLED]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[subprocess.CompletedProcess[str], Path]:
    if not RUN_BACKENDS:
        pytest.skip("needs jax (the jax and numpy backends)")
    folder = tmp_path_factory.mktemp("cli-run") / "report"
    proc = cli("run", "--profile", "smoke", "--backends", ",".join(RUN_BACKENDS),
               "--report", str(folder), "--json", timeout=600)
    return proc, folder


def test_run_smoke_writes_three_reports_and_exits_consistently(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, folder = smoke_run
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    for name in ("report.json", "report.md", "report.html"):
        assert (folder / name).is_file(), name
    doc = json.loads(proc.stdout)  # --json: the report's content on stdout, nothing else
    assert doc == json.loads((folder / "report.json").read_text())
    validate(doc)
    assert doc["complete"] is True
    assert {r["backend"] for r in doc["results"]} == set(RUN_BACKENDS)
    # Exit 1 iff a discrepancy: one in the grid's report, or a failing test outside it (the
    # suite's hypothesis fuzz tests report through pytest only).
    report_bad = exit_code(doc["results"]) == 1  # the one classifier (strict stale entries too)
    assert report_bad == (doc["summary"]["by_bucket"]["new"] > 0)
    pytest_failed = "FAILED " in proc.stderr
    assert proc.returncode == (1 if report_bad or pytest_failed else 0), proc.stderr[-3000:]
    if report_bad:
        assert pytest_failed
    assert "conformance matrix" in proc.stderr  # pytest's output went to stderr


def test_report_regenerates_in_place_and_merges(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    _, folder = smoke_run
    doc = json.loads((folder / "report.json").read_text())
    expected = exit_code(doc["results"])
    (folder / "report.md").unlink()
    (folder / "report.html").unlink()
    regen = cli("report", str(folder / "report.json"), timeout=120)
    assert regen.returncode == expected, regen.stderr
    assert (folder / "report.md").is_file() and (folder / "report.html").is_file()

    # Split the run's results in two "shards" and merge them back.
    halves = [doc["results"][0::2], doc["results"][1::2]]
    paths = []
    for i, part in enumerate(halves):
        shard = dict(doc, results=part)
        built = build_doc(part, doc["run"], doc["environment"], True)
        shard.update(summary=built["summary"])
        p = tmp_path / f"shard{i}.json"
        p.write_text(json.dumps(shard))
        paths.append(str(p))
    out = tmp_path / "merged"
    merged = cli("report", *paths, "--out", str(out), "--json", timeout=120)
    assert merged.returncode == expected, merged.stderr
    mdoc = json.loads(merged.stdout)
    assert len(mdoc["results"]) == len(doc["results"])
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "report.html"}

    bad = cli("report", str(tmp_path / "missing.json"), timeout=60)
    assert bad.returncode == 2 and "missing.json" in bad.stderr
    assert cli("report", *paths, timeout=60).returncode == 2  # merging needs --out


# ------------------------------------------------------------------------------ fuzz


def _has_campaign() -> bool:
    try:
        from conv_parity.fuzzing import run_campaign  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_campaign(), reason="fuzzing.run_campaign not available")
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs the numpy backend")
def test_fuzz_small_campaign_json(tmp_path: Path) -> None:
    proc = cli("fuzz", "--max-examples", "2", "--backends", "numpy", "--seed", "7",
               "--report", str(tmp_path), "--json", timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == 1 and "environment" in doc
    _consistent(proc.returncode, [r["verdict"] for r in doc["results"]])
    for r in doc["results"]:
        assert r["repro"]


@pytest.mark.skipif("jax" not in INSTALLED, reason="the batch test drives jax, not installed")
def test_check_cases_runs_a_batch_and_lists_bad_entries(tmp_path: Path) -> None:
    """check --cases: one set of workers for every case; a bad entry is listed with its index
    and reason and the batch goes on; a case the spec rejects runs too (every backend rejects
    it: unsupported); exit 2 for the bad entries when nothing is wrong."""
    from conv_parity.case import ConvCase

    good = ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 3}, (1, 6, 6, 2))
    rejected = ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 9}, (1, 6, 6, 2))
    path = tmp_path / "cases.json"
    path.write_text(json.dumps([good.to_json(), {"layer": "Conv2D", "kwargs": {"stride": 2},
                                                 "input_shape": [1, 6, 6, 2]},
                                rejected.to_json(), good.to_json()]))
    proc = cli("check", "--cases", str(path), "--backends", "jax", "--json")
    assert proc.returncode == 2, proc.stderr
    doc = json.loads(proc.stdout)
    assert [(r["case_id"], r["verdict"]) for r in doc["results"]] == [
        (good.id, "pass"), (rejected.id, "unsupported")]
    assert doc["run"]["rejected"][0]["index"] == 1
    assert "entry 1 is not a valid case, skipped: Conv2D does not take 'stride'" in proc.stderr


@pytest.mark.skipif("jax" not in INSTALLED, reason="the batch test drives jax, not installed")
def test_check_cases_lists_an_uncheckable_head_and_does_not_fail_the_batch(tmp_path: Path
                                                                           ) -> None:
    """Issue 24 item 9: a softmax head is a layer Keras accepts and conv-parity cannot compute;
    the batch lists it as not checked (as `model` does) and exits 0 when the rest conforms."""
    from conv_parity.case import ConvCase

    good = ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 3}, (1, 6, 6, 2))
    head = {"layer": "Conv2D", "input_shape": [1, 4, 4, 3],
            "kwargs": {"filters": 5, "kernel_size": 1, "activation": "softmax"}}
    path = tmp_path / "cases.json"
    path.write_text(json.dumps([good.to_json(), head]))
    proc = cli("check", "--cases", str(path), "--backends", "jax")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("not checked: entry 1: Conv2D: activation 'softmax' mixes the channels"
            in proc.stdout)
    assert "not a valid case" not in proc.stderr + proc.stdout
