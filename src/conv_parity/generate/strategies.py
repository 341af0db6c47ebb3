"""Hypothesis strategies for :class:`~conv_parity.case.ConvCase`, exported for users' own tests.

    from conv_parity.generate.strategies import conv_cases, valid_cases, invalid_cases, edge_cases, cases_for

Why they are built this way:

* **Valid by construction.** Sizes are *derived* from the kernel, stride and padding already
  drawn (``valid`` padding: ``n = dilated kernel + extra``; ``same``/``causal``: any ``n >= 1``,
  so inputs smaller than the dilated kernel occur), groups are drawn first and channels/filters
  as multiples of them, ``output_padding`` below the stride. The final check against
  :func:`conv_parity.reference.output_shape` then rejects only rare corner cases, so hypothesis
  spends its budget on real examples rather than on filtering.
* **Small tensors.** Bugs live in the geometry, not in the size; each example crosses process
  boundaries to every backend, so it must stay cheap (spatial sizes <= 16/10/6 for 1D/2D/3D).
* **Shrinking towards simple configs.** Every choice is ordered so that hypothesis's minimal
  value is the plain configuration: stride 1, no dilation, ``valid`` padding, ``channels_last``,
  groups 1, no ``output_padding``, default ``use_bias``, no activation, batch 1, one channel,
  the smallest size the kernel allows.
* **Known discrepancies filtered per (case, backend) pair** (``exclude_known=registry``): a case
  the registry explains on *every* selected backend is dropped before it runs, so one known bug
  does not eat a fuzz budget; a case it explains on only some of them still runs, and
  :meth:`KnownFilter.unexplained` drops just the known pairs' outcomes (issue 21: TensorFlow's
  channels_first entries used to hide those configurations from torch, jax and openvino too,
  58% of the drawn examples on a CPU without oneDNN). Both are counted in a :class:`FilterCounter`.
* **No module-global counter.** Each strategy counts into the ``counter`` it is given, or into a
  fresh one of its own, so they work outside pytest. Under the plugin, pass the session's counter
  (the ``conv_filter_counter`` fixture) and its drops reach the report and the summary.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from conv_parity import geometry, kinds, reference
from conv_parity.case import ConvCase
from conv_parity.errors import InvalidConfig, UsageError
from conv_parity.registry import Registry, installed_keras_version

if TYPE_CHECKING:
    from conv_parity.judge.verdict import Outcome

__all__ = [
    "EDGES",
    "FilterCounter",
    "KnownFilter",
    "boundaries",
    "cases_for",
    "conv_cases",
    "edge_cases",
    "invalid_cases",
    "is_valid",
    "valid_cases",
]

#: Largest spatial size per spatial rank, and largest kernel / dilation: small on purpose.
MAX_SIZE = {1: 16, 2: 10, 3: 6}
MAX_KERNEL = {1: 5, 2: 4, 3: 3}
MAX_DILATION = {1: 3, 2: 3, 3: 2}
MAX_STRIDE = 3
#: The boundaries :func:`edge_cases` draws from (see :func:`boundaries`).
EDGES = ("output_one", "kernel_eq_input", "stride_eq_input")

# Layers whose Keras constructor rejects strides > 1 together with dilation > 1.
_EXCLUSIVE = frozenset(f"Conv{r}D{t}" for r in (1, 2, 3) for t in ("", "Transpose"))


@dataclass
class FilterCounter:
    """How many drawn cases the strategies dropped, and why (thread-safe counts).

    ``filtered_known``: a drawn case a known-discrepancy entry explains on every selected backend
    (dropped before it runs).
    ``filtered_pairs``: (case, backend) pairs left unjudged because an entry explains them: every
    selected backend of a dropped case, and the known backends of a case that ran on the others.
    ``rejected_invalid``: a valid-case draw that the reference rejected (should stay rare).
    ``filter_errors``: a registry predicate raised on a case (a registry bug).
    Hypothesis may evaluate a filter again on the same draw while shrinking, so these count
    filter decisions, not distinct configurations.
    """

    filtered_known: int = 0
    filtered_pairs: int = 0
    rejected_invalid: int = 0
    filter_errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def reset(self) -> None:
        with self._lock:
            self.filtered_known = self.filtered_pairs = 0
            self.rejected_invalid = self.filter_errors = 0


class KnownFilter:
    """Known discrepancies as a filter of (case, backend) pairs, not of cases.

    Called as a predicate (a strategy's ``.filter``) it is False only for a case a registry
    entry explains on *every* selected backend: such a case has nothing left to judge. A case
    known on some backends runs; :meth:`unexplained` then drops the outcomes of its known pairs,
    so a TensorFlow entry does not hide the same configuration from torch.

    Entries are matched without worker facts (``facts=None`` holds for every scope, see
    :meth:`Entry.facts_hold`), so what is filtered does not depend on the machine. It uses
    :meth:`Entry.applies` rather than :meth:`Registry.match`, so filtering does not mark
    entries as used (that bookkeeping belongs to collected cases).
    """

    def __init__(self, registry: Registry, backends: Sequence[str] | None = None,
                 keras_version: str | None = None, counter: FilterCounter | None = None) -> None:
        from conv_parity.backends import KERAS_BACKENDS

        self.registry = registry
        self.backends = tuple(backends) if backends is not None else KERAS_BACKENDS
        self.keras_version = keras_version if keras_version is not None else (
            installed_keras_version())
        self.counter = counter if counter is not None else FilterCounter()

    def explains(self, case: ConvCase, backend: str) -> bool:
        """Whether an entry explains ``case`` on ``backend``; a predicate that raises explains
        nothing (counted in ``counter.filter_errors``: the engine will report that entry's
        error on the case)."""
        try:
            return any(e.applies(case, backend, self.keras_version)
                       for e in self.registry.entries)
        except Exception:
            self.counter.add("filter_errors")
            return False

    def known_on(self, case: ConvCase) -> tuple[str, ...]:
        """The selected backends on which an entry explains ``case``, in selection order."""
        return tuple(b for b in self.backends if self.explains(case, b))

    def known(self, case: ConvCase) -> bool:
        """Whether an entry explains ``case`` on every selected backend (nothing left to run)."""
        return bool(self.backends) and len(self.known_on(case)) == len(self.backends)

    def __call__(self, case: ConvCase) -> bool:
        if self.known(case):
            self.counter.add("filtered_known")
            self.counter.add("filtered_pairs", len(self.backends))
            return False
        return True

    def unexplained(self, outcomes: Iterable[Outcome], *, count: bool = True) -> list[Outcome]:
        """The outcomes of pairs no entry explains, in order; the others are the filtered pairs
        (counted in ``counter.filtered_pairs`` unless ``count=False``: a re-run of a case
        already counted). Whatever such a pair's verdict (``xfail`` where the bug reproduces
        here, anything else where this machine's facts differ), it is not judged."""
        outcomes = list(outcomes)
        known = {c: set(self.known_on(c)) for c in dict.fromkeys(o.case for o in outcomes)}
        kept = [o for o in outcomes if o.backend not in known[o.case]]
        if count and len(kept) < len(outcomes):
            self.counter.add("filtered_pairs", len(outcomes) - len(kept))
        return kept


def is_valid(case: ConvCase) -> bool:
    """Whether the spec accepts the case (the reference's shape rule does not raise)."""
    try:
        reference.output_shape(case.layer, case.input_shape, **case.kwargs)
    except (InvalidConfig, UsageError):
        return False
    return True


# --------------------------------------------------------------------------- building blocks


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, max(lo, hi))


