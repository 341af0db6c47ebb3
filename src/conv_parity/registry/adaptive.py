"""Derived attributes of adaptive pooling cases that ``where`` predicates name (issue 23 item 5).

Keras 3.13-3.15 computes adaptive pooling on the tensorflow and jax backends by a "two-pool
gather": a valid pool of window ``small = ceil(n / m)`` and one of ``big = small + 1`` along
each axis, then a gather of the bins' starts (read from ``keras/src/backend/{tensorflow,jax}/
nn.py``; re-derived here, not copied). Two of its facts decide where it goes wrong:

* ``big > n`` (``n == 1`` or ``m == 1``): the big pool is longer than the input. In a graph
  TensorFlow refuses it ("Negative dimension size"); eagerly its kernels read memory outside
  the input (oneDNN's max pool dies of SIGFPE; the max-pool gradient returns garbage).
* jax computes the bin edges ``floor(i * n / m)`` and ``ceil(i * n / m)`` in float32, and XLA
  on CPU divides by multiplying with ``float32(1 / m)``: where that product lands beside an
  integer the edge moves by one, and the gather reads past the pools (NaN).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from conv_parity.case import ConvCase


def _sizes(case: ConvCase) -> list[tuple[int, int]]:
    """(input size, output size) per spatial axis of an adaptive case; [] for other kinds."""
    if not case.kind.is_adaptive:
        return []
    return list(zip(case.spatial_shape, case.kwargs["output_size"]))


def _big_exceeds(n: int, m: int) -> bool:
    """Keras's big window ``ceil(n / m) + 1`` is longer than the axis."""
    return m > 0 and -(-n // m) + 1 > n


def _float32_edges_move(n: int, m: int) -> bool:
    """Whether a bin edge computed as ``float32(i * n) * float32(1 / m)`` rounds to another
    integer than the exact ``floor`` / ``ceil``: ``_float32_edges_move(12, 7) is True``."""
    if m <= 0:
        return False
    r = np.float32(1) / np.float32(m)
    for i in range(m + 1):
        t = float(np.float32(np.float32(i * n) * r))
        if (i < m and math.floor(t) != (i * n) // m) or (i > 0 and math.ceil(t) != -(-i * n // m)):
            return True
    return False


def derived(case: ConvCase) -> dict[str, Any]:
    """The adaptive attributes (all False for the other kinds)."""
    sizes = _sizes(case)
    return {
        # some axis's big window is longer than the input (n == 1 or m == 1)
        "adaptive_window_exceeds_input": any(_big_exceeds(n, m) for n, m in sizes),
        # ... on the last spatial axis (the one TF's oneDNN max pool divides by zero on)
        "adaptive_last_window_exceeds_input": bool(sizes) and _big_exceeds(*sizes[-1]),
        # jax's float32 bin edges differ from the exact ones on some axis
        "adaptive_float32_edges_move": any(_float32_edges_move(n, m) for n, m in sizes),
    }
