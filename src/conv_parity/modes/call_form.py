"""How a case calls its layer or op (:data:`conv_parity.vocabulary.CALL_FORMS`).

Users do not only pass backend tensors and tuples: the docstrings allow NumPy arrays for the
inputs and lists for ``kernel_size`` / ``pool_size`` / ``strides`` / ``dilation_rate`` /
``output_padding``, and each form takes its own path through a backend (TensorFlow's eager fast
path converts a NumPy argument by the op's cached attribute dtype, not the array's; the jax
pooling expands a list argument with ``(1,) + strides``). ``tensor`` is the suite's historical
form; ``numpy`` passes NumPy arrays straight to the call; ``list`` passes every tuple-valued
argument as a list; ``numpy-list`` both.

Pure: the worker half (:mod:`conv_parity.modes._keras`) and the repro script ask it alike.
NumPy arrays are used by the eager mode only (a gradient needs a tensor to differentiate, a
compiled model converts its input itself), which :meth:`ConvCase.make` enforces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from conv_parity.case import ConvCase


def uses_numpy(form: str) -> bool:
    """Whether the call receives NumPy arrays (``numpy``, ``numpy-list``)."""
    return form.startswith("numpy")


def uses_lists(form: str) -> bool:
    """Whether tuple-valued arguments travel as lists (``list``, ``numpy-list``)."""
    return form.endswith("list")


def kwargs(case: ConvCase) -> dict[str, Any]:
    """The keyword arguments the constructor or op receives in the case's form: its canonical
    :attr:`ConvCase.call_kwargs`, with tuples turned into lists for a list form."""
    return listed(case.call_kwargs, case.kind.tuple_params) if uses_lists(case.call_form) \
        else dict(case.call_kwargs)


def listed(kw: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``kw`` with the tuple values of ``keys`` as lists (``{"strides": (2, 1)}`` ->
    ``{"strides": [2, 1]}``); other values unchanged."""
    return {k: list(v) if k in keys and isinstance(v, tuple) else v for k, v in kw.items()}


def as_numpy(a: np.ndarray, dtype: str) -> np.ndarray:
    """``a`` as a NumPy array of ``dtype`` itself (bfloat16 as ``ml_dtypes.bfloat16``, which
    travels as float32 on the wire and which Keras accepts as bfloat16)."""
    if dtype == "bfloat16":
        import ml_dtypes

        return np.asarray(a).astype(ml_dtypes.bfloat16)
    return np.asarray(a).astype(dtype)
