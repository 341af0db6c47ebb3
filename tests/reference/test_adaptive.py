"""The adaptive pooling reference: bins, shapes, a direct-loop oracle, ordinary pooling where
the sizes divide, torch's own adaptive pools where installed, and the gradients."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from conv_parity import reference
from conv_parity.errors import InvalidConfig
from conv_parity.reference import adaptive


def _oracle(x: np.ndarray, out: tuple[int, ...], mode: str, first: bool) -> np.ndarray:
    """One output element at a time, bins written as the definition states them."""
    xs = np.moveaxis(x, 1, -1) if first else x
    n = xs.shape[1:-1]
    y = np.empty((xs.shape[0], *out, xs.shape[-1]))
    for idx in itertools.product(*(range(m) for m in out)):
        box = tuple(slice(math.floor(i * s / m), math.ceil((i + 1) * s / m))
                    for i, s, m in zip(idx, n, out))
        window = xs[(slice(None), *box, slice(None))].reshape(xs.shape[0], -1, xs.shape[-1])
        y[(slice(None), *idx, slice(None))] = window.mean(1) if mode == "average" \
            else window.max(1)
    return np.moveaxis(y, -1, 1) if first else y


def test_bins_cover_the_axis_overlap_by_at_most_one_and_repeat_when_growing() -> None:
    assert adaptive.bins(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert adaptive.bins(6, 3) == [(0, 2), (2, 4), (4, 6)]
    assert adaptive.bins(2, 4) == [(0, 1), (0, 1), (1, 2), (1, 2)]
    for n, m in itertools.product(range(1, 12), range(1, 12)):
        b = adaptive.bins(n, m)
        assert b[0][0] == 0 and b[-1][1] == n and all(e > s for s, e in b)


@pytest.mark.parametrize("mode", adaptive.MODES)
@pytest.mark.parametrize("shape, out, first", [
    ((2, 7, 3), (3,), False), ((1, 2, 9), (4,), True), ((2, 7, 5, 3), (3, 2), False),
    ((1, 3, 5, 7), (5, 3), True), ((1, 4, 5, 6, 2), (3, 2, 4), False),
    ((1, 3, 2, 6), (4, 4), True)])
def test_forward_equals_the_direct_loop(mode: str, shape: tuple, out: tuple,
                                        first: bool) -> None:
    fmt = "channels_first" if first else "channels_last"
    x = np.random.default_rng(3).standard_normal(shape)
    y = adaptive.forward(x, out, mode, fmt)
    assert y.shape == adaptive.output_shape(shape, out, fmt)
    np.testing.assert_allclose(y, _oracle(x, out, mode, first), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("mode, layer", [("average", "AveragePooling2D"),
                                         ("max", "MaxPooling2D")])
def test_divisible_sizes_are_ordinary_pooling_and_one_is_global(mode: str, layer: str) -> None:
    x = np.random.default_rng(4).standard_normal((2, 6, 9, 3))
    ordinary = reference.forward(layer, x, [], pool_size=(2, 3), strides=(2, 3))
    np.testing.assert_allclose(adaptive.forward(x, (3, 3), mode), ordinary, rtol=1e-13)
    glob = x.mean(axis=(1, 2)) if mode == "average" else x.max(axis=(1, 2))
    np.testing.assert_allclose(adaptive.forward(x, 1, mode)[:, 0, 0], glob, rtol=1e-13)


def test_nan_propagates_through_its_bins_only() -> None:
    x = np.zeros((1, 5, 1))
    x[0, 0, 0] = np.nan
    for mode in adaptive.MODES:
        y = adaptive.forward(x, 3, mode)[0, :, 0]
        assert np.isnan(y[0]) and not np.isnan(y[1:]).any()


def test_torch_adaptive_pools_agree_where_torch_is_installed() -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).standard_normal((2, 3, 7, 5))
    t = torch.from_numpy(x)
    for mode, fn in (("average", torch.nn.functional.adaptive_avg_pool2d),
                     ("max", torch.nn.functional.adaptive_max_pool2d)):
        for out in ((3, 2), (4, 5), (9, 6)):
            np.testing.assert_allclose(adaptive.forward(x, out, mode, "channels_first"),
                                       fn(t, out).numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", adaptive.MODES)
def test_vjp_is_the_gradient(mode: str) -> None:
    rng = np.random.default_rng(6)
    x = rng.permutation(60).reshape(1, 5, 4, 3).astype(np.float64)  # unique maxima
    dy = rng.standard_normal(adaptive.output_shape(x.shape, (3, 3)))
    dx = adaptive.vjp(x, dy, (3, 3), mode)
    eps = 1e-3
    for idx in [(0, 0, 0, 0), (0, 2, 1, 2), (0, 4, 3, 1), (0, 1, 2, 0)]:
        e = np.zeros_like(x)
        e[idx] = eps
        num = (np.sum(dy * adaptive.forward(x + e, (3, 3), mode))
               - np.sum(dy * adaptive.forward(x - e, (3, 3), mode))) / (2 * eps)
        assert dx[idx] == pytest.approx(num, abs=1e-9)


@pytest.mark.parametrize("output_size", [0, (2,), (2, -1), 2.5])
def test_bad_output_sizes_are_refused_by_name(output_size: object) -> None:
    with pytest.raises(InvalidConfig, match="output_size") as info:
        adaptive.output_shape((1, 5, 5, 2), output_size)  # type: ignore[arg-type]
    assert info.value.argument == "output_size"
