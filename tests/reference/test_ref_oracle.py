"""The reference against the direct-loop oracle on hypothesis-drawn tiny configurations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ref_strategies import configs, oracle_forward

from conv_parity import kinds, reference

# The adaptive pools (issue 23 item 5) take output_size, not windows: their forward, shape and VJP
# are checked against a direct loop in test_adaptive_kinds.py.
ALL_KINDS = sorted(k for k, v in kinds.KINDS.items() if not v.family.startswith("adaptive"))
# Drawn scratch budgets: the default, and ones small enough to force batch and row chunking.
BUDGETS = st.sampled_from([None, None, 8, 300, 5000])

_SETTINGS = settings(
    max_examples=14, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _check(d, budget) -> None:
    got = reference.forward(d.layer, d.x, d.weights, scratch_bytes=budget, **d.call_kwargs)
    want = oracle_forward(d)
    assert got.dtype == np.float64
    assert got.shape == want.shape
    assert reference.output_shape(d.layer, d.input_shape, **d.kwargs) == got.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layer", ALL_KINDS)
@_SETTINGS
@given(data=st.data())
def test_matches_oracle(layer: str, data: st.DataObject) -> None:
    d = data.draw(configs(layer))
    _check(d, data.draw(BUDGETS))


@pytest.mark.parametrize("layer", ALL_KINDS)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_magnitude_matches_oracle_on_absolute_values(layer: str, data: st.DataObject) -> None:
    d = data.draw(configs(layer, max_batch=1))
    got = reference.magnitude(d.layer, d.x, d.weights, scratch_bytes=data.draw(BUDGETS),
                              **d.call_kwargs)
    np.testing.assert_allclose(got, oracle_forward(d, absolute=True), rtol=1e-12, atol=1e-12)
    assert (got >= 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("layer", ALL_KINDS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_matches_oracle_campaign(layer: str, data: st.DataObject) -> None:
    d = data.draw(configs(layer, max_batch=3))
    _check(d, data.draw(BUDGETS))


def test_raw_and_canonical_kwargs_agree() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 5, 3))
    w = [rng.standard_normal((3, 3, 3, 4)), rng.standard_normal(4)]
    raw = {"filters": 4, "kernel_size": 3, "padding": "SAME", "activation": "linear"}
    canon = kinds.canonicalize("Conv2D", raw, x.shape)
    np.testing.assert_array_equal(
        reference.forward("Conv2D", x, w, **raw), reference.forward("Conv2D", x, w, **canon)
    )


def test_ops_ignore_geometry_keys() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 7, 4))
    k = rng.standard_normal((3, 2, 6))  # groups = 4 // 2 = 2
    plain = reference.forward("ops.conv", x, [k], strides=2, padding="same")
    with_geo = reference.forward("ops.conv", x, [k], strides=2, padding="same",
                                 kernel_size=3, filters=6, groups=2)
    np.testing.assert_array_equal(plain, with_geo)
    np.testing.assert_array_equal(plain, reference.ops.conv(x, k, 2, "same"))
