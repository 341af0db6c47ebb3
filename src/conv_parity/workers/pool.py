"""WorkerPool: one persistent worker process per Keras backend, started concurrently, reused.

Why this shape: importing Keras costs seconds per backend and Keras fixes its backend at import,
so each backend lives in one long-lived subprocess per pytest process. The pool owns those
processes completely: it spawns them (all at once, so imports overlap), sends batches of cases,
streams results back in order, kills and replaces a worker that crashes, hangs or speaks
garbage (the case gets "crash"/"timeout" with the worker's last log lines), recycles workers
that served too many cases or grew too big, and makes sure no worker outlives the parent.

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
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from conv_parity import backends as targets
from conv_parity.errors import HarnessError
from conv_parity.results import BackendInfo, BackendResult
from conv_parity.workers.protocol import (
    Channel,
    ChannelClosed,
    FrameTimeout,
    ProtocolError,
    WorkItem,
    encode_frame,
    frame_from_blobs,
)

PASSTHROUGH_ENV = ("CONV_PARITY_TEST_HOOKS", targets.MUTATION_GATE)
TAIL_LINES = 30
_BATCH_MAX_ITEMS = 256
_BATCH_MAX_BYTES = 256 * 2**20
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


_POOLS: weakref.WeakSet[WorkerPool] = weakref.WeakSet()
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


class WorkerPool:
    """Persistent per-backend workers. Thread-safe across backends; one run per backend at a time.

    `timeout` is per case (seconds between two results); `startup_timeout` bounds a worker's
    import. `threads` caps each worker's intra-op threads (None: leave the libraries' defaults).
    `extra_env` is added to the workers' environment (tests use it for the hook variables).
    """

    def __init__(
        self,
        timeout: float = 120.0,
        log_dir: Path | str | None = None,
        max_cases_per_worker: int = 2000,
        max_rss_mb: float = 4000,
        *,
        startup_timeout: float = 300.0,
        threads: int | None = 1,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.timeout = float(timeout)
        self.startup_timeout = float(startup_timeout)
        self.max_cases_per_worker = int(max_cases_per_worker)
        self.max_rss_mb = float(max_rss_mb)
        self.threads = threads
        self.extra_env = dict(extra_env or {})
        self._own_log_dir = log_dir is None
        self.log_dir = Path(tempfile.mkdtemp(prefix="conv-parity-logs-")) if log_dir is None \
            else Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._workers: dict[str, _Worker] = {}
        self._infos: dict[str, BackendInfo] = {}
        self._unavailable: dict[str, BackendInfo] = {}
        self._locks: dict[str, threading.Lock] = {}  # one per target, made on first use
        self._owners: dict[str, int] = {}  # backend -> thread id of its running run()
        self._state = threading.Lock()  # guards _workers/_infos/_unavailable/_locks
        self._closed = False
        self.restarts: dict[str, int] = {}
        _POOLS.add(self)
        _install_handlers()

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_backend(self, backend: str) -> None:
        """Known target (UsageError otherwise), pool open; makes the target's lock."""
        targets.get(backend)
        if self._closed:
            raise HarnessError("WorkerPool is closed")
        with self._state:
            self._locks.setdefault(backend, threading.Lock())
            self.restarts.setdefault(backend, 0)

    def log_path(self, backend: str) -> Path:
        """Where the backend's worker stdout/stderr go (appended across restarts)."""
        return self.log_dir / f"worker-{backend}-{os.getpid()}.log"

    def _env(self, backend: str, channel_fd: int) -> dict[str, str]:
        env = dict(os.environ)
        for name in PASSTHROUGH_ENV:  # explicit: these two must reach the worker if set here
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(self.extra_env)
        env = targets.worker_env(backend, env)  # the target's settings, KERAS_BACKEND
        env["PYTHONPATH"] = _pythonpath_for_child()
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.setdefault("PYTHONUNBUFFERED", "1")
        limit_threads_env(env, self.threads)
        env["CONV_PARITY_CHANNEL_FD"] = str(channel_fd)
        env["CONV_PARITY_PARENT_PID"] = str(os.getpid())
        return env

    def _spawn(self, backend: str) -> _Worker:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        log_path = self.log_path(backend)
        try:
            log = open(log_path, "ab")  # noqa: SIM115 - handed to Popen, closed below
            log.write(f"\n===== conv-parity {backend} worker starting at {time.ctime()} =====\n"
                      .encode())
            log.flush()
            offset = log.tell()
            cmd = [sys.executable, "-m", "conv_parity.workers.child", backend]
            env = self._env(backend, child_sock.fileno())
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

    def start(self, backends: Iterable[str]) -> None:
        """Spawn the workers of `backends` that are not running yet; returns immediately."""
        for backend in backends:
            self._check_backend(backend)
            with self._state:
                if backend in self._workers or backend in self._unavailable:
                    continue
                self._workers[backend] = self._spawn(backend)

    def _await_ready(self, worker: _Worker) -> BackendInfo:
        """Read the worker's ready message (blocks for its import)."""
        try:
            header, _ = worker.channel.recv(timeout=self.startup_timeout)
            if header.get("type") != "ready":
                raise ProtocolError(f"expected a ready frame, got {header.get('type')!r}")
        except ProtocolError as exc:
            if isinstance(exc, FrameTimeout):
                reason = f"worker did not finish importing within {self.startup_timeout:.0f} s"
            elif isinstance(exc, ChannelClosed):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.proc.wait(timeout=5)
                reason = f"worker {_signal_name(worker.proc.poll())} during start-up"
            else:
                reason = f"worker broke the protocol during start-up: {exc}"
            worker.kill()
            tail = worker.tail()
            return BackendInfo(
                worker.backend, False, import_error=reason + (f"\n{tail}" if tail else ""),
                pid=worker.pid, log_path=str(worker.log_path),
                startup_seconds=time.monotonic() - worker.started,
            )
        return BackendInfo(
            backend=worker.backend,
            available=bool(header.get("available")),
            import_error=header.get("import_error"),
            keras_version=header.get("keras_version"),
            backend_version=header.get("backend_version"),
            versions=dict(header.get("versions") or {}),
            device=header.get("device"),
            fp_settings=dict(header.get("fp_settings") or {}),
            facts=dict(header.get("facts") or {}),
            target=dict(header.get("target") or {}),
            import_seconds=header.get("import_seconds"),
            startup_seconds=time.monotonic() - worker.started,
            pid=header.get("pid", worker.pid),
            python=header.get("python"),
            log_path=str(worker.log_path),
        )

    def _ensure(self, backend: str) -> tuple[_Worker | None, BackendInfo]:
        """A ready worker for `backend` (spawning one if needed), or None and the info saying
        why the backend is unavailable. Caller holds the backend's lock."""
        with self._state:
            if backend in self._unavailable:
                return None, self._unavailable[backend]
            worker = self._workers.get(backend)
            if worker is not None and worker.info is not None and not worker.alive():
                worker.kill()  # died while idle (e.g. OOM-killed): replace silently
                worker = None
                del self._workers[backend]
            if worker is None:
                worker = self._workers[backend] = self._spawn(backend)
                if backend in self._infos:
                    self.restarts[backend] += 1
        if worker.info is None:
            info = self._await_ready(worker)
            worker.info = info
            with self._state:
                if not info.available:
                    self._unavailable[backend] = info
                    self._workers.pop(backend, None)
                    worker.kill()
                first = self._infos.setdefault(backend, info)
                if info.available and first is not info:
                    first.pid = info.pid  # facts are the same; the pid is the live one
            if not info.available:
                return None, info
        return worker, worker.info

    def info(self, backend: str) -> BackendInfo:
        """The backend's facts; blocks until its worker is ready (or known to be unavailable)."""
        self._check_backend(backend)
        with self._state:
            if backend in self._unavailable:
                return self._unavailable[backend]
            if backend in self._infos:  # known, even while a run is replacing its worker
                return self._infos[backend]
        with self._locks[backend]:
            _, info = self._ensure(backend)
        return self._infos.get(backend, info)

    def _discard(self, worker: _Worker) -> None:
        with self._state:
            if self._workers.get(worker.backend) is worker:
                del self._workers[worker.backend]
        worker.kill()

    # ------------------------------------------------------------------ running cases
    def run(self, backend: str, items: Sequence[WorkItem]) -> Iterator[BackendResult]:
        """Run `items` on `backend`, yielding one BackendResult per item, in order, as they
        arrive. Crashes and hangs cost only the case they happened in."""
        self._check_backend(backend)
        items = list(items)
        lock = self._locks[backend]
        if self._owners.get(backend) == threading.get_ident():
            raise HarnessError(
                f"a previous run on {backend!r} in this thread is still being iterated; "
                "finish or close it first")
        lock.acquire()  # runs on one backend from several threads take turns
        self._owners[backend] = threading.get_ident()
        finished = False
        worker: _Worker | None = None
        try:
            i = 0
            idle_deaths = 0
            while i < len(items):
                worker, info = self._ensure(backend)
                if worker is None:
                    for item in items[i:]:
                        yield BackendResult(
                            backend, item.case.id, "unavailable",
                            error={"type": "BackendUnavailable",
                                   "message": info.import_error or "backend unavailable",
                                   "phase": "worker"},
                        )
                    i = len(items)
                    break
                chunk = self._chunk(items, i)
                try:
                    self._send_batch(worker, items, i, chunk)
                except OSError:
                    # It died before reading the batch, so no case is to blame; retry once.
                    self._discard(worker)
                    idle_deaths += 1
                    if idle_deaths > 2:
                        raise HarnessError(
                            f"{backend} worker keeps dying before reading a batch:\n"
                            f"{worker.tail()}") from None
                    continue
                end = i + chunk
                while i < end:
                    result, keep_going = self._next_result(worker, items, i, end - i)
                    if result is None:  # the worker retired before case i: resend the rest
                        break
                    yield result
                    i += 1
                    if not keep_going:
                        break
            finished = True
        finally:
            if not finished and worker is not None and worker.alive():
                # Abandoned mid-batch (consumer stopped iterating, KeyboardInterrupt): the
                # worker still owes results, so its channel is out of sync. Replace it.
                self._discard(worker)
            self._owners.pop(backend, None)
            lock.release()

    def _chunk(self, items: list[WorkItem], start: int) -> int:
        size = 0
        n = 0
        for item in items[start:]:
            size += item.x.nbytes + sum(w.nbytes for w in item.weights)
            n += 1
            if n >= _BATCH_MAX_ITEMS or size >= _BATCH_MAX_BYTES:
                break
        return max(n, 1)

    def _send_batch(self, worker: _Worker, items: list[WorkItem], start: int, n: int) -> None:
        parts = [encode_frame({"type": "batch", "n": n, "max_cases": self.max_cases_per_worker,
                               "max_rss_mb": self.max_rss_mb})]
        for k in range(n):
            item = items[start + k]
            case_json, blobs = item.wire()
            header = {"type": "case", "seq": start + k, "case": case_json}
            if item.fault is not None:
                header["fault"] = item.fault
            if item.extras:
                header["extras"] = list(item.extras)
            parts.append(frame_from_blobs(header, blobs))
        worker.channel.sock.settimeout(self.timeout)
        worker.channel.sock.sendall(b"".join(parts))

    def _next_result(self, worker: _Worker, items: list[WorkItem], i: int,
                     outstanding: int) -> tuple[BackendResult | None, bool]:
        """(result for items[i], whether the worker is still usable); (None, _) on retirement."""
        backend = worker.backend
        case_id = items[i].case.id
        try:
            worker.nap(outstanding)
            header, arrays = worker.channel.recv(timeout=self.timeout)
            if header["type"] == "retire":
                self._discard(worker)  # it exits by itself; kill() only reaps it
                return None, False
            if header["type"] != "result" or header.get("seq") != i:
                raise ProtocolError(
                    f"expected result seq {i}, got {header.get('type')!r} seq {header.get('seq')!r}")
        except FrameTimeout as exc:
            started_mid = "mid-frame" in str(exc)
            self._discard(worker)
            msg = (f"no result within {self.timeout:g} s; worker (pid {worker.pid}) killed"
                   + (" while it was sending a partial frame" if started_mid else ""))
            return BackendResult(
                backend, case_id, "timeout",
                error={"type": "Timeout", "message": msg, "phase": "worker"},
                stderr_tail=worker.tail(), seconds=self.timeout, pid=worker.pid,
            ), False
        except ProtocolError as exc:
            if isinstance(exc, ChannelClosed):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.proc.wait(timeout=5)
                msg = f"worker (pid {worker.pid}) {_signal_name(worker.proc.poll())}"
                etype = "WorkerCrash"
            else:
                msg = f"worker (pid {worker.pid}) broke the protocol: {exc}"
                etype = "ProtocolError"
            self._discard(worker)
            return BackendResult(
                backend, case_id, "crash",
                error={"type": etype, "message": msg, "phase": "worker"},
                stderr_tail=worker.tail(), pid=worker.pid,
            ), False
        names = header.get("outputs") or ["y"][:len(arrays)]
        if len(names) != len(arrays):
            self._discard(worker)
            return BackendResult(
                backend, case_id, "crash", pid=worker.pid, stderr_tail=worker.tail(),
                error={"type": "ProtocolError", "phase": "worker",
                       "message": f"{len(arrays)} arrays for outputs {names}"}), False
        outputs = dict(zip(names, arrays))
        first = next(iter(outputs.values()), None)
        worker.observe(float(header.get("seconds", 0.0)),
                       sum(a.nbytes for a in outputs.values()))
        status = header.get("status", "error")
        if status == "ok" and first is None:
            status = "error"
            header["error"] = {"type": "ProtocolError", "message": "ok result without output",
                               "phase": "worker"}
        return BackendResult(
            backend=backend,
            case_id=case_id,
            status=status,
            outputs=outputs,
            shape=None if first is None else tuple(first.shape),
            dtype=None if first is None else str(
                (header.get("dtypes") or {}).get(names[0], first.dtype)),
            dtypes=dict(header.get("dtypes") or {}),
            variable_dtypes=header.get("variable_dtypes"),
            symbolic_shape=_tuple(header.get("symbolic_shape")),
            functional_shape=_tuple(header.get("functional_shape")),
            error=header.get("error"),
            symbolic_error=header.get("symbolic_error"),
            seconds=float(header.get("seconds", 0.0)),
            pid=worker.pid,
        ), True

    def request(self, backend: str, header: dict[str, Any], arrays: Sequence[Any] = (),
                timeout: float | None = None) -> tuple[dict[str, Any], list[Any]]:
        """One request of a type other than a batch (``header["type"]`` names a handler of
        :data:`conv_parity.workers.child.HANDLERS`): its header frame, then one frame with
        ``arrays``; the worker answers with one frame. Failures are data, as for cases:
        ``{"status": "unavailable" | "timeout" | "crash", "error": {...}}``; a worker that
        timed out or broke the protocol is replaced. A reply whose header says ``parts: n``
        carries its arrays in the n frames after it (a frame holds at most MAX_ARRAYS)."""
        self._check_backend(backend)
        wait = self.timeout if timeout is None else timeout
        with self._locks[backend]:
            worker, info = self._ensure(backend)
            if worker is None:
                return {"status": "unavailable",
                        "error": {"type": "BackendUnavailable", "phase": "worker",
                                  "message": info.import_error or "backend unavailable"}}, []
            try:
                worker.channel.send(header, (), timeout=wait)
                worker.channel.send({"type": "arrays"}, list(arrays), timeout=wait)
                reply, out = worker.channel.recv(timeout=wait)
                out = list(out)
                for _ in range(int(reply.get("parts") or 0)):  # arrays beyond one frame
                    out += worker.channel.recv(timeout=wait)[1]
            except FrameTimeout:
                self._discard(worker)
                return {"status": "timeout", "error": {
                    "type": "Timeout", "phase": "worker",
                    "message": f"no answer within {wait:g} s; worker (pid {worker.pid}) "
                               f"killed"}}, []
            except (ProtocolError, OSError) as exc:
                self._discard(worker)
                return {"status": "crash", "error": {
                    "type": "WorkerCrash", "phase": "worker",
                    "message": f"worker (pid {worker.pid}): {exc}"},
                    "stderr_tail": worker.tail()}, []
            return reply, list(out)

    def run_many(self, work: Mapping[str, Sequence[WorkItem]]) -> dict[str, list[BackendResult]]:
        """Run each backend's items concurrently (one thread per backend); all results."""
        for backend in work:
            self._check_backend(backend)
        self.start(work)  # every import starts now, before any thread waits on one
        if len(work) <= 1:
            return {b: list(self.run(b, items)) for b, items in work.items()}
        with cf.ThreadPoolExecutor(max_workers=len(work), thread_name_prefix="conv-parity") as ex:
            futures = {b: ex.submit(lambda b=b, it=items: list(self.run(b, it)))
                       for b, items in work.items()}
            return {b: f.result() for b, f in futures.items()}

    # ------------------------------------------------------------------ shutdown
    def pids(self) -> dict[str, int]:
        """Live worker pids by backend (for tests and `ps`-minded people)."""
        with self._state:
            return {b: w.pid for b, w in self._workers.items() if w.alive()}

    def _kill_all_now(self) -> None:
        for worker in list(self._workers.values()):
            with contextlib.suppress(Exception):
                os.killpg(worker.pid, signal.SIGKILL)

    def close(self) -> None:
        """Stop every worker (EOF + shutdown frame, then SIGKILL after a short grace)."""
        if self._closed:
            return
        self._closed = True
        with self._state:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:  # ask all first, then wait: shutdowns overlap
            with contextlib.suppress(OSError):
                w.channel.send({"type": "shutdown"}, timeout=0.5)
            w.channel.close()
        deadline = time.monotonic() + 2.0
        for w in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            w.kill()
        _POOLS.discard(self)
        if self._own_log_dir:  # a temporary folder of ours: leave nothing behind in /tmp
            shutil.rmtree(self.log_dir, ignore_errors=True)


def _tuple(value: Any) -> tuple | None:
    return None if value is None else tuple(value)


def make_items(cases: Iterable[Any]) -> list[WorkItem]:
    """WorkItems for cases, with inputs and weights made from each case's seed."""
    items = []
    for case in cases:
        x, weights = case.arrays()
        items.append(WorkItem(case, x, weights))
    return items


__all__ = ["BackendInfo", "BackendResult", "WorkItem", "WorkerPool", "make_items"]
