"""The alternative interpretations :func:`.diagnosis.diagnose` tries on a failing output.

Each candidate recomputes the case under one wrong reading with the float64 reference (padding
split the other way, kernel flipped, bias dropped, groups ignored, output shifted by a pixel,
...) and says whether the backend's output matches it within tolerance. :class:`_Ctx` holds the
case, its reference and magnitude and the comparison; a candidate that the reference cannot tell
apart from the correct answer for this case is not generated. The driver (ordering, the shape
branch, the wording of the verdict) is :mod:`.diagnosis`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from conv_parity import geometry, kinds
from conv_parity.case import ConvCase
from conv_parity.explain.adaptive_candidates import adaptive_candidates
from conv_parity.judge import compare
from conv_parity.reference import _activations

if TYPE_CHECKING:
    from conv_parity.expected import Expected

#: tolerance_fn(candidate_ref, candidate_mag) -> bool array: is the backend's output within
#: tolerance of this candidate, element by element.
ToleranceFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

_AXIS_NAMES = {1: ("W",), 2: ("H", "W"), 3: ("D", "H", "W")}
_UNIT = {"D": "plane", "H": "row", "W": "column"}
_START = {"D": "front", "H": "top", "W": "left"}
_END = {"D": "back", "H": "bottom", "W": "right"}


# --------------------------------------------------------------------------- reference access


def _ref_kwargs(case: ConvCase) -> dict[str, Any]:
    return case.call_kwargs if case.kind.is_op else case.kwargs


def _forward(case: ConvCase, x: np.ndarray, weights: Sequence[np.ndarray]) -> np.ndarray:
    from conv_parity import reference

    return np.asarray(reference.forward(case.layer, x, list(weights), **_ref_kwargs(case)))


def _magnitude(case: ConvCase, x: np.ndarray, weights: Sequence[np.ndarray]) -> np.ndarray:
    from conv_parity import reference

    return np.asarray(reference.magnitude(case.layer, x, list(weights), **_ref_kwargs(case)))


def _output_shape(case: ConvCase) -> tuple[int, ...]:
    from conv_parity import reference

    # Geometry keys included: an op's shape rule has no kernel arrays to read them from.
    return tuple(int(d) for d in reference.output_shape(case.layer, case.input_shape,
                                                        **case.kwargs))


def _remake(case: ConvCase, input_shape: Sequence[int] | None = None, **changes: Any) -> ConvCase:
    kw = {**case.kwargs, **changes}
    shape = case.input_shape if input_shape is None else tuple(int(d) for d in input_shape)
    return ConvCase.make(case.layer, kw, shape, case.policy_name, case.seed, case.mode)


# --------------------------------------------------------------------------- geometry helpers


@dataclass(frozen=True)
class _Geom:
    rank: int
    first: bool  # channels_first
    spatial_axes: tuple[int, ...]  # of the input and of the output
    channel_axis: int
    names: tuple[str, ...]

    @classmethod
    def of(cls, case: ConvCase) -> _Geom:
        rank = kinds.spatial_rank(case.kind, case.input_shape)
        first = case.kwargs.get("data_format") == "channels_first"
        axes = tuple(range(2, 2 + rank)) if first else tuple(range(1, 1 + rank))
        return cls(rank, first, axes, 1 if first else rank + 1, _AXIS_NAMES[rank])


def _pad_input(case: ConvCase, x: np.ndarray, pads: Sequence[tuple[int, int]],
               value: float = 0.0, mode: str = "constant") -> np.ndarray:
    g = _Geom.of(case)
    width = [(0, 0)] * x.ndim
    for ax, p in zip(g.spatial_axes, pads):
        width[ax] = p
    if mode == "edge":
        return np.pad(x, width, mode="edge")
    return np.pad(x, width, mode="constant", constant_values=value)


def _bias_index(case: ConvCase) -> int | None:
    if case.kind.is_op or not case.kwargs.get("use_bias") or case.kind.is_pool:
        return None
    return len(case.kind.weight_names) - 1


def _kernels(case: ConvCase, weights: Sequence[np.ndarray]) -> list[int]:
    b = _bias_index(case)
    return [i for i in range(len(weights)) if i != b]


# --------------------------------------------------------------------------- the matcher


class _Ctx:
    """Everything the candidates share: the case, its arrays, the reference and the verdict fn."""

    def __init__(self, case: ConvCase, x: np.ndarray, weights: Sequence[np.ndarray],
                 output: np.ndarray, backend: str, tolerance_fn: ToleranceFn | None,
                 reference: Expected | None = None) -> None:
        self.case, self.x, self.weights = case, np.asarray(x), [np.asarray(w) for w in weights]
        self.out = np.asarray(output, dtype=np.float64)
        self.backend = backend
        self.geom = _Geom.of(case)
        self.tolerance_fn = tolerance_fn
        self.reduction_size = geometry.reduction_size(case)  # the verdict's half-type bound
        self.ref: np.ndarray
        self.mag: np.ndarray
        if (reference is not None and reference.output is not None
                and reference.magnitude is not None):
            self.ref, self.mag = reference.output, reference.magnitude  # the engine's, reused
        else:
            self.ref = _forward(case, self.x, self.weights)
            self.mag = _magnitude(case, self.x, self.weights)

    def who(self) -> str:
        return f"{self.backend}'s output"

    def _close(self, a: np.ndarray, b: np.ndarray, mag: np.ndarray) -> np.ndarray:
        """Element-wise: `a` within the suite's tolerance of the candidate `b`."""
        tol = compare.tolerance(b, mag, self.case.dtype, self.reduction_size)
        with np.errstate(invalid="ignore", over="ignore"):
            ok = np.abs(a - b) <= tol
            ok |= np.isnan(a) & np.isnan(b)
            ok |= np.isinf(b) & (a == b)
        return ok

    def matches(self, cand: np.ndarray, mag: np.ndarray) -> bool:
        """True when the backend output equals `cand` and `cand` is not the correct answer."""
        cand = np.asarray(cand, dtype=np.float64)
        mag = np.asarray(mag, dtype=np.float64)
        mag = np.where(np.isfinite(mag), mag, np.abs(np.nan_to_num(cand)))  # never an inf tol
        if cand.shape != self.out.shape or cand.size == 0:
            return False
        if cand.shape == self.ref.shape and self._close(cand, self.ref, self.mag).all():
            return False  # indistinguishable from the right answer for this case
        if self.tolerance_fn is not None:
            return bool(np.all(self.tolerance_fn(cand, mag)))
        return bool(self._close(self.out, cand, mag).all())

    def matches_partial(self, cand: np.ndarray, mag: np.ndarray, defined: np.ndarray) -> bool:
        """Like matches(), comparing only where `defined` (a shift's vacated edge is not)."""
        if cand.shape != self.out.shape or defined.sum() < _MIN_PARTIAL:
            return False  # too few compared values: a match could be chance
        cand = np.where(defined, cand, self.out)
        if cand.shape == self.ref.shape:
            differs = ~self._close(cand, self.ref, self.mag) & defined
            if differs.sum() < 2:
                return False
        if self.tolerance_fn is not None:
            ok = np.asarray(self.tolerance_fn(cand, np.where(defined, mag, np.abs(self.out))))
            return bool(np.all(ok | ~defined))
        return bool(np.all(self._close(self.out, cand, mag) | ~defined))

    def evaluate(self, case: ConvCase, x: np.ndarray,
                 weights: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return _forward(case, x, weights), _magnitude(case, x, weights)


Candidate = tuple[str, str, Callable[[], bool]]

#: A partial comparison (a shift's vacated edge excluded) needs this many compared values.
_MIN_PARTIAL = 4

def _stride_variants(kw: dict[str, Any], g: Any) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(words, strides) for every axis's stride one more or one less (still >= 1)."""
    strides = kw.get("strides")
    if strides is None:
        return
    for i, name in enumerate(g.names):
        for delta in (1, -1):
            s = list(strides)
            s[i] += delta
            if s[i] >= 1:
                yield f"stride {s[i]} instead of {strides[i]} along {name}", tuple(s)



# --------------------------------------------------------------------------- value failures


def _value_candidates(ctx: _Ctx) -> Iterator[Candidate]:
    yield from _value_regime_candidates(ctx)
    if ctx.case.kind.is_adaptive:  # bins instead of a window (explain/adaptive_candidates.py)
        yield from adaptive_candidates(ctx)
        yield from _layout_candidates(ctx)
        yield from _batch_candidates(ctx)
        yield from _shift_candidates(ctx)
        return
    if ctx.case.kind.is_global:  # no window, padding or spatial output to get wrong
        yield from _global_pool_candidates(ctx)
        yield from _batch_candidates(ctx)
        return
    yield from _bias_candidates(ctx)
    yield from _kernel_flip_candidates(ctx)
    yield from _padding_candidates(ctx)
    yield from _groups_candidates(ctx)
    yield from _kwarg_candidates(ctx)
    yield from _pool_candidates(ctx)
    yield from _layout_candidates(ctx)
    yield from _batch_candidates(ctx)
    yield from _shift_candidates(ctx)


def _bias_candidates(ctx: _Ctx) -> Iterator[Candidate]:
    case, g = ctx.case, ctx.geom
    b = _bias_index(case)
    if b is None:
        return
    bias = ctx.weights[b]

    def missing() -> bool:
        w = list(ctx.weights)
        w[b] = np.zeros_like(bias)
        return ctx.matches(*ctx.evaluate(case, ctx.x, w))

    yield ("bias-missing", f"{ctx.who()} equals the reference without the bias", missing)

    name = case.kwargs.get("activation")

    def act(a: np.ndarray) -> np.ndarray:
        return _activations.apply(name, a)

    n_out = ctx.ref.shape[g.channel_axis]
    for ax in range(1, ctx.ref.ndim):
        if ax == g.channel_axis or ctx.ref.shape[ax] != n_out or n_out < 2:
            continue

        def wrong_axis(ax: int = ax) -> bool:
            bare = _remake(case, use_bias=False, activation=None)
            w = [ctx.weights[i] for i in _kernels(case, ctx.weights)]
            pre, mag = ctx.evaluate(bare, ctx.x, w)
            shape = [1] * pre.ndim
            shape[ax] = n_out
            b64 = np.asarray(bias, dtype=np.float64).reshape(shape)
            return ctx.matches(act(pre + b64), mag + np.abs(b64))

        where = "a spatial axis" if ax in g.spatial_axes else "the batch axis"
        if ax in g.spatial_axes:
            where = f"the {g.names[g.spatial_axes.index(ax)]} axis"
        yield ("bias-wrong-axis",
               f"{ctx.who()} equals the reference with the bias added along {where} (axis {ax}) "
               f"instead of the channel axis {g.channel_axis}", wrong_axis)


def _kernel_flip_candidates(ctx: _Ctx) -> Iterator[Candidate]:
    case, g = ctx.case, ctx.geom
    if case.kind.is_pool:
        return
    idx = _kernels(case, ctx.weights)
    if all(all(d == 1 for d in ctx.weights[i].shape[: g.rank]) for i in idx):
        return

    def flipped() -> bool:
        w = list(ctx.weights)
        for i in idx:
            w[i] = np.flip(w[i], axis=tuple(range(g.rank)))
        return ctx.matches(*ctx.evaluate(case, ctx.x, w))

    yield ("kernel-flipped",
           f"{ctx.who()} equals the reference with the kernel flipped along its spatial axes "
           f"(true convolution instead of cross-correlation, or the reverse)", flipped)


def _flip_sets(pads: Sequence[tuple[int, int]], names: Sequence[str]) -> list[tuple[int, ...]]:
    odd = [i for i, (a, b) in enumerate(pads) if a != b]
    sets: list[tuple[int, ...]] = []
    if odd:
        sets.append(tuple(odd))
    if len(odd) > 1:
        sets += [(i,) for i in odd]
    return sets


def _flip_words(dims: Sequence[int], names: Sequence[str], crop: bool = False) -> str:
    if len(dims) == len(names) and len(dims) > 1:
        what = "cropped" if crop else "padding"
        return f"the extra 'same' {what} at the start (top/left) instead of the end in every dim"
    parts = []
    for i in dims:
        n = names[i]
        unit = _UNIT[n]
        if crop:
            parts.append(f"the extra cropped {unit} taken from the {_END[n]} instead of the "
                         f"{_START[n]}")
        else:
            parts.append(f"the extra padding {unit} at the {_START[n]} instead of the {_END[n]}")
    return " and ".join(parts)


def _padding_candidates(ctx: _Ctx) -> Iterator[Candidate]:
    case, g = ctx.case, ctx.geom
    if case.kwargs.get("padding") != "same":
        return
    if case.kind.family == "conv_transpose":
        yield from _transpose_crop_candidates(ctx)
        return
    pads = geometry.same_pads(case)
    for dims in _flip_sets(pads, g.names):
        flipped = [(b, a) if i in dims else (a, b) for i, (a, b) in enumerate(pads)]

        def test(flipped: list[tuple[int, int]] = flipped) -> bool:
            return ctx.matches(*_explicit_pad(ctx, flipped))

        yield ("padding-flipped",
               f"{ctx.who()} equals the reference with {_flip_words(dims, g.names)}", test)


def _explicit_pad(ctx: _Ctx, pads: Sequence[tuple[int, int]],
                  count_padding: bool = False, mode: str = "constant") -> tuple[np.ndarray, ...]:
    """Evaluate the case with `pads` applied by hand and padding='valid' (the same semantics)."""
    case = ctx.case
    fam = case.kind.family
    if fam == "max_pool" and mode == "constant":
        xp = _pad_input(case, ctx.x, pads, value=-np.inf)
    else:
        xp = _pad_input(case, ctx.x, pads, mode=mode)
    valid = _remake(case, input_shape=xp.shape, padding="valid")
    y, mag = ctx.evaluate(valid, xp, ctx.weights)
    if fam == "max_pool" and mode == "constant":  # |-inf| would make the tolerance infinite
        mag = _magnitude(valid, _pad_input(case, np.abs(ctx.x), pads), ctx.weights)
    if fam == "average_pool" and mode == "constant" and not count_padding:
        ones = _pad_input(case, np.ones_like(ctx.x), pads)
        frac = _forward(valid, ones, [])
        with np.errstate(invalid="ignore", divide="ignore"):
            return y / frac, mag / frac
    return y, mag


def _transpose_crop_candidates(ctx: _Ctx) -> Iterator[Candidate]:
    """'same' for a transposed conv crops the full output; try the crop taken the other way."""
    case, g = ctx.case, ctx.geom
    if case.kwargs.get("output_padding") is not None:
        return
    full_case = _remake(case, padding="valid")
    k, s = geometry.effective_window(case)
    state: dict[str, Any] = {}

    def offsets() -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
        if "v" not in state:
            full, fmag = ctx.evaluate(full_case, ctx.x, ctx.weights)
            totals = []
            for ax, ki, si in zip(g.spatial_axes, k, s):
                n = case.input_shape[ax]
                totals.append((n - 1) * si + ki - ctx.ref.shape[ax])
            found = None
            for off in np.ndindex(*[max(t, 0) + 1 for t in totals]):
                sl = _crop_slices(g, off, ctx.ref.shape)
                if full[sl].shape == ctx.ref.shape and ctx._close(full[sl], ctx.ref,
                                                                 ctx.mag).all():
                    found = list(off)
                    break
            state["v"] = (full, fmag, totals, found)
        return state["v"]

    pads_like = [(0, 1)] * g.rank  # every dim may have an odd crop; filtered at test time
    for dims in _flip_sets(pads_like, g.names):

        def test(dims: tuple[int, ...] = dims) -> bool:
            full, fmag, totals, found = offsets()
            if found is None:
                return False
            off = list(found)
            for i in dims:
                off[i] = max(totals[i], 0) - found[i]
            if off == found:
                return False  # every crop in `dims` is centred: nothing to flip
            sl = _crop_slices(g, off, ctx.ref.shape)
            if full[sl].shape != ctx.ref.shape:
                return False
            return ctx.matches(full[sl], fmag[sl])

        yield ("padding-flipped",
               f"{ctx.who()} equals the reference with {_flip_words(dims, g.names, crop=True)}",
               test)


def _crop_slices(g: _Geom, offsets: Sequence[int], shape: Sequence[int]) -> tuple[slice, ...]:
    sl = [slice(None)] * len(shape)
    for ax, o in zip(g.spatial_axes, offsets):
        sl[ax] = slice(o, o + shape[ax])
    return tuple(sl)


def _groups_candidates(ctx: _Ctx) -> Iterator[Candidate]:
    case, g = ctx.case, ctx.geom
    groups = case.kwargs.get("groups", 1)
    if case.kind.family != "conv" or groups <= 1:
        return

    def test() -> bool:
        c_in = case.input_shape[g.channel_axis]
        per = c_in // groups
        xs = np.take(ctx.x, np.arange(per), axis=g.channel_axis)
        alt = _remake(case, input_shape=xs.shape, groups=1)
        return ctx.matches(*ctx.evaluate(alt, xs, ctx.weights))

    yield ("groups-ignored",
           f"{ctx.who()} equals the reference with groups ignored: every filter sees only the "
           f"first {case.input_shape[g.channel_axis] // groups} input channels", test)


def _kwarg_candidates(ctx: _Ctx) -> Iterator[Candidate]:
    """Kwarg alternatives that keep the output shape (screened by shape before any forward)."""
    case, g, kw = ctx.case, ctx.geom, ctx.case.kwargs
    alts: list[tuple[str, str, dict[str, Any]]] = []
    if "dilation_rate" in kw and max(kw["dilation_rate"]) > 1:
        alts.append(("dilation-ignored", "dilation_rate ignored (dilation 1)",
                     {"dilation_rate": (1,) * g.rank}))
    if kw.get("output_padding") is not None:
        alts.append(("output-padding-ignored", "output_padding ignored",
                     {"output_padding": None}))
    if kw.get("padding") == "causal":
        alts.append(("same-instead-of-causal", "padding='same' instead of 'causal'",
                     {"padding": "same"}))
    if case.kind.is_pool and "strides" in kw and kw["strides"] is None:
        alts.append(("pool-strides-default", "strides=None taken as 1 instead of pool_size",
                     {"strides": (1,) * g.rank}))
    for words, strides in _stride_variants(kw, g):
        alts.append(("stride-off-by-one", words, {"strides": strides}))
    for code, words, changes in alts:

        def test(changes: dict[str, Any] = changes) -> bool:
            alt = _remake(case, **changes)
            if _output_shape(alt) != ctx.out.shape:
                return False
            return ctx.matches(*ctx.evaluate(alt, ctx.x, ctx.weights))

        yield (code, f"{ctx.who()} equals the reference with {words}", test)


def _value_regime_candidates(ctx: _Ctx) -> Iterator[Candidate]:
    """What the value regimes (issue 23) found: a max pool that skips NaN, an average pool
    summed in its own low precision."""
    case = ctx.case
    if case.kind.family == "max_pool" and np.isnan(ctx.x).any():
        def drops_nan() -> bool:
            x = np.where(np.isnan(ctx.x), -np.inf, np.asarray(ctx.x, np.float64))
            cand, mag = ctx.evaluate(case, x, ctx.weights)
            lowest = -float(np.finfo(np.float32).max) if case.dtype == "bfloat16" else float(
                np.finfo(np.dtype(case.dtype)).min)
            cand = np.where(cand == -np.inf, lowest, cand)
            return ctx.matches(cand, np.where(np.isfinite(mag), mag, np.abs(cand)))

        yield ("max-pool-drops-nan",
               f"{ctx.who()} equals the reference max pooling with NaN skipped (a window of "
               f"NaN only gives the lowest finite value)", drops_nan)
    if case.kind.family == "average_pool" and case.dtype in ("float16", "bfloat16"):
        from conv_parity import bug_models

        def running() -> bool:
            cand = bug_models.low_precision_running_average(case, ctx.x)
            return cand is not None and ctx.matches(cand, ctx.mag)

        yield ("half-running-sum",
               f"{ctx.who()} equals the average pool summed as a running {case.dtype} total "
               f"(every partial sum rounded to {case.dtype}; the reference sums exactly)", running)


def _pool_candidates(ctx: _Ctx) -> Iterator[Candidate]:
    case = ctx.case
    if not case.kind.is_pool or case.kwargs.get("padding") != "same":
        return
    pads = geometry.same_pads(case)
    if not any(a or b for a, b in pads):
        return
    if case.kind.family == "average_pool":
        yield ("avg-pool-counts-padding",
               f"{ctx.who()} equals the reference average pooling with the padded zeros counted "
               f"in the divisor (count_include_pad)",
               lambda: ctx.matches(*_explicit_pad(ctx, pads, count_padding=True)))
    yield ("pool-edge-padding",
           f"{ctx.who()} equals the reference with the edge values copied into the padding",
           lambda: ctx.matches(*_explicit_pad(ctx, pads, mode="edge")))


def _global_pool_candidates(ctx: _Ctx) -> Iterator[Candidate]:
    """A global pool can reduce the wrong axes (data_format ignored) or reduce the wrong way."""
    case = ctx.case
    other_format = "channels_last" if ctx.geom.first else "channels_first"
    family = case.kind.family
    other_layer = case.layer.replace("Max", "Average") if family == "max_pool" \
        else case.layer.replace("Average", "Max")

    def agrees_with(alt: ConvCase) -> bool:
        return _output_shape(alt) == ctx.out.shape and ctx.matches(
            *ctx.evaluate(alt, ctx.x, ctx.weights))

    yield ("data-format-swapped",
           f"{ctx.who()} equals the reference computed as if data_format were {other_format} "
           f"(data_format={case.kwargs['data_format']!r} ignored: the wrong axes reduced)",
           lambda: agrees_with(_remake(case, data_format=other_format)))
    yield ("global-pool-other-reduction",
           f"{ctx.who()} equals the reference {'average' if family == 'max_pool' else 'max'} "
           f"over the whole input, not the {'max' if family == 'max_pool' else 'average'}",
           lambda: agrees_with(ConvCase.make(other_layer, case.kwargs, case.input_shape,
                                             case.dtype, case.seed, case.mode)))


def _layout_candidates(ctx: _Ctx) -> Iterator[Candidate]:
    case, g = ctx.case, ctx.geom
    other = "channels_last" if g.first else "channels_first"
    moved_to = -1 if g.first else 1

    def out_layout() -> bool:
        return ctx.matches(np.moveaxis(ctx.ref, g.channel_axis, moved_to),
                           np.moveaxis(ctx.mag, g.channel_axis, moved_to))

    yield ("data-format-swapped",
           f"{ctx.who()} equals the reference written in {other} layout (its axes transposed)",
           out_layout)

    def in_layout() -> bool:
        alt = _remake(case, data_format=other)
        if [tuple(w.shape) for w in ctx.weights] != alt.weight_shapes():
            return False
        if _output_shape(alt) != ctx.out.shape:
            return False
        return ctx.matches(*ctx.evaluate(alt, ctx.x, ctx.weights))

    yield ("data-format-swapped",
           f"{ctx.who()} equals the reference computed as if data_format were {other} "
           f"(data_format={case.kwargs['data_format']!r} ignored)", in_layout)

    if g.rank >= 2:
        h, w = g.spatial_axes[-2], g.spatial_axes[-1]
        yield ("hw-swapped", f"{ctx.who()} equals the reference with its H and W axes swapped",
               lambda: ctx.matches(np.swapaxes(ctx.ref, h, w), np.swapaxes(ctx.mag, h, w)))


def _batch_candidates(ctx: _Ctx) -> Iterator[Candidate]:
    n = ctx.ref.shape[0]
    if n < 2:
        return
    found: list[int] = []

    def test() -> bool:
        for i in range(n):
            js = [j for j in range(n) if ctx._close(ctx.out[i], ctx.ref[j], ctx.mag[j]).all()]
            if not js:
                return False
            found.append(i if i in js else js[0])
        return found != list(range(n))

    yield ("batch-permuted", f"{ctx.who()} holds the reference's batch items in the wrong "
           f"order (item i equals another item's reference)", test)


def _shift_candidates(ctx: _Ctx) -> Iterator[Candidate]:
    g = ctx.geom
    for i, ax in enumerate(g.spatial_axes):
        n = ctx.ref.shape[ax]
        name = g.names[i]
        if n < 2:
            continue
        for step in (1, -1):
            cand = np.roll(ctx.ref, step, axis=ax)
            mag = np.roll(ctx.mag, step, axis=ax)
            defined = np.ones(ctx.ref.shape, dtype=bool)
            vacated = [slice(None)] * ctx.ref.ndim
            vacated[ax] = slice(0, 1) if step == 1 else slice(n - 1, n)
            defined[tuple(vacated)] = False
            direction = _END[name] if step == 1 else _START[name]
            toward = {"bottom": "down", "top": "up", "right": "right", "left": "left",
                      "back": "back", "front": "forward"}[direction]
            index = f"{_UNIT[name]} i holds reference {_UNIT[name]} i{'-' if step == 1 else '+'}1"
            yield (f"shifted-{name.lower()}",
                   f"{ctx.who()} equals the reference shifted {toward} by one {_UNIT[name]} along "
                   f"{name} ({index}; the vacated edge not compared)",
                   partial(ctx.matches_partial, cand, mag, defined))
