"""Repro scripts: standalone, faithful to the suite, and they show a real discrepancy.

The inline NumPy reference of every generated script is checked against conv-parity's own
reference on the whole default grid (cheap: no backend), and real scripts are run in a
subprocess on real backends: a known Keras discrepancy must print DISCREPANCY and exit 1, a
conforming case must print OK and exit 0.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conv_parity import reference
from conv_parity.case import ConvCase
from conv_parity.errors import InvalidConfig
from conv_parity.explain.repro import render, repro_command, write_repro
from conv_parity.generate import grid
from conv_parity.registry import Registry, installed_keras_version


def _load(source: str) -> dict:
    namespace: dict = {"__name__": "conv_parity_repro_under_test"}
    exec(compile(source, "<repro>", "exec"), namespace)
    return namespace


def _valid(cases):
    for c in cases:
        try:
            reference.output_shape(c.layer, c.input_shape, **c.kwargs)
        except InvalidConfig:
            continue
        yield c


def test_inline_reference_and_arrays_match_the_suite() -> None:
    checked = 0
    # the script's seed generator draws the normal regime; others travel as .npz (below)
    for case in _valid(c for c in grid.cases("default") if c.values == "normal"):
        ns = _load(render(case, "jax"))
        x, w = case.arrays()
        x2, w2 = ns["make_arrays"]()
        assert np.array_equal(x, x2) and len(w) == len(w2), case.id
        assert all(np.array_equal(a, b) for a, b in zip(w, w2)), case.id
        got = ns["reference"](x, w)
        want = reference.forward(case.layer, x, w, **case.call_kwargs)
        assert got.shape == want.shape, case.id
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=case.id)
        checked += 1
    assert checked > 50


def test_a_value_regime_input_travels_beside_the_script(tmp_path: Path) -> None:
    case = ConvCase.make("MaxPooling2D", {"pool_size": 2}, (1, 4, 4, 2), values="nan")
    path = write_repro(case, "tensorflow", tmp_path)
    assert path.with_suffix(".npz").exists()
    x, _ = case.arrays()
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        ns = _load(path.read_text())
        ns["__file__"] = str(path)
        exec("x2, w2 = make_arrays()", ns)
    finally:
        os.chdir(cwd)
    assert np.array_equal(x, ns["x2"], equal_nan=True) and np.isnan(x).any()


def test_script_is_standalone_and_named_after_the_case(tmp_path: Path) -> None:
    case = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 2))
    path = write_repro(case, "torch", tmp_path, note="torch's output equals X")
    assert path == tmp_path / "repro" / f"{case.id}--torch.py"
    text = path.read_text()
    assert "conv_parity" not in text.replace("conv-parity", "")
    assert text.index('os.environ["KERAS_BACKEND"] = \'torch\'') < text.index("import keras")
    assert "torch's output equals X" in text
    assert repro_command(path) == f"python {path}"
    compile(text, str(path), "exec")


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _run(path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=path.parent)


# Real discrepancies of Keras 3 (found by conv-parity; see the report of the mutation issue):
# * torch pads uneven 'same' average pooling with replicated edge values (nn.py, mode="replicate");
# * tensorflow's ops.add turns a (1, F, 1, 1, 1) bias into tf.nn.bias_add with NHWC whenever the
#   last axis happens to have length F, so channels_first Conv3D adds the bias along W.
REAL = [
    ("torch", "torch", ConvCase.make("AveragePooling1D", {"pool_size": 4, "strides": 1,
                                                          "padding": "same"}, (1, 3, 4))),
    ("tensorflow", "tensorflow", ConvCase.make(
        "Conv3D", {"filters": 2, "kernel_size": 1, "padding": "same",
                   "data_format": "channels_first"}, (2, 3, 5, 2, 2))),
]


#: The platform facts a variant's setting fixes whatever the CPU (None: not known here).
_FACTS = {"tensorflow:onednn-off": {"tensorflow.onednn": False},
          "tensorflow:onednn-on": {"tensorflow.onednn": True}}


def _known(case: ConvCase, backend: str) -> str | None:
    """The verdict the registry expects for `case` on `backend` with the installed Keras."""
    entry = Registry.load().match(case, backend, installed_keras_version(),
                                  facts=_FACTS.get(backend))
    return entry.verdict if entry is not None else None


@pytest.mark.parametrize(("backend", "module", "case"), REAL, ids=[r[0] for r in REAL])
def test_real_discrepancy_script_shows_it(tmp_path: Path, backend, module, case) -> None:
    if not _have(module):
        pytest.skip(f"{module} not installed")
    if _known(case, backend) != "fail-values":  # the bugs above are those of recent Keras
        pytest.skip(f"not a known value discrepancy on Keras {installed_keras_version()}")
    path = write_repro(case, backend, tmp_path)
    proc = _run(path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "DISCREPANCY" in proc.stdout
    assert "max abs error" in proc.stdout


def test_conforming_case_script_prints_ok(tmp_path: Path) -> None:
    case = ConvCase.make("Conv2DTranspose", {"filters": 3, "kernel_size": (3, 2), "strides": 2,
                                             "padding": "same", "activation": "relu",
                                             "data_format": "channels_first"}, (2, 4, 5, 6))
    backend = next((b for b, m in (("jax", "jax"), ("torch", "torch"),
                                   ("tensorflow", "tensorflow"))
                    if _have(m) and _known(case, b) is None), None)
    if backend is None:
        pytest.skip("no installed backend is expected to conform on this case")
    proc = _run(write_repro(case, backend, tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("OK")


def test_error_parity_script_shows_the_backend_error(tmp_path: Path) -> None:
    """A backend that raises on a configuration the spec accepts: DISCREPANCY, exit 1, the
    backend's error and the spec's shape (tensorflow on CPU without oneDNN: transposed conv
    with dilation; the variant's script pins the setting, so it holds on any CPU)."""
    if not _have("tensorflow"):
        pytest.skip("tensorflow not installed")
    case = ConvCase.make("Conv1DTranspose", {"filters": 4, "kernel_size": 5, "padding": "same",
                                             "dilation_rate": 2}, (1, 11, 2))
    if _known(case, "tensorflow:onednn-off") != "fail-error-parity":
        pytest.skip(f"not a known error discrepancy on Keras {installed_keras_version()}")
    proc = _run(write_repro(case, "tensorflow:onednn-off", tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "DISCREPANCY: the backend raised InvalidArgumentError" in proc.stdout
    assert "dilation rates larger than 1" in proc.stdout
    assert "reference shape (1, 11, 4)" in proc.stdout


def test_grad_script_checks_the_gradients_and_shows_a_backward_bug(tmp_path: Path) -> None:
    """A grad-mode script differentiates on the backend and compares every gradient with
    central differences of its own float64 reference: OK where the backend conforms (jax),
    DISCREPANCY where torch's backward raises (a registered grad-only bug; y is right)."""
    case = ConvCase.make("Conv1DTranspose", {"filters": 5, "kernel_size": 5, "strides": 3,
                                             "padding": "same", "use_bias": False}, (1, 3, 1),
                         mode="grad")
    if _have("jax"):
        proc = _run(write_repro(case, "jax", tmp_path))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "dx " in proc.stdout and "dkernel" in proc.stdout
        assert "over 3 of 3 elements" in proc.stdout
    if _have("torch") and _known(case, "torch") == "fail-error-parity":
        proc = _run(write_repro(case, "torch", tmp_path))
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "DISCREPANCY: the backend raised RuntimeError while differentiating" in proc.stdout


def test_grad_script_catches_a_wrong_gradient(tmp_path: Path) -> None:
    """The script's gradient check fails on a gradient off by 0.1% (the backward-only
    mutant's bug, injected here by scaling what the backend returned)."""
    if not _have("jax"):
        pytest.skip("jax not installed")
    case = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 2), mode="grad")
    source = render(case, "jax").replace(
        "found = [dxg, *dvalues]", "found = [dxg, dvalues[0] * 1.001, *dvalues[1:]]")
    path = tmp_path / "scaled.py"
    path.write_text(source)
    proc = _run(path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "DISCREPANCY: dkernel[" in proc.stdout
