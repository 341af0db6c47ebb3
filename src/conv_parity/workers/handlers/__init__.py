"""One module per request a worker answers; :data:`HANDLERS` maps the header's ``type`` to it.

A new kind of request is one module here and one entry in the table (its typed request and
reply records live in :mod:`conv_parity.requests`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conv_parity.workers.context import WorkerContext
from conv_parity.workers.handlers.cases import Retire, serve_batch
from conv_parity.workers.handlers.mixed import serve_mixed_dtypes
from conv_parity.workers.handlers.model import serve_model
from conv_parity.workers.protocol import Channel

Handler = Callable[[WorkerContext, Channel, dict[str, Any]], None]

#: Message type -> its handler; "shutdown" ends the worker's loop.
HANDLERS: dict[str, Handler] = {
    "batch": serve_batch,
    "model": serve_model,
    "mixed_dtypes": serve_mixed_dtypes,
}

__all__ = ["HANDLERS", "Handler", "Retire"]
