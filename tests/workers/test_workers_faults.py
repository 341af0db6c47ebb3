"""Fault injection against real worker processes (NumPy backend: it imports fastest).

Each fault costs only the case it happened in: the right status comes back with the worker's
last log lines, a fresh worker serves the next case, and the dead one leaves no zombie.
"""

from __future__ import annotations

import pytest
from worker_test_utils import assert_gone, missing_module, worker_children

from conv_parity.case import ConvCase
from conv_parity.workers import WorkerPool, make_items

BACKEND = "numpy"
pytestmark = pytest.mark.skipif(
    missing_module(BACKEND) is not None, reason=f"{BACKEND} backend not importable"
)

GOOD = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 2}, (1, 4, 4, 1), seed=3)
POOL_CASE = ConvCase.make("MaxPooling2D", {"pool_size": 2}, (1, 4, 4, 2), seed=4)


@pytest.fixture(scope="module")
def fault_pool(tmp_path_factory):
    pool = WorkerPool(
        timeout=3.0,
        log_dir=tmp_path_factory.mktemp("fault-logs"),
        extra_env={"CONV_PARITY_TEST_HOOKS": "1", "CONV_PARITY_ENABLE_MUTATIONS": "1"},
    )
    pool.start([BACKEND])
    yield pool
    pids = list(pool.pids().values())
    pool.close()
    assert_gone(pids)


MUTANT = f"{BACKEND}:mutant-shift-w"  # a test-only target: the backend with one injected bug


def _item(case=GOOD, fault=None):
    (item,) = make_items([case])
    item.fault = fault
    return item


EXPECTED = {
    "exit": ("crash", "WorkerCrash", "exited with code 3"),
    "sigkill": ("crash", "WorkerCrash", "killed by SIGKILL"),
    "segfault": ("crash", "WorkerCrash", "killed by SIGSEGV"),
    "hang": ("timeout", "Timeout", "no result within 3 s"),
    "garbage": ("crash", "ProtocolError", "bad frame magic"),
    "raise": ("error", "InjectedFault", "fault injected"),
}


def test_every_fault_costs_one_case_and_the_next_case_passes(fault_pool):
    """One batch: good, fault, good, fault, ... in a single pool.run call."""
    assert fault_pool.info(BACKEND).available
    items = [_item()]
    for fault in EXPECTED:
        items += [_item(fault=fault), _item(POOL_CASE)]
    seen_pids = {fault_pool.pids()[BACKEND]}
    restarts = fault_pool.restarts[BACKEND]
    results = list(fault_pool.run(BACKEND, items))
    assert len(results) == len(items)
    assert results[0].status == "ok"
    for k, fault in enumerate(EXPECTED):
        bad, after = results[1 + 2 * k], results[2 + 2 * k]
        status, etype, message = EXPECTED[fault]
        assert bad.status == status, (fault, bad.status, bad.error, bad.stderr_tail)
        assert bad.error["type"] == etype, (fault, bad.error)
        assert message in bad.error["message"], (fault, bad.error)
        assert bad.output is None
        if status in ("crash", "timeout"):
            assert f"injecting fault {fault!r}" in bad.stderr_tail, (fault, bad.stderr_tail)
            assert bad.error["phase"] == "worker"
        else:
            assert bad.error["phase"] == "call"
        assert after.status == "ok", (fault, after.error, after.stderr_tail)
        assert after.shape == (1, 2, 2, 2)
        seen_pids.add(bad.pid)
        seen_pids.add(after.pid)
    segv = results[1 + 2 * list(EXPECTED).index("segfault")]
    assert "Segmentation fault" in segv.stderr_tail  # faulthandler's report reached the log
    # exit, sigkill, segfault, hang, garbage each cost one worker; raise did not.
    assert fault_pool.restarts[BACKEND] - restarts == 5
    live = fault_pool.pids()[BACKEND]
    assert_gone(sorted(seen_pids - {live}))
    children = worker_children()
    assert not [p for p in children if p.status() == "zombie"]
    assert [p.pid for p in children if p.pid in seen_pids] == [live]


@pytest.mark.slow  # 15-70 s on 2 cores: `pytest -m slow` (CI time, issue 25)
def test_faults_and_mutations_are_ignored_without_the_env(pool):
    """The session pool's workers run without the hook variables: a production run."""
    plain, fault = list(pool.run(BACKEND, [_item(), _item(fault="exit")]))
    (mutated,) = pool.run(MUTANT, [_item()])
    assert fault.status == "ok" and fault.pid == plain.pid
    assert mutated.status == "ok"
    assert (mutated.output == plain.output).all()


def test_abandoned_stream_does_not_desync_the_next_run(fault_pool):
    items = [_item(), _item(POOL_CASE), _item()]
    stream = fault_pool.run(BACKEND, items)
    assert next(stream).status == "ok"
    stream.close()  # the worker still owes two results: it must be replaced, not reused
    results = list(fault_pool.run(BACKEND, [_item(POOL_CASE)]))
    assert results[0].status == "ok" and results[0].shape == (1, 2, 2, 2)


def test_mutation_hook(fault_pool):
    (plain,) = fault_pool.run(BACKEND, [_item()])
    (mutated,) = fault_pool.run(MUTANT, [_item()])
    assert plain.status == "ok"
    try:
        import conv_parity.mutations  # noqa: F401
    except ImportError:
        assert mutated.status == "error" and mutated.error["phase"] == "call"
        return
    assert mutated.status == "ok", mutated.error
    assert mutated.shape == plain.shape
    assert not (mutated.output == plain.output).all()


@pytest.mark.slow  # 15-70 s on 2 cores: `pytest -m slow` (CI time, issue 25)
def test_recycled_after_max_cases_then_by_rss(fault_pool):
    """Limits apply per batch on a live pool: first by case count, then by RSS."""
    fault_pool.max_cases_per_worker = 2
    try:
        first = list(fault_pool.run(BACKEND, make_items([GOOD] * 4)))
        assert [r.status for r in first] == ["ok"] * 4
        pids = [r.pid for r in first]
        # Each worker serves at most 2 cases, then retires; a worker that started and ended
        # inside this batch served exactly 2 (the first one may have served cases before).
        assert max(pids.count(p) for p in pids) <= 2 and len(set(pids)) >= 2, pids
        assert all(pids.count(p) == 2 for p in set(pids) - {pids[0], pids[-1]}), pids
        fault_pool.max_cases_per_worker = 2000
        fault_pool.max_rss_mb = 1
        second = list(fault_pool.run(BACKEND, make_items([GOOD] * 2)))
        assert [r.status for r in second] == ["ok"] * 2
        assert second[0].pid != second[1].pid  # retired after one case: RSS > 1 MB
    finally:
        fault_pool.max_cases_per_worker, fault_pool.max_rss_mb = 2000, 4000
    assert_gone([*pids, second[0].pid])


def test_close_is_idempotent_and_leaves_nothing(fault_pool):
    pids = list(fault_pool.pids().values())
    fault_pool.close()
    fault_pool.close()
    assert_gone(pids)
    with pytest.raises(Exception, match="closed"):
        list(fault_pool.run(BACKEND, make_items([GOOD])))