def _shape(fmt: str, batch: int, spatial: Sequence[int], channels: int) -> tuple[int, ...]:
    if fmt == "channels_first":
        return (batch, channels, *spatial)
    return (batch, *spatial, channels)


def _k_eff(k: int, d: int) -> int:
    return (k - 1) * d + 1


@st.composite
def _raw_case(draw: Callable[[st.SearchStrategy[Any]], Any], layer: str, dtypes: Sequence[str],
              edge: str | None = None) -> ConvCase:
    """One configuration of `layer` (valid unless a corner case slips through: filtered later).

    The draw order matters for shrinking: structural choices first (rank, format, padding),
    then window geometry, then channel arithmetic, then sizes derived from all of them.
    """
    kind = kinds.get_kind(layer)
    fam = kind.family
    rank = kind.rank if kind.rank is not None else draw(st.sampled_from((1, 2, 3)))
    fmt = draw(st.sampled_from(kinds.DATA_FORMATS))
    if kind.is_global:  # one window over the whole input: only the sizes and keepdims to draw
        keepdims = draw(st.booleans())
        channels, batch = draw(_ints(1, 4)), draw(st.sampled_from((1, 2, 0, 3)))
        sizes = [draw(_ints(1, MAX_SIZE[rank])) for _ in range(rank)]
        return ConvCase.make(layer, {"data_format": fmt, "keepdims": keepdims},
                             _shape(fmt, batch, sizes, channels),
                             dtype=draw(st.sampled_from(tuple(dtypes))))
    if kind.is_adaptive:  # output_size bins the input: sizes, shrinking or growing, to draw
        channels, batch = draw(_ints(1, 4)), draw(st.sampled_from((1, 2, 0, 3)))
        sizes = [draw(_ints(1, MAX_SIZE[rank])) for _ in range(rank)]
        out = tuple(draw(_ints(1, n + 2)) for n in sizes)
        policy = draw(st.sampled_from(tuple(dtypes)))
        return ConvCase.make(layer, {"data_format": fmt, "output_size": out},
                             _shape(fmt, batch, sizes, channels),
                             dtype=_op_dtype(policy) if kind.is_op else policy)
    paddings = ("valid", "same", "causal") if layer == "Conv1D" else ("valid", "same")
    padding = draw(st.sampled_from(paddings))
    kmax = MAX_KERNEL[rank]
    kw: dict[str, Any] = {"padding": padding, "data_format": fmt}

    # window geometry
    if kind.is_pool:
        window = tuple(draw(_ints(1, kmax)) for _ in range(rank))
        dilation = (1,) * rank
        strides_t = draw(st.one_of(
            st.none(), st.tuples(*(_ints(1, MAX_STRIDE) for _ in range(rank)))))
        kw["pool_size"] = window
        kw["strides"] = strides_t
        strides = window if strides_t is None else strides_t
    else:
        window = tuple(draw(_ints(1, kmax)) for _ in range(rank))
        dilation = tuple(draw(_ints(1, MAX_DILATION[rank])) for _ in range(rank))
        if layer in _EXCLUSIVE and max(dilation) > 1:
            strides = (1,) * rank  # Keras's BaseConv rejects strides > 1 with dilation > 1
        else:
            strides = tuple(draw(_ints(1, MAX_STRIDE)) for _ in range(rank))
        kw.update(kernel_size=window, dilation_rate=dilation, strides=strides)

    # channels, filters, groups, depth multiplier, output padding
    if fam == "conv":
        groups = draw(st.sampled_from((1, 2, 3, 4)))
        channels = groups * draw(_ints(1, 2 if groups > 1 else 4))
        filters = groups * draw(_ints(1, 2 if groups > 1 else 4))
        kw.update(filters=filters, groups=groups)
    else:
        channels = draw(_ints(1, 4))
        if fam in ("conv_transpose", "separable"):
            kw["filters"] = draw(_ints(1, 4))
        if fam in ("depthwise", "separable"):
            kw["depth_multiplier"] = draw(_ints(1, 3))
    if fam == "conv_transpose" and draw(st.booleans()):
        kw["output_padding"] = tuple(draw(_ints(0, s - 1)) for s in strides)
    if not kind.is_op and not kind.is_pool:
        kw["use_bias"] = draw(st.sampled_from((True, False)))
        kw["activation"] = draw(st.sampled_from((None, "relu", "tanh", "sigmoid", "linear")))
    batch = draw(st.sampled_from((1, 2, 0, 3)))

    # spatial sizes, derived from the geometry so that most draws are valid
    cap = MAX_SIZE[rank]
    spatial: list[int] = []
    for i in range(rank):
        k_eff = _k_eff(window[i], dilation[i])
        if fam != "conv_transpose" and padding == "valid":
            spatial.append(k_eff + draw(_ints(0, max(cap - k_eff, 2))))
        else:
            spatial.append(draw(_ints(1, cap)))
    if edge is not None:
        _apply_edge(draw, edge, _Draft(layer, fam, kw, spatial, window, dilation, strides))
    policy = draw(st.sampled_from(tuple(dtypes)))  # a dtype or any dtype policy
    if kind.is_op:
        policy = _op_dtype(policy)
    case = ConvCase.make(layer, kw, _shape(fmt, batch, spatial, channels), dtype=policy)
    return case


