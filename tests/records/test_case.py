"""ConvCase and the kinds table: canonical form, ids, JSON round trip, clear errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conv_parity import kinds
from conv_parity.case import ConvCase
from conv_parity.errors import UsageError


def test_canonical_form_expands_ints_and_fills_defaults() -> None:
    case = ConvCase.make("Conv2D", {"filters": 8, "kernel_size": 4, "strides": 2,
                                    "padding": "SAME"}, (2, 28, 28, 3))
    kw = case.kwargs
    assert kw["kernel_size"] == (4, 4) and kw["strides"] == (2, 2)
    assert kw["padding"] == "same" and kw["data_format"] == "channels_last"
    assert kw["dilation_rate"] == (1, 1) and kw["groups"] == 1 and kw["use_bias"] is True


def test_id_is_readable_and_stable() -> None:
    case = ConvCase.make("Conv2D", {"filters": 8, "kernel_size": (4, 4), "strides": (2, 2),
                                    "padding": "same"}, (2, 28, 28, 3))
    assert case.id == "Conv2D-f8-k4x4-s2x2-same-last-d1x1-g1-in2x28x28x3-float32"
    assert case.seed == case.default_seed
    other = ConvCase.make("Conv2D", case.kwargs, case.input_shape, seed=7)
    assert other.id == case.id + "-r7"


def test_json_round_trip_and_hashable() -> None:
    case = ConvCase.make("ops.separable_conv", {"filters": 4, "kernel_size": 3,
                                                "depth_multiplier": 2}, (1, 7, 9, 3))
    again = ConvCase.from_json(json.loads(json.dumps(case.to_json())))
    assert again == case and hash(again) == hash(case)
    assert case.call_kwargs.keys() == {"strides", "padding", "data_format", "dilation_rate"}


def test_trusted_json_round_trip_gives_the_same_case_for_every_grid_case() -> None:
    """The worker rebuilds cases without re-validating them: it must get the parent's case."""
    from conv_parity.generate import grid

    for case in grid.cases("full"):
        wire = json.loads(json.dumps(case.to_json()))
        again = ConvCase.from_json(wire, trusted=True)
        assert again == case and again.id == case.id and again.call_kwargs == case.call_kwargs


def test_arrays_are_seeded_random_and_in_the_case_dtype() -> None:
    case = ConvCase.make("Conv1D", {"filters": 3, "kernel_size": 2}, (2, 7, 4), dtype="float16")
    x1, w1 = case.arrays()
    x2, w2 = case.arrays()
    np.testing.assert_array_equal(w1[0], w2[0])
    assert x1.dtype == np.float16 and all(w.dtype == np.float16 for w in w1)
    np.testing.assert_array_equal(x1, x2)
    assert [w.shape for w in w1] == [(2, 4, 3), (3,)]
    assert len(np.unique(x1)) > 10  # never all-ones or arange


@pytest.mark.parametrize(
    ("layer", "kwargs", "shape"),
    [
        ("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 2)),
        ("Conv2DTranspose", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 2)),
        ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2}, (1, 5, 5, 2)),
        ("SeparableConv1D", {"filters": 4, "kernel_size": 3, "depth_multiplier": 2}, (1, 5, 3)),
        ("MaxPooling3D", {}, (1, 4, 4, 4, 2)),
        ("ops.conv", {"filters": 4, "kernel_size": 3, "groups": 2}, (1, 5, 5, 4)),
    ],
)
def test_weight_shapes_follow_keras_layouts(layer: str, kwargs: dict, shape: tuple) -> None:
    case = ConvCase.make(layer, kwargs, shape)
    expected = {
        "Conv2D": [(3, 3, 2, 2), (2,)],
        "Conv2DTranspose": [(3, 3, 2, 2), (2,)],
        "DepthwiseConv2D": [(3, 3, 2, 2), (4,)],
        "SeparableConv1D": [(3, 3, 2), (1, 6, 4), (4,)],
        "MaxPooling3D": [],
        "ops.conv": [(3, 3, 2, 4)],
    }[layer]
    assert case.weight_shapes() == expected


@pytest.mark.parametrize(
    ("layer", "kwargs", "shape", "needle"),
    [
        ("Dense", {}, (1, 2), "unknown layer or op 'Dense'"),
        ("Conv2d", {}, (1, 2), "unknown layer or op 'Conv2d' (did you mean 'Conv2D'?)"),
        ("SeperableConv2D", {}, (1, 2), "(did you mean 'SeparableConv2D'?)"),
        ("Conv2D", {"filters": 2}, (1, 5, 5, 1), "needs the argument 'kernel_size'"),
        ("Conv2D", {"filters": 2, "kernel_size": 3, "bogus": 1}, (1, 5, 5, 1), "'bogus'"),
        ("Conv2D", {"filters": 2, "kernel_size": (3, 3, 3)}, (1, 5, 5, 1), "kernel_size"),
        ("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5), "rank 4"),
        ("Conv2D", {"filters": 2, "kernel_size": 3, "padding": "full"}, (1, 5, 5, 1), "padding"),
        ("Conv2D", {"filters": "8", "kernel_size": 3}, (1, 5, 5, 1), "filters"),
        ("ops.conv", {"filters": 2, "kernel_size": 3}, (1, 5), "rank 3, 4 or 5"),
    ],
)
def test_bad_input_names_the_bad_value(layer: str, kwargs: dict, shape: tuple,
                                       needle: str) -> None:
    with pytest.raises(UsageError, match=re.escape(needle)):
        ConvCase.make(layer, kwargs, shape)


def test_every_kind_has_a_family_and_consistent_weights() -> None:
    for kind in kinds.KINDS.values():
        assert kind.family in kinds.FAMILIES
        assert kind.is_pool == (not kind.weight_names)


def test_value_regime_and_call_form_are_case_dimensions_with_defaults_that_keep_old_ids() -> None:
    base = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 1))
    assert "values" not in base.to_json() and "call_form" not in base.to_json()
    assert base.id.endswith("-float32")
    other = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 1),
                          values="nan", call_form="numpy-list")
    assert other.id.endswith("-float32-vnan-cnumpy-list")
    assert other.seed != base.seed  # another case, other data
    for trusted in (False, True):
        assert ConvCase.from_json(other.to_json(), trusted=trusted) == other


@pytest.mark.parametrize("field, bad", [("values", "NaN!"), ("call_form", "torch")])
def test_unknown_value_regime_or_call_form_is_refused_by_name(field: str, bad: str) -> None:
    with pytest.raises(UsageError, match=repr(bad)):
        ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 1), **{field: bad})
