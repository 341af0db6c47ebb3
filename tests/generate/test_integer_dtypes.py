"""The integer cases of the profiles (docs/integer-dtypes.md): what is drawn and what is not."""

from __future__ import annotations

from collections import Counter

from conv_parity import integers
from conv_parity.case import ConvCase
from conv_parity.generate import grid
from conv_parity.generate.integer_dtypes import integer_cases, remade


def _ints(profile: str) -> list[ConvCase]:
    return [c for c in grid.cases(profile) if integers.is_integer(c.dtype)]


def test_smoke_has_a_handful_of_integer_cases() -> None:
    cases = _ints("smoke")
    assert 4 <= len(cases) <= 10
    assert {c.dtype for c in cases} == set(integers.INT_DTYPES)
    assert {c.layer for c in cases} == {"ops.conv", "ops.average_pool"}


def test_default_covers_every_family_in_every_integer_dtype() -> None:
    cases = _ints("default")
    for dtype in integers.INT_DTYPES:
        families = {c.kind.family for c in cases if c.dtype == dtype}
        assert families >= {"conv", "conv_transpose", "depthwise", "separable", "max_pool",
                            "average_pool"}, dtype
    assert Counter(c.kind.is_op for c in cases)[False] > 0  # layers too, under uint8/int32/int64


def test_never_drawn_int8_layers_grad_or_float_regimes() -> None:
    for case in _ints("default"):
        assert case.kind.is_op or case.dtype != "int8", case.id
        assert case.mode != "grad" and case.values == "normal", case.id
        assert case.kwargs.get("activation") in (None, "linear", "relu"), case.id


def test_policies_select_integer_cases_as_a_subset() -> None:
    whole = set(grid.cases("default"))
    chosen = grid.cases("default", policies=["int32"])
    assert chosen and all(c.dtype == "int32" for c in chosen)
    assert set(chosen) <= whole


def test_remade_refuses_what_keras_or_the_ranges_refuse() -> None:
    layer = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 2))
    assert remade(layer, "int8") is None
    assert remade(layer, "int32") == ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 3},
                                                   (1, 5, 5, 2), "int32")
    big = ConvCase.make("ops.conv", {"filters": 2, "kernel_size": 5}, (1, 9, 9, 8))
    assert remade(big, "int8") is None and remade(big, "int32") is not None
    assert integer_cases([], "smoke") == integer_cases([], "smoke")