def _op_dtype(policy: str) -> str:
    """Ops have no policy: a mixed one's compute dtype for both arrays."""
    from conv_parity.policies import get

    return get(policy).compute


@dataclass
class _Draft:
    """A drawn configuration while an edge moves it: the kwargs and spatial sizes are edited in
    place; the window, dilation and strides are what was drawn."""

    layer: str
    fam: str
    kw: dict[str, Any]
    spatial: list[int]
    window: tuple[int, ...]
    dilation: tuple[int, ...]
    strides: tuple[int, ...]

    @property
    def valid_conv(self) -> bool:
        """'valid' padding on a layer whose input must cover the window (not a transpose)."""
        return self.kw["padding"] == "valid" and self.fam != "conv_transpose"


def _apply_edge(draw: Callable[[st.SearchStrategy[Any]], Any], edge: str, d: _Draft) -> None:
    """Move one axis (and for `output_one` every axis) of a draw onto the boundary `edge`."""
    axis = draw(_ints(0, len(d.spatial) - 1))  # drawn for every edge: keeps the draws' order
    if edge == "output_one":
        _edge_output_one(draw, d)
    elif edge == "kernel_eq_input":
        d.spatial[axis] = d.window[axis]
        if d.valid_conv and d.dilation[axis] > 1:
            dil = list(d.dilation)
            dil[axis] = 1
            d.kw["dilation_rate"] = tuple(dil)
    elif edge == "stride_eq_input":
        _edge_stride_eq_input(draw, d, axis)
    else:
        raise UsageError(f"unknown edge {edge!r}; choose from {EDGES}")


