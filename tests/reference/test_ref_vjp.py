"""The reference's backward pass (``reference.vjp``), proven three ways on hypothesis-drawn
tiny configurations: the adjoint identity against the forward, float64 central differences,
and the Jacobian read off the direct-loop oracle one basis vector at a time."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ref_strategies import configs, oracle_forward

from conv_parity import kinds, reference
from conv_parity.errors import UsageError

# The adaptive pools (issue 23 item 5) take output_size, not windows: their forward, shape and VJP
# are checked against a direct loop in test_adaptive_kinds.py.
ALL_KINDS = sorted(k for k, v in kinds.KINDS.items() if not v.family.startswith("adaptive"))
_SETTINGS = settings(max_examples=8, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


def _weight_names(d) -> list[str]:
    return [n for n in reference._vjp.names(d.layer, d.kwargs) if n != "dx"]


def _dy(d, seed: int = 3) -> np.ndarray:
    shape = reference.output_shape(d.layer, d.input_shape, **d.kwargs)
    return np.random.default_rng(seed).standard_normal(shape)


def _linear(d):
    """The drawn config without bias and activation (a map linear in x and in each kernel)."""
    if not kinds.get_kind(d.layer).has_bias:
        return d
    kw = {**d.kwargs, "use_bias": False, "activation": None}
    ws = d.weights[: len(d.weights) - (1 if d.kwargs.get("use_bias") else 0)]
    return dataclasses.replace(d, kwargs=kw, weights=ws)


@pytest.mark.parametrize("layer", ALL_KINDS)
@_SETTINGS
@given(data=st.data())
def test_adjoint_identity(layer: str, data: st.DataObject) -> None:
    """<dy, f(x, w)> = <dx, x> = <dw_i, w_i>: f is homogeneous of degree 1 in x and in each
    kernel (max pooling too, at inputs with a unique max per window)."""
    d = _linear(data.draw(configs(layer)))
    dy = _dy(d)
    y = reference.forward(d.layer, d.x, d.weights, **d.call_kwargs)
    grads = reference.vjp(d.layer, d.x, d.weights, dy, **d.call_kwargs)
    assert list(grads) == ["dx", *_weight_names(d)]
    total = float(np.sum(dy * y))
    scale = 1e-10 * (1.0 + float(np.sum(np.abs(dy) * np.abs(y))) + float(np.abs(d.x).sum()))
    assert float(np.sum(grads["dx"] * d.x)) == pytest.approx(total, abs=scale)
    for name, w in zip(_weight_names(d), d.weights):
        assert grads[name].shape == w.shape
        assert float(np.sum(grads[name] * w)) == pytest.approx(total, abs=scale)


@pytest.mark.parametrize("layer", ALL_KINDS)
@_SETTINGS
@given(data=st.data())
def test_central_differences(layer: str, data: st.DataObject) -> None:
    """Each gradient against (f(a + h v) - f(a - h v)) / 2h along a random direction v, bias
    and activation included."""
    d = data.draw(configs(layer))
    dy = _dy(d)
    kw = d.call_kwargs
    grads = reference.vjp(d.layer, d.x, d.weights, dy, **kw)
    rng = np.random.default_rng(11)
    h = 1e-6

    def f(x, ws):
        return float(np.sum(dy * reference.forward(d.layer, x, ws, **kw)))

    args = [d.x, *d.weights]
    for i, name in enumerate(["dx", *_weight_names(d)]):
        v = rng.standard_normal(args[i].shape)
        plus, minus = list(args), list(args)
        plus[i] = args[i] + h * v
        minus[i] = args[i] - h * v
        numeric = (f(plus[0], plus[1:]) - f(minus[0], minus[1:])) / (2 * h)
        analytic = float(np.sum(grads[name] * v))
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-6), name


@pytest.mark.parametrize("layer", ALL_KINDS)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_matches_direct_loop_jacobian(layer: str, data: st.DataObject) -> None:
    """Every gradient element as <dy, oracle(a + e_i) - oracle(a - e_i)> / 2 from the
    direct-loop oracle (exact for the linear map; max pooling with a step small enough to keep
    each window's arg-max)."""
    d = _linear(data.draw(configs(layer, max_batch=1)))
    d = dataclasses.replace(d, x=d.x.astype(np.float64),  # steps must not round
                            weights=[w.astype(np.float64) for w in d.weights])
    dy = _dy(d)
    grads = reference.vjp(d.layer, d.x, d.weights, dy, **d.call_kwargs)
    step = 1e-6 if kinds.get_kind(layer).family == "max_pool" else 1.0
    args = [d.x, *d.weights]
    for i, name in enumerate(["dx", *_weight_names(d)]):
        want = np.zeros(args[i].shape)
        for idx in np.ndindex(*args[i].shape):
            plus, minus = list(args), list(args)
            plus[i] = args[i].copy()
            minus[i] = args[i].copy()
            plus[i][idx] += step
            minus[i][idx] -= step
            diff = (oracle_forward(dataclasses.replace(d, x=plus[0], weights=plus[1:]))
                    - oracle_forward(dataclasses.replace(d, x=minus[0], weights=minus[1:])))
            want[idx] = np.sum(dy * diff) / (2 * step)
        np.testing.assert_allclose(grads[name], want, rtol=1e-7, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("layer", ["Conv2D", "SeparableConv1D", "Conv1DTranspose"])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_magnitude_bounds_the_gradient(layer: str, data: st.DataObject) -> None:
    """|vjp| <= vjp_magnitude element-wise: the tolerance's scale really bounds each sum."""
    d = data.draw(configs(layer))
    dy = _dy(d)
    grads = reference.vjp(d.layer, d.x, d.weights, dy, **d.call_kwargs)
    mags = reference.vjp_magnitude(d.layer, d.x, d.weights, dy, **d.call_kwargs)
    assert list(mags) == list(grads)
    for name in grads:
        assert np.all(np.abs(grads[name]) <= mags[name] * (1 + 1e-12) + 1e-300), name


def test_average_pool_same_divides_by_the_real_count() -> None:
    """A 1D 'same' average pool of 3 over 2 elements: each border window holds 2 real
    elements, so each spreads dy/2 (not dy/3) over them."""
    x = np.array([[[1.0], [2.0]]])
    grads = reference.vjp("AveragePooling1D", x, [], np.ones((1, 1, 1)), pool_size=3,
                          strides=2, padding="same")
    np.testing.assert_allclose(grads["dx"], [[[0.5], [0.5]]])


def test_max_pool_routes_to_the_arg_max() -> None:
    x = np.array([[[3.0], [-1.0], [5.0], [2.0]]])
    grads = reference.vjp("MaxPooling1D", x, [], np.array([[[10.0], [20.0]]]), pool_size=2)
    np.testing.assert_allclose(grads["dx"], [[[10.0], [0.0], [20.0], [0.0]]])


def test_bias_gradient_is_the_sum_and_relu_masks_first() -> None:
    x = np.array([[[1.0], [-1.0]]])  # Conv1D k1, weight 1, bias 0: z = x
    grads = reference.vjp("Conv1D", x, [np.ones((1, 1, 1)), np.zeros(1)], np.full((1, 2, 1), 2.0),
                          filters=1, kernel_size=1, activation="relu")
    np.testing.assert_allclose(grads["dbias"], [2.0])
    np.testing.assert_allclose(grads["dx"], [[[2.0], [0.0]]])
    np.testing.assert_allclose(grads["dkernel"], [[[2.0]]])


def test_dy_of_the_wrong_shape_is_refused_by_name() -> None:
    with pytest.raises(UsageError, match="dy has shape"):
        reference.vjp("MaxPooling1D", np.zeros((1, 4, 1)), [], np.zeros((1, 3, 1)), pool_size=2)
