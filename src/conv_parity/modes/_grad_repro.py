"""The grad mode's part of a repro script: its arrays, the backend's VJP, and the check.

The script stays standalone: the backend differentiates as the grad mode does (GradientTape,
torch autograd, ``jax.vjp`` inside a ``StatelessScope``), and the expected gradient of
``<dy, f(x, w)>`` comes from central differences of the script's own float64 direct-loop
``reference`` (the forward it already holds), element by element: every element when the arrays
are small, otherwise a seeded sample plus the element conv-parity reported as worst
(``FOCUS``), within a time budget. The tolerance is the forward's rule applied to the
difference quotient of the magnitude (``|x|``, ``|w|``, ``|dy|``), plus the quotient's own
error. Everything here returns script source, indented for ``main()``'s body.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conv_parity.case import ConvCase


def prepare_source(case: ConvCase) -> str:
    """Lines that remake the grad mode's arrays: the ramp input of max pooling, then ``dy``."""
    from conv_parity import reference
    from conv_parity.errors import InvalidConfig

    lines = ["grad_rng = np.random.default_rng([SEED, 1])  # the grad mode's own stream"]
    if case.kind.is_max:  # adaptive max pooling too
        lines += [
            "size = int(np.prod(INPUT_SHAPE))  # max pooling: a shuffled ramp, every max unique",
            "x = rounded(((grad_rng.permutation(size) - size / 2) / max(size / 4, 1.0))"
            ".reshape(INPUT_SHAPE))",
        ]
    try:
        shape = reference.output_shape(case.layer, case.input_shape, **case.kwargs)
    except InvalidConfig:
        return "\n".join([*lines, "dy = None  # the spec rejects the case: no cotangent"])
    lines += [
        f"dy = grad_rng.standard_normal({tuple(shape)!r}).astype(exact(DTYPE))"
        '.astype(np.float32 if DTYPE == "bfloat16" else DTYPE)  # the cotangent, in y\'s dtype',
    ]
    return "\n".join(lines)


def _vjp_source(case: ConvCase, backend: str) -> str:
    """Lines that set ``found``: the backend's gradients of ``<dy, y>``, as NumPy arrays."""
    from conv_parity import backends as targets

    keras_backend = targets.keras_backend(backend)
    op = case.layer[len("ops."):] if case.kind.is_op else None
    x_dtype = "DTYPE" if op else "INPUT_DTYPE"
    call = f"keras.ops.{op}(xg, *params, **KWARGS)" if op else "layer(xg)"
    if keras_backend == "tensorflow":
        params = ("[keras.ops.convert_to_tensor(w, dtype=DTYPE) for w in weights]" if op
                  else "list(layer.trainable_variables)")
        return textwrap.dedent(f"""\
            import tensorflow as tf

            xg = keras.ops.convert_to_tensor(x, dtype={x_dtype})
            params = {params}
            with tf.GradientTape() as tape:
                tape.watch(xg)
                for p in {"params" if op else "()"}:  # a layer's variables are watched already
                    tape.watch(p)
                yg = {call}
            found = tape.gradient(yg, [xg, *params],
                                  output_gradients=tf.constant(dy, dtype=yg.dtype))""")
    if keras_backend == "torch":
        if op:
            params = ("[keras.ops.convert_to_tensor(w, dtype=DTYPE).detach().requires_grad_(True)"
                      " for w in weights]")
            leaves = "params"
        else:
            params, leaves = "None", "[v.value for v in layer.trainable_variables]"
        return textwrap.dedent(f"""\
            import torch

            xg = keras.ops.convert_to_tensor(x, dtype={x_dtype}).detach().requires_grad_(True)
            params = {params}
            yg = {call}
            found = torch.autograd.grad(
                yg, [xg, *{leaves}], allow_unused=True,
                grad_outputs=torch.as_tensor(dy, dtype=yg.dtype, device=yg.device))""")
    if keras_backend == "jax":
        if op:
            body = textwrap.dedent(f"""\
                def f(xg, params):
                    return {call}

                values = [keras.ops.convert_to_tensor(w, dtype=DTYPE) for w in weights]""")
        else:
            body = textwrap.dedent("""\
                variables = list(layer.trainable_variables)

                def f(xg, values):  # __call__ inside a StatelessScope: the policy's autocast too
                    with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                        return layer(xg)

                values = [v.value for v in variables]""")
        return body + "\n" + textwrap.dedent(f"""\
            import jax

            yg, pullback = jax.vjp(f, keras.ops.convert_to_tensor(x, dtype={x_dtype}), values)
            dxg, dvalues = pullback(jax.numpy.asarray(dy, dtype=yg.dtype))
            found = [dxg, *dvalues]""")
    return 'found = None  # this backend has no gradients'


