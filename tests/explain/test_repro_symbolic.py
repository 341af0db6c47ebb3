"""The repro script checks symbolic shape inference as the worker does, so a
fail-symbolic-shape entry (keras-ops-conv-symbolic-groups) reproduces from the script alone."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conv_parity.case import ConvCase
from conv_parity.explain.repro import render
from conv_parity.registry import Registry, installed_keras_version


def test_a_layer_script_checks_compute_output_shape_and_the_functional_call() -> None:
    case = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 2))
    text = render(case, "jax")
    assert "symbolic_layer.compute_output_shape(INPUT_SHAPE)" in text
    assert 'symbolic["the functional API"]' in text
    compile(text, "<repro>", "exec")


def test_an_op_script_calls_the_op_on_keras_tensors() -> None:
    case = ConvCase.make("ops.conv", {"filters": 4, "kernel_size": 5, "groups": 2},
                         (2, 11, 8))
    text = render(case, "jax")
    assert "keras.ops.conv(\n" in text and "keras.KerasTensor(INPUT_SHAPE, dtype=DTYPE)" in text
    compile(text, "<repro>", "exec")


def _entry():
    return next(e for e in Registry.load().entries if e.id == "keras-ops-conv-symbolic-groups")


@pytest.mark.skipif(importlib.util.find_spec("keras") is None
                    or not _entry().keras.contains(installed_keras_version() or "0",
                                                   prereleases=True),
                    reason="needs a Keras the entry is about")
def test_the_grouped_op_symbolic_bug_reproduces_from_the_script(tmp_path: Path) -> None:
    path = tmp_path / "repro.py"
    path.write_text(render(_entry().example_case(), "numpy"))
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("DISCREPANCY: the eager call works, but symbolic shape inference raised ValueError: "
            "The number of input channels must match") in proc.stdout
