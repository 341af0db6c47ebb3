"""The client half of the warm worker service (:mod:`.service`): whether to use it, where it
listens, its key, and borrowing / returning one worker's channel.

Why a service: a ``check`` spends nearly all of its time starting backend workers (imports),
and the only way below that is not to start them again. A per-user daemon keeps idle workers
between invocations. It lends a worker by passing the parent end of the worker's channel (a
socket fd, SCM_RIGHTS) and takes it back when the pool closes; bytes never go through the
daemon, so the worker cannot tell who holds its channel.

A daemon is keyed by everything that changes a verdict (:func:`key`): the Python executable,
the installed versions of Keras, the backend libraries and conv-parity (plus a hash of its
source files, for editable installs) and the environment variables the backends read. Within a
daemon, workers are keyed by target (variants included) and thread cap. It is off under
``CI=true``, ``--no-daemon`` and ``CONV_PARITY_DAEMON=0``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from conv_parity.errors import HarnessError

ENABLE_ENV = "CONV_PARITY_DAEMON"  # "0": off; anything else (or unset): on, where allowed
DIR_ENV = "CONV_PARITY_DAEMON_DIR"  # where sockets and logs live (tests use a temp dir)
IDLE_ENV = "CONV_PARITY_DAEMON_IDLE"  # seconds without a lease before the daemon exits
DEFAULT_IDLE = 15 * 60.0
#: Distributions whose versions change what a worker computes.
DISTRIBUTIONS = ("keras", "tensorflow", "tensorflow-cpu", "tf_keras", "torch", "jax", "jaxlib",
                 "numpy", "ml_dtypes", "openvino", "conv-parity")
#: Environment variables the backends, their thread pools and the workers read (by prefix).
ENV_PREFIXES = ("TF_", "XLA_", "JAX_", "TORCH", "PYTORCH_", "OMP_", "MKL_", "OPENBLAS_",
                "KMP_", "KERAS_", "OV_", "OPENVINO", "CUDA_", "ONEDNN_", "DNNL_", "CONV_PARITY_",
                "PYTHONPATH", "PYTHONHASHSEED", "LD_LIBRARY_PATH", "LD_PRELOAD")
_NOT_KEYED = (ENABLE_ENV, DIR_ENV, IDLE_ENV, "CONV_PARITY_DEBUG")
_START_TIMEOUT = 20.0


def wanted(flag: bool | None = None) -> bool:
    """Whether to use the service: ``flag`` False (``--no-daemon``), ``CI=true`` or
    ``CONV_PARITY_DAEMON=0`` turn it off."""
    if flag is False:
        return False
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        return False
    return os.environ.get(ENABLE_ENV, "").strip().lower() not in ("0", "false", "no", "off")


def idle_timeout() -> float:
    """Seconds the daemon waits without a lease before it exits (CONV_PARITY_DAEMON_IDLE)."""
    text = os.environ.get(IDLE_ENV)
    if not text:
        return DEFAULT_IDLE
    try:
        value = float(text)
    except ValueError:
        raise HarnessError(f"{IDLE_ENV} must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise HarnessError(f"{IDLE_ENV} must be positive, got {text!r}")
    return value


def directory() -> Path:
    """The user-only (0700) folder of the sockets: CONV_PARITY_DAEMON_DIR, else
    $XDG_RUNTIME_DIR/conv-parity, else ~/.cache/conv-parity/daemon."""
    if os.environ.get(DIR_ENV):
        path = Path(os.environ[DIR_ENV])
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "conv-parity"
    else:
        path = Path.home() / ".cache" / "conv-parity" / "daemon"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid != os.getuid():
        raise HarnessError(f"daemon folder {path} belongs to another user")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def _source_hash() -> str:
    """Hash of conv-parity's own source (an editable install changes without a version bump)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".toml") and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(root)).encode())
            with contextlib.suppress(OSError):
                h.update(path.read_bytes())
    return h.hexdigest()


def key_material(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """What a daemon is keyed by (shown by ``conv-parity daemon status``)."""
    env = os.environ if environ is None else environ
    versions: dict[str, str | None] = {}
    for dist in DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": sys.executable,
        "python_version": sys.version,
        "versions": versions,
        "source": _source_hash(),
        "env": {k: v for k, v in sorted(env.items())
                if k.startswith(ENV_PREFIXES) and k not in _NOT_KEYED},
    }


