"""Fixtures for the worker tests: real processes, real backends.

One session pool serves every installed backend (imports cost seconds, so it is started once and
all backends import concurrently). Fault tests use their own small pools on the NumPy backend
(it imports fastest), with the test hooks switched on through ``extra_env``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from worker_test_utils import INSTALLED, assert_gone

from conv_parity.workers import WorkerPool


@pytest.fixture(scope="session")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    """Every installed backend's worker, started once, concurrently."""
    p = WorkerPool(timeout=120, log_dir=tmp_path_factory.mktemp("worker-logs"))
    p.start(INSTALLED)
    yield p
    pids = list(p.pids().values())
    p.close()
    assert_gone(pids)
