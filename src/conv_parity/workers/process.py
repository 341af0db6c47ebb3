"""The worker processes themselves: spawning, one incarnation's life, and orphan protection.

:mod:`.pool` schedules cases onto workers; this module owns what a worker *is*: the
environment it starts under (:func:`worker_env`), how it is started (:func:`spawn`, always on one
long-lived thread), one incarnation (:class:`_Worker`: its channel, log tail, pacing, kill) and
the exit and SIGTERM handlers that take every registered pool's workers down with the parent.

Orphan protection, in depth: the worker sets PR_SET_PDEATHSIG (Linux) and watches its ppid;
it exits on EOF of the channel; the pool closes every worker at exit (atexit) and on SIGTERM
(when nobody else installed a handler). PDEATHSIG fires when the *thread* that forked the child
exits, so every spawn happens on one long-lived spawner thread, never on a short-lived one
(run_many's threads would otherwise take their restarted workers down with them).
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from conv_parity import backends as targets
from conv_parity.results import BackendInfo
from conv_parity.workers import compile_cache
from conv_parity.workers.protocol import Channel

PASSTHROUGH_ENV = ("CONV_PARITY_TEST_HOOKS", targets.MUTATION_GATE)
TAIL_LINES = 30
_NAP_FRACTION = 0.75  # of the outstanding cases' expected time: see _Worker.nap
_MIN_NAP = 0.0005
_MAX_NAP = 0.05
_BUFFER_GUESS = 128 * 1024  # bytes of results a socket buffer surely holds (Linux: ~200 KiB)


def _signal_name(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class _Spawner:
    """One long-lived thread that performs every Popen (see the module docstring: PDEATHSIG)."""

    def __init__(self) -> None:
        self._q: queue.Queue[tuple[Callable[[], Any], cf.Future]] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="conv-parity-spawner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            fn, fut = self._q.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def call(self, fn: Callable[[], Any]) -> Any:
        if threading.current_thread() is self._thread:
            return fn()
        fut: cf.Future = cf.Future()
        self._q.put((fn, fut))
        return fut.result()


_spawner_lock = threading.Lock()
_spawner: _Spawner | None = None


def _get_spawner() -> _Spawner:
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
        return _spawner


class _Worker:
    """One incarnation of a backend's worker process and its channel."""

    def __init__(self, backend: str, proc: subprocess.Popen, channel: Channel, log_path: Path,
                 log_offset: int, started: float) -> None:
        self.backend = backend
        self.proc = proc
        self.channel = channel
        self.log_path = log_path
        self.log_offset = log_offset  # where this incarnation's lines start in the log file
        self.started = started
        self.info: BackendInfo | None = None
        self.case_seconds = 0.0  # running average of the compute time of its cases
        self.result_bytes = 0  # size of the last result's output
        #: Its ready frame, once read (a worker lent warm by the daemon brings it along).
        self.ready: dict[str, Any] | None = None
        self.lease: Any = None  # a :class:`.lease.Lease` when the daemon owns the process

    def observe(self, seconds: float, output_bytes: int) -> None:
        """Feed the running estimates :meth:`nap` works from."""
        self.case_seconds = seconds if not self.case_seconds else (
            0.7 * self.case_seconds + 0.3 * seconds)
        self.result_bytes = output_bytes

    def nap(self, outstanding: int) -> None:
        """Sleep through most of the cases still running, unless a result is already here.

        Why: the parent's wakeups slow the worker down. A parent blocked on the socket is
        woken by each send, and every wakeup costs the worker (measured on this 2-vCPU VM:
        its cases ran 10-14% slower with the parent reading each result at once than with
        the parent asleep). Results wait in the socket buffer, so reading them late loses
        nothing, also when the worker crashes. So the parent sleeps for 3/4 of the expected
        time of the outstanding cases, then reads all that arrived: a few wakeups per batch
        instead of one per case. It never sleeps while data is waiting (it never falls
        behind), sleeps at most for as many results as the socket buffer probably holds (a
        worker blocked on a full buffer would idle), and at most _MAX_NAP (a batch's last
        result is at most that late).
        """
        fit = max(1, _BUFFER_GUESS // max(self.result_bytes + 1024, 1))
        nap = min(_NAP_FRACTION * self.case_seconds * min(outstanding, fit), _MAX_NAP)
        if nap >= _MIN_NAP and not self.channel.has_data():
            time.sleep(nap)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines this incarnation wrote to stdout/stderr."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                data = f.read()
        except OSError:
            return ""
        text = data.decode("utf-8", "replace").rstrip("\n")
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the worker's process group and reap it (no zombie)."""
        self.channel.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def stop(self, grace: float = 2.0) -> None:
        """Ask politely (shutdown frame + EOF), then kill."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.channel.send({"type": "shutdown"}, timeout=0.5)
        self.channel.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)
        self.kill()

class Owner(Protocol):
    """What the exit and SIGTERM handlers need of a pool (:class:`.pool.WorkerPool`)."""

    def close(self) -> None: ...

    def _kill_all_now(self) -> None: ...


_POOLS: weakref.WeakSet[Owner] = weakref.WeakSet()
_handlers_installed = False


def _close_all_pools() -> None:
    for pool in list(_POOLS):
        with contextlib.suppress(Exception):
            pool.close()


def _on_sigterm(signum: int, frame: Any) -> None:
    # Kill workers without taking locks (the interrupted code may hold them), then die of the
    # same signal so the exit status stays what the sender expects.
    for pool in list(_POOLS):
        pool._kill_all_now()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_close_all_pools)
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)
    # SIGINT raises KeyboardInterrupt; atexit then closes the pools. Workers run in their own
    # session, so a terminal's Ctrl-C never reaches them directly.


def limit_threads_env(env: dict[str, str], threads: int | None) -> None:
    """Cap a worker's intra-op threads through ``env`` (None: leave the libraries' defaults).

    Variables the user already set win; CONV_PARITY_THREADS tells the worker to apply the cap
    to the libraries that do not read them (see ``child._limit_threads``).
    """
    if not threads:
        return
    n = str(threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS"):
        env.setdefault(var, n)
    env.setdefault("TF_NUM_INTEROP_THREADS", "1")
    env["CONV_PARITY_THREADS"] = n


def _pythonpath_for_child() -> str:
    pkg_parent = str(Path(__file__).resolve().parents[2])  # src/, above conv_parity/
    existing = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join([pkg_parent, *([existing] if existing else [])])

def register(pool: Owner) -> None:
    """Have ``pool``'s workers closed at exit and killed on SIGTERM (handlers installed once)."""
    _POOLS.add(pool)
    _install_handlers()


