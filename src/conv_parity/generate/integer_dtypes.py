"""The integer-dtype cases a profile draws (issue 23, item 3; docs/integer-dtypes.md).

Every op kind runs in every integer dtype on one plain configuration (the call-form module's
:data:`~conv_parity.generate.call_forms.PLAIN_OPS`: no known bug of the float path touches
them, so an integer discrepancy is not hidden behind one). Beside those, a seeded share of the
whole grid's eager float32 cases is remade in each integer dtype, wherever an integer case can
be made (:func:`conv_parity.case.ConvCase.make` refuses a gradient, a non-integer activation
or a kernel too large for an exact int8 result) and Keras does not refuse it (a layer under
``int8``, :func:`conv_parity.integers.keras_refusal`: not drawn). Beyond the smoke profile, a few plain layers
(:data:`PLAIN_LAYERS`) run in every integer dtype a layer takes. The smoke profile (the
repo's own pytest) gets a handful: the plain ``ops.conv`` and ``ops.average_pool`` in each
integer dtype. The choice is made on the whole grid; a selection filters it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from conv_parity import integers
from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.generate.call_forms import PLAIN_OPS

#: Profile -> every how many-th eager float32 case of the grid is remade in each integer
#: dtype (0: none).
SHARE_EVERY = {"smoke": 0, "default": 16, "full": 4}
#: Profile -> the plain ops run in every integer dtype (None: every op kind).
PLAIN = {"smoke": ("ops.conv", "ops.average_pool"), "default": None, "full": None}
#: Plain layers run in every integer dtype Keras takes for a layer, beyond the smoke profile:
#: a layer's own paths (a global average pool's eager ``ops.mean``; a layer's weights).
PLAIN_LAYERS: dict[str, tuple[dict[str, object], tuple[int, ...]]] = {
    "Conv2D": ({"filters": 3, "kernel_size": 2}, (2, 5, 4, 3)),
    "AveragePooling2D": ({"pool_size": 2}, (2, 6, 5, 3)),
    "GlobalAveragePooling2D": ({}, (2, 5, 4, 3)),
}


def remade(case: ConvCase, dtype: str) -> ConvCase | None:
    """``case`` in the integer ``dtype``, or None where no integer case can be made or Keras
    refuses one (its seed derived from the new id, as every case's is)."""
    if integers.keras_refusal(not case.kind.is_op, dtype):
        return None
    try:
        return ConvCase.make(case.layer, case.kwargs, case.input_shape, dtype, mode=case.mode)
    except UsageError:
        return None


def integer_cases(whole: Iterable[ConvCase], profile: str) -> list[ConvCase]:
    """The integer cases of a profile: the plain ops in every integer dtype, then a seeded share
    of the whole grid's eager float32 cases in each."""
    out: list[ConvCase] = []
    chosen = PLAIN.get(profile, ())
    for op, (kw, shape) in PLAIN_OPS.items():
        if chosen is None or op in chosen:
            base = ConvCase.make(op, kw, shape)
            out += [c for c in (remade(base, d) for d in integers.INT_DTYPES) if c is not None]
    every = SHARE_EVERY.get(profile, 0)
    if not every:
        return out
    for layer, (kw, shape) in PLAIN_LAYERS.items():
        base = ConvCase.make(layer, kw, shape)
        out += [c for c in (remade(base, d) for d in integers.INT_DTYPES) if c is not None]
    for case in whole:
        if (case.mode, case.policy_name, case.values, case.call_form) != (
                "eager", "float32", "normal", "tensor"):
            continue
        for dtype in integers.INT_DTYPES:
            if zlib.crc32(f"{case.id}|dtype:{dtype}".encode()) % every == 0:
                made = remade(case, dtype)
                if made is not None:
                    out.append(made)
    return out


__all__ = ["PLAIN", "PLAIN_LAYERS", "SHARE_EVERY", "integer_cases", "remade"]
