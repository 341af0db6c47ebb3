"""``check`` with a dtype policy in every mode, and ``check --mixed-dtypes``, through the real
console script (issue 15, item 3: "answers on every backend in one table")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conv_parity.engine import installed_backends

INSTALLED = installed_backends()


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CONV_PARITY_DEBUG"}
    return subprocess.run([sys.executable, "-m", "conv_parity.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)
GRAD = {"tensorflow", "torch", "jax"}


@pytest.mark.slow  # whole-process CLI / model runs: `pytest -m slow` (CI time, issue 25)
def test_check_mixed_bfloat16_in_every_mode_is_one_table() -> None:
    if not INSTALLED:
        pytest.skip("no Keras backend installed")
    proc = cli("check", "Conv2D(4, 3, padding='same')", "--input-shape", "2,6,5,3",
               "--modes", "eager,predict,jit,grad", "--dtype", "mixed_bfloat16", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert "input (2, 6, 5, 3) float32, policy mixed_bfloat16" in proc.stdout
    header = next(i for i, line in enumerate(lines) if line.startswith("mode "))
    rows = [line.split("|") for line in lines[header + 2:] if "|" in line]
    got = {(r[0].strip(), r[1].strip()) for r in rows}
    assert got == {(m, b) for m in ("eager", "predict", "jit", "grad") for b in INSTALLED}
    for r in rows:  # every row conforms: a pass, a skip for a mode the backend lacks, or a
        # registered discrepancy (openvino's predict precision on some CPUs)
        assert r[6].strip() in ("pass", "skip", "xfail"), r
        if r[1].strip() in GRAD and r[0].strip() != "jit":
            assert r[6].strip() == "pass", r


def test_check_json_carries_the_policy_and_the_compute_dtype() -> None:
    backend = "jax" if "jax" in INSTALLED else None
    if backend is None:
        pytest.skip("jax not installed")
    proc = cli("check", "Conv1D(2, 3, dtype='mixed_float16')", "--input-shape", "1,7,2",
               "--backends", backend, "--modes", "eager,grad", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)["results"]
    assert [r["case"]["policy"] for r in results] == ["mixed_float16"] * 2
    assert {r["dtype"] for r in results} == {"float16"}
    assert all(r["case_id"].split("-")[-1] in ("mixed_float16", "grad") for r in results)


def test_an_op_with_a_mixed_policy_is_a_usage_error() -> None:
    proc = cli("check", "ops.conv(x, kernel, kernel_size=3, filters=2)", "--input-shape",
               "1,7,2", "--dtype", "mixed_float16", "--backends", "numpy")
    assert proc.returncode == 2
    assert "ops have no dtype policy" in proc.stderr and "--mixed-dtypes" in proc.stderr


@pytest.mark.slow  # whole-process CLI / model runs: `pytest -m slow` (CI time, issue 25)
def test_mixed_dtypes_check_agrees_or_is_known_on_every_backend() -> None:
    if not {"jax", "torch"} <= set(INSTALLED):
        pytest.skip("needs jax and torch")
    proc = cli("check", "--mixed-dtypes", "conv,conv_transpose,depthwise_conv")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "known (jax-ops-conv-casts-input-to-kernel-dtype)" in out
    assert "0 disagree" in out
    lines = out.splitlines()
    header = [c.strip() for c in next(li for li in lines if li.startswith("op ")).split("|")]
    row = next([c.strip() for c in li.split("|")] for li in lines
               if li.startswith("ops.conv ") and "| float32  | float16" in li)
    assert row[header.index("jax")] == "float16"  # jax computes in the kernel's dtype
    assert row[header.index("torch")].startswith("raises")
    proc = cli("check", "--mixed-dtypes", "conv", "--json")
    doc = json.loads(proc.stdout)
    assert {r["verdict"] for r in doc["mixed_dtypes"]} <= {"agree", "known"}
    assert len(doc["mixed_dtypes"]) == 12
