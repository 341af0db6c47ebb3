"""The nightly watch section: what a run on another Keras (a keras-nightly, usually) says that a
run of the same cases on the installed release does not. Pure JSON in, text out.

:func:`compare` takes two report documents (the watched run and the baseline run) and returns the
section (a JSON object, stored as ``watch`` in the watched run's report.json) with three lists:

* ``stopped``: registry entries that apply to the watched Keras and no longer reproduce there
  (their results are stale): fixed upstream, so each gets a proposed ``fixed_in``;
* ``new``: results that fail the watched run and that no entry explains, each saying what the
  installed release gave for the same case (a ``bisect`` over the last nightlies is added by
  :mod:`conv_parity.upstream.watch` for those that conformed there);
* ``changed``: every result whose verdict, bucket or entry differs from the installed release's.

:func:`text_lines` renders it for the terminal; :func:`tables` gives report.md its rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conv_parity.report.matrix import KNOWN_BUCKETS, bucket

#: Rows of each list shown in report.md (report.json keeps them all).
MAX_ROWS = 100
_RAN_FINE = ("conforms", "unsupported", "not-reproduced", "skip")


def _key(result: Mapping[str, Any]) -> tuple[str, str]:
    return str(result["case_id"]), str(result["backend"])


def state(result: Mapping[str, Any]) -> str:
    """One result in words: ``pass``, ``unsupported``, ``skip``, ``NEW fail-values``, ``known
    fail-shape (ENTRY)``, ``stale: passes (ENTRY)``."""
    kind = bucket(result)
    known = result.get("known") or {}
    observed = result.get("observed_verdict") or result["verdict"]
    if kind == "conforms":
        return "pass"
    if kind in ("unsupported", "skip"):
        return kind
    if kind in KNOWN_BUCKETS:
        return f"known {observed} ({known.get('id', '?')})"
    if known.get("stale"):
        return f"stale: passes ({known.get('id', '?')})"
    return f"NEW {result['verdict']}"


def _keras(doc: Mapping[str, Any]) -> str:
    return str((doc.get("environment") or {}).get("keras") or "?")


def _stopped(results: Sequence[Mapping[str, Any]], keras: str,
             before: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Entries whose results are stale in the watched run, one object per entry."""
    entries: dict[str, dict[str, Any]] = {}
    for r in results:
        known = r.get("known") or {}
        if not known.get("stale"):
            continue
        e = entries.setdefault(str(known.get("id")), {
            "id": known.get("id"), "keras": known.get("keras"),
            "recorded_fixed_in": known.get("fixed_in"), "fixed_in": keras, "results": []})
        old = before.get(_key(r))
        e["results"].append({"case_id": r["case_id"], "backend": r["backend"],
                             "baseline": state(old) if old else None})
    return sorted(entries.values(), key=lambda e: str(e["id"]))


