"""Hypothesis fuzz tests: draw a configuration, check it on every selected backend at once.

Each example is one batched round trip (``conv_engine.check([case])``: every backend worker
concurrently), judged exactly like a grid case, so a failure shrinks to a minimal configuration
and ends in the same message, diagnosis and repro script (:func:`conv_parity.plugin.describe`).
Known discrepancies are filtered per (case, backend) pair: a configuration the registry explains
on every selected backend is dropped by the strategy before it runs (so one known bug cannot eat
the budget); one it explains on some backends runs, and only the other backends' outcomes are
judged. Both are counted in the session's counter (``conv_filter_counter``). Each example's
failing outcomes go to ``conv_record_failures``: the last (minimal) ones reach the report. The
budget comes from the hypothesis profile (``--hypothesis-profile dev|ci|nightly``); a plain
``pytest`` run uses the cheap ``dev`` budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conv_parity.case import ConvCase
from conv_parity.fuzzing import suite_settings
from conv_parity.generate.strategies import (
    FilterCounter,
    KnownFilter,
    conv_cases,
    edge_cases,
    invalid_cases,
)
from conv_parity.plugin import ConformanceFailure, describe

if TYPE_CHECKING:
    from conv_parity.engine import Engine
    from conv_parity.judge.verdict import Outcome

Record = Callable[[Sequence["Outcome"]], None]


def _known_filter(engine: Engine, counter: FilterCounter) -> KnownFilter:
    return KnownFilter(engine.registry, engine.backends, engine.keras_version, counter)


def _check(engine: Engine, known: KnownFilter, record: Record, case: ConvCase) -> None:
    """Fail with the grid's description for every failing outcome of a pair no entry explains
    (xfail ones pass; a known pair is not judged, see KnownFilter.unexplained)."""
    failures = [o for o in known.unexplained(engine.check([case])) if o.failed]
    record(failures)
    if failures:
        raise ConformanceFailure("\n\n".join(describe(o) for o in failures))


@pytest.mark.conv_fuzz
@suite_settings()
@given(data=st.data())
def test_fuzz_valid(conv_engine: Engine, conv_filter_counter: FilterCounter,
                    conv_record_failures: Record, data: st.DataObject) -> None:
    """A valid configuration of any layer or op agrees with the reference on every backend."""
    known = _known_filter(conv_engine, conv_filter_counter)
    case = data.draw(conv_cases(exclude_known=known), label="case")
    _check(conv_engine, known, conv_record_failures, case)


@pytest.mark.conv_fuzz
@suite_settings(0.5)
@given(data=st.data())
def test_fuzz_edge(conv_engine: Engine, conv_filter_counter: FilterCounter,
                   conv_record_failures: Record, data: st.DataObject) -> None:
    """Boundary configurations (output size 1, kernel == input, stride == input) agree too."""
    known = _known_filter(conv_engine, conv_filter_counter)
    case = data.draw(edge_cases(exclude_known=known), label="case")
    _check(conv_engine, known, conv_record_failures, case)


@pytest.mark.conv_fuzz
@suite_settings(0.5)
@given(data=st.data())
def test_fuzz_invalid(conv_engine: Engine, conv_filter_counter: FilterCounter,
                      conv_record_failures: Record, data: st.DataObject) -> None:
    """Every backend rejects what the spec rejects (no tensor, no crash, no hang)."""
    known = _known_filter(conv_engine, conv_filter_counter)
    case = data.draw(invalid_cases(exclude_known=known), label="case")
    _check(conv_engine, known, conv_record_failures, case)