def _edge_output_one(draw: Callable[[st.SearchStrategy[Any]], Any], d: _Draft) -> None:
    """Every axis produces exactly one output position."""
    for i in range(len(d.spatial)):
        k_eff, s = _k_eff(d.window[i], d.dilation[i]), d.strides[i]
        if d.kw["padding"] == "valid":
            d.spatial[i] = k_eff + draw(_ints(0, s - 1))  # (n - K) // s == 0
        else:
            d.spatial[i] = draw(_ints(1, s))  # ceil(n / s) == 1


def _edge_stride_eq_input(draw: Callable[[st.SearchStrategy[Any]], Any], d: _Draft,
                          axis: int) -> None:
    """The input along ``axis`` is exactly one stride long (a stride of 1 is made a real one)."""
    kw, rank = d.kw, len(d.spatial)
    s = d.strides[axis]
    if s == 1:  # make the stride a real one, within what the layer allows
        s = draw(_ints(2, MAX_STRIDE + 1))
        if d.layer in _EXCLUSIVE:
            kw["dilation_rate"] = (1,) * rank
        st_list = list(d.strides)
        st_list[axis] = s
        if "pool_size" in kw and kw["strides"] is None:
            pool = list(kw["pool_size"])  # strides None means strides = pool_size
            pool[axis] = s
            kw["pool_size"] = tuple(pool)
        else:
            kw["strides"] = tuple(st_list)
        if d.fam == "conv_transpose" and kw.get("output_padding") is not None:
            ops = list(kw["output_padding"])
            ops[axis] = min(ops[axis], s - 1)
            kw["output_padding"] = tuple(ops)
    d.spatial[axis] = s
    window_key = "pool_size" if "pool_size" in kw else "kernel_size"
    win = list(kw[window_key])
    dil = kw.get("dilation_rate", (1,) * rank)
    if d.valid_conv and _k_eff(win[axis], dil[axis]) > s:
        win[axis] = max(1, min(win[axis], s))
        kw[window_key] = tuple(win)
        if "dilation_rate" in kw:
            dl = list(dil)
            dl[axis] = 1
            kw["dilation_rate"] = tuple(dl)


def _valid_on_edge(edge: str, case: ConvCase) -> bool:
    return is_valid(case) and edge in boundaries(case)


def boundaries(case: ConvCase) -> list[str]:
    """Which boundaries of :data:`EDGES` the case sits on (any spatial axis; output_one: all)."""
    spatial = case.spatial_shape
    window, strides = geometry.window(case), geometry.strides(case)
    out_spatial = geometry.of(case).out_spatial
    found = []
    if all(o == 1 for o in out_spatial):
        found.append("output_one")
    if any(k == n for k, n in zip(window, spatial)):
        found.append("kernel_eq_input")
    if any(s == n and s > 1 for s, n in zip(strides, spatial)):
        found.append("stride_eq_input")
    return found


def _layers(layers: Iterable[str] | None) -> list[str]:
    names = list(kinds.KINDS) if layers is None else list(layers)
    for name in names:
        kinds.get_kind(name)
    if not names:
        raise UsageError("no layers selected")
    return names


def _counter(counter: FilterCounter | None) -> FilterCounter:
    """The counter a strategy counts into: the one passed, else a new one for this call."""
    return counter if counter is not None else FilterCounter()


