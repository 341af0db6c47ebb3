"""Unit tests of the diagnosis: synthetic outputs built *as* each wrong interpretation.

Every interpretation the diagnosis knows must be named when a backend's output is exactly that
interpretation, and an output no interpretation explains must get "none", never a guess.
"""

from __future__ import annotations

import numpy as np
import pytest

from conv_parity import mutants, mutations, reference
from conv_parity.case import ConvCase
from conv_parity.errors import InvalidConfig
from conv_parity.explain.diagnosis import CODES, Diagnosis, diagnose
from conv_parity.generate import grid
from conv_parity.judge import compare


def _valid(cases):
    out = []
    for c in cases:
        try:
            reference.output_shape(c.layer, c.input_shape, **c.kwargs)
        except InvalidConfig:
            continue
        out.append(c)
    return out


# The float32 grid: the default profile's share under other dtype policies adds nothing to the
# diagnosis table, and under bfloat16 a small mutant (a missing bias) is inside the tolerance.
DEFAULT = _valid(c for c in grid.cases("default") if c.policy_name == "float32")


def _run_ref(case: ConvCase, x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
    """A stand-in for a backend: the reference, rounded to the case's dtype."""
    return reference.forward(case.layer, x, weights, **case.call_kwargs).astype(case.dtype)


def _ref(case: ConvCase, x=None, weights=None, **changes) -> np.ndarray:
    if changes or x is not None:
        shape = case.input_shape if x is None else x.shape
        case2 = ConvCase.make(case.layer, {**case.kwargs, **changes}, shape, case.dtype, case.seed)
    else:
        case2 = case
    x0, w0 = case.arrays()
    x = x0 if x is None else x
    weights = w0 if weights is None else weights
    return _run_ref(case2, x, weights)


def _tolerance(case: ConvCase, x: np.ndarray, w: list[np.ndarray]) -> np.ndarray:
    """The suite's per-element tolerance for the case (its compute dtype's)."""
    exact = reference.forward(case.layer, x, w, **case.call_kwargs)
    mag = reference.magnitude(case.layer, x, w, **case.call_kwargs)
    return compare.tolerance(exact, mag, case.dtype)


def _within_tolerance(case: ConvCase, x: np.ndarray, w: list[np.ndarray],
                      out: np.ndarray) -> bool:
    exact = reference.forward(case.layer, x, w, **case.call_kwargs)
    got = out.astype(np.float64)
    with np.errstate(invalid="ignore"):
        close = np.abs(got - exact) <= _tolerance(case, x, w)
    same = (np.isnan(got) & np.isnan(exact)) | (np.isinf(exact) & (got == exact))
    return bool(np.all(close | same))  # a value regime's NaN and inf are met, never a miss


def _diagnosis(case: ConvCase, output: np.ndarray) -> Diagnosis | None:
    x, w = case.arrays()
    return diagnose(case, x, w, output, "torch")


def _code(case: ConvCase, output: np.ndarray) -> str | None:
    d = _diagnosis(case, output)
    if d is not None:
        assert isinstance(d, Diagnosis)
        assert d.code in CODES
        assert d.text.startswith("torch") or d.code == "none"
    return None if d is None else d.code


@pytest.mark.parametrize("mutation", sorted(n for n in mutants.MUTATIONS
                                             if n not in mutants.MODE_ONLY))
def test_every_mutant_on_the_reference_is_named(mutation: str) -> None:
    """Forward mutants applied to the reference (no backend): each one is diagnosed as itself.
    (The mode-only mutants need a backend's gradients or tracing: test_mutations.py.)"""
    expected = mutants.EXPECTED_DIAGNOSIS[mutation]
    seen = unnamed = 0
    for case in DEFAULT:
        x, w = case.arrays()
        ref = _run_ref(case, x, w)
        out = mutations.apply(mutation, case, x, [a.copy() for a in w], _run_ref)
        if out.shape == ref.shape and _within_tolerance(case, x, w, out):
            continue  # the config cannot express this bug (or it is invisible at its dtype)
        seen += 1
        d = _diagnosis(case, out)
        assert d is not None, f"{mutation} on {case.id}: not diagnosed at all"
        if d.code == "none" and out.size <= 8 and any(c.startswith("shifted") for c in expected):
            unnamed += 1  # a shift of a tiny output leaves too few values to tell: fine
            continue
        assert any(d.names(c) for c in expected), f"{mutation} on {case.id}: diagnosed {d}"
    assert seen > 0, f"no case of the default grid expresses {mutation}"
    assert unnamed <= seen // 10, f"{mutation}: {unnamed} of {seen} tiny outputs not named"


def test_random_error_is_none_never_a_guess() -> None:
    rng = np.random.default_rng(7)
    for case in DEFAULT:
        x, w = case.arrays()
        ref = _run_ref(case, x, w)
        if ref.size == 0:
            continue
        # noise well beyond the case's tolerance (bfloat16's is wide: 64 eps = half of B)
        scale = 1.0 + 4.0 * _tolerance(case, x, w)
        out = (ref + rng.standard_normal(ref.shape) * scale).astype(ref.dtype)
        assert _code(case, out) == "none", case.id


def test_single_wrong_pixel_is_none() -> None:
    case = ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 3, "padding": "same"},
                         (2, 6, 7, 2))
    out = _ref(case).copy()
    out[1, 2, 3, 0] += 1.0
    assert _code(case, out) == "none"


