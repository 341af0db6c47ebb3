"""The grad mode's diagnosis: each backward-pass bug, applied to the reference's own gradient,
is named in words about that gradient (no backend: the transformations are the bugs)."""

from __future__ import annotations

import numpy as np
import pytest

from conv_parity import reference
from conv_parity.case import ConvCase
from conv_parity.explain.gradient_diagnosis import CODES, diagnose_gradient

CASE = ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 3, "padding": "same"},
                     (2, 6, 5, 2), mode="grad")


def _grads() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    x, weights = CASE.arrays()
    dy = np.random.default_rng(3).standard_normal(reference.output_shape(
        CASE.layer, CASE.input_shape, **CASE.kwargs))
    grads = reference.vjp(CASE.layer, x, weights, dy, **CASE.kwargs)
    mags = reference.vjp_magnitude(CASE.layer, x, weights, dy, **CASE.kwargs)
    return grads, mags


@pytest.mark.parametrize("name, bug, code, words", [
    ("dkernel", lambda g: np.swapaxes(g, 0, 1), "grad-hw-swapped",
     "kernel gradient equals the reference's with H and W swapped"),
    ("dkernel", lambda g: g * 1.001, "grad-scaled", "kernel gradient equals the reference's "
     "times 1.001"),
    ("dkernel", lambda g: g / 2, "grad-batch-mean", "divided by the batch size 2"),
    ("dkernel", lambda g: np.flip(g, axis=(0, 1)), "grad-flipped", "reversed along its spatial"),
    ("dx", lambda g: -g, "grad-negated", "input gradient equals the reference's negated"),
    ("dbias", np.zeros_like, "grad-zero", "bias gradient equals the reference's replaced by zeros"),
    ("dx", lambda g: np.concatenate([np.zeros_like(g[:, :1]), g[:, :-1]], axis=1),
     "grad-shifted", "shifted by one position along H"),
])
def test_each_backward_bug_is_named(name, bug, code, words) -> None:
    grads, mags = _grads()
    found = diagnose_gradient(CASE, name, bug(grads[name]), grads[name], mags[name], "torch")
    assert found is not None and found.code == code, found
    assert found.code in CODES and words in found.text and found.text.startswith("torch's")


def test_a_right_gradient_needs_no_diagnosis_and_noise_is_never_a_guess() -> None:
    grads, mags = _grads()
    assert diagnose_gradient(CASE, "dkernel", grads["dkernel"], grads["dkernel"],
                             mags["dkernel"], "jax") is None
    noise = np.random.default_rng(0).standard_normal(grads["dkernel"].shape)
    found = diagnose_gradient(CASE, "dkernel", noise, grads["dkernel"], mags["dkernel"], "jax")
    assert found is not None and found.code == "none"
