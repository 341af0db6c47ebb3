"""Test-only mutants: known bug classes injected into a real backend computation.

A conformance suite is only as good as the bugs it catches. Each mutation here wraps the real
Keras computation inside a backend worker (``run_case``) and reproduces one bug class by altering
its kwargs, inputs, weights or output, so the mutation test can check the grid catches it and the
diagnosis names it. The worker calls :func:`apply` only when ``CONV_PARITY_ENABLE_MUTATIONS=1``
is in its environment and a work item names a mutation: a production run never mutates.

A mutation that the case cannot express (groups-ignored with groups == 1, bias-missing without
a bias, ...) is a no-op for that case, exactly like the real bug would be invisible there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from conv_parity import geometry, kinds
from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.modes import Arrays
from conv_parity.mutants import MODE_ONLY, MUTATIONS
from conv_parity.reference import _activations

RunCase = Callable[[ConvCase, np.ndarray, list[np.ndarray]], np.ndarray]

#: Forward mutants that move the output's spatial axes (nothing to move without them).
_SPATIAL_OUTPUT_MUTANTS = ("shift-h", "shift-w", "channels-first-only", "hw-swapped")


def _geom(case: ConvCase) -> tuple[int, bool, tuple[int, ...], int]:
    rank = kinds.spatial_rank(case.kind, case.input_shape)
    first = case.kwargs.get("data_format") == "channels_first"
    axes = tuple(range(2, 2 + rank)) if first else tuple(range(1, 1 + rank))
    return rank, first, axes, (1 if first else rank + 1)


def _remake(case: ConvCase, input_shape: Sequence[int] | None = None, **changes: Any) -> ConvCase:
    shape = case.input_shape if input_shape is None else tuple(int(d) for d in input_shape)
    return ConvCase.make(case.layer, {**case.kwargs, **changes}, shape, case.policy_name, case.seed,
                         case.mode)


def _bias_index(case: ConvCase) -> int | None:
    if case.kind.is_op or case.kind.is_pool or not case.kwargs.get("use_bias"):
        return None
    return len(case.kind.weight_names) - 1


def _roll(y: np.ndarray, axis: int) -> np.ndarray:
    return np.roll(y, 1, axis=axis) if y.ndim > axis and y.shape[axis] > 1 else y


def run_outputs(name: str, case: ConvCase, arrays: Arrays, keras: Any,
                run_mode: Callable[[ConvCase, Arrays], dict[str, np.ndarray]],
                ) -> dict[str, np.ndarray]:
    """Every named output of `case` in its mode, with the bug `name` injected (the worker's
    entry point). Forward mutants alter ``y`` (through :func:`apply`); the other outputs come
    from the last real run, on the altered inputs, weights or keywords."""
    if name == "grad-kernel-scaled":
        out = run_mode(case, arrays)
        if "dkernel" in out:
            out["dkernel"] = (out["dkernel"] * 1.001).astype(out["dkernel"].dtype)
        return out
    if name == "traced-only":
        _install_traced_only(keras)
        return run_mode(case, arrays)
    outputs: dict[str, np.ndarray] = {}

    def forward(c: ConvCase, x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
        outputs.clear()
        outputs.update(run_mode(c, Arrays(x, weights, arrays.extras, arrays.source)))
        return outputs["y"]

    y = apply(name, case, arrays.x, arrays.weights, forward)
    return {**outputs, "y": y}


def _staged(keras: Any) -> Callable[[Any], bool]:
    """Whether a tensor is being staged for compilation on this backend (not merely traced
    for a gradient: jax.vjp's tracers and TF's GradientTape stay eager)."""
    backend = keras.backend.backend()
    if backend == "jax":
        return lambda t: type(t).__name__ == "DynamicJaxprTracer"
    if backend == "tensorflow":
        import tensorflow as tf

        return lambda t: not tf.executing_eagerly()
    if backend == "torch":
        import torch

        return lambda t: bool(torch.compiler.is_compiling())
    return lambda t: False


_TRACED_OPS = ("conv", "depthwise_conv", "separable_conv", "conv_transpose", "max_pool",
               "average_pool")


def _install_traced_only(keras: Any) -> None:
    """Wrap the backend's conv and pool functions (once per worker process) so that their
    output is 0.1% too large while staged for compilation. ``keras.ops`` looks them up on
    ``backend.nn`` at call time, so patching that module reaches every layer."""
    from conv_parity.keras_internal import backend_nn

    nn = backend_nn()
    if getattr(nn, "_conv_parity_traced_only", False):
        return
    staged = _staged(keras)
    for op in _TRACED_OPS:
        real = getattr(nn, op, None)
        if real is None:
            continue

        def wrapper(inputs: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            y = _real(inputs, *args, **kwargs)
            return y * 1.001 if staged(inputs) else y

        setattr(nn, op, wrapper)
    nn._conv_parity_traced_only = True


def apply(name: str, case: ConvCase, x: np.ndarray, weights: list[np.ndarray],
          run_case: RunCase) -> np.ndarray:
    """Run `case` through the real backend computation with the bug `name` injected (a
    forward mutant: the backward and compiled ones live in :func:`run_outputs`)."""
    if name not in MUTATIONS or name in MODE_ONLY:
        raise UsageError(f"unknown forward mutation {name!r}; known: "
                         f"{', '.join(n for n in MUTATIONS if n not in MODE_ONLY)}")
    rank, first, axes, ch = _geom(case)
    kw = case.kwargs
    weights = list(weights)

    if name in _SPATIAL_OUTPUT_MUTANTS:
        y = run_case(case, x, weights)
        if y.ndim != len(case.input_shape):  # a global pool's (batch, channels): no spatial axes
            return y
    if name == "shift-h":
        return _roll(y, axes[-2]) if rank >= 2 else y
    if name == "shift-w":
        return _roll(y, axes[-1])
    if name == "channels-first-only":
        return _roll(y, axes[-1]) if first else y
    if name == "batch-gt1-only":
        y = run_case(case, x, weights)
        return np.roll(y, 1, axis=0) if y.shape[0] > 1 else y
    if name == "hw-swapped":
        return np.swapaxes(y, axes[-2], axes[-1]) if rank >= 2 else y
    if name == "bias-missing":
        b = _bias_index(case)
        if b is not None:
            weights[b] = np.zeros_like(weights[b])
        return run_case(case, x, weights)
    if name == "bias-wrong-axis":
        return _bias_wrong_axis(case, x, weights, run_case, ch)
    if name == "kernel-flipped":
        if not case.kind.is_pool:
            b = _bias_index(case)
            for i in range(len(weights)):
                if i != b:
                    weights[i] = np.ascontiguousarray(np.flip(weights[i], axis=tuple(range(rank))))
        return run_case(case, x, weights)
    if name == "groups-ignored":
        groups = kw.get("groups", 1)
        if case.kind.family == "conv" and groups > 1:
            per = x.shape[ch] // groups
            first_group = np.take(x, np.arange(per), axis=ch)
            x = np.concatenate([first_group] * groups, axis=ch)
        return run_case(case, x, weights)
    if name == "dilation-ignored":
        if "dilation_rate" in kw and max(kw["dilation_rate"]) > 1:
            return run_case(_remake(case, dilation_rate=(1,) * rank), x, weights)
        return run_case(case, x, weights)
    if name == "output-padding-ignored":
        if kw.get("output_padding") is not None:
            return run_case(_remake(case, output_padding=None), x, weights)
        return run_case(case, x, weights)
    if name == "padding-flipped":
        return _padding_flipped(case, x, weights, run_case, axes)
    raise AssertionError(name)  # pragma: no cover - every name is handled above


def _bias_wrong_axis(case: ConvCase, x: np.ndarray, weights: list[np.ndarray],
                     run_case: RunCase, ch: int) -> np.ndarray:
    """Bias broadcast along another axis of the same length (the classic layout slip)."""
    b = _bias_index(case)
    if b is None:
        return run_case(case, x, weights)
    bias = weights[b]
    probe = run_case(case, x, weights)
    n = bias.shape[0]
    # Prefer the channel axis of the other layout, then any spatial axis of length n.
    preferred = [probe.ndim - 1 if ch == 1 else 1, *range(1, probe.ndim)]
    axis = next((a for a in preferred if a != ch and probe.shape[a] == n and n > 1), None)
    if axis is None:
        return probe
    bare = _remake(case, use_bias=False, activation=None)
    pre = run_case(bare, x, [w for i, w in enumerate(weights) if i != b])
    shape = [1] * pre.ndim
    shape[axis] = n
    act = case.kwargs.get("activation")
    return np.asarray(_activations.apply(act, pre + bias.reshape(shape)), dtype=probe.dtype)


def _padding_flipped(case: ConvCase, x: np.ndarray, weights: list[np.ndarray],
                     run_case: RunCase, axes: tuple[int, ...]) -> np.ndarray:
    """'same' padding with the odd extra at the start, computed as explicit padding + 'valid'."""
    kw = case.kwargs
    if kw.get("padding") != "same":
        return run_case(case, x, weights)
    if case.kind.family == "conv_transpose":
        return _transpose_crop_flipped(case, x, weights, run_case, axes)
    pads = geometry.same_pads(case)
    if all(a == b for a, b in pads):
        return run_case(case, x, weights)
    flipped = [(b, a) for a, b in pads]
    width = [(0, 0)] * x.ndim
    for ax, p in zip(axes, flipped):
        width[ax] = p
    fill = -np.inf if case.kind.family == "max_pool" else 0.0
    xp = np.pad(x, width, constant_values=fill)
    valid = _remake(case, input_shape=xp.shape, padding="valid")
    y = run_case(valid, xp, weights)
    if case.kind.family == "average_pool":  # padded zeros are not counted: divide by coverage
        ones = np.pad(np.ones_like(x), width)
        y = y / run_case(valid, ones, [])
    return y


def _transpose_crop_flipped(case: ConvCase, x: np.ndarray, weights: list[np.ndarray],
                            run_case: RunCase, axes: tuple[int, ...]) -> np.ndarray:
    """A transposed conv's 'same' crop taken from the other side of the full output."""
    right = run_case(case, x, weights)
    if case.kwargs.get("output_padding") is not None:
        return right
    full = run_case(_remake(case, padding="valid"), x, weights)
    k, d, s = (case.kwargs[key] for key in ("kernel_size", "dilation_rate", "strides"))
    totals = [
        (case.input_shape[ax] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - right.shape[ax]
        for i, ax in enumerate(axes)
    ]

    def crop(offsets: Sequence[int]) -> np.ndarray:
        sl = [slice(None)] * full.ndim
        for ax, off in zip(axes, offsets):
            sl[ax] = slice(off, off + right.shape[ax])
        return full[tuple(sl)]

    # Find the crop the backend itself takes, then take it from the other side.
    for found in np.ndindex(*[max(t, 0) + 1 for t in totals]):
        part = crop(found)
        if part.shape == right.shape and np.allclose(part, right, rtol=1e-3, atol=1e-4):
            flipped = [max(t, 0) - f for t, f in zip(totals, found)]
            return np.ascontiguousarray(crop(flipped)) if flipped != list(found) else right
    return right
