"""The ``mixed_dtypes`` request: the input / kernel dtype probes
(:func:`conv_parity.mixed_dtypes.run_probes`), answered as a :class:`MixedDtypesReply`."""

from __future__ import annotations

import time
from typing import Any

from conv_parity.requests import MixedDtypesReply, MixedDtypesRequest
from conv_parity.workers.context import WorkerContext, error_record
from conv_parity.workers.protocol import Channel


def serve_mixed_dtypes(ctx: WorkerContext, channel: Channel, header: dict[str, Any]) -> None:
    """Each probe's result dtype or error, in order; the request's own failure otherwise."""
    from conv_parity.mixed_dtypes import run_probes

    request = MixedDtypesRequest.from_header(header)
    channel.recv()  # the (empty) arrays frame every request has
    t0 = time.perf_counter()
    try:
        reply = MixedDtypesReply("ok", answers=run_probes(ctx.keras, list(request.probes)))
    except Exception as exc:
        reply = MixedDtypesReply("error", error=error_record(exc, "call"))
    reply.seconds = time.perf_counter() - t0
    ctx.served += 1
    channel.send(reply.to_header())


__all__ = ["serve_mixed_dtypes"]
