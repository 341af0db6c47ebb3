"""``check --dtype int8`` and the other integer dtypes through the real console script
(issue 23, item 3; docs/integer-dtypes.md): per-backend verdicts with the returned dtype."""

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


def _one() -> str:
    if "jax" not in INSTALLED:
        pytest.skip("jax not installed")
    return "jax"


def test_check_int8_layer_prints_unsupported_per_backend() -> None:
    backend = _one()
    proc = cli("check", "Conv2D(2, 3)", "--input-shape", "1,5,5,2", "--dtype", "int8",
               "--backends", backend)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "input (1, 5, 5, 2) int8, policy int8" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith(backend))
    assert "unsupported" in row and "quantization mode" in row


def test_check_int32_op_json_names_the_returned_dtype() -> None:
    backend = _one()
    proc = cli("check", "ops.conv(x, kernel, kernel_size=3, filters=2)", "--input-shape",
               "1,5,5,2", "--dtype", "int32", "--backends", backend, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (result,) = json.loads(proc.stdout)["results"]
    assert result["case"]["dtype"] == "int32" and result["dtype"] == "int32"
    assert result["verdict"] == "pass"
    assert result["message"] == "jax returned int32, every value exact"


def test_an_integer_gradient_is_a_usage_error() -> None:
    proc = cli("check", "ops.max_pool(x, 2, strides=2)", "--input-shape", "1,4,4,1",
               "--dtype", "int8", "--modes", "grad", "--backends", "numpy")
    assert proc.returncode == 2
    assert "is not differentiable" in proc.stderr


def test_fuzz_refuses_integer_policies_and_says_where_they_are_checked() -> None:
    proc = cli("fuzz", "--policies", "float32,int8", "--backends", "numpy")
    assert proc.returncode == 2
    assert "the fuzzer draws float dtypes" in proc.stderr
    assert "conv-parity check --dtype int8" in proc.stderr
