"""Diagnosis: say in words which wrong interpretation a backend's failing output matches.

A max-abs-error says *that* a backend is wrong; a diagnosis says *how* ("torch's output equals the
reference with the extra padding row at the top instead of the bottom"), which is what a person
needs to file or fix a bug. For a failing case we recompute the case under alternative
interpretations with the float64 reference (padding split the other way, kernel flipped, bias
dropped, groups ignored, output shifted by a pixel, ...) and report the first one the backend's
output matches within tolerance.

Two rules keep it honest:

* a candidate that the reference itself cannot tell apart from the correct answer for this case
  (a kernel flip of a 1x1 kernel, a shift of a constant output) is skipped, so a diagnosis is
  never a coincidence of the configuration;
* when nothing matches, the answer is ``"none"`` ("no known interpretation matches"), never the
  closest guess.

Candidates are generated only where the case's kind and kwargs can express them, and shape-level
alternatives are screened with :func:`conv_parity.reference.output_shape` before any forward pass,
so diagnosing a failure costs a handful of reference evaluations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from conv_parity import geometry
from conv_parity.case import ConvCase
from conv_parity.errors import ConvParityError
from conv_parity.explain.candidates import (
    ToleranceFn,
    _Ctx,
    _output_shape,
    _remake,
    _stride_variants,
    _value_candidates,
)

if TYPE_CHECKING:
    from conv_parity.expected import Expected

#: Every code diagnose() can return, with what it means. Codes are stable (reports key on them).
CODES: dict[str, str] = {
    "padding-flipped": "odd 'same' padding split the other way (extra row/column at the start)",
    "valid-instead-of-same": "padding='valid' computed where 'same' was asked",
    "same-instead-of-valid": "padding='same' computed where 'valid' was asked",
    "same-instead-of-causal": "padding='same' computed where 'causal' was asked",
    "data-format-swapped": "channels_first and channels_last confused (input or output layout)",
    "hw-swapped": "the H and W axes of the output swapped",
    "kernel-flipped": "the kernel flipped along its spatial axes (correlation vs convolution)",
    "bias-missing": "the bias not added",
    "bias-wrong-axis": "the bias added along an axis other than the channel axis",
    "groups-ignored": "groups ignored: every filter sees the first channel group only",
    "dilation-ignored": "dilation_rate ignored (computed with dilation 1)",
    "output-padding-ignored": "output_padding ignored (computed with output_padding=None)",
    "stride-off-by-one": "a stride one larger or smaller than asked",
    "pool-strides-default": "pooling strides=None taken as 1 instead of pool_size",
    "ceil-vs-floor": "the output length rounded up instead of down (or the reverse)",
    "pool-edge-padding": "edge values copied into the pooling padding instead of ignoring it",
    "avg-pool-counts-padding": "average pooling counts the padded zeros in its divisor",
    "max-pool-drops-nan": "max pooling skips NaN instead of propagating it",
    "half-running-sum": "an average pool summed as a running total in float16 / bfloat16",
    "global-pool-other-reduction": "a global pool took the average for the max (or the reverse)",
    "batch-permuted": "the batch items of the output in the wrong order (or mixed up)",
    "shifted-d": "the output shifted by one pixel along D",
    "shifted-h": "the output shifted by one pixel along H",
    "shifted-w": "the output shifted by one pixel along W",
    "nondeterministic": "two identical calls differ (uninitialised memory or a race)",
    "none": "no known interpretation matches",
}


@dataclass(frozen=True)
class Diagnosis:
    """The interpretation a failing output matches: a stable ``code`` and a sentence ``text``."""

    code: str
    text: str
    #: other codes the same output is equally consistent with (degenerate configurations,
    #: e.g. a 1x1 input where a flipped kernel and a flipped padding give the same numbers).
    alternatives: tuple[str, ...] = ()

    def names(self, code: str) -> bool:
        """Whether this diagnosis names `code`, as the first or an equally good reading."""
        return code == self.code or code in self.alternatives

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "text": self.text, "alternatives": list(self.alternatives)}

    def __str__(self) -> str:
        return self.text


#: Codes found by partial comparison: weaker evidence, only reported when no full match exists.
_PARTIAL = frozenset({"shifted-d", "shifted-h", "shifted-w"})


def diagnose(case: ConvCase, x: np.ndarray, weights: Sequence[np.ndarray], output: np.ndarray,
             backend: str, tolerance_fn: ToleranceFn | None = None,
             reference: Expected | None = None) -> Diagnosis | None:
    """The first known wrong interpretation `output` matches, or Diagnosis("none", ...).

    Returns None when there is nothing to diagnose: the reference rejects the case, or the
    output actually conforms. `tolerance_fn(candidate_ref, candidate_mag)` may replace the
    default per-element check (the suite's :func:`conv_parity.judge.compare.tolerance`).
    `reference` is the engine's answer for the case, reused instead of recomputed.
    """
    try:
        ctx = _Ctx(case, x, weights, output, backend, tolerance_fn, reference)
    except (ConvParityError, ValueError):
        return None
    if ctx.out.shape != ctx.ref.shape:
        return _diagnose_shape(ctx)
    if ctx._close(ctx.out, ctx.ref, ctx.mag).all():
        return None
    found: list[tuple[str, str]] = []
    for code, text, test in _value_candidates(ctx):
        if any(code == c for c, _ in found) or (found and code in _PARTIAL):
            continue
        try:
            if test():
                found.append((code, text))
        except (ConvParityError, ValueError, IndexError, FloatingPointError):
            continue
    if found:
        code, text = found[0]
        others = tuple(c for c, _ in found[1:])
        if others:
            text += "; equally consistent with: " + "; ".join(
                f"{c} ({CODES[c]})" for c in others)
        return Diagnosis(code, text, others)
    return Diagnosis(
        "none",
        f"no known interpretation matches {ctx.who()} (tried padding split, layout, kernel "
        f"flip, bias, groups, dilation, strides, pooling padding, one-pixel shifts)",
    )


# --------------------------------------------------------------------------- shape failures


def _shape_alternatives(ctx: _Ctx) -> Iterator[tuple[str, str, Callable[[], tuple[int, ...]]]]:
    case, g, kw = ctx.case, ctx.geom, ctx.case.kwargs
    ref_shape = ctx.ref.shape

    def alt(**changes: Any) -> Callable[[], tuple[int, ...]]:
        return lambda: _output_shape(_remake(case, **changes))

    if kw.get("output_padding") is not None:
        yield ("output-padding-ignored", "the output_padding ignored", alt(output_padding=None))
    if "dilation_rate" in kw and max(kw["dilation_rate"]) > 1:
        ones = (1,) * g.rank
        yield ("dilation-ignored", "dilation_rate ignored (dilation 1)", alt(dilation_rate=ones))
    pad = kw.get("padding")
    if pad == "same":
        yield ("valid-instead-of-same", "padding='valid' instead of 'same'", alt(padding="valid"))
    if pad == "valid":
        yield ("same-instead-of-valid", "padding='same' instead of 'valid'", alt(padding="same"))
    if pad == "causal":
        yield ("same-instead-of-causal", "padding='same' instead of 'causal'", alt(padding="same"))
    if case.kind.is_pool and "strides" in kw and kw["strides"] is None:
        yield ("pool-strides-default", "strides=None taken as 1 instead of pool_size",
               alt(strides=(1,) * g.rank))
    if g.rank >= 2:
        h, w = g.spatial_axes[-2], g.spatial_axes[-1]

        def swapped() -> tuple[int, ...]:
            s = list(ref_shape)
            s[h], s[w] = s[w], s[h]
            return tuple(s)

        yield ("hw-swapped", "the H and W axes swapped", swapped)

    def moved() -> tuple[int, ...]:
        return tuple(np.moveaxis(np.empty(ref_shape, dtype=bool), g.channel_axis,
                                 -1 if g.first else 1).shape)

    other = "channels_last" if g.first else "channels_first"
    yield ("data-format-swapped", f"the output written in {other} layout", moved)
    yield ("data-format-swapped", f"the input read as {other}", alt(data_format=other))
    if not case.kind.is_op or case.kind.family != "conv_transpose":
        yield ("ceil-vs-floor", "the output length rounded the other way", lambda: _rounded(ctx))
    for words, strides in _stride_variants(kw, g):
        yield ("stride-off-by-one", words, alt(strides=strides))



def _rounded(ctx: _Ctx) -> tuple[int, ...]:
    """The reference shape with every spatial length rounded the other way (ceil <-> floor)."""
    case, g = ctx.case, ctx.geom
    if case.kind.family == "conv_transpose":
        raise ValueError("no rounding in a transposed conv")
    k, s = geometry.effective_window(case)
    shape = list(ctx.ref.shape)
    pad = case.kwargs.get("padding", "valid")
    for ax, ki, si in zip(g.spatial_axes, k, s):
        n = case.input_shape[ax]
        span = n if pad == "same" else n - ki
        if pad == "causal":
            span = n - 1
        if pad == "same":
            shape[ax] = n // si if -(-n // si) == shape[ax] else -(-n // si)
        else:
            floor, ceil = span // si + 1, -(-span // si) + 1
            shape[ax] = ceil if shape[ax] == floor else floor
    return tuple(shape)


def _diagnose_shape(ctx: _Ctx) -> Diagnosis:
    """Which shape rule the backend's shape follows; every rule that fits is named."""
    got, want = tuple(ctx.out.shape), tuple(ctx.ref.shape)
    hits: list[tuple[str, str]] = []
    for code, words, shape_fn in _shape_alternatives(ctx):
        try:
            alt = tuple(shape_fn())
        except (ConvParityError, ValueError, TypeError, KeyError):
            continue
        if alt == got and alt != want and all(code != c for c, _ in hits):
            hits.append((code, words))
    if hits:
        code, words = hits[0]
        also = "; ".join(f"{c} ({w})" for c, w in hits[1:])
        return Diagnosis(
            code,
            f"{ctx.backend}'s output shape {got} is the shape rule with {words} "
            f"(reference shape {want})" + (f"; equally consistent with: {also}" if also else ""),
            tuple(c for c, _ in hits[1:]),
        )
    return Diagnosis(
        "none",
        f"no known interpretation matches {ctx.backend}'s output shape {got} "
        f"(reference shape {want})",
    )



def describe(code: str) -> str:
    """What a diagnosis code means (for legends in reports)."""
    return CODES.get(code, code)


__all__ = ["CODES", "Diagnosis", "ToleranceFn", "describe", "diagnose"]
