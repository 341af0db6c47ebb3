"""The predict and jit modes: skips, reuse of one traced model per (config, shape), and the
real backends through the engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conv_parity import backends as targets
from conv_parity import modes
from conv_parity.case import ConvCase
from conv_parity.modes.jit import NO_JIT

CONV = {"filters": 3, "kernel_size": 2, "padding": "same"}


def test_jit_skips_backends_without_a_compiler_and_predict_runs_everywhere() -> None:
    jit, predict = modes.get("jit"), modes.get("predict")
    for name in ("numpy", "openvino"):
        assert jit.skip_reason(targets.get(name)) == NO_JIT
        assert predict.skip_reason(targets.get(name)) is None
    assert jit.skip_reason(targets.get("jax")) is None
    assert jit.skip_reason(targets.get("tensorflow:onednn-off")) is None


def test_repro_snippet_compiles_only_for_jit() -> None:
    case = ConvCase.make("Conv2D", CONV, (1, 4, 4, 2), mode="jit")
    assert "model.compile(jit_compile=True)" in modes.get("jit").repro_call(case)
    assert "compile" not in modes.get("predict").repro_call(case)
    assert "model.predict(" in modes.get("predict").repro_call(case)


_REUSE = """
import json, numpy as np, keras
from conv_parity import modes
from conv_parity.case import ConvCase
from conv_parity.modes import Arrays
mode = modes.get("predict")
cases = [ConvCase.make("Conv2D", %r, (1, 4, 4, 2), seed=s, mode="predict") for s in (1, 2, 3)]
cases.append(ConvCase.make("Conv2D", %r, (2, 4, 4, 2), mode="predict"))
fns, ys = [], []
for case in cases:
    ys.append(mode.run(keras, case, modes.seeded(case))["y"])
    fns.append(id(mode._models[case.__class__(**{**case.__dict__, "seed": 0})][1].predict_function))
print(json.dumps({"built": mode.models_built, "fns": fns,
                  "differ": bool(not np.allclose(ys[0], ys[1]))}))
"""


@pytest.mark.skipif(not targets.get("jax").installed(), reason="jax not installed")
def test_predict_reuses_one_traced_model_per_configuration_and_shape() -> None:
    """Three seeds of one configuration share one model and its predict function (no
    retrace); a new batch size is a new shape, so a new model."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    proc = subprocess.run([sys.executable, "-c", _REUSE % (CONV, CONV)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["built"] == 2
    assert got["fns"][0] == got["fns"][1] == got["fns"][2] != got["fns"][3]
    assert got["differ"]  # the second seed's weights really went in


CASES = [
    ("Conv2D", {**CONV, "activation": "relu"}, (2, 5, 4, 2)),
    ("Conv1DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2}, (1, 5, 3)),
    ("MaxPooling2D", {"pool_size": 2}, (1, 4, 4, 3)),
    ("ops.conv", {"filters": 2, "kernel_size": 3}, (1, 6, 2)),
]


@pytest.mark.parametrize("mode", ["predict", "jit"])
def test_jax_passes_in_the_compiled_modes(mode: str) -> None:
    if not targets.get("jax").installed():
        pytest.skip("jax not installed")
    from conv_parity.engine import Engine

    cases = [ConvCase.make(*spec, mode=mode) for spec in CASES]
    with Engine(["jax", "numpy"]) as engine:
        outcomes = engine.check(cases)
    for o in outcomes:
        if o.backend == "jax":
            assert o.verdict == "pass", o.message
            assert o.case.id.endswith(f"-{mode}")
        else:
            assert o.verdict == ("skip" if mode == "jit" else "pass"), o.message
