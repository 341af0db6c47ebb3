"""The wrong readings of adaptive pooling that :mod:`.candidates` tries (issue 23 item 5).

Adaptive pooling has no window, stride or padding to get wrong; what an implementation can get
wrong is the bins (the end edge floored instead of ceiled, so neighbouring bins no longer
overlap; or one fixed window ``ceil(n / m)`` moved by ``floor(n / m)``, the "kernel and stride"
reading) and the reduction (max for average); the layout, batch order and one-pixel shifts
are tried as for every kind with a spatial output. Each candidate recomputes the case
with the float64 reference's own per-axis reduction, only the bin edges changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from conv_parity.case import ConvCase
from conv_parity.reference import adaptive


class Context(Protocol):
    """What the candidates read of :class:`.candidates._Ctx` (a protocol: no import cycle)."""

    case: ConvCase
    x: np.ndarray

    def who(self) -> str: ...

    def matches(self, cand: np.ndarray, mag: np.ndarray) -> bool: ...


#: (code, what it means, whether the backend's output matches it), as :mod:`.candidates`.
Candidate = tuple[str, str, Callable[[], bool]]
Edges = Callable[[int, int], list[tuple[int, int]]]


def floor_ends(n: int, m: int) -> list[tuple[int, int]]:
    """Bins ``[floor(i n / m), floor((i + 1) n / m))`` (at least one element): no overlap."""
    return [((i * n) // m, max((i * n) // m + 1, ((i + 1) * n) // m)) for i in range(m)]


def fixed_window(n: int, m: int) -> list[tuple[int, int]]:
    """One window ``ceil(n / m)`` moved by ``max(1, n // m)``, clipped to the input."""
    k, s = -(-n // m), max(1, n // m)
    return [(min(i * s, n - 1), min(i * s + k, n)) for i in range(m)]


def pooled(x: np.ndarray, sizes: tuple[int, ...], mode: str, first: bool,
           edges: Edges) -> np.ndarray:
    """Adaptive pooling of ``x`` with the bins ``edges`` gives, axis by axis (float64)."""
    y = np.asarray(x, np.float64)
    axes = range(2, y.ndim) if first else range(1, y.ndim - 1)
    for axis, m in zip(axes, sizes):
        parts = [np.take(y, range(a, b), axis=axis) for a, b in edges(y.shape[axis], m)]
        y = np.stack([p.max(axis=axis) if mode == "max" else p.mean(axis=axis) for p in parts],
                     axis=axis)
    return y


def adaptive_candidates(ctx: Context) -> Iterator[Candidate]:
    """Other bins and the other reduction (layout, batch and shifts: :mod:`.candidates`)."""
    case = ctx.case
    sizes = tuple(case.kwargs["output_size"])
    first = case.kwargs["data_format"] == "channels_first"
    mode = "max" if case.kind.is_max else "average"
    other = "average" if mode == "max" else "max"

    def agrees(edges: Edges, how: str = mode) -> bool:
        return ctx.matches(pooled(ctx.x, sizes, how, first, edges),
                           pooled(np.abs(ctx.x), sizes, how, first, edges))

    yield ("adaptive-bins-floor-ends",
           f"{ctx.who()} equals the reference with bins [floor(i*n/m), floor((i+1)*n/m)): the "
           f"end edge floored, so neighbouring bins never overlap",
           lambda: agrees(floor_ends))
    yield ("adaptive-bins-fixed-window",
           f"{ctx.who()} equals one fixed window ceil(n/m) moved by floor(n/m) per axis (the "
           f"'kernel and stride' reading), not the adaptive bins",
           lambda: agrees(fixed_window))
    yield ("adaptive-other-reduction",
           f"{ctx.who()} equals the adaptive {other} pool, not the {mode}",
           lambda: agrees(adaptive.bins, other))
