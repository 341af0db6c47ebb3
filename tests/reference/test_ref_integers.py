"""The reference on integer inputs (docs/integer-dtypes.md): exact integer arithmetic.

Drawn tiny configurations of every kind, their input and weights replaced by the seeded small
integers an integer case holds: the reference equals the direct-loop oracle exactly, its
result is an integer wherever the kind does not average, and no element leaves the bound the
ranges were chosen by. An independent int64 sum checks one convolution without either.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ref_strategies import configs, oracle_forward

from conv_parity import integers, kinds, reference

# The adaptive pools (issue 23 item 5) take output_size, not windows: their forward, shape and VJP
# are checked against a direct loop in test_adaptive_kinds.py.
ALL_KINDS = sorted(k for k, v in kinds.KINDS.items() if not v.family.startswith("adaptive"))


@pytest.mark.parametrize("layer", ALL_KINDS)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dtype=st.sampled_from(integers.INT_DTYPES))
def test_integer_inputs_give_the_oracle_exactly(layer: str, data: st.DataObject,
                                                dtype: str) -> None:
    d = data.draw(configs(layer))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = integers.draw(rng, d.x.shape, 3, dtype)
    weights = [integers.draw(rng, w.shape, 2, dtype) for w in d.weights]
    kwargs = {**d.kwargs, **({"activation": None} if "activation" in d.kwargs else {})}
    d = dataclasses.replace(d, x=x, weights=weights, kwargs=kwargs)  # integer activations only
    got = reference.forward(d.layer, d.x, d.weights, **d.call_kwargs)
    np.testing.assert_array_equal(got, oracle_forward(d))
    if kinds.get_kind(layer).family != "average_pool":
        np.testing.assert_array_equal(got, np.round(got))


def test_conv_equals_an_int64_sum() -> None:
    rng = np.random.default_rng(7)
    x = integers.draw(rng, (2, 6, 5, 3), 4, "int8")
    kernel = integers.draw(rng, (3, 2, 3, 4), 1, "int8")
    got = reference.forward("ops.conv", x, [kernel], kernel_size=(3, 2), filters=4,
                            strides=(1, 1), padding="valid", data_format="channels_last",
                            dilation_rate=(1, 1))
    want = np.zeros((2, 4, 4, 4), np.int64)
    for i in range(4):
        for j in range(4):
            window = x[:, i:i + 3, j:j + 2, :].astype(np.int64)
            want[:, i, j, :] = np.einsum("nhwc,hwcf->nf", window, kernel.astype(np.int64))
    np.testing.assert_array_equal(got, want)
    assert np.abs(want).max() <= integers.worst_case(18, 1, 4, 1, False) <= 127
