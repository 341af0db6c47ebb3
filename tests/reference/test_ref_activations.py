"""Every element-wise Keras activation: known values, slope bounds, and real backends agree."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conv_parity import backends as targets
from conv_parity.case import ConvCase
from conv_parity.kinds import ACTIVATIONS
from conv_parity.reference import _activations

NAMES = [a for a in ACTIVATIONS if a and a != "linear"]


def test_known_values() -> None:
    f = _activations.FUNCTIONS
    y = np.array([-1.0, 1.0])
    np.testing.assert_allclose(f["gelu"](y), [-0.15865525393145707, 0.8413447460685429])
    np.testing.assert_allclose(f["selu"](y), [-1.1113307378125625, 1.0507009873554805])
    np.testing.assert_allclose(f["mish"](y), [-0.3034014613058654, 0.8650983882673103])
    np.testing.assert_allclose(f["silu"](y), [-0.2689414213699951, 0.7310585786300049])
    np.testing.assert_allclose(f["hard_silu"](np.array([-4.0, 1.0, 4.0])), [0.0, 2 / 3, 4.0])
    np.testing.assert_allclose(f["log_sigmoid"](np.array([0.0, -800.0])),
                               [-math.log(2.0), -800.0])
    np.testing.assert_allclose(f["sparse_plus"](np.array([-2.0, 0.0, 2.0])), [0.0, 0.25, 2.0])
    assert set(NAMES) <= set(_activations.FUNCTIONS)


@pytest.mark.parametrize("name", NAMES)
def test_slope_bound_holds(name: str) -> None:
    """The tolerance's magnification is at least the activation's steepest slope."""
    y = np.linspace(-8, 8, 160001)
    slope = np.abs(np.diff(_activations.apply(name, y)) / np.diff(y))
    bound = _activations.slope_bound(name, np.abs(y[:-1]) + 1e-4)
    if name == "hard_shrink":  # a jump at +-0.5: no slope bounds it there (documented)
        keep = np.abs(np.abs(y[:-1]) - 0.5) > 1e-3
        slope, bound = slope[keep], bound
    assert np.all(slope <= bound * (1 + 1e-6) + 1e-9), (name, float(slope.max()))


@pytest.mark.parametrize("name", NAMES)
def test_derivative_matches_central_differences(name: str) -> None:
    """The gradients' activation derivatives, away from kinks and jumps."""
    y = np.linspace(-5, 5, 2001)
    kinks = {"relu": [0], "relu6": [0, 6], "leaky_relu": [0], "hard_sigmoid": [-3, 3],
             "hard_silu": [-3, 3], "hard_swish": [-3, 3], "elu": [0], "celu": [0], "selu": [0],
             "hard_tanh": [-1, 1], "soft_shrink": [-0.5, 0.5], "hard_shrink": [-0.5, 0.5],
             "sparse_plus": [-1, 1], "sparse_sigmoid": [-1, 1]}.get(name, [])
    y = y[np.all([np.abs(y - k) > 1e-3 for k in kinks], axis=0)] if kinks else y
    h = 1e-6
    numeric = (_activations.apply(name, y + h) - _activations.apply(name, y - h)) / (2 * h)
    np.testing.assert_allclose(_activations.derivative(name, y), numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not targets.get("jax").installed(), reason="jax not installed")
def test_every_activation_conforms_on_a_real_backend(tmp_path) -> None:
    """Each activation as a layer argument, through the engine: jax computes what the
    reference does (found on 2026-11-30: all five backends conform on all of them)."""
    from conv_parity.engine import Engine

    cases = [ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 3, "padding": "same",
                                      "activation": name}, (2, 5, 4, 3)) for name in NAMES]
    with Engine(["jax"], report_dir=tmp_path) as engine:
        outcomes = engine.check(cases)
    # An older Keras may not know an activation yet (3.1.0 lacks celu, hard_shrink, ...): its
    # own constructor refuses the name, which is no disagreement with the reference.
    unknown = {o.case.kwargs["activation"] for o in outcomes if o.verdict == "unsupported"
               and "Could not interpret activation function identifier" in o.message}
    bad = [(o.case.id, o.verdict, o.message) for o in outcomes
           if o.verdict != "pass" and o.case.kwargs["activation"] not in unknown]
    assert not bad, bad
    assert len(unknown) < len(NAMES) // 2, unknown  # most must really have been computed
