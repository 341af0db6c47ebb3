"""``conv-parity report``: regenerate report.md / report.html, or merge several report.json.

report.json is the record (stable schema); Markdown and HTML are views of it, so they can be
rebuilt anywhere, and CI shards (or one machine per backend) each write a report.json that this
merges into one. The exit code says whether the (merged) report holds a discrepancy, so a CI
step can gate on the merge alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from conv_parity.cli.common import EXIT_DISCREPANCY, EXIT_OK, emit_json
from conv_parity.cli.text import one_line
from conv_parity.errors import UsageError

EXAMPLES = """\
examples:
  conv-parity report conv-parity-report/report.json          # regenerate report.md/html in place
  conv-parity report shard1/report.json shard2/report.json --out merged
  conv-parity report a/report.json b/report.json --out merged --json

exit codes: 0 the (merged) report has no discrepancy, 1 it has one, 2 unreadable/invalid input.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser(
        "report", help="regenerate / merge reports",
        epilog=EXAMPLES,
        description="Render report.md and report.html from one or more report.json "
                    "(several are merged: shards, backends).")
    rep.example = "conv-parity report shard1/report.json shard2/report.json --out merged"
    rep.add_argument("reports", nargs="+", metavar="REPORT.json")
    rep.add_argument("--out", metavar="DIR", default=None,
                     help="output folder (default: the single input's folder; required when "
                          "merging)")
    rep.add_argument("--json", action="store_true", help="the (merged) report.json on stdout")
    rep.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Regenerate report.md/html from report.json files (merged when several)."""
    from conv_parity.report import dumps, load_report, merge_reports, write_all
    from conv_parity.report.matrix import exit_code

    paths = [Path(p) for p in args.reports]
    docs = []
    for p in paths:
        if p.is_dir():
            p = p / "report.json"
        if not p.is_file():
            raise UsageError(f"{p}: no such report.json")
        try:
            docs.append(load_report(p))
        except (ValueError, OSError) as exc:
            raise UsageError(f"cannot read {p}: {one_line(exc, 300)}") from None
    if args.out is None and len(docs) > 1:
        raise UsageError("--out DIR is required when merging several reports "
                         "(e.g. --out merged)")
    first = paths[0] if not paths[0].is_dir() else paths[0] / "report.json"
    out = Path(args.out) if args.out is not None else first.parent
    doc = merge_reports(docs) if len(docs) > 1 else docs[0]
    written = write_all(doc, out)
    counts = doc["summary"]["by_verdict"]
    bad = exit_code(doc["results"])  # the one classifier: a strict stale entry fails too
    if args.json:
        emit_json(dumps(doc))
    else:
        shown = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        print(f"{len(doc['results'])} results ({shown or 'none'}) from {len(docs)} report"
              f"{'s' if len(docs) > 1 else ''}")
        for kind in ("json", "md", "html"):
            print(f"wrote {written[kind]}")
    return EXIT_DISCREPANCY if bad else EXIT_OK
