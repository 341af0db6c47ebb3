"""Case files: an entry Keras accepts but conv-parity cannot compute is uncheckable, not bad."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conv_parity.case import ConvCase
from conv_parity.errors import Uncheckable, UsageError
from conv_parity.generate.case_file import read_cases

_HEAD = {"layer": "Conv2D", "kwargs": {"filters": 3, "kernel_size": 1, "activation": "softmax"},
         "input_shape": [1, 5, 5, 2]}


@pytest.mark.parametrize("activation", ["softmax", "log_softmax", "sparsemax", "glu"])
def test_a_channel_mixing_activation_is_uncheckable_and_names_the_argument(activation: str
                                                                           ) -> None:
    with pytest.raises(Uncheckable, match=f"activation '{activation}' mixes the channels") as e:
        ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 1, "activation": activation},
                      (1, 5, 5, 2))
    assert e.value.argument == "activation"


def test_an_unknown_activation_stays_bad_input() -> None:
    with pytest.raises(UsageError, match="activation 'sofmax' is not one") as e:
        ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 1, "activation": "sofmax"},
                      (1, 5, 5, 2))
    assert not isinstance(e.value, Uncheckable)


def test_read_cases_keeps_uncheckable_entries_apart_from_rejected_ones(tmp_path: Path) -> None:
    good = ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 3}, (1, 6, 6, 2))
    path = tmp_path / "cases.json"
    path.write_text(json.dumps([good.to_json(), _HEAD,
                                {"layer": "Conv2D", "kwargs": {"stride": 2},
                                 "input_shape": [1, 6, 6, 2]}]))
    found = read_cases(path)
    assert found.cases == [good]
    assert [i for i, _ in found.rejected] == [2]
    assert found.uncheckable == [(1, "Conv2D: activation 'softmax' mixes the channels: "
                                     "conv-parity computes element-wise activations only")]