_CHECK = '''\
# grad mode: the backend's gradients of <dy, y> against central differences of `reference`
import time

if dy is None or ARRAYS_FILE:
    print("gradients: not checked (no seeded cotangent for these arrays)")
    print("OK")
    return 0
found = [np.zeros(np.shape(a)) if g is None else np.asarray(keras.ops.convert_to_numpy(g), np.float64)
         for g, a in zip(found, [x, *weights])]
arrays64 = [np.asarray(a, np.float64) for a in [x, *weights]]
dy64 = np.asarray(dy, np.float64)


def derivative(which, index, absolute):
    """d<dy, reference>/d(array `which`)[index] by a central difference (absolute: the same
    on |x|, |w|, |dy| without the activation: the scale of the gradient's rounding)."""
    arrays = [np.abs(a) for a in arrays64] if absolute else [a.copy() for a in arrays64]
    h = 1e-4 * max(1.0, abs(float(arrays[which][index])))
    sums = []
    for step in (h, -h):
        arrays[which][index] += step
        out = reference(arrays[0], arrays[1:], activation=not absolute)
        sums.append(float(np.sum((np.abs(dy64) if absolute else dy64) * out)))
        arrays[which][index] -= step
    return (sums[0] - sums[1]) / (2 * h)


eps, tiny = float(info.eps), float(info.tiny)
start = time.perf_counter()
derivative(0, (0,) * x.ndim, False) if x.size else None
per_call = max(time.perf_counter() - start, 1e-4)
total = sum(a.size for a in arrays64)
budget = max(8, int(30.0 / (2 * per_call)))  # about half a minute of reference calls
sample = np.random.default_rng(0)
for which, (name, got) in enumerate(zip(GRAD_NAMES, found)):
    if got.shape != arrays64[which].shape:
        print(f"DISCREPANCY: {name} has shape {got.shape}, expected {arrays64[which].shape}")
        return 1
    if got.size == 0:
        continue
    if total <= budget:
        picks = range(got.size)
    else:
        picks = list(sample.choice(got.size, min(got.size, max(4, budget // len(GRAD_NAMES))),
                                   replace=False))
        if FOCUS and FOCUS[0] == name:
            picks.append(int(np.ravel_multi_index(tuple(FOCUS[1]), got.shape)))
    worst = 0.0
    for flat in picks:
        index = np.unravel_index(int(flat), got.shape)
        want = derivative(which, index, False)
        scale = derivative(which, index, True)
        scale = scale * slope(scale)
        tol = 100 * tiny + 64 * eps * scale + 2 * eps * abs(want) + 1e-8 * (scale + abs(want))
        err = abs(float(got[index]) - want)
        worst = max(worst, err)
        if not err <= tol:
            where = tuple(int(i) for i in index)
            print(f"DISCREPANCY: {name}{list(where)}: backend {float(got[index])!r}, "
                  f"reference {want!r} (|err| {err:.3g} > tolerance {tol:.3g})")
            return 1
    print(f"{name:<15} max abs error {worst:.3g} over {len(picks)} of {got.size} elements")
'''


def check_source(case: ConvCase, backend: str) -> str:
    """Lines (for ``main()``, after ``y`` matched) that compare the backend's gradients."""
    from conv_parity.reference._vjp import names

    vjp = textwrap.indent(_vjp_source(case, backend), "    ")
    return (f"GRAD_NAMES = {names(case.layer, case.kwargs)!r}\n"
            f"try:\n{vjp}\n"
            "except Exception as exc:  # the backend's backward pass refused the case\n"
            "    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), '')\n"
            "    print(f'DISCREPANCY: the backend raised {type(exc).__name__} while "
            "differentiating: {first}')\n"
            "    return 1\n" + _CHECK)
