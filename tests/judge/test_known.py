"""The known-discrepancy rule (judge.known.apply_entry): what a matching entry does to a verdict."""

from __future__ import annotations

from typing import Any

import pytest

from conv_parity.case import ConvCase
from conv_parity.judge.known import apply_entry
from conv_parity.judge.verdict import Outcome
from conv_parity.registry.entries import Entry, _parse_entry

CASE = ConvCase.make("AveragePooling2D", {"pool_size": 2, "padding": "same"}, (2, 5, 5, 1))


def _entry(**extra: Any) -> Entry:
    raw = {"id": "demo", "keras": ">=3.0", "backends": ["torch"], "layers": ["AveragePooling2D"],
           "verdict": "fail-values", "link": "https://example.invalid/1", "note": "demo", **extra}
    return _parse_entry(raw, "test")


def _judged(verdict: str, entry: Entry, strict: bool = True) -> Outcome:
    out = Outcome(CASE, "torch", verdict, "the message")
    apply_entry(out, entry, "3.15.1", strict=strict)
    return out


def test_an_entry_that_explains_the_verdict_makes_it_xfail_and_keeps_what_was_seen() -> None:
    out = _judged("fail-values", _entry())
    assert (out.verdict, out.observed_verdict) == ("xfail", "fail-values")
    assert out.message.startswith("known discrepancy demo (https://example.invalid/1)")
    assert out.known is not None and out.known["id"] == "demo"


def test_a_keras_wide_entry_makes_it_unsupported() -> None:
    out = _judged("fail-values", _entry(keras_wide=True))
    assert (out.verdict, out.observed_verdict) == ("unsupported", "fail-values")
    assert "Keras-wide limitation" in out.message


@pytest.mark.parametrize("strict", [True, False])
def test_a_pass_under_an_entry_is_stale_a_defect_only_under_a_strict_registry(
        strict: bool) -> None:
    out = _judged("pass", _entry(), strict=strict)
    assert out.verdict == "pass"
    assert out.known is not None and out.known["stale"] is True and out.known["strict"] is strict
    assert ("no longer reproduces" in out.message) is strict


def test_a_nondeterministic_entry_that_did_not_show_is_a_noted_pass_never_stale() -> None:
    out = _judged("pass", _entry(nondeterministic=True, outcomes=["fail-values", "crash"]))
    assert out.verdict == "pass" and out.known is not None
    assert out.known["shown"] is False and "stale" not in out.known


def test_an_entry_expecting_another_failure_leaves_the_verdict_and_says_so() -> None:
    out = _judged("fail-shape", _entry())
    assert out.verdict == "fail-shape"
    assert out.message.endswith("(known discrepancy demo expects fail-values instead)")


def test_a_model_layer_whose_weights_hide_the_bug_is_not_stale_when_seeded_arrays_show_it() -> None:
    from conv_parity.judge.known import stale_but_seeded_reproduces

    real = _judged("pass", _entry())  # the entry did not show on the layer's own weights
    assert real.known is not None and real.known["stale"]
    assert not stale_but_seeded_reproduces(real, _judged("pass", _entry()))  # nor on seeded
    assert real.known["stale"]
    assert not stale_but_seeded_reproduces(real, None)
    assert stale_but_seeded_reproduces(real, _judged("fail-values", _entry()))
    assert real.known["stale"] is False and real.known["hidden_by_weights"] is True
    assert real.verdict == "pass" and "reproduces with seeded non-zero weights" in real.message
    fresh = _judged("fail-values", _entry())  # not stale: nothing to recheck
    assert not stale_but_seeded_reproduces(fresh, _judged("fail-values", _entry()))
