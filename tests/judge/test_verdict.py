"""Verdict rules on synthetic backend results (no processes): every branch, exact wording."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from conv_parity.case import ConvCase
from conv_parity.engine import compute_reference
from conv_parity.judge.compare import compare_values, tolerance
from conv_parity.judge.verdict import classify
from conv_parity.results import BackendResult

CASE = ConvCase.make("Conv2D", {"filters": 3, "kernel_size": (3, 2), "strides": 2,
                                "padding": "same"}, (2, 7, 10, 4))
INVALID = ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 5}, (1, 3, 3, 1))


def _ok(case: ConvCase, output: np.ndarray, **kw) -> BackendResult:
    fields = {"shape": output.shape, "dtype": str(output.dtype),
              "symbolic_shape": output.shape, "functional_shape": output.shape}
    fields.update(kw)
    return BackendResult(backend="torch", case_id=case.id, status="ok", outputs={"y": output},
                         **fields)


def _ref(case: ConvCase):
    x, w = case.arrays()
    return compute_reference(case, x, w)


def test_exact_output_passes() -> None:
    ref = _ref(CASE)
    out = classify(CASE, ref, _ok(CASE, ref.output.astype("float32")))
    assert out.verdict == "pass", out.message


def test_wrong_shape_is_fail_shape_with_both_shapes() -> None:
    ref = _ref(CASE)
    wrong = np.zeros((2, 4, 6, 3), "float32")
    out = classify(CASE, ref, _ok(CASE, wrong))
    assert out.verdict == "fail-shape"
    assert "(2, 4, 6, 3)" in out.message and "(2, 4, 5, 3)" in out.message


def test_symbolic_shape_mismatch() -> None:
    ref = _ref(CASE)
    out = classify(CASE, ref, _ok(CASE, ref.output.astype("float32"),
                                  symbolic_shape=(2, 4, 6, 3)))
    assert out.verdict == "fail-symbolic-shape" and "compute_output_shape" in out.message
    ok = classify(CASE, ref, _ok(CASE, ref.output.astype("float32"),
                                 functional_shape=(None, 4, 5, 3)))
    assert ok.verdict == "pass"


def test_shifted_values_fail_with_worst_element() -> None:
    ref = _ref(CASE)
    shifted = np.roll(ref.output, 1, axis=1).astype("float32")
    out = classify(CASE, ref, _ok(CASE, shifted))
    assert out.verdict == "fail-values"
    assert out.mismatches and out.worst and "elements differ; worst at" in out.message
    assert out.worst["output"] == "y" and out.worst["output_shape"] == list(ref.output.shape)


def test_rounding_noise_passes_but_one_ulp_of_b_times_1000_fails() -> None:
    ref = _ref(CASE)
    noisy = ref.output + 4 * np.finfo(np.float32).eps * ref.magnitude
    assert classify(CASE, ref, _ok(CASE, noisy.astype("float32"))).verdict == "pass"
    bad = ref.output.copy()
    bad.flat[5] += 1000 * np.finfo(np.float32).eps * ref.magnitude.flat[5] + 1e-3
    assert classify(CASE, ref, _ok(CASE, bad.astype("float32"))).verdict == "fail-values"


def test_nan_and_inf_are_compared_not_masked() -> None:
    ref = np.array([1.0, np.nan, np.inf, -np.inf])
    mag = np.ones(4)
    assert compare_values(ref.copy(), ref, mag, "float32").ok
    for broken in ([1.0, 0.0, np.inf, -np.inf], [1.0, np.nan, -np.inf, -np.inf],
                   [np.nan, np.nan, np.inf, -np.inf]):
        check = compare_values(np.array(broken), ref, mag, "float32")
        assert not check.ok and check.mismatches == 1


def test_tolerance_scales_with_magnitude_and_dtype() -> None:
    ref, mag = np.zeros(2), np.array([1.0, 100.0])
    t32, t16 = tolerance(ref, mag, "float32"), tolerance(ref, mag, "float16")
    assert t32[1] == pytest.approx(100 * t32[0], rel=1e-6)
    assert t16[0] > 1000 * t32[0]


def test_dtype_mismatch_fails() -> None:
    ref = _ref(CASE)
    out = classify(CASE, ref, _ok(CASE, ref.output))  # float64 output for a float32 case
    assert out.verdict == "fail-values" and "dtype float64" in out.message


def test_error_parity_rules() -> None:
    ref = _ref(CASE)
    err = {"type": "ValueError", "message": "nope", "phase": "call"}
    res = BackendResult(backend="jax", case_id=CASE.id, status="error", error=err)
    # A backend's verdict never depends on what other backends did: no keyword to ask it to.
    assert classify(CASE, ref, res).verdict == "fail-error-parity"
    assert set(inspect.signature(classify).parameters) == {"case", "ref", "result"}
    construct = BackendResult(backend="jax", case_id=CASE.id, status="error",
                              error={**err, "phase": "construct"})
    assert classify(CASE, ref, construct).verdict == "unsupported"
    old = BackendResult(backend="jax", case_id=CASE.id, status="error",
                        error={"type": "TypeError", "phase": "construct",
                               "message": "__init__() got an unexpected keyword argument 'x'"})
    assert classify(CASE, ref, old).verdict == "skip"


def test_invalid_config_must_be_rejected() -> None:
    ref = _ref(INVALID)
    assert ref.invalid and "kernel_size" in ref.invalid
    raised = BackendResult(backend="tensorflow", case_id=INVALID.id, status="error",
                           error={"type": "ValueError", "message": "bad", "phase": "build"})
    assert classify(INVALID, ref, raised).verdict == "unsupported"
    returned = _ok(INVALID, np.zeros((1, 0, 0, 3), "float32"))
    out = classify(INVALID, ref, returned)
    assert out.verdict == "fail-error-parity" and "instead of raising" in out.message


@pytest.mark.parametrize("status", ["crash", "timeout"])
def test_crash_and_timeout_carry_the_stderr_tail(status: str) -> None:
    res = BackendResult(backend="torch", case_id=CASE.id, status=status,
                        error={"type": "WorkerDied", "message": "exit -9", "phase": "worker"},
                        stderr_tail="line1\nSegmentation fault")
    out = classify(CASE, _ref(CASE), res)
    assert out.verdict == status and "Segmentation fault" in out.message


def test_unavailable_backend_is_a_skip() -> None:
    res = BackendResult(backend="openvino", case_id=CASE.id, status="unavailable",
                        error={"type": "ImportError", "message": "No module", "phase": "worker"})
    assert classify(CASE, _ref(CASE), res).verdict == "skip"