def _with_filters(strategy: st.SearchStrategy[ConvCase], counter: FilterCounter,
                  exclude_known: Registry | KnownFilter | None,
                  backends: Sequence[str] | None) -> st.SearchStrategy[ConvCase]:
    def valid(case: ConvCase) -> bool:
        ok = is_valid(case)
        if not ok:
            counter.add("rejected_invalid")
        return ok

    strategy = strategy.filter(valid)
    if exclude_known is not None:
        known = exclude_known if isinstance(exclude_known, KnownFilter) else KnownFilter(
            exclude_known, backends, counter=counter)
        strategy = strategy.filter(known)
    return strategy


# --------------------------------------------------------------------------- public strategies


def cases_for(layer_name: str, *, dtypes: Sequence[str] = ("float32",),
              exclude_known: Registry | KnownFilter | None = None,
              backends: Sequence[str] | None = None,
              counter: FilterCounter | None = None) -> st.SearchStrategy[ConvCase]:
    """Valid cases of one layer or op (``"Conv2D"``, ``"ops.conv_transpose"``, ...).

    ``exclude_known``: drop cases a registry entry explains on every one of ``backends``
    (default: every backend), counted in ``counter`` (default: a new :class:`FilterCounter`);
    a case known on only some of them is kept (see :meth:`KnownFilter.unexplained`).
    """
    kinds.get_kind(layer_name)
    return _with_filters(_raw_case(layer_name, tuple(dtypes)), _counter(counter),
                         exclude_known, backends)


def conv_cases(layers: Iterable[str] | None = None, *, dtypes: Sequence[str] = ("float32",),
               exclude_known: Registry | KnownFilter | None = None,
               backends: Sequence[str] | None = None,
               counter: FilterCounter | None = None) -> st.SearchStrategy[ConvCase]:
    """Valid cases of any kind (``one_of`` over :func:`cases_for`); shrinks towards Conv1D.

    The validity and known filters sit outside ``one_of`` so that one filter object (and one
    counter) sees every draw.
    """
    names = _layers(layers)
    raw = st.one_of(*(_raw_case(n, tuple(dtypes)) for n in names))
    return _with_filters(raw, _counter(counter), exclude_known, backends)


valid_cases = conv_cases


def edge_cases(layers: Iterable[str] | None = None, *, edges: Sequence[str] = EDGES,
               dtypes: Sequence[str] = ("float32",),
               exclude_known: Registry | KnownFilter | None = None,
               backends: Sequence[str] | None = None,
               counter: FilterCounter | None = None) -> st.SearchStrategy[ConvCase]:
    """Valid cases sitting exactly on a boundary: output size 1, kernel == input, stride == input.

    Transposed convolutions never produce a single output position from a valid draw, so for
    them only ``kernel_eq_input`` and ``stride_eq_input`` are drawn.
    """
    for e in edges:
        if e not in EDGES:
            raise UsageError(f"unknown edge {e!r}; choose from {EDGES}")
    options: list[st.SearchStrategy[ConvCase]] = []
    for name in _layers(layers):
        fam = kinds.get_kind(name).family
        for e in edges:
            if e == "output_one" and fam == "conv_transpose":
                continue
            options.append(_raw_case(name, tuple(dtypes), edge=e).filter(
                partial(_valid_on_edge, e)))
    if not options:
        raise UsageError(f"no edge can be drawn for layers {layers} and edges {edges}")
    return _with_filters(st.one_of(*options), _counter(counter), exclude_known, backends)


# Each maker breaks exactly one rule of the spec in an otherwise valid draw.
def _break_kernel(kw: dict[str, Any], spatial: list[int], draw: Any) -> None:
    kw["padding"] = "valid"
    key = "pool_size" if "pool_size" in kw else "kernel_size"
    win = list(kw[key])
    win[0] = spatial[0] + draw(_ints(1, 3))
    kw[key] = tuple(win)


def _break_zero(key: str, bad: tuple[int, ...] = (0, -1)
                ) -> Callable[[dict[str, Any], list[int], Any], None]:
    """Set axis 0 of `key` to a non-positive value (kernel: 0 only, a weight dimension)."""
    def make(kw: dict[str, Any], spatial: list[int], draw: Any) -> None:
        value = list(kw.get(key) or kw.get("pool_size") or (1,) * len(spatial))
        value[0] = draw(st.sampled_from(bad))
        kw[key] = tuple(value)
    return make


