"""Hand-computed examples, rejected configurations and the no-backend-import rule."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conv_parity import reference
from conv_parity.errors import InvalidConfig, UsageError
from conv_parity.reference import ops


def _grid(h: int, w: int, row_step: int) -> np.ndarray:
    """x[r, c] = row_step * r + c as a (1, h, w, 1) image: every value names its position."""
    return (row_step * np.arange(h)[:, None] + np.arange(w)[None, :]).astype(float)[None, :, :, None]


def test_conv2d_k4_s2_same_on_28x28() -> None:
    """Padding total max(13*2 + 4 - 28, 0) = 2: one row/column before, one after."""
    x = _grid(28, 28, 28)
    w = np.ones((4, 4, 1, 1))
    y = reference.forward("Conv2D", x, [w, np.zeros(1)], filters=1, kernel_size=4, strides=2,
                          padding="same")
    assert y.shape == (1, 14, 14, 1)
    # out[i, j] sums rows 2i-1..2i+2 and cols 2j-1..2j+2 that exist.
    assert y[0, 0, 0, 0] == 261.0  # rows 0-2, cols 0-2: 3*(0+1+2) + 28*3*(0+1+2)
    assert y[0, 1, 0, 0] == 852.0  # rows 1-4, cols 0-2: 4*(0+1+2) + 28*3*(1+2+3+4)
    assert y[0, 13, 13, 0] == 6786.0  # rows 25-27, cols 25-27: 29 * 3 * (25+26+27)
    assert y[0, 5, 7, 0] == sum(28 * r + c for r in range(9, 13) for c in range(13, 17))


@pytest.mark.parametrize("cf", [False, True])
def test_asymmetric_7x10_stride_3(cf: bool) -> None:
    """k=2, s=3: "same" pads one row and one column at the END only (7 -> 3 rows, 10 -> 4)."""
    x = _grid(7, 10, 10)
    w = np.ones((2, 2, 1, 1))
    df = "channels_first" if cf else "channels_last"
    xin = np.moveaxis(x, -1, 1) if cf else x
    same = reference.forward("Conv2D", xin, [w], filters=1, kernel_size=2, strides=3,
                             padding="same", use_bias=False, data_format=df)
    valid = reference.forward("Conv2D", xin, [w], filters=1, kernel_size=2, strides=3,
                              padding="valid", use_bias=False, data_format=df)
    same = same[:, 0] if cf else same[..., 0]
    valid = valid[:, 0] if cf else valid[..., 0]
    assert same.shape == (1, 3, 4) and valid.shape == (1, 2, 3)
    assert same[0, 0, 0] == 0 + 1 + 10 + 11
    assert same[0, 1, 2] == 36 + 37 + 46 + 47
    assert same[0, 2, 3] == 69  # only x[6, 9] is real: the padding is after, not before
    assert same[0, 2, 0] == 60 + 61
    np.testing.assert_array_equal(valid[0], same[0, :2, :3])


@pytest.mark.parametrize("cf", [False, True])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_hand_computed(cf: bool, keepdims: bool) -> None:
    """A 3x4 grid numbered 0..11 in channel 0 and its negative in channel 1: the global average
    is 5.5 and -5.5, the global max 11 and 0; keepdims keeps (1, 1) where the spatial axes
    were, on the side data_format says."""
    x = np.concatenate([_grid(3, 4, 4), -_grid(3, 4, 4)], axis=-1)
    df = "channels_first" if cf else "channels_last"
    if cf:
        x = np.moveaxis(x, -1, 1)
    avg = reference.forward("GlobalAveragePooling2D", x, [], data_format=df, keepdims=keepdims)
    top = reference.forward("GlobalMaxPooling2D", x, [], data_format=df, keepdims=keepdims)
    expected_shape = (1, 2) if not keepdims else (1, 2, 1, 1) if cf else (1, 1, 1, 2)
    assert avg.shape == top.shape == expected_shape
    assert avg.ravel().tolist() == [5.5, -5.5]
    assert top.ravel().tolist() == [11.0, 0.0]
    dx = reference.vjp("GlobalMaxPooling2D", x, [], np.ones(expected_shape), data_format=df,
                       keepdims=keepdims)["dx"]
    assert dx.sum() == 2.0 and dx.max() == 1.0  # routed to each channel's one arg-max


def test_conv1d_transpose_hand_computed() -> None:
    """x = [1, 2, 3], w = [1, 10, 100], s = 2: full = [1, 10, 102, 20, 203, 30, 300]."""
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1)
    w = np.array([1.0, 10.0, 100.0]).reshape(3, 1, 1)
    full = [1, 10, 102, 20, 203, 30, 300]
    y = reference.forward("Conv1DTranspose", x, [w], filters=1, kernel_size=3, strides=2,
                          padding="valid", use_bias=False)
    np.testing.assert_array_equal(y.ravel(), full)
    y = ops.conv_transpose(x, w, 2, "valid", output_padding=1)
    np.testing.assert_array_equal(y.ravel(), [*full, 0])
    y = ops.conv_transpose(x, w, 2, "same")  # length n*s = 6, starts at floor((3-2)/2) = 0
    np.testing.assert_array_equal(y.ravel(), full[:6])
    y = ops.conv_transpose(x, w, 2, "same", output_padding=0)  # (3-1)*2 + 3%2 + 0 = 5
    np.testing.assert_array_equal(y.ravel(), full[1:6])


def test_conv1d_causal_hand_computed() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)
    w = np.array([1.0, 10.0]).reshape(2, 1, 1)  # out[t] = x[t - 2] * 1 + x[t] * 10 (d=2)
    y = reference.forward("Conv1D", x, [w, np.array([0.5])], filters=1, kernel_size=2,
                          padding="causal", dilation_rate=2)
    np.testing.assert_array_equal(y.ravel(), [10.5, 20.5, 31.5, 42.5])


def test_depthwise_and_separable_channel_order() -> None:
    """Depthwise output channel c*dm + m (Keras/TF order)."""
    x = np.ones((1, 3, 2))
    k = np.zeros((1, 2, 3))
    k[0, 0] = [1, 2, 3]
    k[0, 1] = [10, 20, 30]
    y = ops.depthwise_conv(x, k)
    np.testing.assert_array_equal(y[0, 0], [1, 2, 3, 10, 20, 30])
    p = np.arange(6.0).reshape(1, 6, 1)
    np.testing.assert_array_equal(ops.separable_conv(x, k, p)[0, :, 0], [y[0, 0] @ p[0, :, 0]] * 3)


def test_activations() -> None:
    x = np.array([-1000.0, -1.0, 0.0, 2.0]).reshape(1, 4, 1)
    w = np.ones((1, 1, 1))
    base = dict(filters=1, kernel_size=1, use_bias=False)
    relu = reference.forward("Conv1D", x, [w], activation="relu", **base).ravel()
    np.testing.assert_array_equal(relu, [0, 0, 0, 2])
    sig = reference.forward("Conv1D", x, [w], activation="sigmoid", **base).ravel()
    np.testing.assert_allclose(sig, [0.0, 1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-2))], rtol=1e-15)
    tanh = reference.forward("Conv1D", x, [w], activation="tanh", **base).ravel()
    np.testing.assert_allclose(tanh, np.tanh(x.ravel()), rtol=1e-15)
    mag = reference.magnitude("Conv1D", x, [-w], activation="tanh", **base).ravel()
    np.testing.assert_array_equal(mag, np.abs(x.ravel()))


def test_batch_zero_and_float16_input() -> None:
    y = reference.forward("Conv2D", np.zeros((0, 5, 5, 2)), [np.ones((3, 3, 2, 4)), np.ones(4)],
                          filters=4, kernel_size=3)
    assert y.shape == (0, 3, 3, 4) and y.dtype == np.float64
    x = np.arange(8, dtype=np.float16).reshape(1, 8, 1) / 3
    y = ops.average_pool(x, 2)
    np.testing.assert_array_equal(y.ravel(), x.astype(np.float64).reshape(4, 2).mean(axis=1))


def test_nan_and_inf_propagate() -> None:
    x = np.zeros((1, 4, 1))
    x[0, 1, 0] = np.nan
    assert np.isnan(ops.max_pool(x, 2).ravel()[0])
    assert np.isnan(ops.conv(x, np.ones((2, 1, 1))).ravel()[:2]).all()
    x[0, 1, 0] = np.inf
    assert ops.average_pool(x, 2).ravel()[0] == np.inf


INVALID = [
    ("Conv2D", dict(filters=2, kernel_size=4), (1, 3, 8, 1), "kernel_size"),
    ("Conv2D", dict(filters=0, kernel_size=1), (1, 3, 3, 1), "filters"),
    ("Conv2D", dict(filters=2, kernel_size=0), (1, 3, 3, 1), "kernel_size"),
    ("Conv2D", dict(filters=2, kernel_size=1, strides=0), (1, 3, 3, 1), "strides"),
    ("Conv2D", dict(filters=2, kernel_size=1, dilation_rate=(1, 0)), (1, 3, 3, 1), "dilation_rate"),
    ("Conv2D", dict(filters=4, kernel_size=1, groups=4), (1, 3, 3, 6), "groups"),
    ("Conv2D", dict(filters=3, kernel_size=1, groups=2), (1, 3, 3, 4), "groups"),
    ("Conv2D", dict(filters=3, kernel_size=1, groups=0), (1, 3, 3, 4), "groups"),
    ("Conv2D", dict(filters=2, kernel_size=3, strides=2, dilation_rate=2), (1, 9, 9, 1),
     "dilation_rate"),
    ("Conv2D", dict(filters=2, kernel_size=3, strides=(1, 2), dilation_rate=(2, 1)),
     (1, 9, 9, 1), "strides"),
    ("Conv1DTranspose", dict(filters=2, kernel_size=3, strides=2, dilation_rate=2), (1, 9, 1),
     "dilation_rate"),
    ("Conv2D", dict(filters=2, kernel_size=1, padding="causal"), (1, 3, 3, 1), "causal"),
    ("Conv1DTranspose", dict(filters=2, kernel_size=1, padding="causal"), (1, 3, 1), "causal"),
    ("DepthwiseConv1D", dict(kernel_size=1, padding="causal"), (1, 3, 1), "causal"),
    ("ops.conv", dict(kernel_size=1, filters=1, padding="causal"), (1, 3, 1), "causal"),
    ("Conv2DTranspose", dict(filters=2, kernel_size=3, strides=2, output_padding=2),
     (1, 4, 4, 1), "output_padding"),
    ("Conv2DTranspose", dict(filters=2, kernel_size=3, strides=1, output_padding=(0, 1)),
     (1, 4, 4, 1), "output_padding"),
    ("Conv2DTranspose", dict(filters=2, kernel_size=3, strides=2, output_padding=-1),
     (1, 4, 4, 1), "output_padding"),
    ("Conv1DTranspose", dict(filters=1, kernel_size=2, padding="same", output_padding=0),
     (1, 1, 1), "output_padding"),
    ("DepthwiseConv2D", dict(kernel_size=1, depth_multiplier=0), (1, 3, 3, 2), "depth_multiplier"),
    ("SeparableConv1D", dict(filters=0, kernel_size=1), (1, 3, 2), "filters"),
    ("MaxPooling2D", dict(pool_size=4), (1, 3, 8, 1), "pool_size"),
    ("AveragePooling1D", dict(pool_size=0), (1, 3, 1), "pool_size"),
    ("AveragePooling1D", dict(pool_size=2, strides=0), (1, 3, 1), "strides"),
    ("Conv2D", dict(filters=2, kernel_size=1), (1, 3, 3, 0), "channels"),
    ("MaxPooling1D", dict(pool_size=1, padding="same"), (1, 0, 2), "input_shape"),
    ("ops.conv", dict(kernel_size=1, filters=4, groups=3), (1, 3, 6), "groups"),
    ("ops.max_pool", dict(pool_size=3, strides=1), (2, 2, 2, 1), "pool_size"),
    ("ops.depthwise_conv", dict(kernel_size=1), (1, 2, 2, 2, 1), "input_shape"),
    ("ops.separable_conv", dict(kernel_size=1, filters=1), (1, 2, 2, 2, 1), "input_shape"),
]


@pytest.mark.parametrize(("layer", "kwargs", "shape", "named"), INVALID,
                         ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(INVALID)])
def test_invalid_configs_raise_naming_the_argument(layer, kwargs, shape, named) -> None:
    with pytest.raises(InvalidConfig, match=named):
        reference.output_shape(layer, shape, **kwargs)


def test_invalid_op_kernels() -> None:
    x = np.ones((1, 5, 6))
    with pytest.raises(InvalidConfig, match="kernel"):
        ops.conv(x, np.ones((3, 4, 2)))  # 4 does not divide 6 channels
    with pytest.raises(InvalidConfig, match="kernel"):
        ops.conv_transpose(x, np.ones((3, 2, 5)), 1)
    with pytest.raises(InvalidConfig, match="kernel"):
        ops.depthwise_conv(x, np.ones((3, 5, 1)))
    with pytest.raises(InvalidConfig, match="pointwise_kernel"):
        ops.separable_conv(x, np.ones((3, 6, 2)), np.ones((1, 6, 4)))
    with pytest.raises(InvalidConfig, match="strides"):
        ops.conv(x, np.ones((3, 6, 2)), strides=0)


def test_wrong_layer_weights_is_a_usage_error() -> None:
    x = np.ones((1, 5, 5, 2))
    with pytest.raises(UsageError, match="weights"):
        reference.forward("Conv2D", x, [np.ones((3, 3, 2, 4))], filters=4, kernel_size=3)
    with pytest.raises(UsageError, match="weights"):
        reference.forward("Conv2D", x, [np.ones((3, 3, 4, 2)), np.ones(2)], filters=2,
                          kernel_size=3)


def test_ops_strides_and_dilation_together_are_valid() -> None:
    """Only the ConvND(Transpose) *layers* reject it (Keras BaseConv); ops compute it."""
    y = ops.conv(np.ones((1, 9, 1)), np.ones((3, 1, 1)), strides=2, dilation_rate=2)
    np.testing.assert_array_equal(y.ravel(), [3.0, 3.0, 3.0])
    assert reference.output_shape("DepthwiseConv1D", (1, 9, 1), kernel_size=3, strides=2,
                                  dilation_rate=2) == (1, 3, 1)


def test_imports_no_backend_library() -> None:
    code = (
        "import sys, conv_parity.reference as r, conv_parity.reference.ops;"
        "bad = sorted(m for m in ('jax', 'tensorflow', 'torch', 'keras', 'openvino')"
        " if m in sys.modules); print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_repeated_tiny_calls_reuse_the_validated_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzzing path calls the reference thousands of times on tiny inputs: validation and
    geometry happen once per configuration (call time itself is measured by
    benchmarks/bench_reference.py, not asserted here)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 8, 3))
    w = [rng.standard_normal((3, 3, 3, 4)), rng.standard_normal(4)]
    kw = dict(filters=4, kernel_size=3, padding="same")
    first = reference.forward("Conv2D", x, w, **kw)
    builds: list[str] = []
    real_build = reference._geometry.build
    monkeypatch.setattr(reference._geometry, "build",
                        lambda *a, **k: builds.append(a[0]) or real_build(*a, **k))
    for _ in range(20):
        np.testing.assert_array_equal(reference.forward("Conv2D", x, w, **kw), first)
    assert builds == []
    reference.forward("Conv2D", x, w, **{**kw, "strides": 2})  # a new configuration is built
    assert builds == ["Conv2D"]


def test_an_empty_output_is_rejected_with_its_argument_axis_and_size() -> None:
    """The fields say what the message says, so no caller parses the message."""
    with pytest.raises(InvalidConfig, match="output size would be -1 on spatial axis 1") as exc:
        reference.output_shape("Conv2D", (1, 5, 3, 2), filters=1, kernel_size=(2, 5))
    assert (exc.value.argument, exc.value.axis, exc.value.size) == ("kernel_size", 1, -1)
    with pytest.raises(InvalidConfig) as exc:
        reference.output_shape("MaxPooling1D", (1, 2, 3), pool_size=3)
    assert (exc.value.argument, exc.value.axis, exc.value.size) == ("pool_size", 0, 0)
