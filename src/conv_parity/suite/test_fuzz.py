"""Hypothesis fuzz tests: draw a configuration, check it on every selected backend at once.

Each example is one batched round trip (``conv_engine.check([case])``: every backend worker
concurrently), judged exactly like a grid case, so a failure shrinks to a minimal configuration
and ends in the same message, diagnosis and repro script (:func:`conv_parity.plugin.describe`).
Known discrepancies are filtered out by the strategy before they run (so one known bug cannot
eat the budget). The budget comes from the hypothesis profile (``--hypothesis-profile
dev|ci|nightly``); a plain ``pytest`` run uses the cheap ``dev`` budget.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conv_parity.case import ConvCase
from conv_parity.fuzzing import suite_settings
from conv_parity.plugin import ConformanceFailure, describe
from conv_parity.strategies import COUNTER, KnownFilter, conv_cases, edge_cases, invalid_cases


def _known_filter(engine: Any) -> KnownFilter:
    return KnownFilter(engine.registry, engine.backends, engine.keras_version, COUNTER)


def _check(engine: Any, case: ConvCase) -> None:
    """Fail with the grid's description for every failing outcome (xfail/known ones pass)."""
    failures = [o for o in engine.check([case]) if o.failed]
    engine.last_failures = failures  # the plugin records the last (minimal) ones in the report
    if failures:
        raise ConformanceFailure("\n\n".join(describe(o) for o in failures))


@pytest.mark.conv_fuzz
@suite_settings()
@given(data=st.data())
def test_fuzz_valid(conv_engine: Any, data: st.DataObject) -> None:
    """A valid configuration of any layer or op agrees with the reference on every backend."""
    case = data.draw(conv_cases(exclude_known=_known_filter(conv_engine)), label="case")
    _check(conv_engine, case)


@pytest.mark.conv_fuzz
@suite_settings(0.5)
@given(data=st.data())
def test_fuzz_edge(conv_engine: Any, data: st.DataObject) -> None:
    """Boundary configurations (output size 1, kernel == input, stride == input) agree too."""
    case = data.draw(edge_cases(exclude_known=_known_filter(conv_engine)), label="case")
    _check(conv_engine, case)


@pytest.mark.conv_fuzz
@suite_settings(0.5)
@given(data=st.data())
def test_fuzz_invalid(conv_engine: Any, data: st.DataObject) -> None:
    """Every backend rejects what the spec rejects (no tensor, no crash, no hang)."""
    case = data.draw(invalid_cases(exclude_known=_known_filter(conv_engine)), label="case")
    _check(conv_engine, case)
