"""Identities the reference must satisfy, independent of any oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ref_strategies import configs

from conv_parity import kinds, reference
from conv_parity.reference import ops

LINEAR_KINDS = sorted(k for k, v in kinds.KINDS.items() if not v.is_pool)
# The adaptive pools (issue 23 item 5) take output_size, not windows: their forward, shape and VJP
# are checked against a direct loop in test_adaptive_kinds.py.
POOL_KINDS = sorted(k for k, v in kinds.KINDS.items()
                    if v.is_pool and not v.family.startswith("adaptive"))


def _linear(d):
    """Drop bias and activation so the map is linear in x and in each weight."""
    kw = dict(d.call_kwargs)
    if not kinds.get_kind(d.layer).is_op:
        kw.update(use_bias=False, activation=None)
        weights = d.weights[: len(d.weights) - (1 if d.kwargs["use_bias"] else 0)]
        shapes = kinds.weight_shapes(d.layer, {**d.kwargs, "use_bias": False}, d.input_shape)
        assert [w.shape for w in weights] == [tuple(s) for s in shapes]
        return kw, weights
    return kw, d.weights


@pytest.mark.parametrize("layer", LINEAR_KINDS)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_linear_in_x_and_in_each_weight(layer: str, data: st.DataObject) -> None:
    d = data.draw(configs(layer))
    kw, ws = _linear(d)
    rng = np.random.default_rng(7)
    f = lambda x, w: reference.forward(layer, x, w, **kw)  # noqa: E731
    x = d.x.astype(np.float64)  # a float32 a*x + b*x2 would round before the reference sees it
    x2 = rng.standard_normal(x.shape)
    a, b = 0.75, -1.5
    np.testing.assert_allclose(
        f(a * x + b * x2, ws), a * f(x, ws) + b * f(x2, ws), rtol=1e-10, atol=1e-10
    )
    for i in range(len(ws)):
        w2 = list(ws)
        w2[i] = rng.standard_normal(ws[i].shape)
        mixed = list(ws)
        mixed[i] = a * ws[i] + b * w2[i]
        np.testing.assert_allclose(
            f(x, mixed), a * f(x, ws) + b * f(x, w2), rtol=1e-10, atol=1e-10
        )


@settings(max_examples=60, deadline=None)
@given(
    rank=st.integers(1, 3), n_per=st.integers(1, 4), k=st.integers(1, 3), s=st.integers(1, 3),
    d=st.integers(1, 2), c=st.integers(1, 3), f=st.integers(1, 3), batch=st.integers(1, 2),
    padding=st.sampled_from(["valid", "same"]), cf=st.booleans(), extra=st.integers(0, 2),
    seed=st.integers(0, 2**31),
)
def test_adjoint_identity(rank, n_per, k, s, d, c, f, batch, padding, cf, extra, seed) -> None:
    """<conv(x), y> == <x, conv_transpose(y)> with the same kernel, strides and dilation.

    valid: conv_transpose with output_padding = the leftover n - ((m-1)*s + span) restores n.
    same: exact when n is a multiple of s and output_padding is None (TF's conv2d_transpose
    "same" is the adjoint of "same" conv for such n).
    """
    span = (k - 1) * d + 1
    if padding == "valid":
        n = span + (n_per - 1) * s + (extra % s)
    else:
        n = n_per * s
    rng = np.random.default_rng(seed)
    xs = (batch, n) if rank == 1 else (batch, *([n] * (rank - 1)), n)
    shape = (batch, c, *xs[1:]) if cf else (*xs, c)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((k,) * rank + (c, f))
    df = "channels_first" if cf else "channels_last"
    y_fwd = ops.conv(x, w, s, padding, df, d)
    y = rng.standard_normal(y_fwd.shape)
    m = y_fwd.shape[2] if cf else y_fwd.shape[1]
    op = n - ((m - 1) * s + span) if padding == "valid" else None
    xt = ops.conv_transpose(y, w, s, padding, op, df, d)
    assert xt.shape == x.shape
    lhs = float(np.vdot(y_fwd, y))
    rhs = float(np.vdot(x, xt))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("layer", POOL_KINDS)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_pool_of_constant_is_constant(layer: str, data: st.DataObject) -> None:
    """Even at "same"-padded borders: max pads with -inf, average excludes padding."""
    d = data.draw(configs(layer))
    value = data.draw(st.sampled_from([-2.5, 0.0, 3.0]))
    y = reference.forward(layer, np.full(d.x.shape, value), [], **d.call_kwargs)
    np.testing.assert_array_equal(y, np.full(y.shape, value))


def test_average_pool_same_border_excludes_padding() -> None:
    x = np.arange(1.0, 6.0).reshape(1, 5, 1)  # [1 2 3 4 5], pool 2 stride 2 same -> pad 1 after
    y = ops.average_pool(x, 2, None, "same")
    np.testing.assert_array_equal(y.ravel(), [1.5, 3.5, 5.0])
    y = ops.max_pool(-x, 2, None, "same")
    np.testing.assert_array_equal(y.ravel(), [-1.0, -3.0, -5.0])


@pytest.mark.parametrize("cf", [False, True])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_1x1_conv_is_matmul(rank: int, cf: bool) -> None:
    rng = np.random.default_rng(rank)
    sp = (3, 4, 2)[:rank]
    x = rng.standard_normal((2, *sp, 5))
    w = rng.standard_normal((1,) * rank + (5, 3))
    b = rng.standard_normal(3)
    want = x @ w.reshape(5, 3) + b
    xin = np.moveaxis(x, -1, 1) if cf else x
    got = reference.forward(
        f"Conv{rank}D", xin, [w, b], filters=3, kernel_size=1,
        data_format="channels_first" if cf else "channels_last",
    )
    np.testing.assert_allclose(np.moveaxis(got, 1, -1) if cf else got, want, rtol=1e-13)


def test_grouped_conv_equals_block_diagonal_conv() -> None:
    """Groups as an einsum axis == a full conv whose kernel is zero off the group blocks."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 9, 8, 6))
    w = rng.standard_normal((3, 3, 2, 6))  # groups = 3, 2 channels and 2 filters per group
    full = np.zeros((3, 3, 6, 6))
    for g in range(3):
        full[:, :, 2 * g : 2 * g + 2, 2 * g : 2 * g + 2] = w[:, :, :, 2 * g : 2 * g + 2]
    np.testing.assert_allclose(
        ops.conv(x, w, 2, "same"), ops.conv(x, full, 2, "same"), rtol=1e-13, atol=1e-13
    )


