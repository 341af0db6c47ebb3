"""Dtype policies on the real backends (issue 15, item 3): a mixed policy passes in every mode
with its dtypes checked, each registered dtype-policy finding reproduces as its entry says,
and the mixed input / kernel dtype check of the ops gives the registered answer.

One engine for the module (worker start-up costs seconds per backend); a test whose backend is
not installed skips with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conv_parity import backends as targets
from conv_parity.case import ConvCase
from conv_parity.engine import Engine

WANTED = ["tensorflow", "torch", "jax", "numpy"]
INSTALLED = [b for b in WANTED if targets.get(b).installed()]
CONV = ("Conv2D", {"filters": 3, "kernel_size": 3, "padding": "same"}, (2, 5, 6, 2))


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    if not INSTALLED:
        pytest.skip("none of tensorflow, torch, jax is installed")
    with Engine(INSTALLED, strict_registry=True) as eng:
        yield eng


def _need(backend: str) -> None:
    if backend not in INSTALLED:
        pytest.skip(f"{backend} not installed")


@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow"])
def test_mixed_bfloat16_conv_passes_in_every_mode(engine: Engine, backend: str) -> None:
    """Output in bfloat16, weights in float32, gradients in float32, values within bfloat16's
    tolerance: in eager, predict, jit and grad."""
    _need(backend)
    cases = [ConvCase.make(*CONV, dtype="mixed_bfloat16", mode=m)
             for m in ("eager", "predict", "jit", "grad")]
    engine.plan(cases)
    for case in cases:
        out = engine.outcome(case, backend)
        assert out.verdict in ("pass", "skip"), (case.id, out.message)
        if out.verdict == "pass":
            assert out.dtype == "bfloat16"


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_float16_policy_grad_dtypes(engine: Engine, backend: str) -> None:
    _need(backend)
    case = ConvCase.make(*CONV, dtype="float16", mode="grad")
    out = engine.outcome(case, backend)
    assert out.verdict == "pass", out.message
    assert out.dtype == "float16"


@pytest.mark.parametrize("policy", ["float16", "mixed_float16"])
def test_tf_pool3d_raises_in_half_except_under_xla(engine: Engine, policy: str) -> None:
    _need("tensorflow")
    eager = ConvCase.make("MaxPooling3D", {"pool_size": 2}, (1, 4, 4, 4, 2), dtype=policy)
    jit = ConvCase.make("AveragePooling3D", {"pool_size": 2}, (1, 4, 4, 4, 2), dtype=policy,
                        mode="jit")
    out = engine.outcome(eager, "tensorflow")
    assert out.verdict == "xfail" and out.known["id"] == "tf-pool3d-no-half-kernel", out.message
    assert engine.outcome(jit, "tensorflow").verdict == "pass"


def test_tf_pool3d_float64(engine: Engine) -> None:
    _need("tensorflow")
    cases = {layer: ConvCase.make(layer, {"pool_size": 2}, (1, 4, 4, 4, 2), dtype="float64")
             for layer in ("MaxPooling3D", "AveragePooling3D")}
    ids = {layer: (engine.outcome(c, "tensorflow").known or {}).get("id")
           for layer, c in cases.items()}
    assert ids == {"MaxPooling3D": "tf-maxpool3d-no-double-kernel",
                   "AveragePooling3D": "tf-avgpool3d-no-double-kernel"}


@pytest.mark.parametrize("policy", ["float16", "bfloat16", "mixed_bfloat16"])
def test_torch_avgpool3d_raises_in_half_and_bfloat16(engine: Engine, policy: str) -> None:
    _need("torch")
    case = ConvCase.make("AveragePooling3D", {"pool_size": 2}, (1, 4, 4, 4, 2), dtype=policy)
    out = engine.outcome(case, "torch")
    assert out.verdict == "xfail" and out.known["id"] == "torch-avgpool3d-no-half", out.message
    assert "NotImplementedError" in out.message
    assert engine.outcome(ConvCase.make("MaxPooling3D", {"pool_size": 2}, (1, 4, 4, 4, 2),
                                        dtype=policy), "torch").verdict == "pass"


def test_predict_rounds_a_float64_input_to_float32(engine: Engine) -> None:
    _need("torch")
    eager = ConvCase.make(*CONV, dtype="float64")
    predict = ConvCase.make(*CONV, dtype="float64", mode="predict")
    assert engine.outcome(eager, "torch").verdict == "pass"
    out = engine.outcome(predict, "torch")
    assert out.verdict == "xfail" and out.known["id"] == "keras-predict-float64-input-cast"


def test_mixed_input_and_kernel_dtypes_of_the_ops(engine: Engine) -> None:
    """float32 input, float16 kernel: jax's ops.conv computes in the kernel's dtype (it casts
    the input down, rather than promoting) and jax raises for conv_transpose and
    depthwise_conv; tensorflow, torch and numpy raise for all three (registered)."""
    from conv_parity import mixed_dtypes

    if not {"jax", "torch"} <= set(INSTALLED):
        pytest.skip("needs jax and torch")
    ops = ["ops.conv", "ops.conv_transpose", "ops.depthwise_conv"]
    probe_list = [mixed_dtypes.Probe(op, "float32", "float16") for op in ops]
    results = {r.probe.op: r for r in mixed_dtypes.check(engine, probe_list)}
    conv = results["ops.conv"]
    assert conv.answers["jax"] == {"dtype": "float16"}
    assert conv.verdict == "known", conv.message
    for op in ops:
        for backend in set(INSTALLED) - {"jax"}:
            assert "error" in results[op].answers[backend], (op, backend, results[op].answers)
    for op in ops[1:]:
        assert "error" in results[op].answers["jax"]
        assert results[op].verdict == "agree", results[op].message


def test_repro_script_of_a_policy_case_builds_the_layer_under_its_policy(tmp_path) -> None:
    """The standalone repro of a mixed_bfloat16 case rounds its data to bfloat16, builds the
    layer with dtype='mixed_bfloat16', checks the output dtype and passes."""
    import subprocess
    import sys

    from conv_parity.explain.repro import render

    _need("torch")
    case = ConvCase.make(*CONV, dtype="mixed_bfloat16", mode="predict")
    script = tmp_path / "repro.py"
    script.write_text(render(case, "torch"))
    text = script.read_text()
    assert "POLICY = 'mixed_bfloat16'" in text and "dtype=POLICY" in text
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr


def test_tf_workers_report_the_dtypes_onednn_serves() -> None:
    """The probe behind the per-dtype oneDNN scope: never float64; nothing with oneDNN off."""
    _need("tensorflow")
    with Engine(["tensorflow:onednn-on", "tensorflow:onednn-off"]) as eng:
        on = eng.facts("tensorflow:onednn-on")
        off = eng.facts("tensorflow:onednn-off")
    assert off["tensorflow.onednn"] is False and off["tensorflow.onednn_dtypes"] == []
    assert on["tensorflow.onednn"] is True
    assert "float32" in on["tensorflow.onednn_dtypes"]
    assert "float64" not in on["tensorflow.onednn_dtypes"]


def test_openvino_predict_returns_a_bfloat16_model_output_as_float16() -> None:
    if not targets.get("openvino").installed():
        pytest.skip("openvino not installed")
    eager = ConvCase.make(*CONV, dtype="mixed_bfloat16")
    predict = ConvCase.make(*CONV, dtype="mixed_bfloat16", mode="predict")
    with Engine(["openvino"], strict_registry=True) as eng:
        assert eng.outcome(eager, "openvino").verdict == "pass"
        out = eng.outcome(predict, "openvino")
    assert out.verdict == "xfail", out.message
    assert out.known["id"] == "openvino-predict-bfloat16-output-as-float16"
    assert "returned dtype float16, expected bfloat16" in out.message
