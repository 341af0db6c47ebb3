"""Modes as objects, named outputs, and prepared arrays through the real engine."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conv_parity import backends as targets
from conv_parity import modes
from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.geometry import reduction_size
from conv_parity.modes import Arrays

CASE = ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 2, "groups": 1}, (1, 5, 4, 2))


def test_the_engine_asks_the_mode_registry() -> None:
    eager = modes.get("eager")
    assert eager.outputs == ("y",) and modes.MODES["eager"] is eager
    assert eager.skip_reason(targets.get("openvino")) is None
    with pytest.raises(UsageError, match="unknown mode 'backward'; choose from eager, predict, jit, grad"):
        modes.get("backward")
    with pytest.raises(UsageError, match="mode must be one of"):
        ConvCase.make("Conv2D", {"filters": 1, "kernel_size": 1}, (1, 2, 2, 1), mode="backward")


def test_reference_half_names_its_outputs() -> None:
    ref = modes.get("eager").expected(CASE, modes.seeded(CASE))
    assert list(ref.outputs) == ["y"] and ref.shape == (1, 4, 3, 3)
    assert ref.output is ref.outputs["y"] and ref.magnitude is ref.magnitudes["y"]
    assert ref.reduction_sizes == {"y": 2 * 2 * 2}  # taps x input channels of the group
    rejected = ConvCase.make("Conv2D", {"filters": 1, "kernel_size": 9}, (1, 5, 4, 2))
    assert modes.get("eager").expected(rejected, modes.seeded(rejected)).invalid


def test_reduction_size_counts_the_products_of_one_output() -> None:
    grouped = ConvCase.make("Conv2D", {"filters": 4, "kernel_size": 3, "groups": 2}, (1, 5, 5, 6))
    depthwise = ConvCase.make("DepthwiseConv1D", {"kernel_size": 4}, (1, 8, 5))
    separable = ConvCase.make("SeparableConv1D", {"filters": 2, "kernel_size": 3,
                                                  "depth_multiplier": 2}, (1, 8, 5))
    pool = ConvCase.make("MaxPooling2D", {"pool_size": (2, 3)}, (1, 6, 6, 7))
    assert [reduction_size(c) for c in (grouped, depthwise, separable, pool)] == [27, 4, 30, 6]


def test_repro_snippets_come_from_the_mode() -> None:
    op = ConvCase.make("ops.conv", {"filters": 2, "kernel_size": 3}, (1, 6, 2))
    assert "keras.ops.conv(xt, *wt, **KWARGS)" in modes.get("eager").repro_call(op)
    assert 'bias_initializer="zeros"' in modes.get("eager").repro_call(CASE)


@pytest.mark.skipif(not targets.get("jax").installed(), reason="jax not installed")
def test_prepared_arrays_reach_the_backend_and_the_repro(tmp_path) -> None:
    """Real weights (not seed-derived) go through the same engine; a failure's repro script
    loads them from the .npz saved beside it and reproduces the backend's result."""
    from conv_parity.engine import Engine

    x, weights = CASE.arrays()
    real = Arrays(x, [w * 7 + 0.5 for w in weights], source="model.keras:conv2d_1")
    wrong = Arrays(x, [w * 7 + 0.5 for w in weights], source="model.keras:conv2d_2")
    with Engine(["jax"], report_dir=tmp_path) as engine:
        (seeded,) = engine.check([CASE])
        (prepared,) = engine.check_prepared([(CASE, real)])
        assert seeded.verdict == prepared.verdict == "pass"
        # a pass proves the worker used the real weights: the two references differ widely
        ref = modes.get("eager").expected(CASE, real)
        seeded_ref = modes.get("eager").expected(CASE, modes.seeded(CASE))
        assert not np.allclose(ref.output, seeded_ref.output, atol=0.1)
    # a repro of prepared arrays loads them from the .npz beside it
    from conv_parity.explain.repro import write_repro

    path = write_repro(CASE, "jax", tmp_path, arrays=wrong)
    assert path.with_suffix(".npz").exists()
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr


def test_mode_names_are_the_vocabulary() -> None:
    """A case checks its mode against vocabulary.MODE_NAMES without importing any mode: the
    names there and the modes here are the same, in the same order."""
    from conv_parity.vocabulary import MODE_NAMES

    assert tuple(modes.MODES) == MODE_NAMES
