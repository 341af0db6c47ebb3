"""``conv-parity bisect``: the Keras release where a case's verdict changes (a bug that came or
went), found by running the case on releases side by side (:mod:`conv_parity.upstream`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from conv_parity.cli.common import (
    EXIT_OK,
    add_case_or_entry_options,
    log,
    positive_float,
)
from conv_parity.cli.text import one_line, table
from conv_parity.errors import UsageError

if TYPE_CHECKING:
    from packaging.version import Version

    from conv_parity.registry import Entry
    from conv_parity.upstream.bisect import Bisection

EXAMPLES = """\
examples:
  conv-parity bisect tf-depthwise-channels-first-cpu-before-3.15          # a registry entry
  conv-parity bisect tf-depthwise-channels-first-cpu-before-3.15 --keras 3.10..3.15.1 --write
  conv-parity bisect "Conv3D(2, 3, data_format='channels_first')" --input-shape 1,3,4,4,4 \\
      --backends tensorflow:onednn-off --keras 3.1..3.6
  conv-parity bisect Conv2D-f8-k3x3-...-float32 --report out/report.json   # a case of a report
  conv-parity bisect tf-bias-add-channels-first-wrong-axis --nightly 2026-10-01..2026-10-27

Releases come from pip's index (pip index versions keras) and are installed with
pip install --no-deps --target into the cache (--cache, or $CONV_PARITY_KERAS_CACHE, default
~/.cache/conv-parity/keras-releases), then reused. Each release tried runs in fresh workers with
the installed backends; one whose Keras does not import with them is 'no-import', not a pass.
--write shows the registry change as a diff; --apply writes it (atomically).
--nightly searches keras-nightly builds (pip index versions keras-nightly --pre) by build date
instead, installed the same way into <cache>/keras-nightly-<version>; with --keras as well, the
releases and the nightlies are searched together in version order.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bisect", help="the Keras release where a case's verdict changes",
                       description="Run a case on Keras releases side by side and find the "
                                   "release where its verdict changes.", epilog=EXAMPLES)
    p.example = "conv-parity bisect tf-depthwise-channels-first-cpu-before-3.15"
    add_case_or_entry_options(p)
    p.add_argument("--keras", metavar="RANGE", default=None,
                   help="releases to search, e.g. 3.1..3.15 (both ends inclusive; default "
                        "3.1 to the newest)")
    p.add_argument("--nightly", metavar="DATES", default=None,
                   help="keras-nightly builds to search, by build date, e.g. "
                        "2026-10-01..2026-12-01 (both ends inclusive, either may be left "
                        "out); with --keras too, releases and nightlies in version order")
    p.add_argument("--cache", metavar="DIR", default=None,
                   help="where releases are installed (default $CONV_PARITY_KERAS_CACHE or "
                        "~/.cache/conv-parity/keras-releases)")
    p.add_argument("--timeout", type=positive_float, default=120.0, metavar="S",
                   help="per-backend timeout in seconds (default 120)")
    p.add_argument("--write", action="store_true",
                   help="show the registry change (keras specifier, fixed_in) as a diff")
    p.add_argument("--apply", action="store_true",
                   help="with --write: apply that change to the registry file")
    p.add_argument("--registry", metavar="FILE", default=None,
                   help="the registry TOML to read and edit (default: the shipped one)")
    p.set_defaults(func=cmd_bisect)


def cmd_bisect(args: argparse.Namespace) -> int:
    from conv_parity.cli.common import selected_backends
    from conv_parity.cli.target import resolve
    from conv_parity.registry import DEFAULT_PATH, Registry
    from conv_parity.upstream import bisect, nightlies, releases

    nightlies.date_range(args.nightly)  # a typo costs no pip query
    if args.write and args.nightly:
        raise UsageError("--write proposes release bounds: bisect releases (--keras) for it, "
                         "not --nightly")
    if args.apply and not args.write:
        raise UsageError("--apply applies the change --write proposes: give both")
    registry_path = Path(args.registry) if args.registry else DEFAULT_PATH
    registry = Registry.load(registry_path)
    target = resolve(args.target, input_shape=args.input_shape, dtype=args.dtype,
                     mode=args.mode, report=args.report, registry=registry)
    if args.backends:
        backends = selected_backends(args.backends)
    elif target.backends:
        backends = target.backends
    else:
        raise UsageError("a layer expression needs --backends (which backends to bisect on)")
    if args.write and target.entry is None:
        raise UsageError("--write edits a registry entry: give an entry id as CASE_OR_ENTRY")
    cache = releases.cache_dir(args.cache)
    chosen, known, notes = nightlies.candidates(args.keras, args.nightly, cache)
    for note in notes:
        log(f"conv-parity bisect: {note}")
    log(f"conv-parity bisect: {target.case.id} ({target.source}) on {', '.join(backends)}, "
        f"Keras {nightlies.label(chosen[0])}..{nightlies.label(chosen[-1])} ({len(chosen)} "
        f"versions), cache {cache}")
    started = time.monotonic()

    def said(t: bisect.Tried) -> None:
        log(f"  keras {nightlies.label(t.version)}: {t.state} ({t.seconds:.0f} s)"
            + (f" - {one_line(t.detail, 200)}" if t.detail else ""))

    found = bisect.search(chosen, bisect.release_probe([target.case], backends, cache,
                                                       args.timeout), on_tried=said)
    rows = [[nightlies.label(t.version), t.state, f"{t.seconds:.0f}", one_line(t.detail, 100) or "-"]
            for t in found.tried]
    print(f"{target.case.id} on {', '.join(backends)}")
    for line in table(["keras", "verdict", "s", "note"], rows):
        print(line)
    print()
    print(bisect.conclusion(found))
    if args.write and target.entry is not None:
        _propose(target.entry, found, known, registry_path, apply=args.apply)
    print(f"({time.monotonic() - started:.0f} s)")
    return EXIT_OK


def _propose(entry: Entry, found: Bisection, known: list[Version], path: Path,
             apply: bool) -> None:
    """Print the registry change as a diff; write it when asked."""
    from conv_parity.upstream.registry_edit import (
        edit_text,
        proposed_fields,
        unified_diff,
        write_registry,
    )

    changes = proposed_fields(entry, found, known)
    print()
    if not changes:
        print(f"registry: {entry.id} already agrees with this bisect (no change)")
        return
    old = path.read_text()
    new = edit_text(old, entry.id, changes)
    print(unified_diff(old, new, path.name), end="")
    if apply:
        write_registry(path, new)
        print(f"registry: applied to {path} (regenerate the table: python -m "
              f"conv_parity.registry --write docs/known-discrepancies.md)")
    else:
        print("registry: not applied (add --apply)")
