"""``conv-parity run --keras nightly``: the nightly watch's options and what it prints.

The suite runs twice with the same arguments: on the watched Keras (installed into the release
cache, first on the PYTHONPATH of pytest and its workers) and on the installed release (or the
installed release's report is given with ``--baseline``). The comparison is
:mod:`conv_parity.report.watch`; the install and the bisects are :mod:`conv_parity.upstream.watch`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from conv_parity.cli.common import log
from conv_parity.cli.run_child import INTERRUPTED
from conv_parity.cli.text import one_line
from conv_parity.errors import UsageError

if TYPE_CHECKING:
    from conv_parity.upstream.bisect import Tried

#: Where the second run (the installed release) writes its report, inside --report.
BASELINE_DIR = "baseline"
RunSuite = Callable[[Path | None, Path], tuple[int, str]]


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def add_options(run: argparse.ArgumentParser) -> None:
    """The watch's options of ``conv-parity run``."""
    from conv_parity.upstream.watch import DEFAULT_BISECT_LIMIT, DEFAULT_BISECT_NIGHTLIES

    group = run.add_argument_group("nightly watch (docs/upstream.md)")
    group.add_argument("--keras", metavar="WHICH", default=None,
                       help="run on another Keras and compare with the installed release: "
                            "'nightly' (the newest keras-nightly pip serves), a nightly's date "
                            "(2026-10-27) or a version (3.16.0.dev2026102704, 3.14.1); "
                            "installed with pip install --no-deps --target into --cache")
    group.add_argument("--baseline", metavar="FILE", default=None,
                       help="with --keras: the installed release's report.json of the same "
                            "run arguments (default: a second run, into REPORT/baseline)")
    group.add_argument("--cache", metavar="DIR", default=None,
                       help="where Keras versions are installed (default "
                            "$CONV_PARITY_KERAS_CACHE or ~/.cache/conv-parity/keras-releases)")
    group.add_argument("--bisect-nightlies", type=_count, default=DEFAULT_BISECT_NIGHTLIES,
                       metavar="N", help="each new failure is bisected over the last N "
                                         f"nightlies (default {DEFAULT_BISECT_NIGHTLIES})")
    group.add_argument("--bisect-limit", type=int, default=DEFAULT_BISECT_LIMIT, metavar="N",
                       help=f"bisect at most N new failures (default {DEFAULT_BISECT_LIMIT}; "
                            f"0: none)")


def _baseline(args: argparse.Namespace, report: Path, run_suite: RunSuite,
              ) -> tuple[dict, str] | None:
    """The installed release's report document and where it came from (None: interrupted)."""
    from conv_parity.report import load_report

    if args.baseline:
        try:
            return load_report(args.baseline), f"the report {args.baseline}"
        except (OSError, ValueError) as exc:
            raise UsageError(f"--baseline {args.baseline}: {exc}") from None
    log("conv-parity run: the same cases on the installed Keras, for the comparison")
    rc, text = run_suite(None, report / BASELINE_DIR)
    if rc == INTERRUPTED:
        return None
    from conv_parity.report import decode

    return decode(json.loads(text)), "a second run of the same cases"


def _mismatch(doc: dict, base: dict) -> list[str]:
    """Notes when a --baseline report was run with other arguments than this run."""
    out = []
    for key in ("profile", "backends", "layers", "modes", "policies", "shard"):
        mine, theirs = (doc.get("run") or {}).get(key), (base.get("run") or {}).get(key)
        if mine != theirs:
            out.append(f"the baseline ran {key} = {theirs!r}, this run {key} = {mine!r}: only "
                       f"the cases both ran are compared")
    return out


def watch(args: argparse.Namespace, report: Path, run_suite: RunSuite) -> tuple[int, str]:
    """Run the watched Keras and the baseline, add the ``watch`` section to report.json and
    report.md, print it; pytest's exit code of the watched run and the report's new text."""
    from conv_parity.report import decode, dumps, write_all
    from conv_parity.report import watch as section_of
    from conv_parity.upstream import nightlies, releases
    from conv_parity.upstream import watch as upstream_watch

    if args.bisect_limit < 0:
        raise UsageError(f"--bisect-limit must be >= 0, got {args.bisect_limit}")
    cache = releases.cache_dir(args.cache)
    target = upstream_watch.resolve(args.keras, cache)
    for note in target.notes:
        log(f"conv-parity run: {note}")
    log(f"conv-parity run: watching Keras {nightlies.label(target.version)} from "
        f"{target.folder}")
    rc, text = run_suite(target.folder, report)
    if rc == INTERRUPTED:
        return rc, text
    doc = decode(json.loads(text))
    found = _baseline(args, report, run_suite)
    if found is None:
        return INTERRUPTED, ""
    base, source = found
    section = section_of.compare(doc, base, source, target.nightly_date)
    section["notes"] += _mismatch(doc, base) if args.baseline else []

    def said(case_id: str, t: Tried) -> None:
        log(f"  bisect {case_id}: keras {nightlies.label(t.version)}: {t.state} "
            f"({t.seconds:.0f} s)" + (f" - {one_line(t.detail, 160)}" if t.detail else ""))

    upstream_watch.bisect_new(section, target, cache, args.bisect_nightlies, args.bisect_limit,
                              args.timeout, on_tried=said)
    doc["watch"] = section
    write_all(doc, report)
    out = sys.stderr if args.json else sys.stdout
    print("", file=out)
    for line in section_of.text_lines(section):
        print(line, file=out)
    return rc, dumps(doc)


__all__ = ["BASELINE_DIR", "add_options", "watch"]
