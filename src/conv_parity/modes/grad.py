"""The gradient mode: the forward output ``y`` and the vector-Jacobian product for a seeded
cotangent ``dy``: ``dx``, ``dkernel`` (the first kernel, depthwise ones too),
``dpointwise_kernel`` (separable) and ``dbias`` (layers with a bias). Pooling has ``dx`` only.

``y`` is kept as the first output so the shape, symbolic-shape and dtype checks of a forward
pass apply unchanged; a gradient-only bug shows up in the other names.

Each backend differentiates the way its users do: ``tf.GradientTape`` on TensorFlow, torch
autograd on torch, and ``jax.vjp`` through the layer's ``__call__`` on JAX, inside a
``StatelessScope`` that maps the trainable variables to the differentiated values. Not
``layer.stateless_call``: it skips the dtype policy's autocasting, so under a mixed policy it
would silently differentiate float32 code. NumPy and OpenVINO have no gradients: skipped.

The cotangent is made in the parent (``extras["dy"]``) so every backend gets the same bits.
For max pooling the seeded input is a shuffled ramp, every value distinct, so each window's
maximum is unique and the gradient's route does not depend on a tie-break.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from conv_parity import policies
from conv_parity.modes import _grad_repro as _repro
from conv_parity.modes._keras import op_function, op_kwargs, tagged, to_tensor
from conv_parity.modes._protocol import Arrays
from conv_parity.modes.eager import Eager

if TYPE_CHECKING:
    from conv_parity.backends import BackendSpec
    from conv_parity.case import ConvCase
    from conv_parity.expected import Expected

NO_GRADIENTS = "no gradients on this backend"


def _distinct_input(case: ConvCase, rng: np.random.Generator) -> np.ndarray:
    """A shuffled ramp in about [-2, 2): distinct values (for sizes the dtype can tell apart,
    2048 in float16), so every pooling window has one maximum."""
    size = int(np.prod(case.input_shape))
    ramp = (rng.permutation(size) - size / 2) / max(size / 4, 1.0)
    return case.as_input(ramp.reshape(case.input_shape))


class Grad(Eager):
    """``y`` plus the VJP of the layer (or op) at the seeded input and weights."""

    name = "grad"
    outputs = ("y", "dx", "dkernel", "dpointwise_kernel", "dbias")  # those a kind has

    def skip_reason(self, spec: BackendSpec) -> str | None:
        return None if spec.keras_backend in _VJP else NO_GRADIENTS

    def seeded(self, case: ConvCase) -> Arrays:
        """The case's input and weights (a distinct-valued input for max pooling) and a
        standard-normal cotangent shaped like the spec's output (none when the spec rejects
        the case: the backend should raise before it needs one)."""
        from conv_parity import reference
        from conv_parity.errors import InvalidConfig

        x, weights = case.arrays()
        rng = np.random.default_rng([case.seed, 1])  # a stream of its own: x, w stay the same
        if case.kind.is_max and case.values == "normal":
            x = _distinct_input(case, rng)  # other regimes keep theirs: ties are the point
        try:
            shape = reference.output_shape(case.layer, case.input_shape, **case.kwargs)
        except InvalidConfig:
            return Arrays(x, weights)
        dy = policies.round_to(rng.standard_normal(shape), case.dtype)  # y's dtype
        return Arrays(x, weights, {"dy": dy})

    def run(self, keras: Any, case: ConvCase, arrays: Arrays) -> dict[str, np.ndarray]:
        """``y`` and the gradients, named as the reference names them. When the cotangent
        does not fit the backend's output (a shape bug the forward check reports), only ``y``."""
        from conv_parity.reference._vjp import names

        self._built = None
        if case.kind.is_op:
            fn = op_function(keras, case)
            kw = op_kwargs(case)
            params = [to_tensor(keras, w, case.dtype) for w in arrays.weights]

            def call(x: Any, *ws: Any) -> Any:
                return fn(x, *ws, **kw)

            layer = None
        else:
            layer = self.built_layer(keras, case, arrays)
            params = list(layer.trainable_variables)
            call = layer
        try:
            x = to_tensor(keras, arrays.x, case.input_dtype)
            y, grads = _VJP[keras.backend.backend()](keras, call, layer, x, arrays, params)
        except Exception as exc:
            raise tagged(exc, "call") from None
        out = {"y": y}
        if grads is not None:
            out.update(zip(names(case.layer, case.kwargs), grads))
        return out

    def expected(self, case: ConvCase, arrays: Arrays) -> Expected:
        """The forward's reference plus :func:`conv_parity.reference.vjp` and its magnitudes.

        Reduction sizes (the reference's own error bound): an input-gradient element sums at
        most one product per kernel weight; a kernel or bias gradient element at most one per
        output element.
        """
        from math import prod

        from conv_parity import reference

        ref = super().expected(case, arrays)
        dy = arrays.extras.get("dy")
        if ref.invalid is not None or dy is None:
            return ref
        kw = case.kwargs
        ref.outputs.update(reference.vjp(case.layer, arrays.x, arrays.weights, dy, **kw))
        ref.magnitudes.update(reference.vjp_magnitude(case.layer, arrays.x, arrays.weights, dy,
                                                      **kw))
        # Upper bounds are enough: the bound is K * eps64 * max(B), far below any tolerance.
        out_size = prod(ref.shape or ())
        per_x = sum(int(np.size(w)) for w in arrays.weights) or out_size
        for name in ref.outputs:
            if name != "y":
                ref.reduction_sizes[name] = max(1, per_x if name == "dx" else out_size)
        return ref

    def repro_prepare(self, case: ConvCase) -> str:
        """The grad mode's arrays: the cotangent from its own stream, and for max pooling the
        distinct-valued ramp input (as :meth:`seeded` makes them)."""
        return _repro.prepare_source(case)

    def repro_check(self, case: ConvCase, backend: str) -> str:
        """The backend's VJP against central differences of the script's float64 reference."""
        return _repro.check_source(case, backend)


