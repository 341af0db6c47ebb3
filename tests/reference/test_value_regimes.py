"""What the reference answers on NaN, inf, ties and zeros (issue 23), what the comparison makes
of non-finite elements, and what each value regime feeds."""

from __future__ import annotations

import numpy as np
import pytest

from conv_parity import reference
from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.judge.compare import compare_values, reference_error_bound
from conv_parity.values import first_window, large_scale


def _pool(layer: str, x: np.ndarray, **kw) -> np.ndarray:
    return reference.forward(layer, x, [], **kw)


def test_max_pool_propagates_nan_from_a_whole_window_and_from_one_element() -> None:
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)
    x[0, :2, :2, 0] = np.nan  # the whole first window
    x[0, 3, 3, 0] = np.nan  # one element of the last
    y = _pool("MaxPooling2D", x, pool_size=2)[0, :, :, 0]
    assert np.isnan(y[0, 0]) and np.isnan(y[1, 1])
    assert y[0, 1] == 7.0 and y[1, 0] == 13.0


def test_average_pool_and_conv_propagate_nan_to_every_output_that_reads_it() -> None:
    x = np.ones((1, 5, 1))
    x[0, 2, 0] = np.nan
    avg = _pool("AveragePooling1D", x, pool_size=2, strides=1)[0, :, 0]
    assert np.isnan(avg).tolist() == [False, True, True, False]
    y = reference.forward("Conv1D", x, [np.ones((2, 1, 1)), np.zeros(1)], filters=1,
                          kernel_size=2)[0, :, 0]
    assert np.isnan(y).tolist() == [False, True, True, False]


def test_inf_follows_ieee_max_keeps_it_and_opposite_infs_average_to_nan() -> None:
    x = np.array([np.inf, 1.0, -np.inf, -np.inf, np.inf, -np.inf]).reshape(1, 6, 1)
    assert _pool("MaxPooling1D", x, pool_size=2)[0, :, 0].tolist() == [np.inf, -np.inf, np.inf]
    avg = _pool("AveragePooling1D", x, pool_size=2)[0, :, 0]
    assert avg[0] == np.inf and avg[1] == -np.inf and np.isnan(avg[2])


def test_max_pool_gradient_on_ties_goes_to_the_first_maximum_of_the_window() -> None:
    """The reference's convention where Keras leaves it open (docs/value-regimes.md): the
    first maximum in row-major window order, as a backend's ``>`` scan keeps it."""
    x = np.array([[3.0, 3.0], [1.0, 3.0]]).reshape(1, 2, 2, 1)
    dx = reference.vjp("MaxPooling2D", x, [], np.array([5.0]).reshape(1, 1, 1, 1),
                       pool_size=2)["dx"]
    assert dx[0, :, :, 0].tolist() == [[5.0, 0.0], [0.0, 0.0]]


@pytest.mark.parametrize(("out", "verdict"), [
    ([np.nan, 1.0], True),  # NaN met by NaN: agreement
    ([-3.4028235e38, 1.0], False),  # NaN dropped (max pooling's -FLT_MAX)
    ([0.0, 1.0], False),
])
def test_comparison_nan_must_meet_nan(out, verdict) -> None:
    ref = np.array([np.nan, 1.0])
    assert compare_values(np.array(out), ref, np.array([np.nan, 1.0]), "float32").ok is verdict


def test_comparison_nan_or_inf_where_the_reference_is_finite_fails() -> None:
    ref, mag = np.array([1.0, 2.0]), np.array([1.0, 2.0])
    for bad in (np.nan, np.inf):
        check = compare_values(np.array([1.0, bad]), ref, mag, "float32")
        assert not check.ok and check.worst_index == (1,)


