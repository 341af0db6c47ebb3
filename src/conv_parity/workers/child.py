"""The worker process: ``python -m conv_parity.workers.child <target>``.

Keras fixes its backend at import, so each target (a backend or a variant of one, see
:mod:`conv_parity.backends`) runs in its own long-lived process. This module applies the
target's settings, imports Keras once, reports the backend's facts, then answers requests
over the channel whose file descriptor is in CONV_PARITY_CHANNEL_FD, each with its handler
(:mod:`conv_parity.workers.handlers`) and the process's :class:`WorkerContext`. Every
exception of the code under test becomes data (type, message, phase); only a real crash or
hang of the backend ends the process, and the pool recovers from those.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import platform
import sys
import threading
import time
import traceback
from typing import Any

import numpy as np

from conv_parity import facts
from conv_parity.backends import BackendSpec, get
from conv_parity.workers import hooks
from conv_parity.workers.context import WorkerContext
from conv_parity.workers.handlers import HANDLERS, Retire
from conv_parity.workers.protocol import Channel, ChannelClosed, ProtocolError

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Never outlive the pool's process: PDEATHSIG (Linux), then a ppid check for the race."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except Exception:  # pragma: no cover - non-glibc platforms
            pass
    expected = os.environ.get("CONV_PARITY_PARENT_PID")
    if expected and os.getppid() != int(expected):
        os._exit(0)  # the parent died before prctl took effect

    def watchdog(ppid: int) -> None:
        # Covers platforms without PDEATHSIG; cheap (one syscall per second).
        while True:
            time.sleep(1.0)
            if os.getppid() != ppid:
                os._exit(0)

    threading.Thread(target=watchdog, args=(os.getppid(),), daemon=True).start()


def _limit_threads(spec: BackendSpec) -> None:
    """Apply CONV_PARITY_THREADS to the libraries that do not read the OMP env vars."""
    n = os.environ.get("CONV_PARITY_THREADS")
    if not n or spec.limit_threads is None:
        return
    try:
        spec.limit_threads(int(n))
    except Exception as exc:  # a thread setting must never make a backend unavailable
        print(f"conv-parity worker: could not limit threads: {exc}", file=sys.stderr)


def backend_facts(spec: BackendSpec, keras: Any) -> dict[str, Any]:
    """Versions, device, floating-point settings and the platform facts of this worker
    (``keras``: the module it imported as Keras, tf_keras for ``keras2``)."""
    assert spec.identity is not None, f"{spec.name} has no identity function"
    who = spec.identity()
    return {
        "keras_version": keras.__version__,
        "backend_version": who.backend_version,
        "versions": {"keras": keras.__version__, "numpy": np.__version__, **who.versions},
        "device": who.device,
        "fp_settings": {"floatx": keras.backend.floatx(), **who.fp_settings},
        "facts": facts.collect(spec.probes),
        "target": spec.to_json(),
    }


def serve(channel: Channel, ctx: WorkerContext) -> None:
    """Answer requests until the channel closes, a shutdown frame arrives or it is time to
    retire."""
    while True:
        try:
            header, _ = channel.recv()
        except ChannelClosed:
            return
        kind = header["type"]
        if kind == "shutdown":
            return
        handler = HANDLERS.get(kind)
        if handler is None:
            raise ProtocolError(f"worker got unexpected frame type {kind!r}")
        try:
            handler(ctx, channel, header)
        except Retire:
            return


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    argv = sys.argv[1:] if argv is None else argv
    target = argv[0] if argv else os.environ.get("KERAS_BACKEND", "")
    _die_with_parent()
    faulthandler.enable()  # a segfault leaves a Python traceback in the log tail
    channel = Channel.from_fd(int(os.environ["CONV_PARITY_CHANNEL_FD"]))
    t0 = time.perf_counter()
    ready: dict[str, Any] = {
        "type": "ready",
        "backend": target,
        "pid": os.getpid(),
        "python": platform.python_version(),
    }
    ctx: WorkerContext | None = None
    try:
        spec = get(target)
        backend = spec.keras_backend
        os.environ.update(spec.environment)  # the pool set them already; a direct start too
        os.environ["KERAS_BACKEND"] = backend
        if hooks.enabled():
            hooks.hide_modules()
        _limit_threads(spec)
        import importlib

        keras = importlib.import_module(spec.keras_module)
        if keras.backend.backend() != backend:
            raise ImportError(
                f"keras loaded backend {keras.backend.backend()!r}, not {backend!r} "
                "(is KERAS_BACKEND overridden by keras.json?)"
            )
        if spec.after_import is not None:
            spec.after_import()
        ctx = WorkerContext(keras, spec, spec.mutation)
        ready.update(backend_facts(spec, keras))
        # Everything imported so far lives as long as the process: keep the cyclic GC from
        # re-scanning it after every few layers built (measured: ~4% of a fast case).
        gc.freeze()
        ready["available"] = True
    except BaseException as exc:  # ImportError, but also e.g. a RuntimeError from a CUDA probe
        ready.update(available=False, import_error=f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    ready["import_seconds"] = time.perf_counter() - t0
    try:
        channel.send(ready)
        if ready["available"] and ctx is not None:
            serve(channel, ctx)
    except (BrokenPipeError, ConnectionError, ChannelClosed):
        pass  # the parent went away: nothing left to do
    except ProtocolError as exc:
        print(f"conv-parity worker: {exc}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: backends' atexit hooks can be slow or crash; nothing to save.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
