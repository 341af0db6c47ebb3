"""A repro script's input in the case's value regime, rebuilt inline from the seed.

A bug that only shows on NaN at seeded positions, or on values near the dtype's range
(:mod:`conv_parity.values`), does not show on the N(0, 1) input the script's generator draws by
default: before this module a MaxPooling2D "drops NaN" script fed finite numbers and printed OK.
An issue has to be pasteable, so the regime cannot travel as an .npz beside the script; instead
the script redraws it with the same NumPy Generator calls, in the same order, as
:func:`conv_parity.values.make_input`, with the regime's constants (the scale, the first
window) computed here once and written out as numbers.
"""

from __future__ import annotations

import numpy as np

from conv_parity.case import ConvCase
from conv_parity.geometry import reduction_size
from conv_parity.integers import is_integer
from conv_parity.judge.compare import rtol_for
from conv_parity.policies import finfo
from conv_parity.values import NON_FINITE_EVERY, first_window, large_scale

#: The default draw in repro's make_arrays, which a non-normal regime replaces.
NORMAL_DRAW = "rng.standard_normal(INPUT_SHAPE)"


def arrays_source(case: ConvCase, base: str) -> str:
    """``base`` (the script's make_arrays and helpers) with the input drawn in the case's regime:
    unchanged for ``normal``; else its draw calls ``regime_input(rng)``, defined after it."""
    if case.values == "normal":
        return base
    if NORMAL_DRAW not in base:
        raise ValueError(f"the arrays source no longer draws the input as {NORMAL_DRAW!r}")
    return base.replace(NORMAL_DRAW, "regime_input(rng)") + regime_source(case) + "\n\n"


def regime_source(case: ConvCase) -> str:
    """``def regime_input(rng)``: the float64 input of the case's regime, drawn as
    :func:`conv_parity.values.make_input` draws it (the weights are drawn after it)."""
    head = ["def regime_input(rng):",
            f'    """The input of conv-parity\'s {case.values!r} value regime, in float64: '
            f'{_WHAT[case.values]}."""']
    return "\n".join(head + _body(case)) + "\n"


_WHAT = {
    "zeros": "all zeros",
    "ties": "integers in [-3, 3], so every window holds ties",
    "positive": "|N(0, 1)|, one-signed",
    "large": "one-signed values in [S/2, S], S near the dtype's range; no correct "
             "computation overflows",
    "nan": f"N(0, 1) with NaN at seeded positions (about 1 in {NON_FINITE_EVERY}) and on the "
           "whole first window",
    "inf": f"N(0, 1) with +inf/-inf at seeded positions (about 1 in {NON_FINITE_EVERY}) and "
           "+inf on the whole first window",
}


def tolerance_source(case: ConvCase) -> str:
    """``RTOL_EPS``: the suite's relative tolerance in eps of the compute dtype
    (:func:`conv_parity.judge.compare.rtol_for`), so a script does not pass a half-precision
    case the suite fails: 64 eps in general, ``ceil(log2(K)) + 2`` eps for float16 / bfloat16
    with K terms summed (a running sum kept in half precision exceeds it, pairwise sums do not)."""
    if is_integer(case.dtype):  # exact: the script compares an integer result exactly
        return "#: An integer result is exact (no tolerance).\nRTOL_EPS = 0.0\n\n\n"
    eps = finfo(case.dtype)[0]
    factor = rtol_for(case.dtype, reduction_size(case)) / eps
    return (f"#: The tolerance on the accumulated magnitude, in eps of {case.dtype}: "
            f"{reduction_size(case)} terms per output.\nRTOL_EPS = {factor!r}\n\n\n")


def _body(case: ConvCase) -> list[str]:
    """The statements of regime_input for the case's regime (one draw per Generator call)."""
    regime = case.values
    if regime == "zeros":
        return ["    return np.zeros(INPUT_SHAPE)"]
    if regime == "ties":
        return ["    return rng.integers(-3, 4, size=INPUT_SHAPE).astype(np.float64)"]
    if regime == "positive":
        return ["    return np.abs(rng.standard_normal(INPUT_SHAPE))"]
    if regime == "large":
        scale = large_scale(case.dtype, case.kind.is_pool, int(np.prod(case.window_extent())),
                            case.value_terms())
        return [f"    scale = {scale!r}  # S for {case.dtype}",
                "    return scale * rng.uniform(0.5, 1.0, size=INPUT_SHAPE)"]
    window = first_window(case.input_shape, case.window_extent(),
                          case.kwargs.get("data_format") == "channels_first")
    lines = ["    x = rng.standard_normal(INPUT_SHAPE)",
             "    if x.size == 0:",
             "        return x",
             f"    marked = rng.random(INPUT_SHAPE) < 1.0 / {NON_FINITE_EVERY}",
             f"    first_window = {window!r}  # batch 0, channel 0, the first output's window"]
    if regime == "nan":
        return [*lines, "    x[marked] = np.nan", "    x[first_window] = np.nan", "    return x"]
    return [*lines, "    x[marked] = np.where(rng.random(INPUT_SHAPE) < 0.5, np.inf, "
            "-np.inf)[marked]", "    x[first_window] = np.inf", "    return x"]


__all__ = ["NORMAL_DRAW", "arrays_source", "regime_source", "tolerance_source"]
