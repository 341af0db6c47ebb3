"""One geometry: window, strides, dilation, "same" padding, channel axis and output shape.

Every module that needs these numbers asks here (STYLE.md pattern 5) instead of re-deriving
them (``kernel_size or pool_size``, ceil divisions, channel axes). :class:`Geometry` is the
reference's validated record (``reference/_geometry.py`` documents every rule and the Keras file
it was read from); :func:`of` builds it for a case. Independent re-derivations remain only where
they *check* this one: the repro script's inline reference, the CLI's shape-rule text and the
test oracle.
"""

from __future__ import annotations

import functools
from math import prod
from typing import TYPE_CHECKING

from conv_parity.errors import InvalidConfig
from conv_parity.reference._geometry import (
    Geometry,
    build,
    conv_transpose_window,
    same_padding,
)
from conv_parity.reference.adaptive import largest_bin

if TYPE_CHECKING:
    from conv_parity.case import ConvCase

__all__ = [
    "Geometry",
    "conv_transpose_window",
    "effective_window",
    "of",
    "or_none",
    "reduction_size",
    "same_padding",
    "same_pads",
    "spec_output",
    "strides",
    "window",
]


@functools.lru_cache(maxsize=8192)
def of(case: ConvCase) -> Geometry:
    """The validated geometry of a case; InvalidConfig when the spec rejects it."""
    return build(case.layer, case.kwargs, case.input_shape)


def spec_output(case: ConvCase) -> tuple[tuple[int, ...] | None, int | None]:
    """(the spec's output shape or None, and when the spec rejects the case because an output
    axis would have no positions, that axis's size: 0, or negative when the window overshoots
    the input by more; else None)."""
    try:
        return of(case).output_shape, None
    except InvalidConfig as exc:
        return None, exc.size


def or_none(case: ConvCase) -> Geometry | None:
    """:func:`of`, or None for a configuration the spec rejects."""
    try:
        return of(case)
    except InvalidConfig:
        return None


def window(case: ConvCase) -> tuple[int, ...]:
    """The kernel or pool window as given (valid or not): ``kernel_size`` or ``pool_size``
    (a global pool's is the whole input; an adaptive pool's its widest bin)."""
    kw = case.kwargs
    if case.kind.is_global:
        return case.spatial_shape
    if case.kind.is_adaptive:
        return tuple(largest_bin(n, m) if n > 0 and m > 0 else 1
                     for n, m in zip(case.spatial_shape, kw["output_size"]))
    return tuple(kw["pool_size"] if case.kind.is_pool else kw["kernel_size"])


def strides(case: ConvCase) -> tuple[int, ...]:
    """The strides as Keras applies them: a pooling layer's ``None`` means its window."""
    given = case.kwargs.get("strides")
    return window(case) if given is None else tuple(given)


def effective_window(case: ConvCase) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(effective window size, strides) per spatial dim, dilation included (valid or not)."""
    given, steps = window(case), strides(case)
    d = tuple(case.kwargs.get("dilation_rate") or (1,) * len(given))
    return tuple((k - 1) * di + 1 for k, di in zip(given, d)), steps


def same_pads(case: ConvCase) -> list[tuple[int, int]]:
    """Keras's (TensorFlow's) 'same' split per spatial dim: the odd extra at the end."""
    k, s = effective_window(case)
    return [same_padding(n, ki, si) for n, ki, si in zip(case.spatial_shape, k, s)]


def reduction_size(case: ConvCase) -> int:
    """How many products one output element sums (the K of the reference's error bound):
    the taps times the input channels one output reads (a group's for grouped convs; one for
    depthwise; the pointwise stage's C * m more for separable; transposed convs: an upper
    bound, every tap of every channel)."""
    geo = or_none(case)
    if geo is None:
        return max(1, prod(window(case)))
    return geo.products
