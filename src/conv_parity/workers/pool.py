"""WorkerPool: one persistent worker process per Keras backend, started concurrently, reused.

Why this shape: importing Keras costs seconds per backend and Keras fixes its backend at import,
so each backend lives in one long-lived subprocess per pytest process. The pool owns those
processes completely: it spawns them (all at once, so imports overlap), sends batches of cases,
streams results back in order, kills and replaces a worker that crashes, hangs or speaks
garbage (the case gets "crash"/"timeout" with the worker's last log lines), recycles workers
that served too many cases or grew too big, and makes sure no worker outlives the parent.

Processes (spawning, one incarnation, orphan protection) live in :mod:`.process`; this module
schedules: batches, streaming, replacement, recycling.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from conv_parity import backends as targets
from conv_parity.errors import HarnessError
from conv_parity.results import BackendInfo, BackendResult
from conv_parity.workers import lease as leases
from conv_parity.workers.process import _signal_name, _Worker, register, spawn, unregister
from conv_parity.workers.protocol import (
    Channel,
    ChannelClosed,
    FrameTimeout,
    ProtocolError,
    WorkItem,
    encode_frame,
    frame_from_blobs,
)

_BATCH_MAX_ITEMS = 256
_BATCH_MAX_BYTES = 256 * 2**20


class WorkerPool:
    """Persistent per-backend workers. Thread-safe across backends; one run per backend at a time.

    `timeout` is per case (seconds between two results); `startup_timeout` bounds a worker's
    import. `threads` caps each worker's intra-op threads (None: leave the libraries' defaults).
    `extra_env` is added to the workers' environment (tests use it for the hook variables).
    `daemon` borrows the workers from the warm worker service (:mod:`.lease`) instead of
    starting them, and gives them back at close; off with `extra_env`, and where the service
    cannot start (then the pool starts its own, as without it).
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
        daemon: bool = False,
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
        self.daemon = daemon and not self.extra_env
        self._daemon_path: Path | None = None
        #: Why the service was not used (it could not start), for a note in the output.
        self.daemon_error: str | None = None
        register(self)

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

    def _spawn(self, backend: str) -> _Worker:
        if self.daemon and self.daemon_error is None:
            try:
                return self._borrow(backend)
            except (OSError, HarnessError, ValueError, KeyError) as exc:
                self.daemon_error = f"{type(exc).__name__}: {exc}"
        return spawn(backend, self.log_path(backend), self.extra_env, self.threads)

    def _borrow(self, backend: str) -> _Worker:
        """A worker lent by the daemon (warm if it has one idle), started if need be."""
        if self._daemon_path is None:
            self._daemon_path = leases.ensure_running()
        lent = leases.borrow(self._daemon_path, backend, self.threads)
        worker = _Worker(backend, leases.RemoteProc(lent),  # type: ignore[arg-type]
                         Channel(socket.socket(fileno=lent.fd)), lent.log_path,
                         lent.log_offset, time.monotonic() if lent.ready else lent.started)
        worker.lease = lent
        worker.ready = lent.ready
        return worker

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
            header = worker.ready or worker.channel.recv(timeout=self.startup_timeout)[0]
            worker.ready = header
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
    def _run_all(self, backend: str, items: Sequence[WorkItem]) -> list[BackendResult]:
        return list(self.run(backend, items))

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
        :data:`conv_parity.workers.handlers.HANDLERS`; typed records in :mod:`conv_parity.requests`): its header frame, then one frame with
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
            futures = {b: ex.submit(self._run_all, b, items) for b, items in work.items()}
            return {b: f.result() for b, f in futures.items()}

    # ------------------------------------------------------------------ shutdown
    def _give_back(self, worker: _Worker) -> bool:
        """Return a borrowed worker that is ready and between requests to the daemon."""
        if worker.lease is None or worker.info is None or not worker.info.available:
            return False
        try:
            in_sync = not worker.channel.has_data() and worker.alive()
        except OSError:
            in_sync = False
        if not in_sync or not leases.give_back(worker.lease, worker.channel.fileno(),
                                                worker.ready):
            return False
        worker.channel.close()
        return True

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
        workers = [w for w in workers if not self._give_back(w)]
        for w in workers:  # ask all first, then wait: shutdowns overlap
            with contextlib.suppress(OSError):
                w.channel.send({"type": "shutdown"}, timeout=0.5)
            w.channel.close()
        deadline = time.monotonic() + 2.0
        for w in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            w.kill()
        unregister(self)
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
