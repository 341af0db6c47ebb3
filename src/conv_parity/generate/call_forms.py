"""The call forms a profile draws (issue 23): NumPy arrays and list arguments beside tensors
and tuples (:mod:`conv_parity.modes.call_form`).

Ops are where the forms take different paths (a NumPy argument reaches the backend op itself;
a list ``strides`` reaches code that concatenates tuples), so every op kind gets every form: its
first valid float32 eager case that no known bug of the tensor form touches, remade with lists, and with NumPy arrays of every dtype in
:data:`PLAIN_FORMS` (the dtype a NumPy array carries is what TensorFlow's fast path loses:
``ops.max_pool`` of a float64 array returns float32 once the op has run before).
Beside those, a seeded share of the whole grid (layers convert their arguments in the
constructor, so a share is enough for them). The choice is
made on the profile's whole grid and a selection (layers, modes, policies) filters it, so a
selected run's call-form cases are a subset of the full run's.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from conv_parity.case import ConvCase

#: The forms beside the default ``tensor``.
FORMS = ("numpy", "list", "numpy-list")

#: Profile -> every how many-th eager case of the grid also runs in each form (0: none).
SHARE_EVERY = {"smoke": 0, "default": 24, "full": 6}

#: Profile -> (the forms every plain op runs in, the dtypes of the NumPy arrays it is called
#: with, the ops called so). The smoke profile stays small and float32: both forms at once
#: (the dtype probes, which show tf-max-pool-numpy-input-dtype, are in default and full).
PLAIN_FORMS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...] | None]] = {
    "smoke": (("numpy-list",), (), ()),
    "default": (("list", "numpy-list"), ("float32", "float16", "bfloat16", "float64"), None),
    "full": (("list", "numpy-list"), ("float32", "float16", "bfloat16", "float64"), None),
}


#: One plain configuration per op kind (2D, channels_last, a batch, explicit equal strides:
#: no known bug of the tensor form touches it, so a call form's own discrepancy is not hidden
#: behind one): op -> (kwargs, input shape).
PLAIN_OPS: dict[str, tuple[dict[str, object], tuple[int, ...]]] = {
    "ops.conv": ({"kernel_size": 3, "filters": 4, "strides": 1, "dilation_rate": 2},
                 (2, 9, 8, 3)),
    "ops.conv_transpose": ({"kernel_size": 3, "filters": 4, "strides": 2}, (2, 5, 4, 3)),
    "ops.depthwise_conv": ({"kernel_size": 3, "depth_multiplier": 2, "strides": 2},
                           (2, 9, 8, 3)),
    "ops.separable_conv": ({"kernel_size": 3, "depth_multiplier": 2, "filters": 4,
                            "strides": 1, "padding": "same"}, (2, 7, 6, 3)),
    "ops.max_pool": ({"pool_size": 2, "strides": 2}, (2, 7, 6, 3)),
    "ops.average_pool": ({"pool_size": 3, "strides": 1, "padding": "same"}, (2, 7, 6, 3)),
}


def remade(case: ConvCase, form: str, dtype: str | None = None) -> ConvCase:
    """``case`` called in ``form`` (and ``dtype``; its seed derived from the new id, as every
    case's is)."""
    return ConvCase.make(case.layer, case.kwargs, case.input_shape, dtype or case.policy_name,
                         mode=case.mode, values=case.values, call_form=form)


def call_form_cases(whole: Iterable[ConvCase], profile: str) -> list[ConvCase]:
    """The call-form cases of a profile: :data:`PLAIN_OPS` in its :data:`PLAIN_FORMS`, then a seeded share of the whole grid's eager
    cases (every policy) in each form."""
    out: list[ConvCase] = []
    forms, dtypes, numpy_ops = PLAIN_FORMS.get(profile, ((), (), ()))
    for op, (kw, shape) in PLAIN_OPS.items():
        base = ConvCase.make(op, kw, shape)
        out += [remade(base, form) for form in forms]
        if numpy_ops is None or op in numpy_ops:
            out += [remade(base, "numpy", dtype) for dtype in dtypes]
    every = SHARE_EVERY.get(profile, 0)
    if not every:
        return out
    for case in whole:
        if case.mode == "eager" and case.call_form == "tensor" and case.values == "normal":
            out += [remade(case, form) for form in FORMS
                    if zlib.crc32(f"{case.id}|call_form:{form}".encode()) % every == 0]
    return out
