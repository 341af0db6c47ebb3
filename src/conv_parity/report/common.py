"""What the Markdown and HTML renderers share: ordering, the matrix, number formatting.

The matrix cells and the failure list are counted by the one classifier,
:func:`conv_parity.report.matrix.bucket` (folded into :data:`conv_parity.report.matrix.CELL_COLUMNS`), as
the terminal matrix, pytest's outcomes and report.json's ``summary.by_bucket`` are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conv_parity import formats
from conv_parity.report.matrix import bucket
from conv_parity.vocabulary import VERDICTS, is_failure


def backend_order(doc: Mapping[str, Any]) -> list[str]:
    """Backends in Keras's usual order first (each followed by its variants), then others."""
    from conv_parity.backends import ordered

    names = {r["backend"] for r in doc["results"]}
    names |= set((doc.get("run") or {}).get("backends") or [])
    return ordered(names)


def cpu_line(doc: Mapping[str, Any]) -> str:
    """``Intel Xeon ... (2 cores; avx2 avx512f amx_tile); tensorflow: onednn=on; ...``: the
    platform facts that select kernels, for report headers ('' for reports without facts)."""
    env = doc.get("environment") or {}
    cpu = env.get("facts") or {}
    parts = []
    if cpu.get("cpu.model"):
        isa = " ".join(cpu.get("cpu.isa") or []) or "no AVX2/AVX-512/AMX"
        parts.append(f"{cpu['cpu.model']} ({cpu.get('cpu.count', '?')} cores; {isa})")
    from conv_parity.facts import HEADLINE, describe

    for name, info in (env.get("backends") or {}).items():
        text = describe(info.get("facts") or {}, HEADLINE)
        if text:
            parts.append(f"{name}: {text}")
    return "; ".join(parts)


def layer_order(doc: Mapping[str, Any]) -> list[str]:
    """Layers first, then ``ops.*``; alphabetical within each."""
    layers = {r["layer"] for r in doc["results"]}
    return sorted(layers, key=lambda name: (name.startswith("ops."), name))


def matrix(doc: Mapping[str, Any]) -> dict[str, dict[str, dict[str, int]]]:
    """layer -> backend -> bucket -> count (:func:`conv_parity.report.matrix.bucket`), recomputed
    from the results."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for r in doc["results"]:
        cell = out.setdefault(r["layer"], {}).setdefault(r["backend"], {})
        kind = bucket(r)
        cell[kind] = cell.get(kind, 0) + 1
    return out


def failing(r: Mapping[str, Any]) -> bool:
    """Whether a result fails the run (bucket ``new``: a failure verdict no entry explains, or
    a stale entry under a strict registry)."""
    return bucket(r) == "new"


def failures(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Failing results (:func:`failing`) grouped by layer, then case, then backend (one case's
    backends adjacent)."""
    order = {name: i for i, name in enumerate(layer_order(doc))}
    fails = [r for r in doc["results"] if failing(r)]
    return sorted(fails, key=lambda r: (order[r["layer"]], r["case_id"], r["backend"]))


def stale_known(doc: Mapping[str, Any], strict: bool | None = None) -> list[dict[str, Any]]:
    """Results whose known-discrepancy entry did not reproduce (``known.stale``). Under a
    strict registry (``known.strict``, the project's own runs) they fail the run (bucket
    ``new``) and the entry must be fixed; for a user they are passes with a note (bucket
    ``not-reproduced``). ``strict=True`` / ``False`` keeps only the first / the second kind."""
    found = [r for r in doc["results"] if isinstance(r.get("known"), Mapping)
             and r["known"].get("stale")]
    if strict is None:
        return found
    return [r for r in found if failing(r) == strict]


def fmt_float(x: Any, digits: int = 4) -> str:
    """A float for the reports: 4 significant digits, None as an em dash (formats.fmt_float)."""
    return formats.fmt_float(x, digits, missing="—")


def fmt_shape(shape: Any) -> str:
    """A shape for the reports, None as an em dash (formats.fmt_shape)."""
    return formats.fmt_shape(shape, missing="—")


