"""The bug model behind `half-average-pool-accumulated-in-half` (issue 23): a running sum kept
in float16 / bfloat16 shows exactly where the measured backends fail."""

from __future__ import annotations

import pytest

from conv_parity import bug_models
from conv_parity.case import ConvCase
from conv_parity.registry import Registry


@pytest.mark.parametrize(("kwargs", "shape", "dtype", "values", "shows"), [
    # seen on Keras 3.15.1: TF, jax, numpy 13% off (|err| 3.29e34 > tol 2.34e34)
    ({"pool_size": 16}, (1, 16, 16, 8), "bfloat16", "large", True),
    # the same window with 2 channels: at most 7.1% of B, within the 7.8% bound: all pass
    ({"pool_size": 16}, (1, 16, 16, 2), "bfloat16", "large", False),
    ({"pool_size": 2}, (1, 4, 4, 3), "float16", "large", True),  # inf: the sum passes 65504
    ({"pool_size": 3}, (1, 6, 3), "float16", "large", True),
    ({"pool_size": 2}, (1, 4, 4, 3), "float16", "normal", False),
    ({"pool_size": 16}, (1, 16, 16, 8), "float32", "large", False),  # float32 is not modelled
])
def test_running_half_sum_shows_where_measured(kwargs, shape, dtype, values, shows) -> None:
    layer = "AveragePooling1D" if len(shape) == 3 else "AveragePooling2D"
    case = ConvCase.make(layer, kwargs, shape, dtype=dtype, values=values)
    assert bug_models.low_precision_running_average_shows(case) is shows


def test_value_regime_entries_scope_by_regime() -> None:
    """A `nan` entry claims the nan case and not the same configuration with normal input."""
    registry = Registry.load()
    nan = ConvCase.make("MaxPooling2D", {"pool_size": 2}, (1, 4, 4, 2), values="nan")
    normal = ConvCase.make("MaxPooling2D", {"pool_size": 2}, (1, 4, 4, 2))
    for backend, entry_id in (("openvino", "openvino-max-pool-drops-nan"),
                              ("tensorflow", "tf-max-pool-drops-nan")):
        assert [e.id for e in registry.entries if e.applies(nan, backend, "3.15.1")] == [entry_id]
        assert not [e.id for e in registry.entries if e.applies(normal, backend, "3.15.1")]
