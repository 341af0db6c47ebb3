"""Real cases through real workers on every installed backend.

The worker must transport exactly what Keras computed: for the core cases (where every backend
is known to conform) the output must match the NumPy reference to float32 rounding, and the
symbolic / functional shapes must be reported. For the rest, a backend may legitimately reject a
configuration (that is a finding for the suite, not a worker bug): then the error must come back
as data with its phase, and the worker must keep serving.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from worker_test_utils import ALL_BACKENDS, INSTALLED

from conv_parity import backends as targets
from conv_parity.case import ConvCase
from conv_parity.registry import Registry, installed_keras_version
from conv_parity.vocabulary import PHASES
from conv_parity.workers import BackendInfo, BackendResult, make_items

try:
    from conv_parity.reference import forward as reference_forward
except ImportError:  # the reference is written in parallel
    reference_forward = None

C = ConvCase.make
CORE = [
    C("Conv2D", {"filters": 5, "kernel_size": (3, 2), "padding": "same"}, (2, 7, 6, 3), seed=1),
    C("Conv2D", {"filters": 4, "kernel_size": 3, "groups": 2, "use_bias": False}, (1, 6, 7, 4),
      seed=3),
    C("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"},
      (2, 4, 5, 2), seed=6),
    C("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2}, (1, 6, 5, 3), seed=7),
    C("SeparableConv1D", {"filters": 4, "kernel_size": 2}, (1, 6, 3), seed=8),
    C("MaxPooling2D", {"pool_size": 2}, (2, 7, 6, 3), seed=9),
    C("ops.conv", {"kernel_size": 3, "filters": 4, "strides": 2}, (2, 9, 8, 3), seed=12),
]
_KNOWN = Registry.load()


def _core(case: ConvCase, backend: str) -> bool:
    """A core case that this backend must compute, unless the registry knows it cannot on the
    installed Keras (e.g. ops the OpenVINO backend only gained in Keras 3.13/3.14)."""
    return case in CORE and _KNOWN.match(case, backend, installed_keras_version()) is None


OTHER = [
    # TF on CPU rejects channels_first convolutions: a finding, reported as a call error.
    C("Conv2D", {"filters": 4, "kernel_size": 3, "strides": 2, "data_format": "channels_first"},
      (2, 3, 9, 8), seed=2),
    C("AveragePooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 7, 6, 3),
      seed=10),
    C("ops.max_pool", {"pool_size": 2}, (1, 6, 6, 2), seed=15),
    C("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 2), dtype="float16", seed=18),
    # Rejected by the spec (groups must divide the channels): every backend must say so.
    C("Conv2D", {"filters": 4, "kernel_size": 3, "groups": 2}, (1, 6, 6, 3), seed=19),
]
ITEMS = make_items(CORE + OTHER)


@pytest.fixture(scope="module")
def results(pool):
    """All installed backends at once: one batched round trip each, concurrently."""
    return pool.run_many({b: ITEMS for b in INSTALLED})


def _inline_conv2d_valid(x, kernel, bias):
    """A direct NumPy Conv2D (channels_last, stride 1, valid) for when the reference is absent."""
    kh, kw, _, _ = kernel.shape
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], oh, ow, kernel.shape[-1]))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("bhwc,cf->bhwf", x[:, i:i + oh, j:j + ow, :], kernel[i, j])
    return out + bias


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_backend_info(pool, backend):
    info = pool.info(backend)
    assert isinstance(info, BackendInfo)
    assert info.available, info.import_error
    assert info.backend == backend and info.keras_version and info.backend_version
    assert info.device and isinstance(info.fp_settings, dict) and info.fp_settings
    assert info.import_seconds and info.import_seconds > 0
    assert info.pid in pool.pids().values()
    json.dumps(info.to_json())
    if backend == "numpy":
        assert "jax" in info.versions  # the numpy backend computes convs with jax.lax


def test_worker_command_line_names_the_backend(pool):
    import psutil

    for backend, pid in pool.pids().items():
        proc = psutil.Process(pid)
        assert proc.cmdline()[-3:] == ["-m", "conv_parity.workers.child", backend]
        # a variant or mutant target runs its Keras backend
        assert proc.environ().get("KERAS_BACKEND") == targets.keras_backend(backend)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_round_trip(results, backend):
    got = results[backend]
    assert [r.case_id for r in got] == [it.case.id for it in ITEMS]
    for item, r in zip(ITEMS, got):
        assert isinstance(r, BackendResult)
        assert r.backend == backend
        json.dumps(r.to_json())
        assert r.status in ("ok", "error"), (item.case.id, r.status, r.error, r.stderr_tail)
        if r.status == "error":
            assert r.output is None
            assert r.error["phase"] in PHASES and r.error["type"] and r.error["message"]
        else:
            assert r.output is not None and r.shape == r.output.shape
            assert r.dtype == str(r.output.dtype)
            assert np.isfinite(r.output).all()
        if _core(item.case, backend):
            assert r.status == "ok", (item.case.id, r.error)
            assert r.symbolic_shape == r.shape and r.functional_shape == r.shape, item.case.id
            assert r.symbolic_error is None
            assert r.output.dtype == np.float32


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_invalid_config_comes_back_as_an_error(results, backend):
    r = results[backend][-1]
    assert r.status == "error" and r.error["phase"] in ("construct", "build"), r.error
    assert "groups" in r.error["message"]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_outputs_match_the_reference(results, backend):
    if reference_forward is None:
        pytest.skip("conv_parity.reference not available yet")
    for item, r in zip(ITEMS, results[backend]):
        if not _core(item.case, backend):
            continue
        ref = reference_forward(item.case.layer, item.x, item.weights, **item.case.kwargs)
        assert r.shape == ref.shape, item.case.id
        np.testing.assert_allclose(r.output, ref, rtol=1e-4, atol=1e-5, err_msg=item.case.id)


def test_inline_numpy_check_and_cross_backend_agreement(pool):
    """Independent of the reference package: one case by a direct loop; all backends agree."""
    case = ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 2}, (2, 5, 4, 3), seed=21)
    items = make_items([case])
    expected = _inline_conv2d_valid(items[0].x.astype("f8"),
                                    *[w.astype("f8") for w in items[0].weights])
    got = pool.run_many({b: items for b in INSTALLED})
    for backend, (r,) in got.items():
        assert r.status == "ok", r.error
        np.testing.assert_allclose(r.output, expected, rtol=1e-4, atol=1e-5, err_msg=backend)


def test_run_streams_in_order_and_reuses_the_worker(pool):
    backend = INSTALLED[0]
    pid = pool.pids()[backend]
    items = make_items(CORE[:3])
    stream = pool.run(backend, items)
    first = next(stream)
    assert first.case_id == items[0].case.id
    rest = list(stream)
    assert [r.case_id for r in rest] == [it.case.id for it in items[1:]]
    assert pool.pids()[backend] == pid  # one long-lived worker, no restart
    assert all(r.pid == pid for r in [first, *rest])


def test_env_passes_through_and_threads_are_capped(pool):
    import psutil

    for pid in pool.pids().values():
        env = psutil.Process(pid).environ()
        assert env["TF_CPP_MIN_LOG_LEVEL"] == os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")
        assert env.get("OMP_NUM_THREADS")
        assert env.get("CONV_PARITY_TEST_HOOKS") == os.environ.get("CONV_PARITY_TEST_HOOKS")
