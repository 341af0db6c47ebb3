"""Worker-side helpers every mode shares: building a layer as the suite does, phase tags.

Imported only inside worker processes (and the benchmark's bare loop), after Keras.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conv_parity.case import ConvCase


def tagged(exc: BaseException, phase: str) -> BaseException:
    """``exc`` marked with the phase it happened in (construct / build / call), for the
    worker's error record."""
    with contextlib.suppress(Exception):
        exc.conv_parity_phase = phase  # type: ignore[attr-defined]
    return exc


def make_layer(keras: Any, case: ConvCase) -> Any:
    """The layer of a layer case, zeros-initialised (no backend pays for random init;
    ``set_weights`` follows)."""
    cls = getattr(keras.layers, case.layer)
    kwargs = dict(case.call_kwargs)
    for name in case.kind.initializer_kwargs:
        kwargs[name] = "zeros"
    return cls(dtype=case.dtype, **kwargs)


def op_function(keras: Any, case: ConvCase) -> Any:
    """The ``keras.ops`` function of an op case."""
    return getattr(keras.ops, case.layer[len("ops."):])
