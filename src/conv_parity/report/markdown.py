"""report.md: the conformance matrix and the failures, sized for a PR comment.

GitHub caps a PR comment at 65536 characters and ``$GITHUB_STEP_SUMMARY`` at 1 MiB, so the
failure list stops at `max_failures` entries or `max_chars` characters, whichever comes first,
and says how many it left out (report.html and report.json have them all).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from conv_parity.facts import HEADLINE, describe
from conv_parity.report import common
from conv_parity.report import watch as watch_section
from conv_parity.report.matrix import (
    KNOWN_BUCKETS,
    bucket,
    cell_counts,
    counts_phrase,
    failure_label,
)
from conv_parity.variants import disagreements

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")
MAX_MESSAGE = 1500


def md_text(text: Any) -> str:
    """Inline text that Markdown and GitHub's HTML sanitizer show literally, on one line."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return " ".join(s.split())


def md_code(text: Any) -> str:
    """An inline code span that survives backticks inside `text`."""
    s = " ".join(str(text).split())
    runs = [len(m) for m in re.findall(r"`+", s)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def md_block(text: str) -> str:
    """A fenced block whose fence is longer than any backtick run in `text`."""
    runs = [len(m) for m in re.findall(r"`{3,}", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit} more characters in report.json)"


#: How report.md spells each matrix column (:data:`conv_parity.report.matrix.CELL_COLUMNS`).
CELL_WORDS = {"ok": "✓", "fail": "✗", "xfail": "xfail", "not-reproduced": "not reproduced",
              "unsupported": "unsupported", "skip": "skip"}


def format_cell(cell: Mapping[str, int]) -> str:
    """``12 ✓ · 1 ✗ · 2 xfail · 1 not reproduced · 1 unsupported · 3 skip`` from a cell's
    bucket counts (:func:`conv_parity.report.matrix.bucket`); zero counts left out."""
    parts = [f"**{n} {CELL_WORDS[col]}**" if col == "fail" else f"{n} {CELL_WORDS[col]}"
             for col, n in cell_counts(cell).items() if n]
    return " · ".join(parts) if parts else "—"


def _matrix_lines(doc: Mapping[str, Any]) -> list[str]:
    backends = common.backend_order(doc)
    mat = common.matrix(doc)
    lines = [
        "| layer / op | " + " | ".join(backends) + " |",
        "|---|" + "---|" * len(backends),
    ]
    totals: dict[str, dict[str, int]] = {b: {} for b in backends}
    for layer in common.layer_order(doc):
        row = mat.get(layer, {})
        cells = [format_cell(row.get(b, {})) for b in backends]
        lines.append(f"| {md_text(layer)} | " + " | ".join(cells) + " |")
        for b, cell in row.items():
            for kind, n in cell.items():
                totals[b][kind] = totals[b].get(kind, 0) + n
    if len(mat) > 1:
        lines.append("| **total** | " + " | ".join(format_cell(totals[b]) for b in backends)
                     + " |")
    return lines


def _failure_entry(i: int, r: Mapping[str, Any]) -> str:
    head = (f"#### {i}. {md_code(r['case_id'])} · {md_text(r['backend'])} · "
            f"**{md_text(failure_label(r))}**")
    lines = [head, ""]
    if r.get("diagnosis"):
        lines.append(f"- **Diagnosis:** {md_text(r['diagnosis'])}")
    shape, ref_shape = r.get("shape"), r.get("reference_shape")
    if shape is not None or ref_shape is not None:
        lines.append(f"- **Shape:** {common.fmt_shape(shape)}, reference "
                     f"{common.fmt_shape(ref_shape)}")
    if r.get("max_abs_err") is not None:
        extra = ""
        if r.get("tolerance") is not None:
            extra += f" (tolerance {common.fmt_float(r['tolerance'])})"
        if r.get("mismatches") is not None:
            extra += f", {r['mismatches']} elements differ"
        lines.append(f"- **Max abs error:** {common.fmt_float(r['max_abs_err'])}{extra}")
    err = r.get("error")
    if err:
        phase = f" during {md_text(err['phase'])}" if err.get("phase") else ""
        lines.append(f"- **Error{phase}:** {md_code(err['type'])}: "
                     f"{md_text(_truncate(str(err['message']), 300))}")
    if r.get("repro"):
        lines.append(f"- **Repro:** {md_code(r['repro'])}")
    lines.append("")
    if r.get("message"):
        lines.append(md_block(_truncate(str(r["message"]), MAX_MESSAGE)))
        lines.append("")
    return "\n".join(lines)


def _model_lines(doc: Mapping[str, Any]) -> list[str]:
    """The per-layer table of a model check (empty when the report is not one)."""
    found = common.model_table(doc)
    if found is None:
        return []
    headers, rows, notes = found
    section = doc["model"]
    shape = ", ".join(str(d) for d in section.get("input_shape") or [])
    out = [f"## Model {md_code(section.get('source'))}", "",
           f"input ({md_text(shape)}) · weights: {md_text(section.get('weights'))} · "
           f"image_data_format: {md_text(section.get('image_data_format'))} · "
           f"{md_text(section.get('distinct_cases'))} distinct configs"
           + (f" · {md_text(common.coverage_phrase(section['coverage']))}"
              if section.get("coverage") else ""), "",
           "| " + " | ".join(md_text(h) for h in headers) + " |",
           "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows[:500]]
    if len(rows) > 500:
        out.append(f"| …and {len(rows) - 500} more layers |" + " |" * (len(headers) - 1))
    out.append("")
    out += [f"- {md_text(n)}" for n in notes[:100]]
    out += [""] if notes else []
    e2e = common.end_to_end_table(doc)
    if e2e is not None:
        heads, e2e_rows = e2e
        out += ["### End to end (the whole model on every backend)", "",
                "| " + " | ".join(md_text(h) for h in heads) + " |",
                "|" + "---|" * len(heads)]
        out += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in e2e_rows]
        out.append("")
    return out


def _watch_lines(doc: Mapping[str, Any]) -> list[str]:
    """The nightly watch section (:mod:`conv_parity.report.watch`), when the run had one."""
    section = doc.get("watch")
    if not section:
        return []
    out = ["## Nightly watch", "", md_text(watch_section.title(section)), ""]
    for heading, heads, rows in watch_section.tables(section):
        out += [f"### {md_text(heading)}", ""]
        if not rows:
            out += ["None.", ""]
            continue
        out += ["| " + " | ".join(md_text(h) for h in heads) + " |", "|" + "---|" * len(heads)]
        out += ["| " + " | ".join(md_text(c) for c in row) + " |"
                for row in rows[:watch_section.MAX_ROWS]]
        if len(rows) > watch_section.MAX_ROWS:
            out.append(f"| …and {len(rows) - watch_section.MAX_ROWS} more (report.json has "
                       f"them all) |" + " |" * (len(heads) - 1))
        out.append("")
    out += [f"- {md_text(n)}" for n in section.get("notes") or []]
    return out + ([""] if section.get("notes") else [])


def render_markdown(
    doc: Mapping[str, Any], max_failures: int = 100, max_chars: int = 60_000
) -> str:
    """The Markdown report of a (decoded) report document; fits in `max_chars` characters
    unless the matrix alone is larger."""
    out = (_header_lines(doc) + _watch_lines(doc) + _model_lines(doc) + _matrix_section(doc)
           + _disagreement_lines(doc) + _environment_lines(doc) + _known_lines(doc))
    for strict in (True, False):  # a merged report can hold both kinds
        out += _stale_lines(doc, strict)
    return _with_failures("\n".join(out), common.failures(doc), max_failures, max_chars)


def _header_lines(doc: Mapping[str, Any]) -> list[str]:
    """Title, partial-run warning, run line, platform, environment conflicts, the verdict."""
    out: list[str] = ["# conv-parity conformance report", ""]
    if not doc.get("complete", False):
        out += ["> **⚠ Partial run:** this report was written before the run finished "
                "(interrupted, crashed or still going); counts cover only the cases run so far.",
                ""]
    out.append(" · ".join(f"**{k}:** {md_text(v)}" for k, v in common.run_line(doc)))
    out.append("")
    cpu = common.cpu_line(doc)
    if cpu:
        out += [f"**Platform:** {md_text(cpu)}", ""]
    conflicts = (doc.get("environment") or {}).get("conflicts") or {}
    if conflicts:
        desc = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in conflicts.items())
        out += [f"> **⚠ Merged reports disagree on the environment:** {md_text(desc)}", ""]
    summary = doc.get("summary") or {}
    n_fail = len(common.failures(doc))
    counts = counts_phrase(Counter(bucket(r) for r in doc["results"]))
    if n_fail:
        verdict_word = f"✗ **{n_fail} failing**"
    elif any(bucket(r) in KNOWN_BUCKETS for r in doc["results"]):
        verdict_word = "✓ **no new discrepancies**"  # known wrong answers are not "conform"
    else:
        verdict_word = "✓ **all conform**"
    out += [f"{verdict_word} — {summary.get('total', len(doc['results']))} results"
            + (f" ({counts})" if counts else ""), ""]
    return out


