"""Verdicts on integer cases (docs/integer-dtypes.md), on synthetic results: exact comparison,
the returned dtype named in every message, the rounding an integer average matches."""

from __future__ import annotations

import numpy as np

from conv_parity.case import ConvCase
from conv_parity.engine import compute_reference
from conv_parity.judge.compare import compare_values, tolerance
from conv_parity.judge.verdict import classify
from conv_parity.results import BackendResult

CONV = ConvCase.make("ops.conv", {"kernel_size": 3, "filters": 2}, (1, 5, 5, 2), "int8")
AVG = ConvCase.make("ops.average_pool", {"pool_size": 2, "strides": 2}, (1, 4, 4, 3), "int32")


def _ok(case: ConvCase, output: np.ndarray, backend: str = "torch") -> BackendResult:
    return BackendResult(backend=backend, case_id=case.id, status="ok", outputs={"y": output},
                         shape=output.shape, dtype=str(output.dtype),
                         symbolic_shape=output.shape, functional_shape=output.shape)


def _ref(case: ConvCase):
    x, w = case.arrays()
    return compute_reference(case, x, w)


def test_integer_tolerance_is_zero() -> None:
    assert not tolerance(np.ones(3), np.full(3, 1e6), "int32").any()
    check = compare_values(np.array([3, 4]), np.array([3.0, 5.0]), np.ones(2), "int8",
                           reference_error=10.0)
    assert not check.ok and check.mismatches == 1  # the float64 bound does not widen it


def test_exact_integer_output_passes_and_names_its_dtype() -> None:
    ref = _ref(CONV)
    out = classify(CONV, ref, _ok(CONV, ref.output.astype(np.int8)))
    assert out.verdict == "pass", out.message
    assert out.message == "torch returned int8, every value exact"


def test_off_by_one_fails_with_the_dtype() -> None:
    ref = _ref(CONV)
    y = ref.output.astype(np.int8)
    y[0, 1, 2, 1] += 1
    out = classify(CONV, ref, _ok(CONV, y))
    assert out.verdict == "fail-values"
    assert "1 of 18 elements differ; worst at y[0, 1, 2, 1]" in out.message
    assert "> tolerance 0" in out.message and "(torch returned int8)" in out.message


def test_all_zero_int8_conv_fails() -> None:
    ref = _ref(CONV)
    out = classify(CONV, ref, _ok(CONV, np.zeros(ref.output.shape, np.int8), "openvino"))
    assert out.verdict == "fail-values" and "(openvino returned int8)" in out.message


def test_integer_average_names_the_rounding() -> None:
    ref = _ref(AVG)
    assert not np.array_equal(ref.output, np.round(ref.output))  # some means are not integers
    truncated = np.trunc(ref.output).astype(np.int32)
    out = classify(AVG, ref, _ok(AVG, truncated))
    assert out.verdict == "fail-values"
    assert "(torch returned int32; its int32 output is the exact mean truncated toward zero)" \
        in out.message


def test_float_average_of_integers_is_a_dtype_failure() -> None:
    ref = _ref(AVG)
    out = classify(AVG, ref, _ok(AVG, ref.output.astype(np.float32), "jax"))
    assert out.verdict == "fail-values"
    assert out.message == ("jax returned dtype float32, expected int32 (the dtype Keras's "
                           "symbolic output claims for a int32 input)")
