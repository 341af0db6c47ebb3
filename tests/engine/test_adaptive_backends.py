"""Adaptive pooling through the real workers (issue 23 item 5): the layers and ops agree with
the reference in eager and grad on every installed backend, the channels_last symbolic shape
of the ops is the registered discrepancy, and jax's float32 bin edges are caught.

One engine for the module; a backend that is not installed skips, and so does a Keras before
3.13 (it lacks the kinds: the verdict is ``skip``, "this Keras lacks the layer").
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conv_parity import backends as targets
from conv_parity.case import ConvCase
from conv_parity.engine import Engine
from conv_parity.registry import installed_keras_version

WANTED = ["tensorflow", "torch", "jax", "numpy"]
INSTALLED = [b for b in WANTED if targets.get(b).installed()]
HAS_ADAPTIVE = tuple(int(v) for v in (installed_keras_version() or "0.0").split(".")[:2]) >= (3, 13)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    if not INSTALLED:
        pytest.skip("none of tensorflow, torch, jax, numpy is installed")
    with Engine(INSTALLED, strict_registry=True) as eng:
        yield eng


@pytest.mark.parametrize("mode", ["eager", "grad"])
@pytest.mark.parametrize("layer, kwargs, shape", [
    ("AdaptiveAveragePooling2D", {"output_size": 3}, (2, 7, 9, 3)),
    ("AdaptiveMaxPooling1D", {"output_size": 4, "data_format": "channels_first"}, (2, 3, 10)),
    ("ops.adaptive_max_pool", {"output_size": (3, 2), "data_format": "channels_first"},
     (2, 3, 7, 5)),
    ("ops.adaptive_average_pool", {"output_size": (2, 3, 2), "data_format": "channels_first"},
     (1, 2, 5, 4, 6)),
])
def test_adaptive_kinds_conform(engine: Engine, layer: str, kwargs: dict, shape: tuple,
                                mode: str) -> None:
    """Overlapping bins, a growing axis and every rank: pass where the backend has gradients
    (numpy has none: skip), skip on a Keras without the kinds."""
    case = ConvCase.make(layer, kwargs, shape, mode=mode)
    engine.plan([case])
    for backend in INSTALLED:
        out = engine.outcome(case, backend)
        if not HAS_ADAPTIVE:
            assert out.verdict == "skip" and "this Keras lacks" in out.message, out.message
            continue
        want = ("pass", "skip") if mode == "grad" else ("pass",)
        assert out.verdict in want, (backend, out.message)


@pytest.mark.skipif(not HAS_ADAPTIVE, reason="this Keras lacks adaptive pooling (3.13+)")
def test_channels_last_op_symbolic_shape_is_the_registered_bug(engine: Engine) -> None:
    case = ConvCase.make("ops.adaptive_max_pool", {"output_size": (3, 2)}, (2, 7, 5, 3))
    for backend in INSTALLED:
        out = engine.outcome(case, backend)
        if out.verdict == "pass":  # a Keras with the fix (keras-nightly 3.16)
            assert out.symbolic_shape == (2, 3, 2, 3)
            continue
        assert out.verdict == "xfail", (backend, out.message)
        assert out.known["id"] == "keras-ops-adaptive-pool-symbolic-channels-last"
        assert "(2, 7, 3, 2, 3)" in out.message


@pytest.mark.skipif("jax" not in INSTALLED or not HAS_ADAPTIVE,
                    reason="needs jax and Keras 3.13+")
def test_jax_float32_bin_edges_give_nan(engine: Engine) -> None:
    """12 pooled to 7: jax's last bin edge lands past the input; 12 pooled to 6 is right."""
    bad = ConvCase.make("AdaptiveAveragePooling1D", {"output_size": 7}, (1, 12, 2))
    good = ConvCase.make("AdaptiveAveragePooling1D", {"output_size": 6}, (1, 12, 2))
    out = engine.outcome(bad, "jax")
    assert out.verdict == "xfail" and out.known["id"] == "jax-adaptive-pool-float32-bin-edges"
    assert "nan" in out.message
    assert engine.outcome(good, "jax").verdict == "pass"
