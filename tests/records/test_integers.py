"""Integer dtypes (docs/integer-dtypes.md): the ranges, the seeded arrays, what a case refuses."""

from __future__ import annotations

import numpy as np
import pytest

from conv_parity import integers, policies
from conv_parity.case import ConvCase
from conv_parity.errors import UsageError


def test_worst_case_and_ranges_fit_the_dtype() -> None:
    assert integers.worst_case(18, 1, 4, 1, True) == 73
    assert integers.ranges("int8", 18, 1, bias=True) == (4, 1)  # 18*4*2 + 2 = 146 > 127
    assert integers.ranges("uint8", 18, 1, bias=False) == (8, 1)
    assert integers.ranges("int32", 1000, 2, bias=True) == (4, 4)
    assert integers.ranges("int8", 4, 0, bias=False) == (4, 1)  # a pool sums inputs only
    for dtype in integers.INT_DTYPES:
        for terms in (1, 9, 27, 100):
            for stages in (0, 1, 2):
                a, b = integers.ranges(dtype, terms, stages, bias=True)
                assert integers.worst_case(terms, stages, a, b, True) <= integers.dtype_max(dtype)


def test_ranges_refuse_a_sum_no_int8_input_keeps_exact() -> None:
    with pytest.raises(UsageError, match=r"sums 200 products and int8 holds at most 127"):
        integers.ranges("int8", 200, 1, bias=False)


def test_draw_is_seeded_in_range_and_unsigned_for_uint8() -> None:
    a = integers.draw(np.random.default_rng(1), (50, 50), 4, "int8")
    assert a.dtype == np.int8 and a.min() == -4 and a.max() == 4
    u = integers.draw(np.random.default_rng(1), (50, 50), 8, "uint8")
    assert u.dtype == np.uint8 and u.min() == 0 and u.max() == 8
    np.testing.assert_array_equal(a, integers.draw(np.random.default_rng(1), (50, 50), 4, "int8"))


def test_only_an_int8_layer_is_refused_by_keras() -> None:
    assert "quantization mode" in (integers.keras_refusal(True, "int8") or "")
    assert integers.keras_refusal(False, "int8") is None
    assert integers.keras_refusal(True, "int32") is None


@pytest.mark.parametrize(("output", "name"), [
    ([0, 1, -1, 2], "truncated toward zero"),
    ([0, 1, -2, 2], "floored"),
    ([0, 2, -2, 2], "rounded half to even"),
    ([1, 2, -2, 3], "rounded half away from zero"),
    ([5, 5, 5, 5], None),
])
def test_rounding_of_names_the_rounding(output: list[int], name: str | None) -> None:
    exact = np.array([0.5, 1.5, -1.5, 2.5])
    assert integers.rounding_of(np.array(output), exact) == name


def test_rounding_of_integral_values_is_none() -> None:
    assert integers.rounding_of(np.array([1, 2]), np.array([1.0, 2.0])) is None


def test_integer_policies_are_plain() -> None:
    for dtype in integers.INT_DTYPES:
        policy = policies.get(dtype)
        assert (policy.compute, policy.variable, policy.mixed) == (dtype, dtype, False)
        assert dtype in policies.ALL_DTYPES and dtype not in policies.DTYPES


def test_integer_case_arrays_are_integers_in_its_dtype() -> None:
    case = ConvCase.make("ops.conv", {"kernel_size": 3, "filters": 2}, (1, 5, 5, 2), "int8")
    x, (kernel,) = case.arrays()
    assert case.integer_ranges() == (4, 1)
    assert x.dtype == kernel.dtype == np.int8
    assert np.abs(x).max() <= 4 and np.abs(kernel).max() <= 1
    assert case.id.endswith("-int8")
    assert ConvCase.from_json(case.to_json()) == case


def test_integer_layer_bias_is_in_the_kernel_range() -> None:
    case = ConvCase.make("Conv2D", {"kernel_size": 2, "filters": 3}, (1, 4, 4, 2), "uint8")
    x, (kernel, bias) = case.arrays()
    a, b = case.integer_ranges()
    assert x.dtype == kernel.dtype == bias.dtype == np.uint8
    assert x.max() <= a and kernel.max() <= b and bias.max() <= b


@pytest.mark.parametrize(("extra", "words"), [
    ({"mode": "grad"}, "is not differentiable"),
    ({"values": "nan"}, "seeded small integers"),
])
def test_integer_case_refuses_grad_and_regimes(extra: dict, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        ConvCase.make("ops.max_pool", {"pool_size": 2, "strides": 2}, (1, 4, 4, 1), "int32",
                      **extra)


def test_integer_case_refuses_a_non_integer_activation() -> None:
    with pytest.raises(UsageError, match="activation 'tanh'"):
        ConvCase.make("Conv1D", {"filters": 2, "kernel_size": 2, "activation": "tanh"},
                      (1, 5, 2), "int32")
    ConvCase.make("Conv1D", {"filters": 2, "kernel_size": 2, "activation": "relu"}, (1, 5, 2),
                  "int32")


def test_integer_case_refuses_an_int8_conv_too_large_to_be_exact() -> None:
    with pytest.raises(UsageError, match="int8"):
        ConvCase.make("ops.conv", {"kernel_size": 5, "filters": 2}, (1, 9, 9, 8), "int8")


def test_an_int8_layer_is_made_though_keras_refuses_it() -> None:
    """The spec rejects it (every backend must refuse it too), so the case exists."""
    case = ConvCase.make("Conv2D", {"kernel_size": 5, "filters": 2}, (1, 9, 9, 8), "int8")
    assert case.integer_ranges() == (integers.INPUT_MAX["int8"], integers.KERNEL_MAX)
