"""Diagnosis of adaptive pooling (issue 23 item 5): a backend output computed under one wrong
reading of the bins, the reduction or the layout is named by that reading; the wrong bins are
themselves checked against hand-written edges."""

from __future__ import annotations

import pytest

from conv_parity.case import ConvCase
from conv_parity.explain import adaptive_candidates as ac
from conv_parity.explain.diagnosis import diagnose
from conv_parity.reference import adaptive


def test_wrong_bins_are_what_their_names_say() -> None:
    assert adaptive.bins(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert ac.floor_ends(5, 3) == [(0, 1), (1, 3), (3, 5)]
    assert ac.fixed_window(5, 3) == [(0, 2), (1, 3), (2, 4)]
    assert ac.floor_ends(2, 4) == [(0, 1), (0, 1), (1, 2), (1, 2)]


@pytest.mark.parametrize("layer", ["AdaptiveAveragePooling2D", "ops.adaptive_max_pool"])
@pytest.mark.parametrize("code, edges, other", [
    ("adaptive-bins-floor-ends", ac.floor_ends, False),
    ("adaptive-bins-fixed-window", ac.fixed_window, False),
    ("adaptive-other-reduction", adaptive.bins, True),
])
def test_a_wrong_reading_is_named(layer: str, code: str, edges: ac.Edges, other: bool) -> None:
    case = ConvCase.make(layer, {"output_size": (3, 4), "data_format": "channels_first"},
                         (2, 3, 8, 10))  # 8 -> 3 and 10 -> 4: every reading differs
    x, w = case.arrays()
    mode = "max" if case.kind.is_max else "average"
    if other:
        mode = "average" if mode == "max" else "max"
    out = ac.pooled(x, (3, 4), mode, True, edges).astype("float32")
    diag = diagnose(case, x, w, out, "torch")
    assert diag is not None and diag.code == code, diag


def test_the_right_output_needs_no_diagnosis() -> None:
    case = ConvCase.make("AdaptiveMaxPooling1D", {"output_size": 4}, (2, 10, 3))
    x, w = case.arrays()
    assert diagnose(case, x, w, adaptive.forward(x, (4,), "max"), "jax") is None