def test_conforming_output_is_not_diagnosed() -> None:
    case = ConvCase.make("Conv1D", {"filters": 2, "kernel_size": 3}, (1, 8, 2))
    assert _code(case, _ref(case)) is None


def test_1x1_kernel_flip_is_not_a_candidate() -> None:
    """A flipped 1x1 kernel equals the right answer: kernel-flipped must not be claimed."""
    case = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 1}, (1, 4, 4, 3))
    x, w = case.arrays()
    flipped = [np.flip(w[0], axis=(0, 1)), w[1]]
    assert _code(case, _run_ref(case, x, flipped)) is None


# ----------------------------------------------------------------- interpretations not mutants


def test_padding_flipped_along_h_only() -> None:
    case = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": (2, 2), "padding": "same"},
                         (1, 6, 5, 2))
    x, w = case.arrays()
    xp = np.pad(x, [(0, 0), (1, 0), (0, 1), (0, 0)])  # H: extra at the top; W: correct
    out = _ref(case, x=xp, weights=w, padding="valid")
    diag = diagnose(case, x, w, out, "torch")
    assert diag.code == "padding-flipped"
    assert "row at the top instead of the bottom" in diag.text


def test_avg_pool_counting_padding() -> None:
    case = ConvCase.make("AveragePooling2D", {"pool_size": 3, "strides": 2, "padding": "same"},
                         (2, 6, 5, 3))
    x, _ = case.arrays()
    xp = np.pad(x, [(0, 0), (0, 1), (1, 1), (0, 0)])  # the 'same' pads, zeros counted
    assert _code(case, _ref(case, x=xp, weights=[], padding="valid")) == "avg-pool-counts-padding"


def test_pool_edge_padding() -> None:
    case = ConvCase.make("AveragePooling1D", {"pool_size": 4, "strides": 1, "padding": "same"},
                         (1, 5, 2))
    x, _ = case.arrays()
    xp = np.pad(x, [(0, 0), (1, 2), (0, 0)], mode="edge")
    assert _code(case, _ref(case, x=xp, weights=[], padding="valid")) == "pool-edge-padding"


def test_output_in_the_other_layout() -> None:
    case = ConvCase.make("Conv2D", {"filters": 4, "kernel_size": 3, "padding": "same"},
                         (1, 4, 4, 3))
    out = np.moveaxis(_ref(case), -1, 1)
    assert _code(case, out) == "data-format-swapped"


def test_input_read_in_the_other_layout() -> None:
    case = ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 3, "padding": "same",
                                    "data_format": "channels_first"}, (1, 3, 5, 3))
    out = _ref(case, data_format="channels_last")
    assert out.shape == _ref(case).shape
    assert _code(case, out) == "data-format-swapped"


def test_same_instead_of_causal() -> None:
    case = ConvCase.make("Conv1D", {"filters": 2, "kernel_size": 3, "padding": "causal"},
                         (2, 7, 3))
    assert _code(case, _ref(case, padding="same")) == "same-instead-of-causal"


def test_bias_missing_with_activation() -> None:
    case = ConvCase.make("SeparableConv1D", {"filters": 3, "kernel_size": 2,
                                             "activation": "tanh"}, (2, 6, 2))
    x, w = case.arrays()
    w[-1] = np.zeros_like(w[-1])
    assert _code(case, _run_ref(case, x, w)) == "bias-missing"