@st.composite
def _invalid_case(draw: Callable[[st.SearchStrategy[Any]], Any], layer: str,
                  dtypes: Sequence[str]) -> ConvCase:
    base = draw(_raw_case(layer, dtypes))
    kind = base.kind
    kw = dict(base.kwargs)
    cf = kw["data_format"] == "channels_first"
    shape = list(base.input_shape)
    spatial = shape[2:] if cf else shape[1:-1]
    rules: list[str] = ["kernel_too_big", "zero_stride"]
    if not kind.is_pool:
        rules += ["zero_kernel", "zero_dilation"]
    if kind.family == "conv":
        rules += ["groups_not_dividing"]
    if kind.family == "conv_transpose":
        rules += ["output_padding_ge_stride"]
    if layer in _EXCLUSIVE:
        rules += ["stride_and_dilation"]
    if not kind.is_op and layer != "Conv1D" and not kind.is_pool:
        rules += ["causal_not_conv1d"]
    rule = draw(st.sampled_from(rules))
    if rule == "kernel_too_big":
        if kind.family == "conv_transpose":
            kw["strides"] = (1,) * len(spatial)
            kw["padding"] = "same"
            kw["output_padding"] = (0,) * len(spatial)
            # length (n - 1) * s + K % 2 + op = 0 when n == 1, K even, op == 0
            spatial[0] = 1
            k = list(kw["kernel_size"])
            k[0] = 2 * draw(_ints(1, 2))
            kw["kernel_size"] = tuple(k)
            kw["dilation_rate"] = (1,) * len(spatial)
        else:
            if "dilation_rate" in kw:
                kw["dilation_rate"] = (1,) * len(spatial)
            _break_kernel(kw, spatial, draw)
    elif rule == "zero_stride":
        _break_zero("strides")(kw, spatial, draw)
    elif rule == "zero_kernel":
        _break_zero("kernel_size", (0,))(kw, spatial, draw)
    elif rule == "zero_dilation":
        _break_zero("dilation_rate")(kw, spatial, draw)
    elif rule == "groups_not_dividing":
        c = shape[1] if cf else shape[-1]
        groups = c + 1 if c == 1 else draw(st.sampled_from([g for g in (2, 3, 4, 5)
                                                            if c % g] or [c + 1]))
        kw["groups"] = groups
        kw["filters"] = groups * max(1, kw["filters"] // max(1, kw["groups"]))
    elif rule == "output_padding_ge_stride":
        kw["output_padding"] = tuple(s + draw(_ints(0, 1)) for s in kw["strides"])
    elif rule == "stride_and_dilation":
        n = len(spatial)
        kw["strides"] = (2,) * n
        kw["dilation_rate"] = (2,) * n
        kw["padding"] = "same"
    elif rule == "causal_not_conv1d":
        kw["padding"] = "causal"
    new_shape = _shape(kw["data_format"], shape[0], spatial, shape[1] if cf else shape[-1])
    return ConvCase.make(layer, kw, new_shape, dtype=base.policy_name)


def invalid_cases(layers: Iterable[str] | None = None, *, dtypes: Sequence[str] = ("float32",),
                  exclude_known: Registry | KnownFilter | None = None,
                  backends: Sequence[str] | None = None,
                  counter: FilterCounter | None = None) -> st.SearchStrategy[ConvCase]:
    """Cases the spec rejects (:class:`InvalidConfig`): every backend must raise on them.

    One rule is broken per case (kernel larger than the input with ``valid`` padding, a zero or
    negative stride/kernel/dilation, groups not dividing the channels, ``output_padding >=
    strides``, strides and dilation both > 1 on ``ConvND``, ``causal`` outside Conv1D).
    """
    names = [n for n in _layers(layers)
             if not kinds.get_kind(n).is_global and not kinds.get_kind(n).is_adaptive]
    if not names:  # a global or adaptive pool takes no window, stride or padding to break
        raise UsageError(f"no rule of the spec can be broken for {list(layers or ())}: "
                         "global and adaptive pooling have no window, stride or padding "
                         "arguments")
    raw = st.one_of(*(_invalid_case(n, tuple(dtypes)) for n in names))
    strategy = raw.filter(lambda c: not is_valid(c))
    if exclude_known is not None:
        strategy = strategy.filter(exclude_known if isinstance(exclude_known, KnownFilter)
                                   else KnownFilter(exclude_known, backends,
                                                    counter=_counter(counter)))
    return strategy
