"""Max and average pooling over a sliding-window view (a reduction, so no scratch to bound).

Semantics (Keras 3, read from ``keras/src/backend/{numpy,jax}/nn.py`` and TF's ``avg_pool``):

* Max pooling pads with -inf, so padding never wins; NaN propagates (``np.max``).
* Average pooling with ``same`` padding divides by the number of *real* input elements in the
  window, not by ``prod(pool_size)``: Keras's NumPy/JAX backends divide the window sum by a
  window sum of ones, and TensorFlow's ``avg_pool`` excludes padding the same way. So the
  average of a constant is that constant, at the borders too. Every ``same`` window holds at
  least one real element (the window of output ``o`` starts at or before ``o * s <= n - 1`` and
  ends at or after the first element), so the count is never 0.
"""

from __future__ import annotations

import numpy as np

from conv_parity.reference._geometry import Geometry
from conv_parity.reference._windows import padded_input, window_view


def _window_counts(g: Geometry) -> np.ndarray:
    """Real-element count of each window, (1, *O, 1), as a product of per-axis counts."""
    counts = np.ones((1, *g.out_spatial, 1), np.float64)
    for ax in range(g.rank):
        n, p, s, (before, _) = g.in_spatial[ax], g.window[ax], g.strides[ax], g.pads[ax]
        start = np.arange(g.out_spatial[ax]) * s - before
        c = np.minimum(start + p, n) - np.maximum(start, 0)
        shape = [1] * (g.rank + 2)
        shape[1 + ax] = g.out_spatial[ax]
        counts = counts * c.reshape(shape)
    return counts


def pool(x: np.ndarray, g: Geometry, absolute: bool) -> np.ndarray:
    """Channels-last (N, *O, C) max or average pool of ``x`` (of ``|x|`` with ``absolute``)."""
    is_max = g.family == "max_pool"
    xp = padded_input(x, g, -np.inf if is_max else 0.0, absolute)
    win = window_view(xp, g.out_spatial, g.window, g.strides, g.dilation)
    axes = tuple(range(1 + g.rank, 1 + 2 * g.rank))
    if is_max:
        if win.size == 0:
            return np.empty((xp.shape[0], *g.out_spatial, xp.shape[-1]), np.float64)
        return win.max(axis=axes)
    total = win.sum(axis=axes)
    if g.needs_padding:
        total /= _window_counts(g)
    else:
        total /= float(g.taps)
    return total