@pytest.mark.parametrize(
    ("layer", "kwargs", "shape", "changes", "code"),
    [
        ("Conv2D", {"filters": 2, "kernel_size": 3, "padding": "same"}, (1, 7, 6, 2),
         {"padding": "valid"}, "valid-instead-of-same"),
        ("Conv2D", {"filters": 2, "kernel_size": 3, "strides": 2}, (1, 9, 9, 2),
         {"strides": (3, 2)}, "stride-off-by-one"),
        ("Conv1D", {"filters": 2, "kernel_size": 3, "dilation_rate": 2}, (1, 9, 2),
         {"dilation_rate": 1}, "dilation-ignored"),
        ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2,
                             "output_padding": 1}, (1, 4, 5, 2),
         {"output_padding": None}, "output-padding-ignored"),
        ("MaxPooling2D", {"pool_size": 3}, (1, 7, 9, 2), {"strides": 1},
         "pool-strides-default"),
    ],
)
def test_shape_rules(layer, kwargs, shape, changes, code) -> None:
    case = ConvCase.make(layer, kwargs, shape)
    out = _ref(case, **changes)
    assert out.shape != _ref(case).shape
    x, w = case.arrays()
    diag = diagnose(case, x, w, out, "jax")
    assert diag.code == code
    assert "shape" in diag.text and "jax" in diag.text


def test_shape_rule_ceil_instead_of_floor() -> None:
    case = ConvCase.make("MaxPooling1D", {"pool_size": 5, "strides": 2}, (1, 10, 3))
    out = np.zeros((1, 4, 3), dtype="float32")  # ceil((10 - 5) / 2) + 1 = 4; floor gives 3
    assert _code(case, out) == "ceil-vs-floor"


def test_ambiguous_shape_rules_are_all_named() -> None:
    """Pool 2 / stride 2 on 7: ceil rounding and 'same' padding both give 4; say both."""
    case = ConvCase.make("MaxPooling1D", {"pool_size": 2, "strides": 2}, (1, 7, 3))
    x, w = case.arrays()
    diag = diagnose(case, x, w, np.zeros((1, 4, 3), dtype="float32"), "jax")
    assert diag.code == "same-instead-of-valid"
    assert diag.names("ceil-vs-floor") and "rounded" in diag.text


def test_shape_hw_swapped() -> None:
    case = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 1}, (1, 3, 5, 2))
    out = np.swapaxes(_ref(case), 1, 2)
    assert _code(case, out) == "hw-swapped"


def test_unknown_shape_is_none() -> None:
    case = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 1}, (1, 3, 5, 2))
    assert _code(case, np.zeros((1, 7, 11, 2), dtype="float32")) == "none"


def test_custom_tolerance_fn_is_used() -> None:
    case = ConvCase.make("Conv1D", {"filters": 2, "kernel_size": 3}, (1, 8, 2))
    x, w = case.arrays()
    w2 = list(w)
    w2[-1] = np.zeros_like(w2[-1])
    out = _run_ref(case, x, w2)
    calls = []

    def never(cand: np.ndarray, mag: np.ndarray) -> np.ndarray:
        calls.append(cand.shape)
        return np.zeros(cand.shape, dtype=bool)

    assert diagnose(case, x, w, out, "jax", tolerance_fn=never).code == "none"
    assert calls


def test_degenerate_config_names_every_equal_reading() -> None:
    """On a 1x1 input a flipped 4x4 kernel and flipped 'same' padding give the same numbers."""
    case = ConvCase.make("ops.conv", {"filters": 2, "kernel_size": 4, "padding": "same",
                                      "data_format": "channels_first"}, (1, 3, 1, 1))
    x, w = case.arrays()
    out = _run_ref(case, x, [np.flip(w[0], axis=(0, 1))])
    d = _diagnosis(case, out)
    assert d.names("kernel-flipped") and d.names("padding-flipped")
    assert "equally consistent with" in d.text


def test_a_max_pool_that_skips_nan_is_named() -> None:
    """What tensorflow and openvino return on a `nan` input (issue 23)."""
    case = ConvCase.make("MaxPooling2D", {"pool_size": 2}, (1, 4, 4, 2), values="nan")
    x, w = case.arrays()
    skipped = np.where(np.isnan(x), -np.inf, x).astype(np.float64)
    out = reference.forward(case.layer, skipped, w, **case.kwargs)
    out = np.where(out == -np.inf, np.finfo(np.float32).min, out)
    assert diagnose(case, x, w, out, "tensorflow").code == "max-pool-drops-nan"


def test_an_average_pool_summed_in_bfloat16_is_named_and_float32_accumulation_conforms() -> None:
    from conv_parity.bug_models import low_precision_running_average

    case = ConvCase.make("AveragePooling2D", {"pool_size": 16}, (1, 16, 16, 8),
                         dtype="bfloat16", values="large")
    x, w = case.arrays()
    out = low_precision_running_average(case, x)
    assert out is not None
    assert diagnose(case, x, w, out, "jax").code == "half-running-sum"