def unregister(pool: Owner) -> None:
    _POOLS.discard(pool)


def worker_env(backend: str, channel_fd: int, extra_env: Mapping[str, str],
               threads: int | None) -> dict[str, str]:
    """The environment of ``backend``'s worker: ours, the pass-through variables, ``extra_env``,
    the target's settings, the thread cap and where its channel is."""
    env = dict(os.environ)
    for name in PASSTHROUGH_ENV:  # explicit: these two must reach the worker if set here
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra_env)
    env = targets.worker_env(backend, env)  # the target's settings, KERAS_BACKEND
    env["PYTHONPATH"] = _pythonpath_for_child()
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONUNBUFFERED", "1")
    limit_threads_env(env, threads)
    compile_cache.apply(env)
    env["CONV_PARITY_CHANNEL_FD"] = str(channel_fd)
    env["CONV_PARITY_PARENT_PID"] = str(os.getpid())
    return env


def spawn(backend: str, log_path: Path, extra_env: Mapping[str, str],
          threads: int | None) -> _Worker:
    """Start one incarnation of ``backend``'s worker, its output appended to ``log_path``."""
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        log = open(log_path, "ab")  # noqa: SIM115 - handed to Popen, closed below
        log.write(f"\n===== conv-parity {backend} worker starting at {time.ctime()} =====\n"
                  .encode())
        log.flush()
        offset = log.tell()
        cmd = [sys.executable, "-m", "conv_parity.workers.child", backend]
        env = worker_env(backend, child_sock.fileno(), extra_env, threads)
        started = time.monotonic()

        def popen() -> subprocess.Popen:
            return subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(child_sock.fileno(),), env=env, start_new_session=True,
            )

        proc = _get_spawner().call(popen)
    finally:
        child_sock.close()
        with contextlib.suppress(NameError):
            log.close()
    return _Worker(backend, proc, Channel(parent_sock), log_path, offset, started)
