"""The ``model`` request: a whole saved model run end to end in this worker
(:mod:`conv_parity.workers.whole_model`), answered as a :class:`ModelReply`."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from conv_parity.requests import ModelReply, ModelRequest
from conv_parity.workers.context import WorkerContext, error_record
from conv_parity.workers.protocol import MAX_ARRAYS, Channel


def serve_model(ctx: WorkerContext, channel: Channel, header: dict[str, Any]) -> None:
    """Run a whole saved model on the inputs in the next frame (one array per name in
    ``request.inputs``, default one; the Keras 2 target's weights follow); answer with its
    flat named outputs and the outputs of the named layers. A forward pass that raised names
    the leaf layer it raised in (``error["layer"]``)."""
    from conv_parity.workers.whole_model import SavedModelCall, run_saved_model

    request = ModelRequest.from_header(header)
    _, arrays = channel.recv()
    t0 = time.perf_counter()
    reply = ModelReply(status="ok")
    outputs: dict[str, np.ndarray] = {}
    n_inputs = len(request.inputs or (None,))
    spec = ctx.spec
    try:
        # Keras 3 targets load the model saved here; keras2 loads the user's own file.
        path = request.files[spec.model_file if spec is not None else "keras"]
        own_file = spec is not None and spec.model_file == "source"
        # A Keras 2 worker cannot read the Keras 3 .weights.h5: no weights round trip there.
        ran = run_saved_model(ctx.keras, SavedModelCall(
            str(path), arrays[:n_inputs], request.layers,
            weights=arrays[n_inputs:] if own_file else None,
            weights_file=None if own_file else request.files.get("weights"),
            application=None if own_file or request.application is None
            else dict(request.application),
            imports=() if own_file else request.imports, cwd=request.cwd),
            fetch_many=spec.fetch_many if spec is not None else None)
        outputs = ran.outputs
        reply.weights_error, reply.jitter = ran.weights_error, dict(ran.jitter or {})
    except Exception as exc:
        reply.status = "error"
        reply.error = error_record(exc, getattr(exc, "conv_parity_phase", "call"))
        if getattr(exc, "conv_parity_layer", None):
            reply.error["layer"] = exc.conv_parity_layer  # type: ignore[attr-defined]
    values = list(outputs.values())
    parts = [values[i:i + MAX_ARRAYS] for i in range(0, len(values), MAX_ARRAYS)]
    reply.outputs, reply.parts = list(outputs), len(parts)
    reply.seconds = time.perf_counter() - t0
    ctx.served += 1
    channel.send(reply.to_header())  # a model has more intermediates than one frame holds
    for part in parts:
        channel.send({"type": "arrays"}, part)


__all__ = ["serve_model"]
