"""The worker process: ``python -m conv_parity.workers.child <target>``.

Keras fixes its backend at import, so each target (a backend or a variant of one, see
:mod:`conv_parity.backends`) runs in its own long-lived process. This module applies the
target's settings, imports Keras once, reports the backend's facts, then
serves batches of cases over the channel whose file descriptor is in CONV_PARITY_CHANNEL_FD.
Every exception of the code under test becomes data (type, message, phase); only a real crash
or hang of the backend ends the process, and the pool recovers from those.

The compute path is one function, :func:`run_case`, so that the suite's self-tests can wrap it
(``conv_parity.mutations``) and the benchmark can call exactly what the worker calls.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import os
import platform
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from conv_parity import facts
from conv_parity.backends import MUTATION_GATE, BackendSpec, get
from conv_parity.workers import hooks
from conv_parity.workers.protocol import Channel, ChannelClosed, ProtocolError

_PR_SET_PDEATHSIG = 1
_keras: Any = None  # the keras module, once imported
_mutation: str | None = None  # the injected bug of a test-only mutant target (gated)


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


def backend_facts(spec: BackendSpec) -> dict[str, Any]:
    """Versions, device, floating-point settings and the platform facts of this worker."""
    import keras

    who = facts.IDENTITY[spec.keras_backend]()
    return {
        "keras_version": keras.__version__,
        "backend_version": who.backend_version,
        "versions": {"keras": keras.__version__, "numpy": np.__version__, **who.versions},
        "device": who.device,
        "fp_settings": {"floatx": keras.config.floatx(), **who.fp_settings},
        "facts": facts.collect(spec.keras_backend),
        "target": spec.to_json(),
    }


def _error(exc: BaseException, phase: str) -> dict[str, Any]:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "type": type(exc).__name__,
        "message": str(exc)[:4000],
        "phase": phase,
        "traceback": "".join(tb[-6:])[-4000:],
    }


def _tag(exc: BaseException, phase: str) -> BaseException:
    with contextlib.suppress(Exception):
        exc.conv_parity_phase = phase  # type: ignore[attr-defined]
    return exc


def _make_layer(case: Any) -> Any:
    """Construct (phase "construct") the layer of a layer case, zeros-initialised."""
    keras = _keras
    cls = getattr(keras.layers, case.layer)
    kwargs = dict(case.call_kwargs)
    for name in case.kind.initializer_kwargs:
        kwargs[name] = "zeros"  # no backend pays for random init; set_weights follows
    return cls(dtype=case.dtype, **kwargs)


# The layer built by the last run_case, reused by the symbolic phase of the same case so a
# layer is built once per case (building costs ~40 ms per new shape on JAX).
_last: tuple[Any, Any] | None = None


def run_case(case: Any, x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
    """The eager path: construct, build, set_weights, call; the output as NumPy.

    An exception leaves with attribute ``conv_parity_phase`` (construct / build / call).
    """
    global _last
    keras = _keras
    _last = None
    if case.kind.is_op:
        try:
            op = getattr(keras.ops, case.layer[len("ops.") :])
            xt = keras.ops.convert_to_tensor(x)
            wt = [keras.ops.convert_to_tensor(w) for w in weights]
            y = op(xt, *wt, **case.call_kwargs)
            return keras.ops.convert_to_numpy(y)
        except Exception as exc:
            raise _tag(exc, "call") from None
    try:
        layer = _make_layer(case)
    except Exception as exc:
        raise _tag(exc, "construct") from None
    try:
        layer.build(tuple(case.input_shape))
        layer.set_weights(weights)
    except Exception as exc:
        raise _tag(exc, "build") from None
    _last = (case, layer)
    try:
        y = layer(keras.ops.convert_to_tensor(x))
        return keras.ops.convert_to_numpy(y)
    except Exception as exc:
        raise _tag(exc, "call") from None


def symbolic_shapes(case: Any) -> tuple[tuple | None, tuple | None, dict | None]:
    """(compute_output_shape, functional KerasTensor shape, error) for the case.

    The KerasTensor gets the concrete input shape (batch included) so its result is comparable
    with the eager shape. For op cases both shapes come from the op on KerasTensors.
    """
    keras = _keras
    input_shape = tuple(case.input_shape)
    try:
        if case.kind.is_op:
            op = getattr(keras.ops, case.layer[len("ops.") :])
            xs = keras.KerasTensor(input_shape, dtype=case.dtype)
            ws = [keras.KerasTensor(s, dtype=case.dtype) for s in case.weight_shapes()]
            shape = _plain(op(xs, *ws, **case.call_kwargs).shape)
            return shape, shape, None
        if _last is not None and _last[0] is case:
            layer = _last[1]
        else:
            layer = _make_layer(case)
        computed = _plain(layer.compute_output_shape(input_shape))
    except Exception as exc:
        return None, None, _error(exc, "symbolic")
    try:
        functional = _plain(layer(keras.KerasTensor(input_shape, dtype=case.dtype)).shape)
    except Exception as exc:
        return computed, None, _error(exc, "symbolic")
    return computed, functional, None


def _plain(shape: Any) -> tuple | None:
    if shape is None:
        return None
    return tuple(None if d is None else int(d) for d in shape)


def _compute(item_header: dict[str, Any], case: Any, x: np.ndarray, weights: list[np.ndarray],
             channel: Channel) -> np.ndarray:
    fault = item_header.get("fault")
    if fault and hooks.enabled():
        hooks.inject(fault, channel)
    if _mutation is not None and os.environ.get(MUTATION_GATE) == "1":
        try:
            import conv_parity.mutations as mutations
        except Exception as exc:
            raise _tag(exc, "call") from None
        return mutations.apply(_mutation, case, x, weights, run_case)
    return run_case(case, x, weights)


def process(item_header: dict[str, Any], arrays: list[np.ndarray], channel: Channel,
            compute: Callable[..., np.ndarray] = _compute) -> tuple[dict[str, Any], list]:
    """One case -> (result header, [output]). Never raises for errors of the code under test."""
    from conv_parity.case import ConvCase

    t0 = time.perf_counter()
    out: dict[str, Any] = {"type": "result", "seq": item_header.get("seq")}
    try:
        case = ConvCase.from_json(item_header["case"], trusted=True)
    except Exception as exc:
        out.update(status="error", error=_error(exc, "construct"))
        return out, []
    x, weights = arrays[0], list(arrays[1:])
    output: np.ndarray | None = None
    try:
        output = np.asarray(compute(item_header, case, x, weights, channel))
    except Exception as exc:
        out.update(status="error", error=_error(exc, getattr(exc, "conv_parity_phase", "call")))
    failed_phase = out.get("error", {}).get("phase")
    if failed_phase not in ("construct", "build"):
        sym, fun, sym_err = symbolic_shapes(case)
        out.update(symbolic_shape=sym, functional_shape=fun, symbolic_error=sym_err)
    if output is not None:
        out.update(status="ok", shape=list(output.shape), dtype=str(output.dtype))
    out["seconds"] = time.perf_counter() - t0
    return out, [] if output is None else [output]


_statm_fd: int | None = None


def _rss_mb() -> float:
    """Resident set size now, in MiB: one ``pread`` of a kept-open /proc/self/statm per case
    (opening and reading the file each time took ~0.1 ms per case on this VM)."""
    global _statm_fd
    try:
        if _statm_fd is None:
            _statm_fd = os.open("/proc/self/statm", os.O_RDONLY)
        pages = int(os.pread(_statm_fd, 256, 0).split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except Exception:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def serve(channel: Channel, backend: str) -> None:
    """Answer batches until the channel closes, a shutdown frame arrives or it is time to retire."""
    done = 0
    while True:
        try:
            header, _ = channel.recv()
        except ChannelClosed:
            return
        kind = header["type"]
        if kind == "shutdown":
            return
        if kind != "batch":
            raise ProtocolError(f"worker got unexpected frame type {kind!r}")
        # Limits travel with each batch, so changing them on a live pool takes effect.
        max_cases = int(header.get("max_cases") or 0)
        max_rss = float(header.get("max_rss_mb") or 0)
        batch = [channel.recv() for _ in range(int(header["n"]))]
        for item_header, arrays in batch:
            result, out = process(item_header, arrays, channel)
            done += 1
            rss = _rss_mb()
            result["rss_mb"] = round(rss, 1)
            channel.send(result, out)
            reason = None
            if max_cases and done >= max_cases:
                reason = f"served {done} cases (max_cases_per_worker={max_cases})"
            elif max_rss and rss > max_rss:
                reason = f"RSS {rss:.0f} MB > max_rss_mb={max_rss:.0f}"
            if reason:
                channel.send({"type": "retire", "reason": reason})
                return


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    global _keras, _mutation
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
    try:
        spec = get(target)
        backend = spec.keras_backend
        os.environ.update(spec.environment)  # the pool set them already; a direct start too
        os.environ["KERAS_BACKEND"] = backend
        if hooks.enabled():
            hooks.hide_modules()
        _limit_threads(spec)
        import keras

        if keras.backend.backend() != backend:
            raise ImportError(
                f"keras loaded backend {keras.backend.backend()!r}, not {backend!r} "
                "(is KERAS_BACKEND overridden by keras.json?)"
            )
        if spec.after_import is not None:
            spec.after_import()
        _keras = keras
        _mutation = spec.mutation
        ready.update(backend_facts(spec))
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
        if ready["available"]:
            serve(channel, target)
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
