"""report.html: one self-contained page (inline CSS, inline JS, images as data: URIs).

It must render offline, from an artifact download or a mail attachment, so nothing is fetched:
no CDN, no web fonts, no external images. Heatmaps are PNGs written with zlib + struct (no
imaging library at runtime: :mod:`.heatmap`); the stylesheet and script are :mod:`.htmlstyle`.
Every piece of text from the report goes through ``html.escape`` (:func:`.htmlstyle.esc`):
messages carry backend error text, which may contain anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from conv_parity.report import common
from conv_parity.report import watch as watch_section
from conv_parity.report.heatmap import heatmap_html
from conv_parity.report.htmlstyle import CSS, JS, esc
from conv_parity.report.matrix import cell_counts, failure_label
from conv_parity.report.schema import VERDICTS

MAX_CARDS = 1000  # failures shown in full (with heatmaps); the rest are counted
MAX_ROWS = 5000  # other results in the compact table
MAX_TEXT = 4000  # characters of a message / stderr tail shown


# --------------------------------------------------------------------------- pieces


def _badge(verdict: str) -> str:
    cls = "fail" if common.is_failure(verdict) else verdict
    return f'<span class="badge b-{esc(cls)}">{esc(verdict)}</span>'


def _result_badge(r: Mapping[str, Any]) -> str:
    """A result's badge: its verdict, or, when it fails the run, what it is called among the
    failures (a strict stale entry's verdict is ``pass``, its badge a red 'stale ...')."""
    if common.failing(r):
        return f'<span class="badge b-fail">{esc(failure_label(r))}</span>'
    return _badge(r["verdict"])


#: How report.html labels each matrix column (:data:`conv_parity.report.matrix.CELL_COLUMNS`), and
#: the CSS class of its count.
CELL_LABELS = {"ok": ("✓", "pass"), "fail": ("✗", "fail"), "xfail": ("xfail", "xfail"),
               "not-reproduced": ("not reproduced", "pass"),
               "unsupported": ("unsupported", "unsupported"), "skip": ("skip", "skip")}


def _cell_html(cell: Mapping[str, int]) -> str:
    """A matrix cell from its bucket counts (:func:`conv_parity.report.matrix.bucket`)."""
    parts = [f'<span class="n {CELL_LABELS[col][1]}">{n} {CELL_LABELS[col][0]}</span>'
             for col, n in cell_counts(cell).items() if n]
    return "".join(parts) if parts else "—"


def _matrix_html(doc: Mapping[str, Any]) -> str:
    backends = common.backend_order(doc)
    mat = common.matrix(doc)
    out = ['<table class="matrix"><thead><tr><th>layer / op</th>']
    out += [f"<th>{esc(b)}</th>" for b in backends]
    out.append("</tr></thead><tbody>")
    totals: dict[str, dict[str, int]] = {b: {} for b in backends}
    for layer in common.layer_order(doc):
        row = mat.get(layer, {})
        out.append(f"<tr><th class=\"mono\">{esc(layer)}</th>")
        for b in backends:
            cell = row.get(b, {})
            for kind, n in cell.items():
                totals[b][kind] = totals[b].get(kind, 0) + n
            if not cell:
                out.append('<td class="empty">—</td>')
                continue
            bad = " bad" if cell_counts(cell)["fail"] else ""
            out.append(f'<td class="cell{bad}" data-filter-backend="{esc(b)}" '
                       f'data-filter-layer="{esc(layer)}" title="show these results">'
                       f"{_cell_html(cell)}</td>")
        out.append("</tr>")
    if len(mat) > 1:
        out.append('<tr class="total"><td>total</td>')
        out += [f"<td>{_cell_html(totals[b])}</td>" for b in backends]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _fp(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return "—" if value is None else str(value)


def _env_html(doc: Mapping[str, Any]) -> str:
    env = doc.get("environment") or {}
    out = ['<p class="runline">']
    out.append(" · ".join(f"<b>{esc(k)}</b> {esc(env.get(k) or '?')}"
                          for k in ("python", "keras", "numpy", "platform")))
    out.append("</p>")
    cpu = common.cpu_line(doc)
    if cpu:
        out.append(f'<p class="runline"><b>platform facts</b> {esc(cpu)}</p>')
    backends = env.get("backends") or {}
    if backends:
        out.append('<table class="env"><thead><tr><th>backend</th><th>available</th>'
                   "<th>keras</th><th>backend version</th><th>device</th><th>fp settings</th>"
                   "<th>facts</th></tr></thead><tbody>")
        for name, info in backends.items():
            if info.get("available"):
                avail = '<span class="yes">yes</span>'
            else:
                err = str(info.get("import_error") or "")
                short = err if len(err) <= 160 else err[:160] + "…"
                avail = f'<span class="no" title="{esc(err)}">no</span> ' + (
                    f'<span class="muted">{esc(short)}</span>' if short else "")
            out.append(
                f"<tr><td><b>{esc(name)}</b></td><td>{avail}</td>"
                f"<td>{esc(info.get('keras_version') or '—')}</td>"
                f"<td>{esc(info.get('backend_version') or '—')}</td>"
                f"<td>{esc(info.get('device') or '—')}</td>"
                f"<td class=\"mono\">{esc(_fp(info.get('fp_settings')))}</td>"
                f"<td class=\"mono\">{esc(_fp(info.get('facts')))}</td></tr>")
        out.append("</tbody></table>")
    run = dict(doc.get("run") or {})
    if run:
        sources = run.pop("sources", None)
        out.append("<details><summary>run settings</summary><table class=\"env\"><tbody>")
        for key, value in run.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            out.append(f"<tr><th>{esc(key)}</th><td class=\"mono\">{esc(text)}</td></tr>")
        if sources:
            out.append(f"<tr><th>sources</th><td class=\"mono\">"
                       f"{esc(json.dumps(sources, ensure_ascii=False))}</td></tr>")
        out.append("</tbody></table></details>")
    return "".join(out)


def _disagreements_html(doc: Mapping[str, Any]) -> str:
    """The cases where variants of one backend (oneDNN on/off, ...) observed different
    verdicts ('' when they all agree)."""
    from conv_parity.variants import disagreements

    found = disagreements(doc["results"])
    if not found:
        return ""
    out = [f"<h2>Where variants of one backend disagree ({len(found)})</h2>",
           '<table class="others"><thead><tr><th>case</th><th>backend</th>'
           "<th>observed per variant</th></tr></thead><tbody>"]
    for d in found[:MAX_ROWS]:
        per = ", ".join(f"<b>{esc(t)}</b> {_badge(v)}" for t, v in d.observed)
        out.append(f'<tr><td class="mono">{esc(d.case_id)}</td><td>{esc(d.keras_backend)}</td>'
                   f"<td>{per}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _data_attrs(r: Mapping[str, Any]) -> str:
    return (f'data-backend="{esc(r["backend"])}" data-layer="{esc(r["layer"])}" '
            f'data-verdict="{esc(r["verdict"])}" data-fail="{int(common.failing(r))}" '
            f'data-id="{esc(str(r["case_id"]).lower())}"')


def _clip(text: Any, limit: int = MAX_TEXT) -> str:
    s = str(text)
    return s if len(s) <= limit else s[:limit] + f"\n… ({len(s) - limit} more characters)"


def _safe_link(url: Any) -> str:
    u = str(url or "")
    if u.startswith(("https://", "http://")):
        return f'<a href="{esc(u)}">{esc(u)}</a>'
    return esc(u)


def _worst_tensor(worst: Mapping[str, Any]) -> str:
    """``dkernel (shape (3, 3, 2, 4))``: which tensor the worst element is in, since a gradient
    case compares several and ``y``'s shape (the card's first fact) says nothing of a dkernel."""
    name = str(worst.get("output") or "y")
    shape = worst.get("output_shape")
    return f"{name} (shape {common.fmt_shape(shape)})" if shape is not None else name


def _card(r: Mapping[str, Any]) -> str:
    facts: list[tuple[str, str]] = []
    for key, label in (("shape", "shape"), ("reference_shape", "reference shape"),
                       ("symbolic_shape", "symbolic shape"),
                       ("functional_shape", "functional shape")):
        if r.get(key) is not None:
            facts.append((label, esc(common.fmt_shape(r[key]))))
    case = r.get("case") or {}
    dt = r.get("dtype")
    if dt:
        facts.append(("dtype", esc(f"{dt} (input {case.get('dtype', '?')})")))
    if r.get("max_abs_err") is not None:
        facts.append(("max |err|", esc(common.fmt_float(r["max_abs_err"]))))
    if r.get("tolerance") is not None:
        facts.append(("tolerance", esc(common.fmt_float(r["tolerance"]))))
    if r.get("mismatches") is not None:
        facts.append(("elements off", esc(r["mismatches"])))
    worst = r.get("worst")
    if worst:
        facts.append(("worst", esc(
            f"{_worst_tensor(worst)} at {common.fmt_shape(worst.get('index'))}: "
            f"{common.fmt_float(worst.get('value'))}"
            f" vs reference {common.fmt_float(worst.get('reference'))} "
            f"(tolerance {common.fmt_float(worst.get('tolerance'))})")))
    err = r.get("error")
    if err:
        phase = f" (during {err['phase']})" if err.get("phase") else ""
        facts.append(("error", f"<code>{esc(err.get('type'))}</code>{esc(phase)}: "
                               f"{esc(_clip(err.get('message', ''), 600))}"))
    known = r.get("known")
    if known:
        note = f" — {esc(known['note'])}" if known.get("note") else ""
        link = f" {_safe_link(known['link'])}" if known.get("link") else ""
        fix = (f" — <b>fixed in Keras {esc(known['fixed_in'])}: upgrade</b>"
               if known.get("fixed_in") else "")
        facts.append(("known", f"<code>{esc(known['id'])}</code>{link}{fix}{note}"))
    if r.get("repro"):
        facts.append(("repro", f"<code>{esc(r['repro'])}</code>"))
    if r.get("seconds") is not None:
        facts.append(("time", esc(f"{common.fmt_float(r['seconds'], 3)} s")))
    parts = [f'<article class="card" {_data_attrs(r)}><header>{_result_badge(r)}'
             f'<code>{esc(r["case_id"])}</code><span class="where">on <b>{esc(r["backend"])}'
             f"</b> · {esc(r['layer'])}</span></header>",
             '<div class="body"><div class="text">']
    if r.get("diagnosis"):
        parts.append(f'<p class="diag"><b>Diagnosis:</b> {esc(r["diagnosis"])}</p>')
    if r.get("message"):
        parts.append(f'<pre class="msg">{esc(_clip(r["message"]))}</pre>')
    if facts:
        parts.append('<dl class="facts">'
                     + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>")
    if case:
        parts.append("<details><summary>case</summary><pre>"
                     f"{esc(json.dumps(case, ensure_ascii=False, indent=1))}</pre></details>")
    if r.get("stderr_tail"):
        parts.append("<details><summary>stderr (tail)</summary>"
                     f"<pre>{esc(_clip(r['stderr_tail']))}</pre></details>")
    parts.append("</div>")
    if r.get("error_map"):
        parts.append(heatmap_html(r["error_map"], r.get("tolerance")))
    parts.append("</div></article>")
    return "".join(parts)


def _row(r: Mapping[str, Any]) -> str:
    note = ""
    known = r.get("known")
    if known:
        note = f"<code>{esc(known['id'])}</code> "
        if known.get("link"):
            note += _safe_link(known["link"]) + " "
        if known.get("fixed_in"):
            note += f"<b>fixed in Keras {esc(known['fixed_in'])}: upgrade</b> "
    if r.get("message"):
        note += esc(_clip(" ".join(str(r["message"]).split()), 240))
    secs = "" if r.get("seconds") is None else esc(common.fmt_float(r["seconds"], 3))
    return (f"<tr {_data_attrs(r)}><td>{_result_badge(r)}</td><td class=\"mono\">"
            f"{esc(r['layer'])}</td><td class=\"id mono\">{esc(r['case_id'])}</td>"
            f"<td>{esc(r['backend'])}</td><td>{note}</td><td>{secs}</td></tr>")


def _select(ident: str, label: str, options: list[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{esc(v)}">{esc(t)}</option>' for v, t in options)
    return f'<label>{esc(label)}<select id="{ident}">{opts}</select></label>'


def _model_html(doc: Mapping[str, Any]) -> str:
    """The per-layer table of a model check ("" when the report is not one)."""
    found = common.model_table(doc)
    if found is None:
        return ""
    headers, rows, notes = found
    section = doc["model"]
    shape = ", ".join(str(d) for d in section.get("input_shape") or [])
    out = [f"<h2>Model <code>{esc(section.get('source'))}</code></h2>",
           f'<p class="muted">input ({esc(shape)}) · weights: {esc(section.get("weights"))} · '
           f"image_data_format: {esc(section.get('image_data_format'))} · "
           f"{esc(section.get('distinct_cases'))} distinct configs"
           + (f" · {esc(common.coverage_phrase(section['coverage']))}"
              if section.get("coverage") else "") + "</p>",
           '<table class="others"><thead><tr>'
           + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr></thead><tbody>"]
    for row in rows:
        cells = [f"<td>{esc(c)}</td>" for c in row[:3]]
        cells += [f"<td>{_badge(c.split(' ')[0]) if c != '-' else '-'}"
                  f"{esc(c[len(c.split(' ')[0]):])}</td>" for c in row[3:]]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    out += [f'<p class="muted">{esc(n)}</p>' for n in notes[:100]]
    e2e = common.end_to_end_table(doc)
    if e2e is not None:
        heads, e2e_rows = e2e
        out += ["<h3>End to end (the whole model on every backend)</h3>",
                '<table class="others"><thead><tr>'
                + "".join(f"<th>{esc(h)}</th>" for h in heads) + "</tr></thead><tbody>"]
        out += ["<tr>" + f"<td>{esc(row[0])}</td><td>{_badge(row[1])}</td>"
                + "".join(f"<td>{esc(c)}</td>" for c in row[2:]) + "</tr>"
                for row in e2e_rows]
        out.append("</tbody></table>")
    return "\n".join(out)


def _watch_html(doc: Mapping[str, Any]) -> str:
    """The nightly watch section (:mod:`conv_parity.report.watch`; "" when the run had none)."""
    section = doc.get("watch")
    if not section:
        return ""
    out = ["<h2>Nightly watch</h2>", f'<p class="muted">{esc(watch_section.title(section))}</p>']
    for heading, heads, rows in watch_section.tables(section):
        out.append(f"<h3>{esc(heading)}</h3>")
        if not rows:
            out.append('<p class="muted">None.</p>')
            continue
        out.append('<table class="others"><thead><tr>'
                   + "".join(f"<th>{esc(h)}</th>" for h in heads) + "</tr></thead><tbody>")
        out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
        out.append("</tbody></table>")
    out += [f'<p class="muted">{esc(n)}</p>' for n in section.get("notes") or []]
    return "\n".join(out)


def render_html(doc: Mapping[str, Any]) -> str:
    """The self-contained HTML report of a (decoded) report document."""
    out = _head_html(doc) + _banners_html(doc) + [_chips_html(doc), _watch_html(doc),
                                                   _model_html(doc)]
    out += _overview_html(doc) + _filters_html(doc) + _results_html(doc)
    tool = doc.get("tool") or {}
    out.append(f'<p class="foot">Generated by {esc(tool.get("name", "conv-parity"))} '
               f'{esc(tool.get("version", ""))} from report.json (schema version '
               f'{esc(doc.get("schema_version"))}); regenerate with '
               "<code>conv-parity report report.json</code>.</p>")
    out.append(f"<script>{JS}</script></body></html>\n")
    return "\n".join(out)


def _head_html(doc: Mapping[str, Any]) -> list[str]:
    return ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>conv-parity report</title>",
            f"<style>{CSS}</style></head><body>",
            "<header><h1>conv-parity conformance report</h1><div class=\"runline\">",
            " · ".join(f"<b>{esc(k)}</b> {esc(v)}" for k, v in common.run_line(doc)),
            "</div></header>"]


def _banners_html(doc: Mapping[str, Any]) -> list[str]:
    """Warnings above everything else: a partial run, merged environments that disagree,
    known discrepancies that did not reproduce."""
    out = []
    if not doc.get("complete", False):
        out.append('<div class="banner partial"><b>Partial run.</b> This report was written '
                   "before the run finished (interrupted, crashed or still going); the counts "
                   "cover only the cases run so far.</div>")
    env = doc.get("environment") or {}
    if env.get("conflicts"):
        desc = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in env["conflicts"].items())
        out.append('<div class="banner conflict"><b>Merged reports disagree on the '
                   f"environment:</b> {esc(desc)}</div>")
    stale = common.stale_known(doc, strict=True)
    if stale:
        ids = sorted({str(r["known"]["id"]) for r in stale})
        out.append('<div class="banner conflict"><b>Stale known discrepancies:</b> '
                   f"{len(stale)} results registered as known discrepancies no longer "
                   f"reproduce; fix the entries: {esc(', '.join(ids))}</div>")
    quiet = common.stale_known(doc, strict=False)
    if quiet:
        ids = sorted({str(r["known"]["id"]) for r in quiet})
        out.append('<div class="banner"><b>Known discrepancies that did not reproduce '
                   f"here:</b> {len(quiet)} results (fixed in this Keras, or not on this "
                   f"platform; they conform): {esc(', '.join(ids))}</div>")
    return out


def _chips_html(doc: Mapping[str, Any]) -> str:
    """The verdict counts as filter buttons."""
    n_fail = len(common.failures(doc))
    by_verdict = (doc.get("summary") or {}).get("by_verdict") or {}
    chips = [f'<button class="chip v-{"fail" if n_fail else "pass"}" data-filter-verdict="">'
             f"<b>{len(doc['results'])}</b> results</button>"]
    if n_fail:
        chips.append(f'<button class="chip v-fail" data-filter-verdict="@fail"><b>{n_fail}</b>'
                     "failing</button>")
    for verdict in VERDICTS:
        n = by_verdict.get(verdict, 0)
        if n:
            cls = "fail" if common.is_failure(verdict) else verdict
            chips.append(f'<button class="chip v-{esc(cls)}" data-filter-verdict="{esc(verdict)}">'
                         f"<b>{n}</b>{esc(verdict)}</button>")
    return '<div class="chips">' + "".join(chips) + "</div>"


def _overview_html(doc: Mapping[str, Any]) -> list[str]:
    """The matrix, its legend, variant disagreements and the environment."""
    return ["<h2>Conformance matrix</h2>",
            _matrix_html(doc) if doc["results"] else "<p class=\"muted\">No results.</p>",
            '<p class="muted">✓ pass · ✗ failure (shape, values, symbolic shape, error '
            "parity, crash, timeout, or a stale known discrepancy under a strict registry) · "
            "xfail: known discrepancy · not reproduced: a known discrepancy that did not "
            "reproduce here (conforms) · unsupported: every backend rejects the "
            "configuration · skip: backend not available. Click a cell to filter.</p>",
            _disagreements_html(doc), "<h2>Environment</h2>", _env_html(doc)]


def _filters_html(doc: Mapping[str, Any]) -> list[str]:
    by_verdict = (doc.get("summary") or {}).get("by_verdict") or {}
    present = [v for v in VERDICTS if by_verdict.get(v)]
    return ['<h2 id="results">Results</h2><div class="filters">',
            _select("f-backend", "backend",
                    [("", "all")] + [(b, b) for b in common.backend_order(doc)]),
            _select("f-layer", "layer",
                    [("", "all")] + [(x, x) for x in common.layer_order(doc)]),
            _select("f-verdict", "verdict",
                    [("", "all"), ("@fail", "any failure")] + [(v, v) for v in present]),
            '<label>case id<input id="f-search" type="search" placeholder="contains…">'
            '</label><span id="shown"></span></div>']


def _results_html(doc: Mapping[str, Any]) -> list[str]:
    """Failure cards first, then one table row per other result (both capped)."""
    fails = common.failures(doc)
    others = [r for r in doc["results"] if not common.failing(r)]
    others.sort(key=lambda r: (VERDICTS.index(r["verdict"]), r["layer"], r["case_id"],
                               r["backend"]))
    out = [f"<h3>Failures ({len(fails)})</h3>"]
    out += [_card(r) for r in fails[:MAX_CARDS]]
    if len(fails) > MAX_CARDS:
        out.append(f'<p class="muted">…and {len(fails) - MAX_CARDS} more failures, listed in '
                   "report.json.</p>")
    out.append('<p id="failures-empty" class="muted">No failures match the filters.</p>')
    out.append(f"<h3>Other results ({len(others)})</h3>")
    out.append('<table class="others"><thead><tr><th>verdict</th><th>layer</th><th>case</th>'
               "<th>backend</th><th>note</th><th>s</th></tr></thead><tbody>")
    out += [_row(r) for r in others[:MAX_ROWS]]
    out.append("</tbody></table>")
    if len(others) > MAX_ROWS:
        out.append(f'<p class="muted">…and {len(others) - MAX_ROWS} more, listed in '
                   "report.json.</p>")
    out.append('<p id="others-empty" class="muted">No other results match the filters.</p>')
    return out