def _cotangent(arrays: Arrays, y_shape: tuple[int, ...]) -> np.ndarray | None:
    dy = arrays.extras.get("dy")
    if dy is None or tuple(dy.shape) != tuple(y_shape):
        return None
    return dy


def _tensorflow(keras: Any, call: Callable, layer: Any, x: Any, arrays: Arrays,
                params: list) -> tuple[np.ndarray, list | None]:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        if layer is None:
            for p in params:
                tape.watch(p)
        y = call(x, *params) if layer is None else call(x)
    y_np = keras.ops.convert_to_numpy(y)
    dy = _cotangent(arrays, y_np.shape)
    if dy is None:
        return y_np, None
    grads = tape.gradient(y, [x, *params], output_gradients=tf.constant(dy, dtype=y.dtype))
    return y_np, [_numpy(keras, g, s) for g, s in zip(grads, [arrays.x, *arrays.weights])]


def _torch(keras: Any, call: Callable, layer: Any, x: Any, arrays: Arrays,
           params: list) -> tuple[np.ndarray, list | None]:
    import torch

    x = x.detach().requires_grad_(True)
    if layer is None:
        params = [p.detach().requires_grad_(True) for p in params]
        y = call(x, *params)
        leaves = params
    else:
        y = call(x)
        leaves = [v.value for v in params]
    y_np = keras.ops.convert_to_numpy(y)
    dy = _cotangent(arrays, y_np.shape)
    if dy is None:
        return y_np, None
    grads = torch.autograd.grad(y, [x, *leaves], grad_outputs=torch.as_tensor(
        dy, dtype=y.dtype, device=y.device), allow_unused=True)
    return y_np, [_numpy(keras, g, s) for g, s in zip(grads, [arrays.x, *arrays.weights])]


def _jax(keras: Any, call: Callable, layer: Any, x: Any, arrays: Arrays,
         params: list) -> tuple[np.ndarray, list | None]:
    import jax
    import jax.numpy as jnp

    if layer is None:
        def f(x: Any, values: list) -> Any:
            return call(x, *values)

        values = params
    else:
        def f(x: Any, values: list) -> Any:
            with keras.StatelessScope(state_mapping=list(zip(params, values))):
                return call(x)

        values = [v.value for v in params]
    y, pullback = jax.vjp(f, x, values)
    y_np = keras.ops.convert_to_numpy(y)
    dy = _cotangent(arrays, y_np.shape)
    if dy is None:
        return y_np, None
    dx, dvalues = pullback(jnp.asarray(dy, dtype=y.dtype))
    return y_np, [_numpy(keras, g, s) for g, s in zip([dx, *dvalues],
                                                       [arrays.x, *arrays.weights])]


def _numpy(keras: Any, grad: Any, like: np.ndarray) -> np.ndarray:
    """A gradient as NumPy; a missing one (not connected, so no gradient flowed) as zeros."""
    if grad is None:
        return np.zeros(np.shape(like), np.asarray(like).dtype)
    return keras.ops.convert_to_numpy(grad)


#: How each Keras backend takes a VJP; a backend not here has no gradients (skip).
_VJP: dict[str, Callable[..., tuple[np.ndarray, list | None]]] = {
    "tensorflow": _tensorflow,
    "torch": _torch,
    "jax": _jax,
}

__all__ = ["NO_GRADIENTS", "Grad"]