def key(material: dict[str, Any] | None = None) -> str:
    """A short hash of :func:`key_material`: the daemon's name."""
    blob = json.dumps(material or key_material(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def socket_path(daemon_key: str) -> Path:
    path = directory() / f"daemon-{daemon_key}.sock"
    if len(os.fsencode(path)) > 100:  # sun_path holds 104-108 bytes, depending on the OS
        raise HarnessError(f"daemon socket path too long for a Unix socket: {path} (set "
                           f"{DIR_ENV} to a shorter folder)")
    return path


# --------------------------------------------------------------------------- talking to it


def _connect(path: Path, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


def _read_reply(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 4)
    chunks = [data]
    while data:
        data = sock.recv(1 << 16)
        chunks.append(data)
    raw = b"".join(chunks)
    if not raw:
        for fd in fds:
            os.close(fd)
        raise ConnectionError("the daemon closed the connection without an answer")
    return json.loads(raw), list(fds)


def call(path: Path, request: dict[str, Any], fds: tuple[int, ...] = (),
         timeout: float = 10.0) -> tuple[dict[str, Any], list[int]]:
    """One request, one reply (and the fds that came with it); a connection each."""
    with _connect(path, timeout) as sock:
        socket.send_fds(sock, [json.dumps(request).encode()], list(fds))
        sock.shutdown(socket.SHUT_WR)
        reply, got = _read_reply(sock)
    if reply.get("error"):
        for fd in got:
            os.close(fd)
        raise HarnessError(f"conv-parity daemon: {reply['error']}")
    return reply, got


def _alive(path: Path) -> bool:
    try:
        call(path, {"op": "ping"}, timeout=2.0)
        return True
    except (OSError, HarnessError, ValueError):
        return False


def ensure_running(daemon_key: str | None = None) -> Path:
    """The socket of this environment's daemon, starting it if none answers (one starter at a
    time: a lock file)."""
    daemon_key = daemon_key or key()
    path = socket_path(daemon_key)
    if _alive(path):
        return path
    lock_path = path.with_suffix(".lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _alive(path):
            return path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        log_path = path.with_suffix(".log")
        with open(log_path, "ab") as log:
            starter = subprocess.Popen(
                [sys.executable, "-m", "conv_parity.workers.service", str(path),
                 f"{idle_timeout():g}", daemon_key],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, cwd=str(path.parent),
                env={**os.environ, "PYTHONPATH": _pythonpath()})
        starter.wait(timeout=_START_TIMEOUT)  # it forks the daemon and exits (no zombie)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if _alive(path):
                return path
            time.sleep(0.05)
    raise HarnessError(f"the conv-parity daemon did not start within {_START_TIMEOUT:g} s; "
                       f"see {log_path}")


def _pythonpath() -> str:
    pkg_parent = str(Path(__file__).resolve().parents[2])
    existing = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join([pkg_parent, *([existing] if existing else [])])


@dataclass
class Lease:
    """One borrowed worker: the parent end of its channel and what the daemon knows of it."""

    path: Path  # the daemon's socket
    fd: int
    pid: int
    log_path: Path
    log_offset: int
    ready: dict[str, Any] | None  # its ready frame, when an earlier client read it already
    started: float  # time.monotonic() equivalent of its start, in this process's clock


def borrow(path: Path, backend: str, threads: int | None) -> Lease:
    """A worker of ``backend`` from the daemon at ``path`` (a warm one if idle)."""
    reply, fds = call(path, {"op": "lend", "backend": backend, "threads": threads},
                      timeout=30.0)
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise HarnessError(f"conv-parity daemon lent {len(fds)} fds for {backend}")
    return Lease(path, fds[0], int(reply["pid"]), Path(reply["log_path"]),
                 int(reply["log_offset"]), reply.get("ready"),
                 time.monotonic() - float(reply.get("age", 0.0)))


def give_back(lease: Lease, fd: int, ready: dict[str, Any] | None) -> bool:
    """Hand the channel back (the worker must be between requests); False if the daemon is gone.
    The caller closes its own ``fd`` afterwards."""
    try:
        call(lease.path, {"op": "return", "pid": lease.pid, "ready": ready}, (fd,))
        return True
    except (OSError, HarnessError, ValueError):
        return False


class RemoteProc:
    """What :class:`.process._Worker` needs of a ``Popen`` for a worker the daemon started:
    poll and wait ask the daemon (it reaps its children), kill signals the worker's group."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.pid = lease.pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            reply, _ = call(self.lease.path, {"op": "poll", "pid": self.pid}, timeout=5.0)
            code = reply.get("returncode")
        except (OSError, HarnessError, ValueError):  # the daemon is gone, so is its worker
            try:
                os.kill(self.pid, 0)
                code = None
            except ProcessLookupError:
                code = -signal.SIGKILL
            except PermissionError:
                code = None
        self.returncode = None if code is None else int(code)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            code = self.poll()
            if code is not None:
                return code
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
            time.sleep(0.02)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)


def running() -> list[tuple[Path, dict[str, Any] | None]]:
    """Every daemon socket in :func:`directory` and its status (None: not answering)."""
    found = []
    for path in sorted(directory().glob("daemon-*.sock")):
        try:
            status, _ = call(path, {"op": "status"}, timeout=3.0)
        except (OSError, HarnessError, ValueError):
            status = None
        found.append((path, status))
    return found


def stop(path: Path) -> bool:
    """Ask the daemon at ``path`` to stop its workers and exit; False if none answered."""
    try:
        call(path, {"op": "stop"}, timeout=10.0)
    except (OSError, HarnessError, ValueError):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a stale socket of a daemon that died
        return False
    return True
