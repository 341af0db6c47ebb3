"""Worker lifecycle: unavailable backends, recycling, close, and no orphans when the parent dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from worker_test_utils import assert_gone, missing_module

import conv_parity
from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.workers import WorkerPool, make_items

BACKEND = "numpy"
needs_backend = pytest.mark.skipif(
    missing_module(BACKEND) is not None, reason=f"{BACKEND} backend not importable"
)
CASE = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 2}, (1, 4, 4, 1), seed=3)


def test_unknown_backend_is_a_usage_error():
    with WorkerPool() as p, pytest.raises(UsageError, match="unknown backend"):
        p.start(["theano"])


def test_unavailable_backend_is_reported_once(tmp_path):
    """A backend whose library cannot be imported (simulated by a test hook hiding it)."""
    env = {"CONV_PARITY_TEST_HOOKS": "1", "CONV_PARITY_TEST_HIDE_MODULES": "torch"}
    with WorkerPool(log_dir=tmp_path, extra_env=env) as p:
        p.start(["torch"])
        info = p.info("torch")
        assert not info.available
        assert "ModuleNotFoundError" in info.import_error and "torch" in info.import_error
        json.dumps(info.to_json())
        items = make_items([CASE, CASE])
        for _ in range(2):  # asked twice: reported from memory, no second import attempt
            results = list(p.run("torch", items))
            assert [r.status for r in results] == ["unavailable", "unavailable"]
            assert "torch" in results[0].error["message"]
        assert p.info("torch") is info
        assert p.pids() == {}
        log = p.log_path("torch").read_text()
        assert log.count("worker starting") == 1
    assert_gone([info.pid])


_PARENT = textwrap.dedent(
    """
    import json, signal, sys
    # A user's parent has Python's own Ctrl-C handler. One started from a test session need
    # not: an ignored or blocked SIGINT is inherited across exec (seen in the full suite, where
    # this parent then never got its KeyboardInterrupt). Say what was inherited, then reset.
    inherited = {"handler": repr(signal.getsignal(signal.SIGINT)),
                 "blocked": signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from conv_parity.case import ConvCase
    from conv_parity.workers import WorkerPool, make_items
    pool = WorkerPool(timeout=600, extra_env={"CONV_PARITY_TEST_HOOKS": "1"})
    pool.start(["numpy"])
    pool.info("numpy")
    print(json.dumps({**pool.pids(), "sigint": inherited}), flush=True)
    (item,) = make_items([ConvCase.make("MaxPooling1D", {}, (1, 4, 1))])
    item.fault = "hang"  # the worker is busy when the parent is killed
    for r in pool.run("numpy", [item]):
        print(r.status, flush=True)
    """
)


@needs_backend
def test_killing_the_parent_leaves_no_worker(tmp_path):
    """SIGTERM, SIGINT (Ctrl-C) and SIGKILL of a parent that runs a pool, mid-case."""
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    env = dict(os.environ)
    src = str(Path(conv_parity.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    sigs = [signal.SIGTERM, signal.SIGINT, signal.SIGKILL]
    parents = [
        subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
        for _ in sigs
    ]
    try:
        workers = []
        inherited = []
        for parent in parents:  # they import concurrently
            line = parent.stdout.readline()
            assert line, parent.stderr.read()
            workers.append(json.loads(line)["numpy"])
            inherited.append(json.loads(line)["sigint"])
        time.sleep(0.5)  # the hang case has reached the worker
        for parent, sig in zip(parents, sigs):
            parent.send_signal(sig)
        for parent, sig in zip(parents, sigs):
            # A guard against a hang, not a speed target: three parents and their workers
            # tear down at once on 2 shared cores, which took over 30 s under load.
            try:
                code = parent.wait(timeout=120)
            except subprocess.TimeoutExpired:
                parent.kill()
                pytest.fail(f"the parent did not exit within 120 s of {sig.name} (SIGINT as "
                            f"inherited: {inherited}): {parent.stderr.read()[-2000:]}")
            assert code != 0, sig
        assert_gone(workers, within=10)
    finally:
        for parent in parents:
            if parent.poll() is None:
                parent.kill()
                parent.wait()


class _FakeChannel:
    def __init__(self, has_data: bool) -> None:
        self.data = has_data

    def has_data(self) -> bool:
        return self.data


@pytest.mark.parametrize(
    "case_seconds, outstanding, result_bytes, has_data, expected",
    [
        (0.002, 10, 1000, False, [0.015]),  # 3/4 of the outstanding cases' expected time
        (0.002, 1, 1000, False, [0.0015]),  # the batch's last case: 3/4 of one
        (0.5, 10, 1000, False, [0.05]),  # capped: a batch's last result is never later
        (0.002, 10, 60_000, False, [0.003]),  # only as many results as the buffer holds (2)
        (0.0001, 3, 1000, False, []),  # too short to be worth a timer
        (0.5, 10, 1000, True, []),  # a result is waiting: read it now, never fall behind
    ],
)
def test_parent_naps_only_while_the_worker_is_probably_busy(
    monkeypatch, case_seconds, outstanding, result_bytes, has_data, expected
):
    from conv_parity.workers import process

    slept: list[float] = []
    monkeypatch.setattr(process.time, "sleep", slept.append)
    worker = process._Worker("jax", None, _FakeChannel(has_data), Path("log"), 0, 0.0)
    worker.observe(case_seconds, result_bytes)
    worker.nap(outstanding)
    assert slept == pytest.approx(expected)
