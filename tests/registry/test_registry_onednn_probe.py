"""The oneDNN-scoped registry entries, confirmed on real TensorFlow under both settings.

Thousands of targeted configurations (empty batches with coinciding and distinct sizes,
dilation, groups, depth multipliers, biases; ops whose output has no position; pooling windows
larger than the input; 3D pooling whose "same" stride leaves positions uncovered) run on
``tensorflow:onednn-on`` and ``tensorflow:onednn-off``, and every observation must be explained
by the registry under that worker's facts: a failure by an entry with that verdict, a pass by
no entry (strict). Slow (about a minute on 2 cores): ``pytest -m slow tests/registry``.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from conv_parity import backends as targets
from conv_parity.case import ConvCase
from conv_parity.errors import ConvParityError

VARIANTS = ["tensorflow:onednn-on", "tensorflow:onednn-off"]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not targets.get("tensorflow").installed(),
                       reason="tensorflow not installed"),
]


def _make(layer: str, kwargs: dict, shape: tuple) -> ConvCase | None:
    try:
        return ConvCase.make(layer, kwargs, shape)
    except ConvParityError:
        return None


def _shape(batch: int, spatial: tuple, c: int, df: str) -> tuple:
    return (batch, *spatial, c) if df == "channels_last" else (batch, c, *spatial)


def probe_cases() -> list[ConvCase]:
    """The configurations that separate the two settings (see the module docstring)."""
    out: list[ConvCase | None] = []
    for df, rank, c, f in itertools.product(("channels_last", "channels_first"), (1, 2),
                                            (1, 2, 4), (1, 2, 4)):
        x = _shape(0, (4,) * rank, c, df)
        for k, s, d, pad in ((1, 1, 1, "same"), (3, 1, 1, "valid"), (2, 1, 2, "same"),
                             (3, 2, 1, "same"), (4, 1, 1, "same")):
            geo = {"kernel_size": k, "strides": s, "dilation_rate": d, "padding": pad,
                   "data_format": df}
            for bias in (True, False):
                out.append(_make(f"Conv{rank}D", {"filters": f, **geo, "use_bias": bias}, x))
                if c % 2 == 0 and f % 2 == 0:
                    out.append(_make(f"Conv{rank}D", {"filters": f, **geo, "use_bias": bias,
                                                      "groups": 2}, x))
                for m in (1, 2):
                    out.append(_make(f"DepthwiseConv{rank}D", {**geo, "depth_multiplier": m,
                                                               "use_bias": bias}, x))
                    out.append(_make(f"SeparableConv{rank}D", {"filters": f, **geo,
                                                               "depth_multiplier": m,
                                                               "use_bias": bias}, x))
            out.append(_make("ops.conv", {"filters": f, **geo}, x))
            out.append(_make("ops.depthwise_conv", {**geo, "depth_multiplier": f}, x))
            out.append(_make("ops.separable_conv", {"filters": f, **geo, "depth_multiplier": 1}, x))
    for df, rank, k, s in itertools.product(("channels_last", "channels_first"), (1, 2, 3),
                                            (1, 3), (1, 2)):
        x = _shape(0, (5,) * rank, 3, df)
        geo = {"kernel_size": k, "strides": s, "padding": "valid", "data_format": df}
        out.append(_make(f"Conv{rank}D", {"filters": 4, **geo}, x))
        out.append(_make(f"Conv{rank}DTranspose", {"filters": 4, **geo}, x))
        out.append(_make("ops.conv_transpose", {"filters": 4, **geo}, x))
    for df, rank, n, k, d, b in itertools.product(("channels_last", "channels_first"), (1, 2, 3),
                                                  (1, 2, 3), (2, 3, 5), (1, 2), (1, 2)):
        x = _shape(b, (n,) * rank, 2, df)
        geo = {"kernel_size": k, "dilation_rate": d, "padding": "valid", "data_format": df}
        out.append(_make("ops.conv", {"filters": 3, **geo}, x))
        if rank < 3:
            out.append(_make("ops.depthwise_conv", {**geo, "depth_multiplier": 2}, x))
            out.append(_make("ops.separable_conv", {"filters": 3, **geo}, x))
    for df, rank, pool in itertools.product(("channels_last", "channels_first"), (1, 2, 3),
                                            ("Max", "Average")):
        x = _shape(1, (3,) * rank, 2, df)
        out.append(_make(f"{pool}Pooling{rank}D", {"pool_size": 4, "data_format": df}, x))
        out.append(_make(f"ops.{pool.lower()}_pool", {"pool_size": 4, "strides": 4,
                                                      "data_format": df}, x))
    for df, pool, (n, k, s) in itertools.product(
            ("channels_last", "channels_first"), ("Max", "Average"),
            ((6, 1, 3), (6, 2, 3), (7, 1, 3), (9, 2, 4), (5, 1, 3), (8, 2, 4))):
        x = _shape(1, (n, n, n), 2, df)
        geo = {"pool_size": k, "strides": s, "padding": "same", "data_format": df}
        out.append(_make(f"{pool}Pooling3D", geo, x))
        out.append(_make(f"ops.{pool.lower()}_pool", geo, x))
    return list(dict.fromkeys(c for c in out if c is not None))


def test_every_observation_is_explained_under_both_settings(tmp_path) -> None:
    from conv_parity.engine import Engine

    cases = probe_cases()
    assert len(cases) > 1500
    unexplained: Counter = Counter()
    example: dict = {}
    with Engine(VARIANTS, diagnose=False, report_dir=tmp_path) as engine:
        for o in engine.check(cases):
            stale = bool(o.known and o.known.get("stale"))
            if o.failed or stale:
                key = (o.backend, o.case.layer, o.observed_verdict or o.verdict,
                       (o.known or {}).get("id"))
                unexplained[key] += 1
                example.setdefault(key, o.case.id)
    assert not unexplained, "\n".join(f"{n} x {k}: e.g. {example[k]}"
                                      for k, n in unexplained.most_common())