def _matrix_section(doc: Mapping[str, Any]) -> list[str]:
    out = ["## Conformance matrix", ""]
    if not doc["results"]:
        return [*out, "_No results._", ""]
    return [*out, *_matrix_lines(doc),
        "", "✓ pass · ✗ failure (shape, values, symbolic shape, error parity, crash, "
        "timeout, or a stale known discrepancy under a strict registry) · xfail known "
        "discrepancy · not reproduced: a known discrepancy that did not reproduce here "
        "(conforms) · unsupported: every backend rejects it · skip: backend not "
        "available", ""]


def _disagreement_lines(doc: Mapping[str, Any]) -> list[str]:
    """Cases on which the variants of one backend (oneDNN on and off, ...) disagree."""
    disagreeing = disagreements(doc["results"])
    if not disagreeing:
        return []
    out = [f"## Where variants of one backend disagree ({len(disagreeing)})", "",
           "| case | backend | observed per variant |", "|---|---|---|"]
    for d in disagreeing[:50]:
        per = ", ".join(f"{md_text(t)}: {md_text(v)}" for t, v in d.observed)
        out.append(f"| {md_code(d.case_id)} | {md_text(d.keras_backend)} | {per} |")
    if len(disagreeing) > 50:
        out.append(f"| …and {len(disagreeing) - 50} more | | |")
    out.append("")
    return out


