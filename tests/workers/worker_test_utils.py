"""Helpers shared by the worker tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import importlib.util
import os
import time

import psutil
import pytest

from conv_parity import BACKENDS
from conv_parity import backends as targets


def missing_module(backend: str) -> str | None:
    for name in ("keras", *targets.get(backend).modules):
        if importlib.util.find_spec(name) is None:
            return name
    return None


INSTALLED = [b for b in BACKENDS if missing_module(b) is None]
HOOKS_ENV = {"CONV_PARITY_TEST_HOOKS": "1"}


def backend_param(backend: str) -> object:
    missing = missing_module(backend)
    marks = [pytest.mark.skip(reason=f"{backend}: {missing} is not importable")] if missing else []
    return pytest.param(backend, marks=marks, id=backend)


ALL_BACKENDS = [backend_param(b) for b in BACKENDS]


def assert_gone(pids: list[int], within: float = 10.0) -> None:
    """Every pid has exited and been reaped: neither running, nor a zombie, nor an orphan."""
    deadline = time.monotonic() + within
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _exists(pid)]
        if alive:
            time.sleep(0.05)
    details = {pid: _describe(pid) for pid in alive}
    assert not alive, f"worker processes left behind: {details}"


def _exists(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        # A zombie child of ours means nobody reaped it: count it as left behind.
        return proc.is_running()
    except psutil.NoSuchProcess:
        return False


def _describe(pid: int) -> str:
    try:
        p = psutil.Process(pid)
        return f"{p.status()} ppid={p.ppid()} cmd={' '.join(p.cmdline())}"
    except psutil.Error as exc:
        return repr(exc)


def worker_children() -> list[psutil.Process]:
    """This test process's live worker children (zombies included: they are bugs too)."""
    out = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "conv_parity.workers.child" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.ZombieProcess:
            out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out
