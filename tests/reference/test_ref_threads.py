"""Blocks on threads: each block once, errors surfaced, BLAS threads restored, same numbers."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ref_strategies import configs, oracle_forward

from conv_parity import kinds, reference
from conv_parity.reference import _conv, _threads, _windows, ops

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return [lib.num_threads for lib in _threads._blas().lib_controllers]


@pytest.fixture
def blas() -> object:
    ctl = _threads._blas()
    if ctl is None:
        pytest.skip("threadpoolctl finds no BLAS it can control in this process")
    return ctl


@pytest.mark.parametrize("threads", [1, 2, 3, 5])
def test_every_block_runs_exactly_once(threads: int) -> None:
    blocks = list(range(37))
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def work(mine) -> None:
        for b in mine:
            with lock:
                seen.append((threading.get_ident(), b))

    _threads.run_blocks(blocks, work, threads)
    assert sorted(b for _, b in seen) == blocks


def test_an_error_in_any_thread_is_raised_to_the_caller_and_blas_is_restored(blas) -> None:
    before = _blas_threads()

    def work(mine) -> None:
        for b in mine:
            if b == 5:
                raise ValueError(f"block {b} failed")

    with pytest.raises(ValueError, match="block 5 failed"):
        _threads.run_blocks(list(range(20)), work, 3)
    assert _blas_threads() == before


def test_blas_is_single_threaded_during_the_blocks_only(blas) -> None:
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        inside: list[list[int]] = []
        _threads.run_blocks([0, 1], lambda mine: inside.append(_blas_threads()) or list(mine), 2)
        assert inside and all(v == [1] * len(v) for v in inside)
        assert _blas_threads() == [2] * len(inside[0])


def test_thread_count_follows_the_blas_limit_the_user_set(blas) -> None:
    assert _threads.threads_for(1) == 1
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert _threads.threads_for(50) == 1
    with threadpoolctl.threadpool_limits(limits=64, user_api="blas"):
        assert 1 <= _threads.threads_for(50) <= _threads._cpus()
        assert _threads.threads_for(2) <= 2


def test_overlapping_calls_from_several_threads_leave_blas_as_it_was(blas) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 24, 20, 8))
    w = rng.standard_normal((3, 3, 8, 16))
    want = ops.conv(x, w, 1, "same", scratch_bytes=20_000)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        got: list[np.ndarray] = []
        callers = [
            threading.Thread(target=lambda: got.append(
                ops.conv(x, w, 1, "same", scratch_bytes=20_000)))
            for _ in range(4)
        ]
        for t in callers:
            t.start()
        for t in callers:
            t.join()
        assert _blas_threads() == [2] * len(_blas_threads())
    assert len(got) == 4
    for y in got:
        np.testing.assert_allclose(y, want, rtol=1e-13, atol=1e-13)


@pytest.fixture
def forced_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three threads and tiny blocks whatever this machine has: the parallel path, always."""
    monkeypatch.setattr(_conv, "threads_for", lambda blocks: min(3, blocks))
    monkeypatch.setattr(_conv, "MIN_BLOCK_BYTES", 1)
    monkeypatch.setattr(_conv, "THREADED_MIN_BYTES", 0)


@pytest.mark.usefixtures("forced_threads")
@pytest.mark.parametrize("layer", sorted(k for k, v in kinds.KINDS.items() if not v.is_pool))
@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_threaded_blocks_match_the_oracle(layer: str, data: st.DataObject) -> None:
    d = data.draw(configs(layer, max_batch=3))
    budget = data.draw(st.sampled_from([8, 300, 5000]))
    got = reference.forward(d.layer, d.x, d.weights, scratch_bytes=budget, **d.call_kwargs)
    np.testing.assert_allclose(got, oracle_forward(d), rtol=1e-12, atol=1e-12)


@pytest.mark.usefixtures("forced_threads")
def test_threaded_grouped_and_depthwise_convs_match_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 17, 13, 12))
    wg = rng.standard_normal((3, 3, 3, 8))  # groups = 4
    wd = rng.standard_normal((3, 3, 12, 2))
    threaded = (ops.conv(x, wg, 1, "same", scratch_bytes=3_000),
                ops.depthwise_conv(x, wd, 2, "valid", scratch_bytes=3_000))
    monkeypatch.setattr(_conv, "threads_for", lambda blocks: 1)
    serial = (ops.conv(x, wg, 1, "same", scratch_bytes=3_000),
              ops.depthwise_conv(x, wd, 2, "valid", scratch_bytes=3_000))
    for a, b in zip(threaded, serial):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("batch,rows,per_row,budget", [
    (8, 30, 192_000, 4 << 20), (16, 64, 330_000, 4 << 20), (10, 4, 100, 1000),
    (3, 7, 50, 160), (1, 5, 10, 1), (5, 9, 0, 10),
])
def test_blocks_cover_everything_once_within_budget_and_evenly(batch, rows, per_row, budget):
    blocks = _windows.chunks(batch, rows, per_row, budget)
    cells = [(n, r) for n0, n1, r0, r1 in blocks for n in range(n0, n1) for r in range(r0, r1)]
    assert sorted(cells) == [(n, r) for n in range(batch) for r in range(rows)]
    if len(blocks) == 1:
        return
    most_rows = max(min(budget, _windows.CACHE_CHUNK_BYTES) // max(per_row, 1), 1)
    items = {n1 - n0 for n0, n1, _, _ in blocks}
    row_counts = {r1 - r0 for _, _, r0, r1 in blocks}
    if row_counts == {rows}:  # whole items grouped: item counts even
        assert max(items) * rows <= most_rows and max(items) - min(items) <= 1
    else:  # one item split by rows: row counts even
        assert items == {1} and max(row_counts) <= most_rows
        assert max(row_counts) - min(row_counts) <= 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_mid_call_starts_with_a_fresh_state(blas) -> None:
    with _threads._SERIAL.hold(blas), _threads._SERIAL._lock:
        pid = os.fork()
        if pid == 0:  # the child: no hold of ours is running here, and the lock is free
            ok = _threads._SERIAL._depth == 0 and _threads._SERIAL._lock.acquire(timeout=5)
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
