"""The one classifier of results, and what a run's last line says, per backend.

Pure rules over report results (JSON dicts: ``verdict``, ``known`` {``id``, ``stale``,
``strict``, ``fixed_in`` ...}, ``observed_verdict``, ``backend``): :func:`bucket` is the only
place that decides what a result *is*. Every rendering derives from it, so none can disagree:
the pytest outcome (:func:`as_pytest_outcome`, used by ``plugin.enforce`` and
``plugin.mark_known``), the terminal matrix and its summary lines, report.json's ``summary``
counts, the report.md and report.html matrices (:data:`CELL_COLUMNS`), ``check``'s last line
and every exit code. Never "all conform" while a backend's numbers are wrong: a registered bug
is still a backend computing the wrong answer, only not a new one. Each result falls in one
bucket:

* ``conforms``: pass;
* ``known-wrong``: a registered discrepancy that returns wrong values, shapes or symbolic shapes;
* ``known-cannot-run``: a registered discrepancy that raises, crashes or hangs where it must not;
* ``unsupported``: rejected, as the spec wants (or by every backend); it conforms, but is
  counted apart from ``conforms`` everywhere;
* ``new``: a discrepancy no entry explains, and, under a strict registry, a stale entry (a
  registered discrepancy that no longer reproduces: it fails the run so the entry gets fixed);
* ``not-reproduced``: a registered discrepancy that did not reproduce here, for a user (a
  pass, with a note);
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


#: The pytest outcome of each bucket (``fail_on_known`` turns the known ones into failures).
PYTEST_OUTCOMES: dict[str, str] = {
    "conforms": "passed", "unsupported": "passed", "not-reproduced": "passed",
    "new": "failed", "known-wrong": "xfailed", "known-cannot-run": "xfailed", "skip": "skipped",
}
KNOWN_BUCKETS = ("known-wrong", "known-cannot-run")
#: The columns of a matrix cell, each a set of buckets, in the order every matrix shows them
#: (the terminal's, report.md's and report.html's differ in words and glyphs only).
CELL_COLUMNS: dict[str, tuple[str, ...]] = {
    "ok": ("conforms",),
    "fail": ("new",),
    "xfail": KNOWN_BUCKETS,
    "not-reproduced": ("not-reproduced",),
    "unsupported": ("unsupported",),
    "skip": ("skip",),
}


def as_pytest_outcome(result: Mapping[str, Any], fail_on_known: bool = False) -> str:
    """``passed``, ``failed``, ``xfailed`` or ``skipped``: what pytest reports for the result.
    A stale entry under a strict registry is ``failed`` (as it is ``new`` everywhere else)."""
    outcome = PYTEST_OUTCOMES[bucket(result)]
    return "failed" if outcome == "xfailed" and fail_on_known else outcome


def failure_label(result: Mapping[str, Any]) -> str:
    """What a failing result is called where failures are listed: its verdict, or ``stale
    known discrepancy ID`` for a strict stale entry (whose verdict is ``pass``)."""
    known = result.get("known") or {}
    if known.get("stale"):
        return f"stale known discrepancy {known.get('id', '?')}"
    return str(result["verdict"])


def cell_counts(buckets: Mapping[str, int]) -> dict[str, int]:
    """Bucket counts folded into the matrix columns (:data:`CELL_COLUMNS`), zeros included:
    ``cell_counts({"known-wrong": 1, "known-cannot-run": 2})["xfail"] == 3``."""
    return {col: sum(buckets.get(b, 0) for b in members) for col, members in CELL_COLUMNS.items()}


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
        if kind == "conforms":
            conforming += 1
        elif kind == "unsupported":  # conforms, but computed nothing: never "all conform"
            conforming += 1
            phrases.append(f"{name}: rejects it, as the spec says (unsupported)")
        elif kind == "not-reproduced":
            conforming += 1
            phrases.append(f"{name}: known discrepancy {_entry_hint(r)} did not reproduce here")
        elif kind == "known-wrong":
            what = "values" if r.get("observed_verdict") == "fail-values" else "shape"
            phrases.append(f"{name}: WRONG {what} (known discrepancy {_entry_hint(r)})")
        elif kind == "known-cannot-run":
            phrases.append(f"{name}: cannot run it (known discrepancy {_entry_hint(r)})")
        elif kind == "new":
            phrases.append(f"{name}: NEW discrepancy ({failure_label(r)})")
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


_NAMES = {"conforms": "conform", "known-wrong": "known wrong values/shapes",
          "known-cannot-run": "known cannot run", "unsupported": "unsupported (as the spec)",
          "new": "NEW discrepancies", "not-reproduced": "known discrepancies did not "
          "reproduce here", "skip": "skipped"}


def counts_phrase(buckets: Mapping[str, int]) -> str:
    """``40 conform, 3 known wrong values/shapes, 1 NEW discrepancies``: non-zero buckets."""
    return ", ".join(f"{buckets[b]} {_NAMES[b]}" for b in BUCKETS if buckets.get(b))


def counts_line(results: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per backend: ``tensorflow: 40 conform, 3 known wrong values/shapes, 1 NEW
    discrepancies``."""
    return [f"{backend}: {counts_phrase(counter)}" for backend, counter in counts(results).items()]
