"""The value regimes a profile draws (issue 23): each regime's seeded share of the profile's
cases, remade with that input (:mod:`conv_parity.values`), then filled until every behaviour
the regime exists for is present.

Why a share plus filling: a regime's question is per family ("does max pooling propagate NaN",
"does a float16 average pool overflow", "where does max pooling's gradient go on a tie"), so a
small hash-chosen share of the grid answers it, and the filling guarantees the cases that ask
it (a float16 average pool for ``large``, a max-pool gradient for ``ties``) whatever the hash
picked. The choice is made on the profile's whole grid; a selection (layers, modes, policies)
filters it, so a selected run's regime cases are a subset of the full run's.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable

from conv_parity import geometry
from conv_parity.case import ConvCase
from conv_parity.values import NON_FINITE

Need = Callable[[ConvCase], bool]


def _family(c: ConvCase) -> str:
    return c.kind.family


def _avg_pool(dtype: str, min_taps: int) -> Need:
    def need(c: ConvCase) -> bool:
        taps = 1
        for k in geometry.window(c):
            taps *= k
        return _family(c) == "average_pool" and c.dtype == dtype and taps >= min_taps
    return need


#: Behaviour every regime must meet: max pooling, average pooling and a convolution.
_EVERY: dict[str, Need] = {
    "max pool": lambda c: _family(c) == "max_pool",
    "average pool": lambda c: _family(c) == "average_pool",
    "convolution": lambda c: not c.kind.is_pool,
}
#: What a regime adds (the seen discrepancies of issue 23 it exists to catch).
NEEDS: dict[str, dict[str, Need]] = {
    "positive": {"bfloat16 average pool": _avg_pool("bfloat16", 4)},
    "large": {"float16 average pool of >= 4 taps (the window sum passes 65504)":
              _avg_pool("float16", 4),
              "bfloat16 average pool": _avg_pool("bfloat16", 4)},
    "nan": {},
    "inf": {},
    "ties": {"max-pool gradient": lambda c: _family(c) == "max_pool" and c.mode == "grad"},
    "zeros": {"max-pool gradient": lambda c: _family(c) == "max_pool" and c.mode == "grad"},
}


def _rank(case: ConvCase, regime: str) -> int:
    return zlib.crc32(f"{case.id}|values:{regime}".encode())


def _eligible(case: ConvCase, regime: str) -> bool:
    """A case the regime can run: the spec accepts it (a rejected one has no input to speak
    of), and a NaN / inf input only in a forward mode (its gradient is not defined)."""
    if case.values != "normal" or geometry.or_none(case) is None:
        return False
    if 0 in case.input_shape:
        return False
    return not (regime in NON_FINITE and case.mode == "grad")


def remake(case: ConvCase, regime: str) -> ConvCase:
    """``case`` with the input of ``regime`` (same configuration, policy, mode; seed derived
    from the new id, so the regime's data is a function of the id)."""
    return ConvCase.make(case.layer, case.kwargs, case.input_shape, case.policy_name,
                         mode=case.mode, values=regime)


def value_cases(grid: Iterable[ConvCase], shares: Iterable[tuple[str, int]]) -> list[ConvCase]:
    """Each regime's cases drawn from ``grid`` (a profile's whole, unfiltered grid): one case in
    ``every`` (0: none but the filling), then for each of the regime's needs without a case, the
    eligible case that needs it with the smallest hash."""
    base = list(grid)
    out: dict[ConvCase, None] = {}
    for regime, every in shares:
        eligible = sorted((c for c in base if _eligible(c, regime)), key=lambda c: _rank(c, regime))
        chosen = [c for c in eligible if every > 0 and _rank(c, regime) % every == 0]
        for need in {**_EVERY, **NEEDS[regime]}.values():
            if not any(need(c) for c in chosen):
                chosen.extend([c for c in eligible if need(c)][:1])
        for case in chosen:
            out.setdefault(remake(case, regime))
    return list(out)


__all__ = ["NEEDS", "remake", "value_cases"]
