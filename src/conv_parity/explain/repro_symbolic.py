"""A repro script's symbolic-shape check: the shape Keras infers on KerasTensors.

The suite's worker checks, after the eager call, that symbolic shape inference agrees with the
eager output (``workers/handlers/cases.py:symbolic_shapes``: the op on KerasTensors, or a layer's
``compute_output_shape`` and its functional call); ``fail-symbolic-shape`` is that check failing.
A script that stopped at the values printed OK for such a bug (keras-ops-conv-symbolic-groups:
the grouped ``ops.conv`` computes eagerly, and raises on KerasTensors), so this check runs in
the script too, with the same inputs as the worker's, once the values matched.
"""

from __future__ import annotations

import textwrap

from conv_parity.case import ConvCase


def check_source(case: ConvCase) -> str:
    """Lines of the script's main(), run once ``y`` matched: 1 when symbolic shape inference
    raises or disagrees with ``y`` (a None dimension agrees with anything)."""
    if case.kind.is_op:
        infer = textwrap.dedent(f"""\
            xs = keras.KerasTensor(INPUT_SHAPE, dtype=DTYPE)
            ws = [keras.KerasTensor(s, dtype=DTYPE) for s in WEIGHT_SHAPES]
            symbolic = {{"the op on KerasTensors": keras.ops.{case.layer[len("ops."):]}(
                xs, *ws, **KWARGS).shape}}""")
    else:
        infer = textwrap.dedent(f"""\
            symbolic_layer = keras.layers.{case.layer}(**KWARGS, dtype=POLICY)
            symbolic = {{"compute_output_shape":
                        symbolic_layer.compute_output_shape(INPUT_SHAPE)}}
            symbolic["the functional API"] = symbolic_layer(
                keras.KerasTensor(INPUT_SHAPE, dtype=INPUT_DTYPE)).shape""")
    return ("# Symbolic shape inference (KerasTensor inputs, as in a functional model) must\n"
            "# agree with the eager output.\n"
            "try:\n" + textwrap.indent(infer, "    ") + "\n" + _JUDGE)


_JUDGE = '''except Exception as exc:
    first = (str(exc).strip().splitlines() or [""])[0]
    print("DISCREPANCY: the eager call works, but symbolic shape inference raised "
          f"{type(exc).__name__}: {first}")
    return 1
for label, shape in symbolic.items():
    shape = tuple(None if d is None else int(d) for d in shape)
    print(f"symbolic shape ({label}):", shape)
    if len(shape) != y.ndim or any(s is not None and s != e for s, e in zip(shape, y.shape)):
        print(f"DISCREPANCY: {label} says {shape} but the eager output is {y.shape}")
        return 1
'''


__all__ = ["check_source"]
