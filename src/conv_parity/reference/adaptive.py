"""Adaptive pooling (``keras.ops.adaptive_average_pool`` / ``adaptive_max_pool``, the
``Adaptive{Average,Max}Pooling{1,2,3}D`` layers of Keras 3.13+): the float64 reference.

Output element ``i`` of a spatial axis of input size ``n`` and output size ``m`` pools the
input bin ``[floor(i * n / m), ceil((i + 1) * n / m))``, as torch's ``adaptive_avg_pool`` and
Keras's docs define it: bins cover the axis, neighbours may overlap by one element, and an
output larger than the input repeats elements. A bin is a box (the product of its axes' bins),
so both reductions are separable: the average of a box is the per-axis averages applied in turn,
and so is its maximum. Written from that definition, not from any backend's code.

The reference's entry points (:func:`conv_parity.reference.forward`, ``vjp``, ``output_shape``)
dispatch the adaptive kinds here; :mod:`._geometry` sizes them with :func:`largest_bin`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from conv_parity.errors import InvalidConfig

MODES = ("average", "max")


def bins(n: int, m: int) -> list[tuple[int, int]]:
    """The ``m`` input bins ``[start, end)`` of an axis of size ``n``:
    ``bins(5, 3) == [(0, 2), (1, 4), (3, 5)]``."""
    return [((i * n) // m, -((-(i + 1) * n) // m)) for i in range(m)]


def largest_bin(n: int, m: int) -> int:
    """The widest bin of an axis of size ``n`` pooled to ``m``: the most elements one output
    reads (the reduction size of the error bound). ``largest_bin(5, 3) == 3``."""
    return max(end - start for start, end in bins(n, m))


def _spatial_axes(ndim: int, data_format: str) -> list[int]:
    return list(range(2, ndim)) if data_format == "channels_first" else list(range(1, ndim - 1))


def _sizes(input_shape: Sequence[int], output_size: int | Sequence[int],
           data_format: str) -> tuple[list[int], list[int]]:
    """(spatial axes, output sizes); InvalidConfig naming the bad value otherwise."""
    if data_format not in ("channels_last", "channels_first"):
        raise InvalidConfig(f"data_format must be channels_last or channels_first, got "
                            f"{data_format!r}", argument="data_format")
    axes = _spatial_axes(len(input_shape), data_format)
    if not 1 <= len(axes) <= 3:
        raise InvalidConfig(f"adaptive pooling takes inputs of rank 3, 4 or 5, got "
                            f"input_shape={tuple(input_shape)!r}", argument="input_shape")
    sizes: list[Any] = [output_size] * len(axes) \
        if not isinstance(output_size, (list, tuple)) else list(output_size)
    if len(sizes) != len(axes) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes):
        raise InvalidConfig(f"output_size must be an int >= 1 or {len(axes)} of them, got "
                            f"{output_size!r}", argument="output_size")
    for axis in axes:
        if input_shape[axis] < 1:
            raise InvalidConfig(f"adaptive pooling needs every spatial size >= 1, got "
                                f"input_shape={tuple(input_shape)!r}", argument="input_shape")
    return axes, sizes


def output_shape(input_shape: Sequence[int], output_size: int | Sequence[int],
                 data_format: str = "channels_last") -> tuple[int, ...]:
    """The output shape: the spatial sizes replaced by ``output_size``, batch and channels
    kept. ``output_shape((2, 7, 5, 3), (3, 2)) == (2, 3, 2, 3)``."""
    axes, sizes = _sizes(input_shape, output_size, data_format)
    out = [int(d) for d in input_shape]
    for axis, size in zip(axes, sizes):
        out[axis] = size
    return tuple(out)


def _reduce_axis(x: np.ndarray, axis: int, m: int, mode: str) -> np.ndarray:
    parts = []
    for start, end in bins(x.shape[axis], m):
        window = np.take(x, range(start, end), axis=axis)
        parts.append(window.mean(axis=axis) if mode == "average" else window.max(axis=axis))
    return np.stack(parts, axis=axis)


def forward(x: np.ndarray, output_size: int | Sequence[int], mode: str,
            data_format: str = "channels_last") -> np.ndarray:
    """The float64 adaptive ``mode`` ("average" / "max") pooling of ``x``. NaN propagates
    (a bin holding NaN pools to NaN), as IEEE mean and NumPy's max do."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    y = np.asarray(x, np.float64)
    axes, sizes = _sizes(y.shape, output_size, data_format)
    for axis, size in zip(axes, sizes):
        y = _reduce_axis(y, axis, size, mode)
    return y


def magnitude(x: np.ndarray, output_size: int | Sequence[int], mode: str,
              data_format: str = "channels_last") -> np.ndarray:
    """:func:`forward` on ``|x|``: the scale of the rounding error of each output element."""
    return forward(np.abs(np.asarray(x, np.float64)), output_size, mode, data_format)


def vjp(x: np.ndarray, dy: np.ndarray, output_size: int | Sequence[int], mode: str,
        data_format: str = "channels_last") -> np.ndarray:
    """``dx`` of ``<dy, forward(x)>``. Average: each bin's cotangent spread evenly over it.
    Max: to the bin's maximum (each bin's maximum assumed unique, as for max pooling)."""
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    axes, sizes = _sizes(x.shape, output_size, data_format)
    if dy.shape != output_shape(x.shape, sizes, data_format):
        raise ValueError(f"dy has shape {dy.shape}, expected "
                         f"{output_shape(x.shape, sizes, data_format)}")
    if mode == "average":
        dx = dy
        for axis, size in zip(axes, sizes):
            n = x.shape[axis]
            mat = np.zeros((size, n))
            for i, (start, end) in enumerate(bins(n, size)):
                mat[i, start:end] = 1.0 / (end - start)
            dx = np.moveaxis(np.tensordot(mat.T, np.moveaxis(dx, axis, 0), axes=1), 0, axis)
        return dx
    if mode != "max":
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    dx = np.zeros_like(x)
    if x.size == 0:  # an empty batch (or no channels): nothing to route, and no argmax to take
        return dx
    per_axis = [bins(x.shape[a], s) for a, s in zip(axes, sizes)]
    for out_idx in np.ndindex(*sizes):
        box = [slice(*per_axis[k][i]) for k, i in enumerate(out_idx)]
        index: list[slice | int] = [slice(None)] * x.ndim
        out_index: list[slice | int] = [slice(None)] * x.ndim
        for k, axis in enumerate(axes):
            index[axis] = box[k]
            out_index[axis] = out_idx[k]
        window = x[tuple(index)]  # (batch, [channels,] box..., [channels])
        g = dy[tuple(out_index)]  # (batch, channels)
        moved = np.moveaxis(window, axes, list(range(window.ndim - len(axes), window.ndim)))
        flat = moved.reshape(*moved.shape[:2], -1)
        arg = flat.argmax(axis=-1)
        onehot = np.zeros_like(flat)
        np.put_along_axis(onehot, arg[..., None], 1.0, axis=-1)
        contrib = np.moveaxis((onehot * g[..., None]).reshape(moved.shape),
                              list(range(window.ndim - len(axes), window.ndim)), axes)
        dx[tuple(index)] += contrib
    return dx
