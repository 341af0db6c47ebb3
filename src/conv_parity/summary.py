"""What a run's last line says, per backend, and the exit code that goes with it.

Pure rules over report results (JSON dicts), so ``check``, the terminal summary and the reports
say the same thing. Never "all conform" while a backend's numbers are wrong: a registered bug is
still a backend computing the wrong answer, only not a new one. Each result falls in one bucket:

* ``conforms``: pass, or an invalid configuration every backend and the spec reject;
* ``known-wrong``: a registered discrepancy that returns wrong values, shapes or symbolic shapes;
* ``known-cannot-run``: a registered discrepancy that raises, crashes or hangs where it must not;
* ``unsupported``: rejected, as the spec wants (or by every backend);
* ``new``: a discrepancy no entry explains (and, under a strict registry, a stale entry);
* ``not-reproduced``: a registered discrepancy that did not reproduce here (a pass, with a note);
* ``skip``: the backend is not available, or this Keras lacks the layer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from conv_parity.vocabulary import is_failure

BUCKETS = ("conforms", "known-wrong", "known-cannot-run", "unsupported", "new",
           "not-reproduced", "skip")
_WRONG = ("fail-values", "fail-shape", "fail-symbolic-shape")


def bucket(result: Mapping[str, Any]) -> str:
    """The bucket of one result (see the module docstring)."""
    verdict = result["verdict"]
    known = result.get("known") or {}
    if known.get("stale"):
        return "new" if known.get("strict", True) else "not-reproduced"
    if verdict == "xfail":
        observed = result.get("observed_verdict") or ""
        return "known-wrong" if observed in _WRONG else "known-cannot-run"
    if verdict == "skip":
        return "skip"
    if verdict == "unsupported":
        return "unsupported"
    return "new" if is_failure(verdict) else "conforms"


def exit_code(results: Iterable[Mapping[str, Any]], fail_on_known: bool = False) -> int:
    """1 when something new is wrong (or, with ``fail_on_known``, anything known is), else 0."""
    buckets = {bucket(r) for r in results}
    bad = {"new", "known-wrong", "known-cannot-run"} if fail_on_known else {"new"}
    return 1 if buckets & bad else 0


def _entry_hint(result: Mapping[str, Any]) -> str:
    known = result.get("known") or {}
    hint = known.get("id", "?")
    if known.get("fixed_in"):
        hint += f", fixed in Keras {known['fixed_in']}: upgrade"
    return hint


def final_line(results: list[Mapping[str, Any]]) -> str:
    """``2/3 backends conform; tensorflow: known discrepancy with wrong values
    (tf-bias-add-channels-first-wrong-axis)`` style, for a one-case ``check``: one phrase per
    backend that does not simply conform."""
    phrases = []
    conforming = 0
    modes = {(r.get("case") or {}).get("mode", "eager") for r in results}
    for r in results:
        kind = bucket(r)
        name = r["backend"]
        if len(modes) > 1:  # one row per backend and mode
            name += f" ({(r.get('case') or {}).get('mode', 'eager')})"
        if kind in ("conforms", "unsupported"):
            conforming += 1
        elif kind == "not-reproduced":
            conforming += 1
            phrases.append(f"{name}: known discrepancy {_entry_hint(r)} did not reproduce here")
        elif kind == "known-wrong":
            what = "values" if r.get("observed_verdict") == "fail-values" else "shape"
            phrases.append(f"{name}: WRONG {what} (known discrepancy {_entry_hint(r)})")
        elif kind == "known-cannot-run":
            phrases.append(f"{name}: cannot run it (known discrepancy {_entry_hint(r)})")
        elif kind == "new":
            phrases.append(f"{name}: NEW discrepancy ({r['verdict']})")
        elif kind == "skip":
            phrases.append(f"{name}: skipped")
    unit = "backend x mode results" if len(modes) > 1 else "backends"
    head = f"{conforming}/{len(results)} {unit} conform"
    if not phrases:
        return head + ": all conform"
    return head + "; " + "; ".join(phrases)


def counts(results: Iterable[Mapping[str, Any]]) -> dict[str, Counter]:
    """backend -> bucket -> count, for the terminal summary and the reports."""
    out: dict[str, Counter] = {}
    for r in results:
        out.setdefault(r["backend"], Counter())[bucket(r)] += 1
    return out


def counts_line(results: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per backend: ``tensorflow: 40 conform, 3 known wrong, 1 new``."""
    names = {"conforms": "conform", "known-wrong": "known wrong values/shapes",
             "known-cannot-run": "known cannot run", "unsupported": "unsupported (as the spec)",
             "new": "NEW discrepancies", "not-reproduced": "known discrepancies did not "
             "reproduce here", "skip": "skipped"}
    lines = []
    for backend, counter in counts(results).items():
        parts = [f"{counter[b]} {names[b]}" for b in BUCKETS if counter[b]]
        lines.append(f"{backend}: " + ", ".join(parts))
    return lines