def _new(results: Sequence[Mapping[str, Any]],
         before: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Failures no entry explains in the watched run (a strict stale entry is ``stopped``)."""
    out = []
    for r in results:
        if bucket(r) != "new" or (r.get("known") or {}).get("stale"):
            continue
        old = before.get(_key(r))
        old_known = (old or {}).get("known") or {}
        out.append({"case_id": r["case_id"], "backend": r["backend"], "case": r.get("case"),
                    "verdict": r["verdict"], "message": r.get("message") or "",
                    "baseline": state(old) if old else None,
                    # the entry that explains it on the installed release, when one does
                    "baseline_entry": ({"id": old_known.get("id"), "keras": old_known.get("keras")}
                                       if old and bucket(old) in KNOWN_BUCKETS else None),
                    # conformed on the installed release: the watched Keras brought it
                    "regression": old is None or bucket(old) in _RAN_FINE,
                    "bisect": None})
    return out


def compare(watched: Mapping[str, Any], baseline: Mapping[str, Any],
            baseline_source: str, nightly_date: str | None = None) -> dict[str, Any]:
    """The watch section of ``watched`` (a report document) against ``baseline`` (the same
    cases on the installed release); ``baseline_source`` says where the baseline came from."""
    before = {_key(r): r for r in baseline.get("results") or []}
    after = {_key(r): r for r in watched.get("results") or []}
    keras = _keras(watched)
    changed = []
    for key, r in after.items():
        old = before.get(key)
        if old is not None and state(old) != state(r):
            changed.append({"case_id": key[0], "backend": key[1], "before": state(old),
                            "after": state(r)})
    results = list(after.values())
    return {
        "keras": keras, "nightly_date": nightly_date,
        "baseline": {"keras": _keras(baseline), "source": baseline_source},
        "compared": len(after.keys() & before.keys()),
        "only_watched": len(after.keys() - before.keys()),
        "only_baseline": len(before.keys() - after.keys()),
        "stopped": _stopped(results, keras, before),
        "new": _new(results, before),
        "changed": changed,
        "notes": [],
    }


def title(section: Mapping[str, Any]) -> str:
    """The section's first line: what was compared with what."""
    date = section.get("nightly_date")
    base = section.get("baseline") or {}
    return (f"Keras {section.get('keras')}" + (f" (nightly {date})" if date else "")
            + f" against the installed Keras {base.get('keras')} ({base.get('source')}): "
            f"{section.get('compared', 0)} results compared"
            + (f", {section['only_watched']} only on {section.get('keras')}"
               if section.get("only_watched") else "")
            + (f", {section['only_baseline']} only on {base.get('keras')}"
               if section.get("only_baseline") else ""))


def _bisect_words(item: Mapping[str, Any]) -> str:
    found = item.get("bisect")
    if found:
        return str(found.get("conclusion"))
    entry = item.get("baseline_entry")
    if entry:
        return (f"not bisected: known on the installed release as {entry.get('id')}, whose "
                f"keras scope {entry.get('keras')} leaves this Keras out: widen it")
    if not item.get("regression"):
        return f"not bisected: the installed release gives {item.get('baseline')} too"
    return str(item.get("bisect_note") or "not bisected")


def _stopped_words(e: Mapping[str, Any]) -> str:
    where = ", ".join(sorted({str(r["backend"]) for r in e["results"]}))
    recorded = (f"; it records fixed_in = {e['recorded_fixed_in']}" if e.get("recorded_fixed_in")
                else "")
    return (f"{len(e['results'])} result(s) on {where} pass (keras {e.get('keras')}{recorded}): "
            f"propose fixed_in = \"{e['fixed_in']}\"")


def text_lines(section: Mapping[str, Any]) -> list[str]:
    """The section for the terminal summary: every item, one line each (bisects on their own)."""
    base = (section.get("baseline") or {}).get("keras")
    out = ["Nightly watch: " + title(section)]
    stopped, new, changed = section["stopped"], section["new"], section["changed"]
    out.append(f"  entries that stopped reproducing (fixed upstream: add fixed_in): "
               f"{len(stopped) or 'none'}")
    out += [f"    - {e['id']}: {_stopped_words(e)}" for e in stopped]
    out.append(f"  new failures: {len(new) or 'none'}")
    for item in new:
        out.append(f"    - {item['case_id']} on {item['backend']}: {item['verdict']} "
                   f"(Keras {base}: {item.get('baseline') or 'not run'})")
        out.append(f"        bisect: {_bisect_words(item)}")
    out.append(f"  results changed since Keras {base}: {len(changed) or 'none'}")
    out += [f"    - {c['case_id']} on {c['backend']}: {c['before']} -> {c['after']}"
            for c in changed]
    out += [f"  note: {n}" for n in section.get("notes") or []]
    return out


def tables(section: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The three lists as (heading, column heads, rows), for report.md and report.html."""
    base = (section.get("baseline") or {}).get("keras")
    return [
        (f"Entries that stopped reproducing ({len(section['stopped'])})",
         ["entry", "results", "backends", "keras scope", "proposed"],
         [[str(e["id"]), str(len(e["results"])),
           ", ".join(sorted({str(r["backend"]) for r in e["results"]})),
           str(e.get("keras")), f'fixed_in = "{e["fixed_in"]}"'] for e in section["stopped"]]),
        (f"New failures ({len(section['new'])})",
         ["case", "backend", "verdict", f"on Keras {base}", "bisect"],
         [[str(i["case_id"]), str(i["backend"]), str(i["verdict"]),
           str(i.get("baseline") or "not run"), _bisect_words(i)] for i in section["new"]]),
        (f"Results changed since Keras {base} ({len(section['changed'])})",
         ["case", "backend", f"Keras {base}", f"Keras {section.get('keras')}"],
         [[str(c["case_id"]), str(c["backend"]), str(c["before"]), str(c["after"])]
          for c in section["changed"]]),
    ]


__all__ = ["MAX_ROWS", "compare", "state", "tables", "text_lines", "title"]
