"""Reports of a conformance run: report.json (the contract), report.md and report.html.

The JSON is the single source: the Markdown (PR comments, ``$GITHUB_STEP_SUMMARY``) and the
self-contained HTML are rendered from it alone, so a CI job can merge the reports of several
shards or backends (:func:`merge_reports`) and regenerate both (:func:`write_all`).
Only numpy and the standard library are used, so reports work wherever the suite runs.

Typical use::

    w = ReportWriter(Path("conv-parity-report"), {"profile": "smoke", "backends": [...]})
    w.set_environment(env)
    w.add(result)            # many times, from any thread
    w.close(complete=True)   # or complete=False when interrupted

See :mod:`conv_parity.report.schema` for the schema and the NaN/inf encoding.
"""

from __future__ import annotations

from conv_parity.explain.errormap import error_map
from conv_parity.report.htmlreport import render_html
from conv_parity.report.markdown import render_markdown
from conv_parity.report.schema import (
    FAILURE_VERDICTS,
    OK_VERDICTS,
    SCHEMA_VERSION,
    VERDICTS,
    decode,
    encode,
    summarize,
    validate,
    validate_result,
)
from conv_parity.report.writer import (
    HTML_NAME,
    JSON_NAME,
    MD_NAME,
    ReportWriter,
    atomic_write_text,
    build_doc,
    dumps,
    load_report,
    merge_reports,
    write_all,
)

__all__ = [
    "FAILURE_VERDICTS",
    "HTML_NAME",
    "JSON_NAME",
    "MD_NAME",
    "OK_VERDICTS",
    "SCHEMA_VERSION",
    "VERDICTS",
    "ReportWriter",
    "atomic_write_text",
    "build_doc",
    "decode",
    "dumps",
    "encode",
    "error_map",
    "load_report",
    "merge_reports",
    "render_html",
    "render_markdown",
    "summarize",
    "validate",
    "validate_result",
    "write_all",
]
