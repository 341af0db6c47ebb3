"""The warm worker service (workers/service.py, workers/lease.py) with real daemons and workers.

Every test here runs its daemon in a folder of its own (the repo's conftest turns the service
off everywhere else) and stops it at the end, checking that its workers are gone. The NumPy
backend imports fastest, so it serves every test.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from worker_test_utils import assert_gone, missing_module

from conv_parity.case import ConvCase
from conv_parity.cli.main import main
from conv_parity.engine import Engine
from conv_parity.workers import WorkerPool, make_items
from conv_parity.workers import lease as leases

BACKEND = "numpy"
pytestmark = pytest.mark.skipif(
    missing_module(BACKEND) is not None, reason=f"{BACKEND} backend not importable"
)

CASES = [
    ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 2, "padding": "same"}, (1, 5, 6, 2),
                  seed=11),
    ConvCase.make("DepthwiseConv1D", {"kernel_size": 2, "depth_multiplier": 2,
                                      "data_format": "channels_first"}, (1, 2, 4), seed=12),
    ConvCase.make("MaxPooling2D", {"pool_size": 2}, (1, 4, 4, 2), seed=13),
]


def _daemon_pids(folder: Path) -> list[int]:
    pids = []
    for _, status in leases.running():
        if status is not None:
            pids += [status["pid"], *(w["pid"] for w in status["workers"])]
    return pids


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The service on, in a short private folder (a socket path has ~100 bytes), idle 60 s;
    every daemon started there is stopped afterwards and its processes are gone."""
    folder = Path(tempfile.mkdtemp(prefix="cpd-"))
    monkeypatch.setenv(leases.ENABLE_ENV, "1")
    monkeypatch.setenv(leases.DIR_ENV, str(folder))
    monkeypatch.setenv(leases.IDLE_ENV, "60")
    monkeypatch.delenv("CI", raising=False)
    try:
        yield folder
    finally:
        pids = _daemon_pids(folder)
        for path, _ in leases.running():
            leases.stop(path)
        assert_gone(pids)
        shutil.rmtree(folder, ignore_errors=True)


def _status() -> dict:
    (found,) = [s for _, s in leases.running() if s is not None]
    return found


def _run(daemon: bool) -> tuple[list, dict[str, int]]:
    """Verdicts (every field but the timing) and the raw outputs of CASES, and the worker pid."""
    with Engine([BACKEND], daemon=daemon) as engine:
        outcomes = [{k: v for k, v in dataclasses.asdict(o).items() if k != "seconds"}
                    for o in engine.check(CASES)]
        raw = list(engine.pool.run(BACKEND, make_items(CASES)))
        pids = engine.pool.pids()
        assert engine.pool.daemon_error is None
    return [outcomes, [(r.status, r.outputs, r.shape, r.dtype, r.symbolic_shape) for r in raw]], \
        pids


def _same(a: list, b: list) -> None:
    assert a[0] == b[0]
    assert len(a[1]) == len(b[1]) == len(CASES)
    for (status, outputs, *rest), (status2, outputs2, *rest2) in zip(a[1], b[1]):
        assert (status, rest) == (status2, rest2) and set(outputs) == set(outputs2)
        for name in outputs:
            np.testing.assert_array_equal(outputs[name], outputs2[name])


SLOW = pytest.mark.slow  # a daemon and a worker each (> 20 s on a loaded 2-core machine)


@SLOW
def test_warm_and_cold_give_identical_results_and_verdicts(service: Path) -> None:
    """Also: the folder and socket are the user's only, and a worker that died while idle is
    replaced by a fresh one that gives the same results again."""
    cold, cold_pids = _run(daemon=False)
    first, first_pids = _run(daemon=True)  # starts the daemon and a worker
    warm, warm_pids = _run(daemon=True)  # borrows the same worker again
    assert warm_pids == first_pids != cold_pids
    _same(cold, first)
    _same(cold, warm)
    status = _status()
    assert status["warm_lends"] == 1 and status["lends"] == 2
    assert [(w["backend"], w["state"]) for w in status["workers"]] == [(BACKEND, "idle")]

    assert stat.S_IMODE(service.stat().st_mode) == 0o700
    (sock,) = service.glob("daemon-*.sock")
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) & 0o077 == 0

    os.kill(warm_pids[BACKEND], signal.SIGKILL)
    again, again_pids = _run(daemon=True)
    assert again_pids[BACKEND] != warm_pids[BACKEND]
    _same(cold, again)


@SLOW
def test_a_crash_while_lent_costs_its_case_and_the_next_call_gets_a_fresh_worker(
        service: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONV_PARITY_TEST_HOOKS", "1")  # part of the key: a daemon of its own
    items = make_items(CASES[:2])
    items[0].fault = "segfault"
    with WorkerPool(timeout=30, daemon=True) as pool:
        results = list(pool.run(BACKEND, items))
        assert pool.daemon_error is None
        assert results[0].status == "crash"
        assert "killed by SIGSEGV" in results[0].error["message"]
        assert results[1].status == "ok"
        crashed = results[0].pid
        survivor = pool.pids()[BACKEND]
    assert survivor != crashed
    with WorkerPool(timeout=30, daemon=True) as pool:
        (result,) = pool.run(BACKEND, make_items(CASES[:1]))
        assert result.status == "ok" and result.pid == survivor  # the replacement, warm
    assert _status()["warm_lends"] == 1


def test_the_key_changes_with_what_changes_a_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    base = leases.key()
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    onednn = leases.key()
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert len({base, onednn, leases.key()}) == 3
    material = leases.key_material()
    assert material["python"] and material["source"] and "keras" in material["versions"]
    before = leases.key()
    monkeypatch.setenv(leases.IDLE_ENV, "5")  # the service's own settings are not part of it
    assert leases.key() == before == leases.key(material)


def test_it_is_off_under_ci_and_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(leases.ENABLE_ENV, "1")
    monkeypatch.delenv("CI", raising=False)
    assert leases.wanted()
    assert not leases.wanted(False)  # --no-daemon
    monkeypatch.setenv("CI", "true")
    assert not leases.wanted()
    monkeypatch.delenv("CI")
    monkeypatch.setenv(leases.ENABLE_ENV, "0")
    assert not leases.wanted()
    with Engine([BACKEND]) as engine:
        assert engine.pool.daemon is False


@SLOW
def test_it_exits_after_its_idle_time(service: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(leases.IDLE_ENV, "1")
    monkeypatch.setenv("CONV_PARITY_IDLE_TEST", "1")  # a daemon of its own (fresh idle time)
    _run(daemon=True)
    pids = _daemon_pids(service)
    assert len(pids) == 2
    deadline = time.monotonic() + 30
    while leases.running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leases.running() == []
    assert_gone(pids)


@SLOW
def test_daemon_status_and_stop_commands(service: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["daemon", "status"]) == 0
    assert "no daemon running" in capsys.readouterr().out
    _run(daemon=True)
    assert main(["daemon", "status"]) == 0
    out = capsys.readouterr().out
    assert "(this environment)" in out and BACKEND in out and "idle" in out
    pids = _daemon_pids(service)
    assert main(["daemon", "stop"]) == 0
    assert "stopped 1 conv-parity daemon(s)" in capsys.readouterr().out
    assert_gone(pids)
    assert leases.running() == []
