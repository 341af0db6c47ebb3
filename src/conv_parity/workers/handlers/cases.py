"""The ``batch`` request: cases, each computed as its mode does, with its symbolic shapes.

What a case computes is its mode's worker half (:mod:`conv_parity.modes`); the forward pass is
also :func:`run_case`, so that the suite's self-tests can wrap it (``conv_parity.mutations``)
and the benchmark can call exactly what the worker calls.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from conv_parity import modes, policies
from conv_parity.backends import MUTATION_GATE
from conv_parity.modes import Arrays
from conv_parity.modes._keras import make_layer, op_function, op_kwargs, tagged
from conv_parity.workers import hooks
from conv_parity.workers.context import WorkerContext, error_record
from conv_parity.workers.protocol import Channel

if TYPE_CHECKING:
    from conv_parity.case import ConvCase


class Retire(Exception):
    """The worker served enough (cases or memory): the pool replaces it."""


def serve_batch(ctx: WorkerContext, channel: Channel, header: dict[str, Any]) -> None:
    """Read a whole batch, then answer each case in order (limits travel with each batch, so
    changing them on a live pool takes effect)."""
    max_cases = int(header.get("max_cases") or 0)
    max_rss = float(header.get("max_rss_mb") or 0)
    batch = [channel.recv() for _ in range(int(header["n"]))]
    for item_header, arrays in batch:
        result, out = process(ctx, item_header, arrays, channel)
        ctx.served += 1
        rss = ctx.rss_mb()
        result["rss_mb"] = round(rss, 1)
        channel.send(result, out)
        reason = None
        if max_cases and ctx.served >= max_cases:
            reason = f"served {ctx.served} cases (max_cases_per_worker={max_cases})"
        elif max_rss and rss > max_rss:
            reason = f"RSS {rss:.0f} MB > max_rss_mb={max_rss:.0f}"
        if reason:
            channel.send({"type": "retire", "reason": reason})
            raise Retire(reason)


def run_case(ctx: WorkerContext, case: ConvCase, x: np.ndarray,
             weights: list[np.ndarray]) -> np.ndarray:
    """The forward output ``y`` of a case, computed as its mode does (the mutants wrap this;
    the benchmark's bare loop calls it). An exception leaves with ``conv_parity_phase``."""
    return modes.get(case.mode).run(ctx.keras, case, Arrays(x, weights))["y"]


def symbolic_shapes(ctx: WorkerContext, case: ConvCase
                    ) -> tuple[tuple | None, tuple | None, dict | None]:
    """(compute_output_shape, functional KerasTensor shape, error) for the case.

    The KerasTensor gets the concrete input shape (batch included) so its result is comparable
    with the eager shape. For op cases both shapes come from the op on KerasTensors. A layer the
    mode just built for this case is reused (building costs ~40 ms per new shape on JAX).
    """
    keras = ctx.keras
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
        return None, None, error_record(exc, "symbolic")
    try:
        functional = _plain(layer(keras.KerasTensor(input_shape, dtype=case.input_dtype)).shape)
    except Exception as exc:
        return computed, None, error_record(exc, "symbolic")
    return computed, functional, None


def _plain(shape: Any) -> tuple | None:
    if shape is None:
        return None
    return tuple(None if d is None else int(d) for d in shape)


Compute = Callable[[WorkerContext, dict[str, Any], "ConvCase", Arrays, Channel],
                   dict[str, np.ndarray]]


def compute(ctx: WorkerContext, item_header: dict[str, Any], case: ConvCase, arrays: Arrays,
            channel: Channel) -> dict[str, np.ndarray]:
    """The named outputs of one case: its mode's worker half (a gated mutant wraps it; the
    fault hooks act first)."""
    fault = item_header.get("fault")
    if fault and hooks.enabled():
        hooks.inject(fault, channel)

    def run_mode(case: ConvCase, arrays: Arrays) -> dict[str, np.ndarray]:
        return modes.get(case.mode).run(ctx.keras, case, arrays)

    if ctx.mutation is not None and os.environ.get(MUTATION_GATE) == "1":
        try:
            import conv_parity.mutations as mutations
        except Exception as exc:
            raise tagged(exc, "call") from None
        return mutations.run_outputs(ctx.mutation, case, arrays, ctx.keras, run_mode)
    return run_mode(case, arrays)


def _arrays(item_header: dict[str, Any], arrays: list[np.ndarray]) -> Arrays:
    """The wire's arrays as the mode sees them: input, weights, then the named extras."""
    extras = list(item_header.get("extras") or ())
    n_weights = len(arrays) - 1 - len(extras)
    return Arrays(arrays[0], list(arrays[1:1 + n_weights]),
                  dict(zip(extras, arrays[1 + n_weights:])))


def process(ctx: WorkerContext, item_header: dict[str, Any], arrays: list[np.ndarray],
            channel: Channel, compute: Compute = compute) -> tuple[dict[str, Any], list]:
    """One case -> (result header, [outputs in order]); the header names them. Never raises
    for errors of the code under test."""
    from conv_parity.case import ConvCase

    t0 = time.perf_counter()
    out: dict[str, Any] = {"type": "result", "seq": item_header.get("seq")}
    try:
        case = ConvCase.from_json(item_header["case"], trusted=True)
    except Exception as exc:
        out.update(status="error", error=error_record(exc, "construct"))
        return out, []
    outputs: dict[str, np.ndarray] = {}
    try:
        outputs = {k: np.asarray(v) for k, v in
                   compute(ctx, item_header, case, _arrays(item_header, arrays),
                           channel).items()}
    except Exception as exc:
        out.update(status="error",
                   error=error_record(exc, getattr(exc, "conv_parity_phase", "call")))
    failed_phase = out.get("error", {}).get("phase")
    if failed_phase not in ("construct", "build"):
        sym, fun, sym_err = symbolic_shapes(ctx, case)
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


__all__ = ["Retire", "process", "run_case", "serve_batch", "symbolic_shapes"]
