"""Runs a conv call's independent blocks on our own threads, with BLAS single-threaded meanwhile.

Why: each block is an im2col copy (one thread) followed by a matmul (BLAS threads). Between two
matmuls BLAS's idle worker thread keeps spinning (OpenBLAS: ~0.1 s), and on the 2-vCPU VM this
project is measured on, that spinning slows the copy running beside it: the copies of one large
call (16x64x64x64, k3) took 11-12 ms in some calls and 40-45 ms in others of the same run, and a
steady 13-20 ms with one BLAS thread. Giving each of our threads whole blocks, copy and
single-threaded matmul, keeps every core on useful work and nothing spinning: on that case the
reference went from 1.18x to 0.99x of the GEMM bound (another run: 1.49x to 1.05x), timed
interleaved in one process (``benchmarks/bench_reference.py --cases large`` shows the result).

We use as many threads as BLAS would have used (so ``OPENBLAS_NUM_THREADS=1``, or a
``threadpool_limits`` around the call, is respected) and never more than the CPUs this process
may run on. While the blocks run, the BLAS libraries threadpoolctl finds are limited to one
thread (what scikit-learn does around its own parallel loops); another thread of the process
calling BLAS in that window runs single-threaded too (slower, not otherwise different).
Without ``threadpoolctl`` or a BLAS it can control, blocks run serially on the caller's thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

T = TypeVar("T")

_CONTROLLER_LOCK = threading.Lock()
_controller: Any = None  # threadpoolctl's controller of the BLAS libraries; False: none usable


def _blas() -> Any:
    """The (cached) threadpoolctl controller of the loaded BLAS libraries, or None."""
    global _controller
    if _controller is None:
        with _CONTROLLER_LOCK:
            if _controller is None:
                try:
                    from threadpoolctl import ThreadpoolController
                    blas = ThreadpoolController().select(user_api="blas")
                    _controller = blas if blas.lib_controllers else False
                except Exception:  # not installed, or an unusual platform: serial blocks
                    _controller = False
    return _controller or None


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


class _SerialBlas:
    """Process-wide "BLAS runs single-threaded" while any call's blocks are running.

    Reference calls may overlap (several user threads): the first one in saves and lowers the
    BLAS thread counts, the last one out restores them, so no interleaving leaves BLAS stuck at
    one thread; calls made meanwhile still see the thread count that was there before.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """No block held: a fresh lock (also in a forked child, whose lock may be held by a
        thread that does not exist there)."""
        self._lock = threading.Lock()
        self._depth = 0
        self._limiter: Any = None
        self._before = 1

    def blas_threads(self, blas: Any) -> int:
        """How many threads BLAS would use, were it not for us."""
        with self._lock:
            if self._depth:
                return self._before
            return max(lib.num_threads for lib in blas.lib_controllers)

    @contextmanager
    def hold(self, blas: Any) -> Iterator[None]:
        """BLAS single-threaded for the duration (nested and concurrent holds are fine)."""
        with self._lock:
            if self._depth == 0:
                self._before = max(lib.num_threads for lib in blas.lib_controllers)
                self._limiter = blas.limit(limits=1)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._limiter.restore_original_limits()
                    self._limiter = None


_SERIAL = _SerialBlas()
if hasattr(os, "register_at_fork"):
    # A child forked mid-call has only the forking thread, none of our blocks: start afresh
    # (its lock may have been held by a thread that does not exist there).
    os.register_at_fork(after_in_child=_SERIAL.reset)


def threads_for(blocks: int) -> int:
    """How many threads to run ``blocks`` independent blocks on (1: the caller's alone)."""
    if blocks < 2:
        return 1
    blas = _blas()
    if blas is None:
        return 1
    return max(1, min(_SERIAL.blas_threads(blas), _cpus(), blocks))


class _SharedIterator(Iterator[T]):
    """Hands out items to several threads, each exactly once; stops early once told to."""

    def __init__(self, items: Sequence[T]):
        self._it = iter(items)
        self._lock = threading.Lock()
        self.stopped = False

    def __next__(self) -> T:
        with self._lock:
            if self.stopped:
                raise StopIteration
            return next(self._it)


def run_blocks(
    blocks: Sequence[T], work: Callable[[Iterator[T]], None], threads: int
) -> None:
    """Call ``work(items)`` on ``threads`` threads (the caller's among them) until ``blocks``
    are used up; each block goes to exactly one thread. The first error any thread raises is
    raised here, after every thread has stopped.

    ``work`` owns its per-thread scratch: it allocates it once, then loops over ``items``.
    """
    if threads <= 1:
        work(iter(blocks))
        return
    blas = _blas()
    serial_blas = _SERIAL.hold(blas) if blas is not None else nullcontext()
    shared = _SharedIterator(blocks)
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work(shared)
        except BaseException as exc:  # re-raised on the caller's thread below
            shared.stopped = True
            errors.append(exc)

    with serial_blas:
        helpers = [threading.Thread(target=guarded, daemon=True) for _ in range(threads - 1)]
        for t in helpers:
            t.start()
        guarded()
        try:
            for t in helpers:
                t.join()
        except BaseException:  # e.g. Ctrl-C while waiting: helpers stop after their block
            shared.stopped = True
            raise
    if errors:
        raise errors[0]