def _environment_lines(doc: Mapping[str, Any]) -> list[str]:
    env = doc.get("environment") or {}
    backends = env.get("backends") or {}
    if not backends:
        return []
    out = ["<details><summary>Environment</summary>", "",
           "| backend | available | keras | backend version | device | facts |",
           "|---|---|---|---|---|---|"]
    for name, info in backends.items():
        avail = "yes" if info.get("available") else (
            "no: " + md_text(_truncate(str(info.get("import_error") or ""), 120)))
        out.append(f"| {md_text(name)} | {avail} | {md_text(info.get('keras_version') or '—')}"
                   f" | {md_text(info.get('backend_version') or '—')}"
                   f" | {md_text(info.get('device') or '—')}"
                   f" | {md_text(describe(info.get('facts') or {}, HEADLINE) or '—')} |")
    out += ["", f"python {md_text(env.get('python') or '?')} · numpy "
            f"{md_text(env.get('numpy') or '?')} · {md_text(env.get('platform') or '?')}",
            "", "</details>", ""]
    return out


def _known_lines(doc: Mapping[str, Any]) -> list[str]:
    """The registry entries the run hit, with their links and the release that fixes them."""
    known: dict[str, dict[str, Any]] = {}
    for r in doc["results"]:
        if r.get("known") and bucket(r) in KNOWN_BUCKETS:
            entry = known.setdefault(r["known"]["id"], {"n": 0, "link": r["known"].get("link"),
                                                         "fixed_in": r["known"].get("fixed_in")})
            entry["n"] += 1
    if not known:
        return []
    out = [f"<details><summary>Known discrepancies hit ({len(known)})</summary>", ""]
    for kid, entry in sorted(known.items()):
        link = f" — {md_text(entry['link'])}" if entry["link"] else ""
        fix = (f" — **fixed in Keras {md_text(entry['fixed_in'])}: upgrade**"
               if entry.get("fixed_in") else "")
        plural = "" if entry["n"] == 1 else "s"
        out.append(f"- {md_code(kid)}: {entry['n']} result{plural}{link}{fix}")
    out += ["", "</details>", ""]
    return out


def _stale_lines(doc: Mapping[str, Any], strict: bool) -> list[str]:
    """Known discrepancies that did not reproduce: a defect under a strict registry, a
    conforming case otherwise."""
    stale = common.stale_known(doc, strict=strict)
    if not stale:
        return []
    if strict:
        out = [f"## Stale known discrepancies ({len(stale)})", "",
               "These registered discrepancies no longer reproduce: fix their entries.", ""]
    else:
        out = [f"## Known discrepancies that did not reproduce here ({len(stale)})", "",
               "Fixed in this Keras, or not on this platform: these cases conform.", ""]
    for r in stale[:50]:
        out.append(f"- {md_code(r['known']['id'])}: {md_code(r['case_id'])} on "
                   f"{md_text(r['backend'])} ({md_text(r['verdict'])})")
    if len(stale) > 50:
        out.append(f"- …and {len(stale) - 50} more")
    out.append("")
    return out


def _with_failures(text: str, fails: Sequence[Mapping[str, Any]], max_failures: int,
                   max_chars: int) -> str:
    """``text`` and as many failure entries as fit in ``max_chars`` (and ``max_failures``)."""
    if not fails:
        return text.rstrip() + "\n"
    text += f"\n## Failures ({len(fails)})\n"
    shown = 0
    for i, r in enumerate(fails, 1):
        entry = _failure_entry(i, r)
        if shown >= max_failures or len(text) + len(entry) + 200 > max_chars:
            break
        text += "\n" + entry
        shown += 1
    if shown < len(fails):
        text += (f"\n_…and {len(fails) - shown} more failures: see report.html or "
                 "report.json._\n")
    return text.rstrip() + "\n"
