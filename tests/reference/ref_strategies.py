"""Hypothesis strategies for tiny, valid configurations of every layer and op kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import ref_oracle as oracle
from hypothesis import assume
from hypothesis import strategies as st

from conv_parity import kinds, reference
from conv_parity.errors import InvalidConfig

MAX_SPATIAL = {1: 7, 2: 5, 3: 3}


@dataclass
class Drawn:
    """One drawn configuration, with its arrays."""

    layer: str
    kwargs: dict[str, Any]  # canonical, geometry included for ops
    input_shape: tuple[int, ...]
    x: np.ndarray
    weights: list[np.ndarray]

    @property
    def call_kwargs(self) -> dict[str, Any]:
        return kinds.call_kwargs(self.layer, self.kwargs)


def _tuple(draw, rank, lo, hi):
    return tuple(draw(st.integers(lo, hi)) for _ in range(rank))


@st.composite
def configs(draw, layer: str, max_batch: int = 2) -> Drawn:
    kind = kinds.get_kind(layer)
    max_rank = 2 if kind.family in ("depthwise", "separable") else 3  # ops: 1D/2D only
    rank = kind.rank or draw(st.integers(1, max_rank))
    cf = draw(st.booleans())
    kw: dict[str, Any] = {
        "data_format": "channels_first" if cf else draw(st.sampled_from(["channels_last", None]))
    }
    fam = kind.family
    small = rank == 3
    if kind.is_global:
        kw["keepdims"] = draw(st.booleans())
        span = (1,) * rank
        channels = draw(st.integers(1, 3))
    elif kind.is_pool:
        window = _tuple(draw, rank, 1, 2 if small else 3)
        strides = draw(st.none() | st.just(_tuple(draw, rank, 1, 2 if small else 3)))
        kw.update(pool_size=window, strides=strides, padding=draw(st.sampled_from(["valid", "same"])))
        span = window
        channels = draw(st.integers(1, 3))
    else:
        window = _tuple(draw, rank, 1, 2 if small else 3)
        strides = _tuple(draw, rank, 1, 2 if small else 3)
        dilation = _tuple(draw, rank, 1, 2)
        if layer[0] == "C" and max(strides) > 1 and max(dilation) > 1:
            # Keras's ConvND / ConvNDTranspose layers reject the combination.
            if draw(st.booleans()):
                strides = (1,) * rank
            else:
                dilation = (1,) * rank
        paddings = ["valid", "same"] + (["causal"] if layer == "Conv1D" else [])
        kw.update(kernel_size=window, strides=strides, dilation_rate=dilation,
                  padding=draw(st.sampled_from(paddings)))
        span = tuple((k - 1) * d + 1 for k, d in zip(window, dilation))
        if fam == "conv":
            groups = draw(st.sampled_from([1, 1, 2, 3]))
            channels = groups * draw(st.integers(1, 2))
            kw["filters"] = groups * draw(st.integers(1, 2))
            kw["groups"] = groups
        elif fam == "conv_transpose":
            channels = draw(st.integers(1, 3))
            kw["filters"] = draw(st.integers(1, 3))
            if draw(st.booleans()):
                kw["output_padding"] = tuple(draw(st.integers(0, s - 1)) for s in strides)
            else:
                kw["output_padding"] = None
        else:
            channels = draw(st.integers(1, 3))
            kw["depth_multiplier"] = draw(st.integers(1, 2))
            if fam == "separable":
                kw["filters"] = draw(st.integers(1, 3))
        if not kind.is_op:
            kw["use_bias"] = draw(st.booleans())
            # the direct-loop oracle knows these; every other activation is proven on its own
            # (test_ref_activations.py: known values, derivatives, slope bounds, a backend)
            kw["activation"] = draw(st.sampled_from([None, "linear", "relu", "sigmoid", "tanh"]))
    lo = span if kw.get("padding") == "valid" and fam != "conv_transpose" else (1,) * rank
    spatial = tuple(draw(st.integers(lo[i], max(lo[i], MAX_SPATIAL[rank]) + 1)) for i in range(rank))
    batch = draw(st.integers(0, max_batch))
    shape = (batch, channels, *spatial) if cf else (batch, *spatial, channels)
    canon = kinds.canonicalize(layer, kw, shape)
    try:
        reference.output_shape(layer, shape, **canon)
    except InvalidConfig:
        assume(False)  # rare by construction: e.g. a "same" transpose of length 0
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if draw(st.booleans()):
        x = x.astype(np.float32)
    weights = [rng.standard_normal(s) for s in kinds.weight_shapes(layer, canon, shape)]
    return Drawn(layer, canon, shape, x, weights)


def oracle_forward(d: Drawn, absolute: bool = False) -> np.ndarray:
    """The direct-loop oracle's answer for a drawn configuration."""
    kind = kinds.get_kind(d.layer)
    kw = d.kwargs
    cf = kw["data_format"] == "channels_first"
    x = np.abs(d.x) if absolute else d.x
    ws = [np.abs(w) for w in d.weights] if absolute else d.weights
    act = None if absolute else kw.get("activation")
    fam = kind.family
    if kind.is_global:
        return oracle.global_pool(x, cf, kw["keepdims"], "max" if fam == "max_pool" else "avg")
    if kind.is_pool:
        return oracle.pool(x, kw["pool_size"], kw["strides"], kw["padding"], cf,
                           "max" if fam == "max_pool" else "avg")
    bias = ws[-1] if kw.get("use_bias") and not kind.is_op else None
    s, p, dil = kw["strides"], kw["padding"], kw["dilation_rate"]
    if fam == "conv":
        return oracle.conv(x, ws[0], bias, s, p, dil, kw["groups"], cf, act)
    if fam == "depthwise":
        return oracle.depthwise(x, ws[0], bias, s, p, dil, cf, act)
    if fam == "separable":
        return oracle.separable(x, ws[0], ws[1], bias, s, p, dil, cf, act)
    return oracle.conv_transpose(x, ws[0], bias, s, p, kw["output_padding"], dil, cf, act)
