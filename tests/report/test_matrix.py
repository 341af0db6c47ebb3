"""The last line and the exit code tell the truth: every bucket, exact wording."""

from __future__ import annotations

from conv_parity.report.matrix import bucket, counts_line, exit_code, final_line

KNOWN = {"id": "tf-bias", "link": "unreported", "fixed_in": None}


def _r(backend: str, verdict: str, observed: str | None = None, **known) -> dict:
    return {"backend": backend, "verdict": verdict, "observed_verdict": observed,
            "known": {**KNOWN, **known} if known or observed else None}


def test_a_known_wrong_value_is_never_all_conform() -> None:
    results = [_r("tensorflow", "xfail", "fail-values"), _r("torch", "pass"), _r("jax", "pass")]
    line = final_line(results)
    assert line == ("2/3 backends conform; tensorflow: WRONG values (known discrepancy tf-bias)")
    assert "all conform" not in line
    assert exit_code(results) == 0 and exit_code(results, fail_on_known=True) == 1


def test_each_bucket() -> None:
    assert bucket(_r("a", "pass")) == "conforms"
    assert bucket(_r("a", "unsupported")) == "unsupported"
    assert bucket(_r("a", "skip")) == "skip"
    assert bucket(_r("a", "fail-shape")) == "new"
    assert bucket(_r("a", "xfail", "fail-shape")) == "known-wrong"
    assert bucket(_r("a", "xfail", "fail-error-parity")) == "known-cannot-run"
    assert bucket(_r("a", "pass", stale=True, strict=False)) == "not-reproduced"
    assert bucket(_r("a", "pass", stale=True, strict=True)) == "new"


def test_fix_releases_and_not_reproduced_entries_are_named() -> None:
    results = [_r("torch", "xfail", "fail-error-parity", fixed_in="3.15.0"),
               _r("jax", "pass", stale=True, strict=False), _r("numpy", "fail-values")]
    assert final_line(results) == (
        "1/3 backends conform; torch: cannot run it (known discrepancy tf-bias, fixed in Keras "
        "3.15.0: upgrade); jax: known discrepancy tf-bias did not reproduce here; numpy: NEW "
        "discrepancy (fail-values)")
    assert exit_code(results) == 1
    assert counts_line(results) == ["torch: 1 known cannot run", "jax: 1 known discrepancies "
                                    "did not reproduce here", "numpy: 1 NEW discrepancies"]
    assert final_line([_r("jax", "pass"), _r("torch", "unsupported")]) == \
        "2/2 backends conform; torch: rejects it, as the spec says (unsupported)"


def test_a_strict_stale_entry_is_named_as_such() -> None:
    results = [_r("jax", "pass", stale=True, strict=True)]
    assert final_line(results) == ("0/1 backends conform; jax: NEW discrepancy (stale known "
                                   "discrepancy tf-bias)")
    assert exit_code(results) == 1
