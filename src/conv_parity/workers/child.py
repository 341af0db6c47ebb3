"""The worker process: ``python -m conv_parity.workers.child <target>``.

Keras fixes its backend at import, so each target (a backend or a variant of one, see
:mod:`conv_parity.backends`) runs in its own long-lived process. This module applies the
target's settings, imports Keras once, reports the backend's facts, then
serves batches of cases over the channel whose file descriptor is in CONV_PARITY_CHANNEL_FD.
Every exception of the code under test becomes data (type, message, phase); only a real crash
or hang of the backend ends the process, and the pool recovers from those.

What a case computes is its mode's worker half (:mod:`conv_parity.modes`); the forward pass is
also :func:`run_case`, so that the suite's self-tests can wrap it (``conv_parity.mutations``)
and the benchmark can call exactly what the worker calls.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import platform
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from conv_parity import facts, modes, policies
from conv_parity.backends import MUTATION_GATE, BackendSpec, get
from conv_parity.modes import Arrays
from conv_parity.modes._keras import make_layer, op_function, op_kwargs, tagged
from conv_parity.workers import hooks
from conv_parity.workers.protocol import Channel, ChannelClosed, ProtocolError

if TYPE_CHECKING:
    from conv_parity.case import ConvCase

_PR_SET_PDEATHSIG = 1
_keras: Any = None  # the keras module, once imported
_mutation: str | None = None  # the injected bug of a test-only mutant target (gated)
_spec: BackendSpec | None = None  # this worker's target


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


def _error(exc: BaseException, phase: str) -> dict[str, Any]:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "type": type(exc).__name__,
        "message": strip_ansi(str(exc))[:4000],
        "phase": phase,
        "traceback": strip_ansi("".join(tb[-6:]))[-4000:],
    }


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """Text without terminal colour codes (Keras colours some messages): reports are files.
    ``strip_ansi("\x1b[1mbold\x1b[0m") == "bold"``."""
    return _ANSI.sub("", text)


def run_case(case: ConvCase, x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
    """The forward output ``y`` of a case, computed as its mode does (the mutants wrap this;
    the benchmark's bare loop calls it). An exception leaves with ``conv_parity_phase``."""
    return modes.get(case.mode).run(_keras, case, Arrays(x, weights))["y"]


def symbolic_shapes(case: ConvCase) -> tuple[tuple | None, tuple | None, dict | None]:
    """(compute_output_shape, functional KerasTensor shape, error) for the case.

    The KerasTensor gets the concrete input shape (batch included) so its result is comparable
    with the eager shape. For op cases both shapes come from the op on KerasTensors. A layer the
    mode just built for this case is reused (building costs ~40 ms per new shape on JAX).
    """
    keras = _keras
    input_shape = tuple(case.input_shape)
    try:
        if case.kind.is_op:
            xs = keras.KerasTensor(input_shape, dtype=case.dtype)
            ws = [keras.KerasTensor(s, dtype=case.dtype) for s in case.weight_shapes()]
            shape = _plain(op_function(keras, case)(xs, *ws, **op_kwargs(case)).shape)
            return shape, shape, None
        mode = modes.get(case.mode)
        layer = mode.layer_for(keras, case) if hasattr(mode, "layer_for") \
            else make_layer(keras, case)
        computed = _plain(layer.compute_output_shape(input_shape))
    except Exception as exc:
        return None, None, _error(exc, "symbolic")
    try:
        functional = _plain(layer(keras.KerasTensor(input_shape, dtype=case.input_dtype)).shape)
    except Exception as exc:
        return computed, None, _error(exc, "symbolic")
    return computed, functional, None


def _plain(shape: Any) -> tuple | None:
    if shape is None:
        return None
    return tuple(None if d is None else int(d) for d in shape)


def _compute(item_header: dict[str, Any], case: ConvCase, arrays: Arrays,
             channel: Channel) -> dict[str, np.ndarray]:
    """The named outputs of one case: its mode's worker half (a gated mutant wraps it; the
    fault hooks act first)."""
    fault = item_header.get("fault")
    if fault and hooks.enabled():
        hooks.inject(fault, channel)
    if _mutation is not None and os.environ.get(MUTATION_GATE) == "1":
        try:
            import conv_parity.mutations as mutations
        except Exception as exc:
            raise tagged(exc, "call") from None
        return mutations.run_outputs(_mutation, case, arrays, _keras, _run_mode)
    return modes.get(case.mode).run(_keras, case, arrays)


def _run_mode(case: ConvCase, arrays: Arrays) -> dict[str, np.ndarray]:
    """Every named output of a case, computed as its mode does (what a mutant wraps)."""
    return modes.get(case.mode).run(_keras, case, arrays)


def _arrays(item_header: dict[str, Any], arrays: list[np.ndarray]) -> Arrays:
    """The wire's arrays as the mode sees them: input, weights, then the named extras."""
    extras = list(item_header.get("extras") or ())
    n_weights = len(arrays) - 1 - len(extras)
    return Arrays(arrays[0], list(arrays[1:1 + n_weights]),
                  dict(zip(extras, arrays[1 + n_weights:])))


def process(item_header: dict[str, Any], arrays: list[np.ndarray], channel: Channel,
            compute: Callable[..., dict[str, np.ndarray]] = _compute,
            ) -> tuple[dict[str, Any], list]:
    """One case -> (result header, [outputs in order]); the header names them. Never raises
    for errors of the code under test."""
    from conv_parity.case import ConvCase

    t0 = time.perf_counter()
    out: dict[str, Any] = {"type": "result", "seq": item_header.get("seq")}
    try:
        case = ConvCase.from_json(item_header["case"], trusted=True)
    except Exception as exc:
        out.update(status="error", error=_error(exc, "construct"))
        return out, []
    outputs: dict[str, np.ndarray] = {}
    try:
        outputs = {k: np.asarray(v) for k, v in
                   compute(item_header, case, _arrays(item_header, arrays), channel).items()}
    except Exception as exc:
        out.update(status="error", error=_error(exc, getattr(exc, "conv_parity_phase", "call")))
    failed_phase = out.get("error", {}).get("phase")
    if failed_phase not in ("construct", "build"):
        sym, fun, sym_err = symbolic_shapes(case)
        out.update(symbolic_shape=sym, functional_shape=fun, symbolic_error=sym_err)
    if outputs:
        first = next(iter(outputs.values()))
        # Each output's own dtype, before bfloat16 is widened for the .npy wire.
        out.update(status="ok", shape=list(first.shape), dtype=str(first.dtype),
                   outputs=list(outputs),
                   dtypes={name: str(a.dtype) for name, a in outputs.items()})
        held = getattr(modes.get(case.mode), "variable_dtypes", None)
        if held is not None:
            out["variable_dtypes"] = held(case)
    out["seconds"] = time.perf_counter() - t0
    return out, [policies.for_numpy(a) for a in outputs.values()]


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


class _Retire(Exception):
    """The worker served enough (cases or memory): the pool replaces it."""


def _serve_batch(channel: Channel, header: dict[str, Any], served: list[int]) -> None:
    """Read a whole batch, then answer each case in order (limits travel with each batch, so
    changing them on a live pool takes effect)."""
    max_cases = int(header.get("max_cases") or 0)
    max_rss = float(header.get("max_rss_mb") or 0)
    batch = [channel.recv() for _ in range(int(header["n"]))]
    for item_header, arrays in batch:
        result, out = process(item_header, arrays, channel)
        served[0] += 1
        rss = _rss_mb()
        result["rss_mb"] = round(rss, 1)
        channel.send(result, out)
        reason = None
        if max_cases and served[0] >= max_cases:
            reason = f"served {served[0]} cases (max_cases_per_worker={max_cases})"
        elif max_rss and rss > max_rss:
            reason = f"RSS {rss:.0f} MB > max_rss_mb={max_rss:.0f}"
        if reason:
            channel.send({"type": "retire", "reason": reason})
            raise _Retire(reason)


def _serve_model(channel: Channel, header: dict[str, Any], served: list[int]) -> None:
    """Run a whole saved model on the inputs in the next frame (one array per name in
    ``header["inputs"]``, default one; the Keras 2 target's weights follow); answer with its
    flat named outputs and the outputs of the named layers
    (:mod:`conv_parity.workers.whole_model`). A forward pass that raised names the leaf
    layer it raised in (``error["layer"]``)."""
    from conv_parity.workers.whole_model import run_saved_model

    _, arrays = channel.recv()
    t0 = time.perf_counter()
    reply: dict[str, Any] = {"type": "model_result"}
    outputs: dict[str, np.ndarray] = {}
    n_inputs = len(header.get("inputs") or [None])
    try:
        # Keras 3 targets load the model saved here; keras2 loads the user's own file.
        path = header["files"][_spec.model_file if _spec is not None else "keras"]
        own_file = _spec is not None and _spec.model_file == "source"
        # A Keras 2 worker cannot read the Keras 3 .weights.h5: no weights round trip there.
        ran = run_saved_model(
            _keras, path, arrays[:n_inputs], list(header.get("layers") or ()),
            weights=arrays[n_inputs:] if own_file else None,
            weights_file=None if own_file else header["files"].get("weights"),
            application=None if own_file else header.get("application"),
            fetch_many=_spec.fetch_many if _spec is not None else None,
            imports=[] if own_file else list(header.get("imports") or ()),
            cwd=header.get("cwd"))
        outputs = ran.outputs
        reply.update(status="ok", weights_error=ran.weights_error, jitter=ran.jitter)
    except Exception as exc:
        reply.update(status="error", error=_error(exc, getattr(exc, "conv_parity_phase",
                                                               "call")))
        if getattr(exc, "conv_parity_layer", None):
            reply["error"]["layer"] = exc.conv_parity_layer  # type: ignore[attr-defined]
    from conv_parity.workers.protocol import MAX_ARRAYS

    values = list(outputs.values())
    parts = [values[i:i + MAX_ARRAYS] for i in range(0, len(values), MAX_ARRAYS)]
    reply.update(outputs=list(outputs), parts=len(parts),
                 seconds=time.perf_counter() - t0)
    served[0] += 1
    channel.send(reply)  # a model has more intermediates than one frame holds arrays
    for part in parts:
        channel.send({"type": "arrays"}, part)


def _serve_mixed_dtypes(channel: Channel, header: dict[str, Any], served: list[int]) -> None:
    """Run the mixed input / kernel dtype probes in the header
    (:func:`conv_parity.mixed_dtypes.run_probes`); answer with each one's dtype or error."""
    from conv_parity.mixed_dtypes import run_probes

    channel.recv()  # the (empty) arrays frame every request has
    t0 = time.perf_counter()
    try:
        reply = {"type": "mixed_dtypes_result", "status": "ok",
                 "answers": run_probes(_keras, header.get("probes") or [])}
    except Exception as exc:
        reply = {"type": "mixed_dtypes_result", "status": "error", "error": _error(exc, "call")}
    reply["seconds"] = time.perf_counter() - t0
    served[0] += 1
    channel.send(reply)


#: Message type -> its handler; "shutdown" ends the loop. A new kind of request (prepared
#: arrays of a model, ...) is one entry here.
HANDLERS: dict[str, Callable[[Channel, dict[str, Any], list[int]], None]] = {
    "batch": _serve_batch,
    "model": _serve_model,
    "mixed_dtypes": _serve_mixed_dtypes,
}


def serve(channel: Channel, backend: str) -> None:
    """Answer requests until the channel closes, a shutdown frame arrives or it is time to
    retire."""
    served = [0]
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
            handler(channel, header, served)
        except _Retire:
            return


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    global _keras, _mutation, _spec
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
        import importlib

        keras = importlib.import_module(spec.keras_module)
        if keras.backend.backend() != backend:
            raise ImportError(
                f"keras loaded backend {keras.backend.backend()!r}, not {backend!r} "
                "(is KERAS_BACKEND overridden by keras.json?)"
            )
        if spec.after_import is not None:
            spec.after_import()
        _keras = keras
        _mutation = spec.mutation
        _spec = spec
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