def coverage_phrase(coverage: Mapping[str, int]) -> str:
    """"12 conv-family layer uses found, 10 checked, 2 not checkable"."""
    text = f"{coverage['found']} conv-family layer uses found, {coverage['checked']} checked"
    if coverage["not_checkable"]:
        text += f", {coverage['not_checkable']} not checkable"
    if coverage["not_selected"]:
        text += f", {coverage['not_selected']} not selected"
    return text


def run_line(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs that describe the run, for both renderers."""
    run = doc.get("run") or {}
    env = doc.get("environment") or {}
    items: list[tuple[str, str]] = []
    if run.get("profile") is not None:
        prof = run["profile"]
        items.append(("profile", ", ".join(map(str, prof)) if isinstance(prof, list) else str(prof)))
    if run.get("backends"):
        items.append(("backends", ", ".join(map(str, run["backends"]))))
    if run.get("shard"):
        items.append(("shard", str(run["shard"])))
    if run.get("merged"):
        items.append(("merged from", f"{len(run.get('sources') or [])} reports"))
    if env.get("keras"):
        items.append(("keras", str(env["keras"])))
    fuzz = doc.get("fuzz") or {}
    if fuzz.get("filtered_known"):
        items.append(("fuzz examples skipped as known discrepancies", str(fuzz["filtered_known"])))
    tool = doc.get("tool") or {}
    items.append(("conv-parity", str(tool.get("version", "?"))))
    items.append(("generated", str(doc.get("generated_at", "?"))))
    return items


__all__ = [
    "VERDICTS",
    "backend_order",
    "coverage_phrase",
    "failing",
    "failures",
    "fmt_float",
    "fmt_shape",
    "is_failure",
    "layer_order",
    "matrix",
    "run_line",
    "stale_known",
]


def model_table(doc: Mapping[str, Any]) -> tuple[list[str], list[list[str]], list[str]] | None:
    """The per-layer table of a report's ``model`` section, as plain text cells for both
    renderers: (headers, rows, notes), or None when the report has no model section.

    A row per layer use (path, class, input shape, a verdict per backend, the known
    discrepancy's id beside an xfail); the notes name the layers not checked and why.
    """
    section = doc.get("model")
    if not isinstance(section, Mapping):
        return None
    backends = [str(b) for b in section.get("backends") or []]
    headers = ["layer", "class", "input shape", *backends]
    rows: list[list[str]] = []
    notes: list[str] = []
    for layer in section.get("layers") or []:
        if not layer.get("checked"):
            notes.append(f"not checked: {layer.get('name')} ({layer.get('class')}): "
                         f"{layer.get('reason')}")
            continue
        cells = {}
        for r in layer.get("results") or []:
            text = str(r.get("verdict"))
            if r.get("known"):
                hidden = ": hidden by these weights" if r.get("hidden_by_weights") else ""
                text += f" ({r['known']}{hidden})"
            cells[str(r.get("backend"))] = text
        shape = "(" + ", ".join(str(d) for d in layer.get("input_shape") or []) + ")"
        rows.append([str(layer.get("name")), str(layer.get("class")), shape,
                     *(cells.get(b, "-") for b in backends)])
    other = section.get("not_checked") or {}
    if other:
        notes.append("not checked (outside the conv family): "
                     + ", ".join(f"{cls} ×{len(paths)}" for cls, paths in other.items()))
    return headers, rows, notes


def end_to_end_table(doc: Mapping[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """The whole-model rows of a report's ``model`` section, for both renderers: the path to a
    divergence (backend, verdict, max error against the median and its tolerance, the first
    divergent layer, that layer's verdict, the note); None without an end-to-end check."""
    section = doc.get("model")
    e2e = section.get("end_to_end") if isinstance(section, Mapping) else None
    if not isinstance(e2e, Mapping):
        return None

    def num(v: Any) -> str:
        return "-" if v is None else f"{float(v):.2g}"

    rows = [[str(r.get("backend")), str(r.get("verdict")),
             f"{num(r.get('max_abs_err'))} (tol {num(r.get('tolerance'))})",
             str(r.get("first_divergent_layer") or "-"),
             str(r.get("layer_verdict") or "-"), str(r.get("message") or "-")]
            for r in e2e.get("results") or []]
    return (["backend", "verdict", "max |err| vs median (tol)", "first divergent layer",
             "its own verdict", "note"], rows)