def test_comparison_inf_must_have_the_reference_sign() -> None:
    ref = np.array([np.inf, -np.inf])
    mag = np.array([np.inf, np.inf])
    assert compare_values(ref.copy(), ref, mag, "float32").ok
    check = compare_values(np.array([np.inf, np.inf]), ref, mag, "float32")
    assert not check.ok and check.worst_index == (1,) and check.worst_tolerance == 0.0


def test_an_inf_magnitude_widens_no_finite_element_tolerance() -> None:
    """The reference's own error bound is taken over finite magnitudes: an inf element once
    made the bound inf, and every finite element passed whatever its value."""
    mag = np.array([np.inf, 1.0])
    bound = reference_error_bound(mag, 9)
    assert np.isfinite(bound)
    check = compare_values(np.array([np.inf, 5.0]), np.array([np.inf, 1.0]), mag, "float32",
                           bound)
    assert not check.ok and check.worst_index == (1,)


def _case(layer: str, kwargs: dict, shape: tuple, values: str, dtype: str = "float32"):
    return ConvCase.make(layer, kwargs, shape, dtype=dtype, values=values)


def test_normal_regime_draws_what_cases_drew_before_regimes() -> None:
    case = _case("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 2), "normal")
    rng = np.random.default_rng(case.seed)
    np.testing.assert_array_equal(case.arrays()[0],
                                  rng.standard_normal(case.input_shape).astype(np.float32))


def test_nan_regime_holds_a_whole_nan_window_and_scattered_nan() -> None:
    case = _case("MaxPooling2D", {"pool_size": 3}, (1, 9, 9, 2), "nan")
    x = case.arrays()[0]
    window = first_window(case.input_shape, case.window_extent(), False)
    assert np.isnan(x[window]).all() and x[window].shape == (3, 3)
    assert 9 < np.isnan(x).sum() < x.size / 4
    y = reference.forward(case.layer, x, [], **case.kwargs)
    assert np.isnan(y[0, 0, 0, 0])


def test_inf_regime_holds_both_signs() -> None:
    x = _case("AveragePooling1D", {"pool_size": 2}, (2, 40, 3), "inf").arrays()[0]
    assert (x == np.inf).any() and (x == -np.inf).any() and np.isfinite(x).mean() > 0.8


def test_large_float16_average_pool_window_sum_passes_65504_and_each_element_is_finite() -> None:
    case = _case("AveragePooling2D", {"pool_size": 2}, (1, 4, 4, 1), "large", "float16")
    x = case.arrays()[0]
    assert x.dtype == np.float16 and np.isfinite(x).all() and (x > 0).all()
    assert large_scale(case.dtype, True, 4, 16) == 65504 / 2
    window_sums = x.astype(np.float64).reshape(2, 2, 2, 2).sum(axis=(1, 3))
    assert (window_sums > 65504).all()
    assert np.isfinite(x.astype(np.float64).reshape(2, 2, 2, 2).mean(axis=(1, 3))).all()


def test_large_conv_output_stays_in_range() -> None:
    case = _case("Conv2D", {"filters": 4, "kernel_size": 3}, (2, 6, 6, 3), "large", "float16")
    x, w = case.arrays()
    y = reference.forward(case.layer, x, w, **case.kwargs)
    assert np.abs(y).max() < 65504 and np.abs(x).max() > 1


def test_ties_and_zeros() -> None:
    ties = _case("MaxPooling1D", {"pool_size": 3}, (1, 30, 2), "ties").arrays()[0]
    assert set(np.unique(ties)) <= set(range(-3, 4)) and len(np.unique(ties)) < 8
    zeros = _case("Conv1D", {"filters": 2, "kernel_size": 2}, (1, 4, 2), "zeros").arrays()
    assert not zeros[0].any() and zeros[1][0].any()


def test_a_gradient_at_nan_or_inf_is_refused_by_name() -> None:
    with pytest.raises(UsageError, match="values='nan' with mode 'grad'"):
        ConvCase.make("MaxPooling1D", {"pool_size": 2}, (1, 4, 1), mode="grad", values="nan")
