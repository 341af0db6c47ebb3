"""A repro script rebuilds the case's value regime inline (no .npz beside a pasted issue):
the NaN positions, the inf signs, the large scale and the ties come out bit for bit as
:meth:`ConvCase.arrays` makes them, and the tolerance is the suite's for half precision."""

from __future__ import annotations

import numpy as np
import pytest

from conv_parity.case import ConvCase
from conv_parity.explain.repro import render
from conv_parity.geometry import reduction_size
from conv_parity.judge.compare import rtol_for
from conv_parity.policies import finfo
from conv_parity.vocabulary import VALUE_REGIMES


def _load(source: str) -> dict:
    namespace: dict = {"__name__": "conv_parity_repro_under_test"}
    exec(compile(source, "<repro>", "exec"), namespace)
    return namespace


CASES = [
    ("MaxPooling2D", {"pool_size": 2}, (1, 4, 4, 2), "float32"),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "data_format": "channels_first"}, (2, 3, 6, 5),
     "float32"),
    ("AveragePooling2D", {"pool_size": 4}, (1, 8, 8, 3), "bfloat16"),
    ("MaxPooling3D", {"pool_size": 1}, (1, 2, 2, 2, 3), "float16"),
]


@pytest.mark.parametrize("regime", VALUE_REGIMES)
@pytest.mark.parametrize(("layer", "kwargs", "shape", "dtype"), CASES)
def test_the_script_redraws_the_regime_bit_for_bit(regime: str, layer: str, kwargs: dict,
                                                   shape: tuple, dtype: str) -> None:
    case = ConvCase.make(layer, kwargs, shape, values=regime, dtype=dtype)
    source = render(case, "tensorflow")
    assert "ARRAYS_FILE = None" in source  # nothing travels beside the script
    x, w = case.arrays()
    x2, w2 = _load(source)["make_arrays"]()
    assert x2.dtype == x.dtype
    np.testing.assert_array_equal(x2, x, err_msg=case.id)  # NaN meets NaN, inf the same inf
    assert len(w2) == len(w) and all(np.array_equal(a, b) for a, b in zip(w, w2))


def test_the_nan_positions_are_the_suites() -> None:
    case = ConvCase.make("MaxPooling2D", {"pool_size": 2}, (2, 8, 8, 3), values="nan")
    x, _ = case.arrays()
    x2, _ = _load(render(case, "openvino"))["make_arrays"]()
    assert np.isnan(x).sum() > 4  # the first window and some seeded positions
    assert np.array_equal(np.argwhere(np.isnan(x2)), np.argwhere(np.isnan(x)))
    assert np.isnan(x2[0, :2, :2, 0]).all()  # the whole first window


def test_a_normal_case_draws_as_before() -> None:
    case = ConvCase.make("Conv1D", {"filters": 2, "kernel_size": 3}, (1, 7, 2))
    source = render(case, "jax")
    assert "regime_input" not in source
    assert "x = rounded(rng.standard_normal(INPUT_SHAPE))" in source


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_the_script_tolerance_is_the_suites(dtype: str) -> None:
    case = ConvCase.make("AveragePooling2D", {"pool_size": 16}, (1, 16, 16, 8), dtype=dtype,
                         values="large")
    got = _load(render(case, "jax"))["RTOL_EPS"] * finfo(dtype)[0]
    assert got == pytest.approx(rtol_for(dtype, reduction_size(case)))
    if dtype == "bfloat16":  # K = 256: 10 eps, not the 64 eps that let a running sum pass
        assert _load(render(case, "jax"))["RTOL_EPS"] == 10
