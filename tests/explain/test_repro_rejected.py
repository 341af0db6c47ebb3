"""Repro scripts for spec-rejected cases: OK when the call raises, DISCREPANCY when a backend
returns or aborts. Real runs of the script (a fresh interpreter each), with a stand-in keras
package on the path for the three endings, and once on the real numpy backend."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conv_parity.case import ConvCase
from conv_parity.explain import repro_rejected

#: ``keras.layers.MaxPooling1D(...)(x)`` as a stand-in: returns, raises or aborts, as told.
_FAKE_KERAS = '''
import os, signal
import numpy as np
if os.environ["FAKE_KERAS_DOES"] == "break":
    raise ImportError("a broken install")
__version__ = "0.0-fake"
class backend:
    @staticmethod
    def backend():
        return os.environ["KERAS_BACKEND"]
class ops:
    convert_to_tensor = staticmethod(lambda x, dtype=None: np.asarray(x, dtype))
    convert_to_numpy = staticmethod(np.asarray)
class _Pool:
    def __init__(self, **kwargs):
        pass
    def build(self, shape):
        pass
    def set_weights(self, weights):
        pass
    def __call__(self, x):
        how = os.environ["FAKE_KERAS_DOES"]
        if how == "raise":
            raise ValueError("Computed output size would be zero or negative")
        if how == "abort":
            os.kill(os.getpid(), signal.SIGABRT)
        return x[:, :, :0]
class layers:
    MaxPooling1D = _Pool
'''

CASE = ConvCase.make("MaxPooling1D", {"pool_size": 3, "strides": 1,
                                      "data_format": "channels_first"}, (1, 6, 1))


def _run(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300, cwd=script.parent)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    (tmp_path / "keras").mkdir()
    (tmp_path / "keras" / "__init__.py").write_text(_FAKE_KERAS)
    why = repro_rejected.rejection(CASE)
    path = tmp_path / "repro.py"
    path.write_text(repro_rejected.render(CASE, "jax", why or ""))
    return path


def test_rejection_names_the_spec_reason() -> None:
    assert repro_rejected.rejection(CASE) == (
        "output size would be -1 on spatial axis 0: pool_size=(3,) is larger than the input "
        "(input_shape=(1, 6, 1), padding='valid', strides=(1,))")
    assert repro_rejected.rejection(ConvCase.make("MaxPooling1D", {"pool_size": 3},
                                                  (1, 6, 1))) is None


def test_the_script_is_standalone(script: Path) -> None:
    text = script.read_text()
    assert "conv_parity" not in text.replace("conv-parity", "")
    assert text.index("os.environ[\"KERAS_BACKEND\"] = 'jax'") < text.index("import keras")


def test_a_backend_that_returns_is_a_discrepancy(script: Path) -> None:
    proc = _run(script, {"PYTHONPATH": str(script.parent), "FAKE_KERAS_DOES": "return"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "output shape    (1, 6, 0)" in proc.stdout
    assert ("DISCREPANCY: expected an error, but the backend returned an array (shape above): "
            "output size would be -1 on spatial axis 0") in proc.stdout


def test_a_backend_that_raises_is_ok(script: Path) -> None:
    proc = _run(script, {"PYTHONPATH": str(script.parent), "FAKE_KERAS_DOES": "raise"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "raised ValueError: Computed output size would be zero or negative" in proc.stdout
    assert "DISCREPANCY" not in proc.stdout and "OK: the backend raised" in proc.stdout


def test_an_abort_is_reported_by_its_signal(script: Path) -> None:
    proc = _run(script, {"PYTHONPATH": str(script.parent), "FAKE_KERAS_DOES": "abort"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "DISCREPANCY: expected an error, but the call killed the process with SIGABRT" \
        in proc.stdout


def test_a_broken_script_is_neither_ok_nor_a_discrepancy(script: Path) -> None:
    proc = _run(script, {"PYTHONPATH": str(script.parent), "FAKE_KERAS_DOES": "break"})
    assert proc.returncode == 2 and "DISCREPANCY" not in proc.stdout, proc.stdout
    assert "the script itself failed (child exit code 1)" in proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="needs keras")
def test_numpy_backend_returns_an_empty_pool(tmp_path: Path) -> None:
    """pool-empty-output-not-rejected: the numpy backend returns an empty tensor."""
    path = tmp_path / "repro.py"
    path.write_text(repro_rejected.render(CASE, "numpy", repro_rejected.rejection(CASE) or ""))
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "backend numpy" in proc.stdout and "DISCREPANCY: expected an error" in proc.stdout
