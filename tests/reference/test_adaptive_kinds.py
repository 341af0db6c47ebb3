"""The adaptive kinds through the reference's public face (``forward``, ``magnitude``,
``output_shape``, ``vjp``): the same numbers as a brute-force loop over the bins, the spec's
rejections named, and the gradient's routing (average: spread over the bin; max: the bin's
first maximum) checked element by element."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from conv_parity import reference
from conv_parity.errors import InvalidConfig, UsageError
from conv_parity.reference import adaptive

LAYERS = [f"Adaptive{m}Pooling{r}D" for m in ("Max", "Average") for r in (1, 2, 3)]


def _boxes(spatial: tuple[int, ...], out: tuple[int, ...]):
    """(output index, input box) pairs, the bins written from the definition."""
    for idx in itertools.product(*(range(m) for m in out)):
        yield idx, tuple(slice(math.floor(i * n / m), math.ceil((i + 1) * n / m))
                         for i, n, m in zip(idx, spatial, out))


def _loop(x: np.ndarray, out: tuple[int, ...], is_max: bool) -> np.ndarray:
    """Channels-last brute force: every output element reduces its box."""
    y = np.empty((x.shape[0], *out, x.shape[-1]))
    for idx, box in _boxes(x.shape[1:-1], out):
        win = x[(slice(None), *box, slice(None))].reshape(x.shape[0], -1, x.shape[-1])
        y[(slice(None), *idx, slice(None))] = win.max(1) if is_max else win.mean(1)
    return y


def _loop_vjp(x: np.ndarray, dy: np.ndarray, out: tuple[int, ...], is_max: bool) -> np.ndarray:
    """Channels-last brute force of dx: one (batch, channel, output element) at a time."""
    dx = np.zeros_like(x)
    for idx, box in _boxes(x.shape[1:-1], out):
        for b, c in itertools.product(range(x.shape[0]), range(x.shape[-1])):
            win = x[(b, *box, c)]
            g = dy[(b, *idx, c)]
            if is_max:
                flat = int(np.argmax(win.reshape(-1)))  # the first maximum in row-major order
                at = np.unravel_index(flat, win.shape)
                dx[(b, *(s.start + i for s, i in zip(box, at)), c)] += g
            else:
                dx[(b, *box, c)] += g / win.size
    return dx


def _case(layer: str, first: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    rank = int(layer[-2])
    spatial = (7, 5, 4)[:rank]
    out = (3, 7, 2)[:rank]  # overlapping bins, a growing axis (bins repeat), a dividing one
    shape = (2, 3, *spatial) if first else (2, *spatial, 3)
    return shape, out


def _cl(a: np.ndarray, first: bool) -> np.ndarray:
    return np.moveaxis(a, 1, -1) if first else a


@pytest.mark.parametrize("first", [False, True], ids=["last", "first"])
@pytest.mark.parametrize("layer", LAYERS)
def test_layer_forward_and_shape_equal_the_loop(layer: str, first: bool) -> None:
    shape, out = _case(layer, first)
    fmt = "channels_first" if first else "channels_last"
    x = np.random.default_rng(1).standard_normal(shape)
    y = reference.forward(layer, x, [], output_size=out, data_format=fmt)
    assert y.shape == reference.output_shape(layer, shape, output_size=out, data_format=fmt)
    want = _loop(_cl(x, first), out, "Max" in layer)
    np.testing.assert_allclose(_cl(y, first), want, rtol=1e-13, atol=1e-13)
    mag = reference.magnitude(layer, x, [], output_size=out, data_format=fmt)
    np.testing.assert_allclose(_cl(mag, first), _loop(np.abs(_cl(x, first)), out, "Max" in layer),
                               rtol=1e-13)


@pytest.mark.parametrize("op", ["ops.adaptive_max_pool", "ops.adaptive_average_pool"])
def test_op_takes_an_int_output_size_for_every_axis(op: str) -> None:
    x = np.random.default_rng(2).standard_normal((1, 6, 5, 2))
    y = reference.forward(op, x, [], output_size=4)
    np.testing.assert_allclose(y, _loop(x, (4, 4), "max" in op), rtol=1e-13)


@pytest.mark.parametrize("first", [False, True], ids=["last", "first"])
@pytest.mark.parametrize("layer", LAYERS)
def test_vjp_equals_the_loop(layer: str, first: bool) -> None:
    """Average: each bin's cotangent spread evenly over it; max: to its first maximum (ties
    made on purpose by rounding the input to a coarse grid)."""
    shape, out = _case(layer, first)
    fmt = "channels_first" if first else "channels_last"
    rng = np.random.default_rng(5)
    x = np.round(rng.standard_normal(shape) * 2) / 2  # ties in most bins
    out_shape = reference.output_shape(layer, shape, output_size=out, data_format=fmt)
    dy = rng.standard_normal(out_shape)
    got = reference.vjp(layer, x, [], dy, output_size=out, data_format=fmt)
    assert list(got) == ["dx"]
    want = _loop_vjp(_cl(x, first), _cl(dy, first), out, "Max" in layer)
    np.testing.assert_allclose(_cl(got["dx"], first), want, rtol=1e-13, atol=1e-13)
    mag = reference.vjp_magnitude(layer, x, [], dy, output_size=out, data_format=fmt)["dx"]
    want_mag = _loop_vjp(_cl(x, first), np.abs(_cl(dy, first)), out, "Max" in layer)
    np.testing.assert_allclose(_cl(mag, first), want_mag, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("layer", LAYERS)
def test_empty_batch_has_an_empty_gradient(layer: str) -> None:
    """Batch 0 is valid (an empty output); its gradient is empty too, not an error."""
    shape, out = _case(layer, True)
    x = np.zeros((0, *shape[1:]))
    kw = {"output_size": out, "data_format": "channels_first"}
    dy = np.zeros(reference.output_shape(layer, x.shape, **kw))
    assert reference.forward(layer, x, [], **kw).shape == dy.shape
    assert reference.vjp(layer, x, [], dy, **kw)["dx"].shape == x.shape


def test_widest_bin_is_the_geometry_window() -> None:
    """The error bound reads the geometry's window: the most elements one output reduces."""
    from conv_parity import kinds
    from conv_parity.reference._geometry import build

    canon = kinds.canonicalize("AdaptiveAveragePooling2D", {"output_size": (3, 4)}, (1, 7, 2, 1))
    g = build("AdaptiveAveragePooling2D", canon, (1, 7, 2, 1))
    assert g.window == (adaptive.largest_bin(7, 3), adaptive.largest_bin(2, 4)) == (3, 1)
    assert g.output_shape == (1, 3, 4, 1) and g.taps == 3


@pytest.mark.parametrize("bad, error, words", [
    ({"output_size": (0, 2)}, InvalidConfig, "output_size must be positive"),
    ({"output_size": (2, 2, 2)}, UsageError, "output_size must have 2 entries"),
    ({}, UsageError, "needs the argument 'output_size'"),
    ({"output_size": 2, "pool_size": 2}, UsageError, "does not take 'pool_size'"),
])
def test_rejections_name_the_argument(bad: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        reference.output_shape("AdaptiveMaxPooling2D", (1, 5, 5, 2), **bad)
