"""Backend workers: one persistent subprocess per Keras backend, driven by :class:`WorkerPool`.

Import-light on purpose (no Keras here): the parent never imports a backend, and the worker
process (``python -m conv_parity.workers.child``) imports this package before it imports Keras.
"""

from __future__ import annotations

from conv_parity.results import BackendInfo, BackendResult
from conv_parity.workers.pool import WorkerPool, make_items
from conv_parity.workers.protocol import ChannelClosed, FrameTimeout, ProtocolError, WorkItem

__all__ = [
    "BackendInfo",
    "BackendResult",
    "ChannelClosed",
    "FrameTimeout",
    "ProtocolError",
    "WorkItem",
    "WorkerPool",
    "make_items",
]
