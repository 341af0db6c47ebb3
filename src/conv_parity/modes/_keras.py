"""Worker-side helpers every mode shares: building a layer as the suite does, phase tags.

Imported only inside worker processes (and the benchmark's bare loop), after Keras.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from conv_parity.modes import call_form

if TYPE_CHECKING:
    from conv_parity.case import ConvCase


def tagged(exc: BaseException, phase: str) -> BaseException:
    """``exc`` marked with the phase it happened in (construct / build / call), for the
    worker's error record."""
    with contextlib.suppress(Exception):
        exc.conv_parity_phase = phase  # type: ignore[attr-defined]
    return exc


def make_layer(keras: Any, case: ConvCase) -> Any:
    """The layer of a layer case under the case's dtype policy (``dtype="mixed_bfloat16"``
    is how a user asks for one), zeros-initialised (no backend pays for random init;
    ``set_weights`` follows)."""
    cls = getattr(keras.layers, case.layer)
    kwargs = call_form.kwargs(case)  # lists where the case's call form says
    for name in case.kind.initializer_kwargs:
        kwargs[name] = "zeros"
    return cls(dtype=case.policy_name, **kwargs)


def op_function(keras: Any, case: ConvCase) -> Any:
    """The ``keras.ops`` function of an op case."""
    return getattr(keras.ops, case.layer[len("ops."):])


def op_kwargs(case: ConvCase) -> dict[str, Any]:
    """The keyword arguments an op case's function receives, in the case's call form."""
    return call_form.kwargs(case)


def call_input(keras: Any, case: ConvCase, a: Any, dtype: str) -> Any:
    """An array as the case's call form passes it: a NumPy array of ``dtype`` for a NumPy form
    (the backend converts it itself), else a tensor of ``dtype``."""
    if call_form.uses_numpy(case.call_form):
        return call_form.as_numpy(a, dtype)
    return to_tensor(keras, a, dtype)


def to_tensor(keras: Any, a: Any, dtype: str) -> Any:
    """``a`` as a tensor of ``dtype`` (arrays travel as float32 where NumPy lacks the dtype;
    their values are exact in it, see :mod:`conv_parity.policies`)."""
    return keras.ops.convert_to_tensor(a, dtype=dtype)


def to_numpy(keras: Any, tensor: Any) -> Any:
    """A tensor as NumPy in its own dtype (bfloat16 as ``ml_dtypes.bfloat16``, which every
    backend's ``convert_to_numpy`` gives), so the dtype check sees what the backend returned."""
    return keras.ops.convert_to_numpy(tensor)


def variable_dtypes(layer: Any) -> list[str]:
    """The dtypes a built layer stores its weights in (the policy's variable dtype)."""
    from keras import backend

    return [backend.standardize_dtype(v.dtype) for v in layer.weights]
