"""The warm worker service: ``python -m conv_parity.workers.service SOCKET IDLE KEY``.

A per-user daemon (see :mod:`.lease` for why, its key and the client half) that owns worker
processes between invocations. It starts them exactly as a pool does (:func:`.process.spawn`,
from one long-lived thread, so PDEATHSIG ties them to the daemon), lends the parent end of a
worker's channel to a client by passing its fd, and takes it back when the client's pool
closes. It never reads or writes a worker's channel, so a worker cannot tell who drives it.
A worker that crashes while lent is reaped here; the next lend starts a fresh one.

One connection per request, one JSON object each way: ``ping``, ``lend`` (backend, threads ->
fd, pid, log, ready frame), ``return`` (pid, ready frame + fd), ``poll`` (pid -> returncode),
``status``, ``stop``. It exits after ``IDLE`` seconds with no worker lent and no request.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conv_parity import backends as targets
from conv_parity.workers.process import _Worker, spawn
from conv_parity.workers.protocol import Channel

MAX_IDLE_PER_TARGET = 2
_TICK = 0.5


@dataclass
class _Entry:
    worker: _Worker
    target: tuple[str, int | None]  # (backend, threads)
    lent: bool = False
    ready: dict[str, Any] | None = None
    since: float = field(default_factory=time.monotonic)


class Service:
    """The daemon's state: its workers by pid, who is lent, and when it was last used."""

    def __init__(self, path: Path, idle: float, key: str) -> None:
        self.path = path
        self.idle = idle
        self.key = key
        self.started = time.time()
        self.log_dir = path.parent / f"logs-{key}"
        self.log_dir.mkdir(mode=0o700, exist_ok=True)
        self.entries: dict[int, _Entry] = {}
        self.exited: dict[int, int] = {}  # pid -> returncode of workers reaped here
        self.lock = threading.Lock()
        self.last_used = time.monotonic()
        self.stopping = threading.Event()
        self.lends = 0
        self.warm_lends = 0

    # ----------------------------------------------------------------------- requests
    def handle(self, conn: socket.socket) -> None:
        fds: list[int] = []
        try:
            conn.settimeout(10.0)
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 2)
            chunks = [data]
            while data:
                data = conn.recv(1 << 16)
                chunks.append(data)
            request = json.loads(b"".join(chunks))
            op = request.get("op")
            if op not in ("status", "ping"):  # looking at it is not using it
                with self.lock:
                    self.last_used = time.monotonic()
            if op == "lend":
                reply, send = self.lend(str(request["backend"]), request.get("threads"))
                try:
                    socket.send_fds(conn, [json.dumps(reply).encode()], [send.fileno()])
                finally:
                    send.close()  # the client holds the only parent end now
                return
            if op == "return":
                reply = self.take_back(int(request["pid"]), fds, request.get("ready"))
                fds = []
            elif op == "poll":
                reply = {"returncode": self.poll(int(request["pid"]))}
            elif op == "status":
                reply = self.status()
            elif op == "stop":
                reply = {"ok": True}
                self.stopping.set()
            elif op == "ping":
                reply = {"ok": True, "pid": os.getpid()}
            else:
                reply = {"error": f"unknown request {op!r}"}
            conn.sendall(json.dumps(reply).encode())
        except Exception as exc:  # one bad request never takes the daemon down
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            conn.close()

    def lend(self, backend: str, threads: int | None) -> tuple[dict[str, Any], Channel]:
        targets.get(backend)  # UsageError (-> an error reply) for an unknown target
        target = (backend, threads)
        with self.lock:
            self.lends += 1
            for pid, entry in list(self.entries.items()):
                if entry.target != target or entry.lent:
                    continue
                if not entry.worker.alive() or entry.worker.channel.has_data():
                    self._drop(pid)  # died idle, or says something nobody asked for
                    continue
                entry.lent = True
                self.warm_lends += 1
                return self._reply(entry), entry.worker.channel
        worker = spawn(backend, self.log_dir / f"worker-{backend}.log", {}, threads)
        entry = _Entry(worker, target, lent=True)
        with self.lock:
            self.entries[worker.pid] = entry
        return self._reply(entry), worker.channel

    def _reply(self, entry: _Entry) -> dict[str, Any]:
        w = entry.worker
        return {"pid": w.pid, "log_path": str(w.log_path), "log_offset": w.log_offset,
                "ready": entry.ready, "age": time.monotonic() - w.started}

    def take_back(self, pid: int, fds: list[int], ready: dict[str, Any] | None) -> dict:
        if len(fds) != 1:
            return {"error": f"a return needs one fd, got {len(fds)}"}
        channel = Channel(socket.socket(fileno=fds[0]))
        with self.lock:
            entry = self.entries.get(pid)
            if entry is None or not entry.lent or not entry.worker.alive():
                channel.close()
                return {"ok": False}
            entry.worker.channel = channel
            entry.ready = ready or entry.ready
            entry.lent = False
            entry.since = time.monotonic()
            idle = [p for p, e in self.entries.items() if e.target == entry.target and not e.lent]
            if len(idle) > MAX_IDLE_PER_TARGET:
                self._drop(pid)
        return {"ok": True}

    def poll(self, pid: int) -> int | None:
        with self.lock:
            if pid in self.exited:
                return self.exited[pid]
            entry = self.entries.get(pid)
            if entry is None:
                return None
            code = entry.worker.proc.poll()
            if code is not None:
                self.exited[pid] = code
                del self.entries[pid]
            return code

    def status(self) -> dict[str, Any]:
        with self.lock:
            now = time.monotonic()
            return {
                "pid": os.getpid(), "key": self.key, "socket": str(self.path),
                "started": self.started, "idle_timeout": self.idle,
                "idle_for": 0.0 if any(e.lent for e in self.entries.values())
                else now - self.last_used,
                "lends": self.lends, "warm_lends": self.warm_lends,
                "workers": [{"backend": e.target[0], "threads": e.target[1], "pid": pid,
                             "state": "lent" if e.lent else "idle",
                             "age": now - e.worker.started}
                            for pid, e in sorted(self.entries.items())],
            }

    # ----------------------------------------------------------------------- life
    def _drop(self, pid: int) -> None:
        """Stop one worker (caller holds the lock)."""
        entry = self.entries.pop(pid)
        entry.worker.stop(grace=1.0)
        self.exited[pid] = entry.worker.proc.returncode or 0

    def housekeep(self) -> None:
        """Reap workers that exited, and stop the daemon after its idle time."""
        while not self.stopping.wait(_TICK):
            with self.lock:
                for pid, entry in list(self.entries.items()):
                    code = entry.worker.proc.poll()
                    if code is not None:
                        self.exited[pid] = code
                        entry.worker.channel.close()
                        del self.entries[pid]
                busy = any(e.lent for e in self.entries.values())
                if busy:
                    self.last_used = time.monotonic()
                elif time.monotonic() - self.last_used > self.idle:
                    self.stopping.set()

    def shutdown(self) -> None:
        with self.lock:
            for pid in list(self.entries):
                entry = self.entries[pid]
                if entry.lent:
                    entry.worker.kill()
                    del self.entries[pid]
                else:
                    self._drop(pid)


def serve(path: Path, idle: float, key: str) -> None:
    """Listen on ``path`` until stopped or idle; one thread per connection."""
    service = Service(path, idle, key)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    old = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    listener.listen(64)
    listener.settimeout(_TICK)
    threading.Thread(target=service.housekeep, name="housekeep", daemon=True).start()
    print(f"conv-parity daemon {os.getpid()} listening on {path} (idle {idle:g} s)", flush=True)
    try:
        while not service.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=service.handle, args=(conn,), daemon=True).start()
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # first: a client that cannot connect now starts a new daemon
        listener.close()
        service.shutdown()
        shutil.rmtree(service.log_dir, ignore_errors=True)  # its workers' logs went with them
        print(f"conv-parity daemon {os.getpid()} exiting", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path, idle, key = Path(args[0]), float(args[1]), args[2]
    if os.fork() > 0:  # detach: the starter reaps this parent now, init the daemon later
        os._exit(0)
    serve(path, idle, key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