def test_scratch_budget_does_not_change_results() -> None:
    """Blockings differ at most by the reordering bound ``K * eps64 * B`` per element
    (reference/_conv.py derives it: BLAS picks the order of a dot product's K products by CPU
    and by the block's row count, so bit equality holds only on some machines)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 11, 9, 4))
    w = rng.standard_normal((3, 3, 2, 6))  # groups = 2: K = 3 * 3 * 2 products per output
    wt = rng.standard_normal((3, 3, 5, 4))  # each output sums at most 3 * 3 * 4 products
    eps = np.finfo(np.float64).eps
    conv_bound = 3 * 3 * 2 * eps * ops.conv(np.abs(x), np.abs(w), 1, "same")
    t_bound = 3 * 3 * 4 * eps * ops.conv_transpose(np.abs(x), np.abs(wt), 2, "same")
    conv_full, t_full = ops.conv(x, w, 1, "same"), ops.conv_transpose(x, wt, 2, "same")
    for budget in (1, 100, 4000, 10**6, None):
        got = ops.conv(x, w, 1, "same", scratch_bytes=budget)
        assert np.all(np.abs(got - conv_full) <= conv_bound), budget
        got = ops.conv_transpose(x, wt, 2, "same", scratch_bytes=budget)
        assert np.all(np.abs(got - t_full) <= t_bound), budget


def test_the_blocking_bound_is_tight_enough_to_catch_a_real_change() -> None:
    """The bound is no licence: a one-ulp-of-float32 change is far outside it."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 11, 9, 4))
    w = rng.standard_normal((3, 3, 2, 6))
    bound = 3 * 3 * 2 * np.finfo(np.float64).eps * ops.conv(np.abs(x), np.abs(w), 1, "same")
    full = ops.conv(x, w, 1, "same")
    nudged = ops.conv(x, w * (1 + np.finfo(np.float32).eps), 1, "same", scratch_bytes=100)
    assert not np.all(np.abs(nudged - full) <= bound)
