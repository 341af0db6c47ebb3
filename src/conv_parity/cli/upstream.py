"""``conv-parity upstream``: a ready-to-file Markdown issue for a case or a registry entry, with a
standalone reproduction that was run and seen to reproduce first (:mod:`conv_parity.upstream`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from conv_parity.cli.common import (
    EXIT_DISCREPANCY,
    EXIT_OK,
    add_case_or_entry_options,
    log,
    positive_float,
)
from conv_parity.cli.text import one_line

EXAMPLES = """\
examples:
  conv-parity upstream tf-bias-add-channels-first-wrong-axis            # a registry entry
  conv-parity upstream "DepthwiseConv1D(1, depth_multiplier=2, data_format='channels_first')" \\
      --input-shape 1,2,4 --backends tensorflow --out issue.md
  python -m conv_parity.upstream --write docs/upstream   # a draft per unreported entry

The case runs on every installed backend (on the Keras release the entry is about: the
installed one, or its example's release from the release cache); the repro script is run in a
fresh interpreter and the draft is printed only when it shows the discrepancy (exit 1 otherwise,
with what the script printed).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upstream", help="a ready-to-file upstream issue (Markdown) for a case",
                       description="Write a ready-to-file Keras issue for a case or a registry "
                                   "entry, with a checked standalone reproduction.",
                       epilog=EXAMPLES)
    p.example = "conv-parity upstream tf-bias-add-channels-first-wrong-axis"
    add_case_or_entry_options(p)
    p.add_argument("--cache", metavar="DIR", default=None,
                   help="the Keras release cache (as for bisect)")
    p.add_argument("--timeout", type=positive_float, default=120.0, metavar="S")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="write the Markdown here (default: stdout)")
    p.set_defaults(func=cmd_upstream)


def cmd_upstream(args: argparse.Namespace) -> int:
    from conv_parity.cli.common import selected_backends
    from conv_parity.cli.target import resolve
    from conv_parity.errors import UsageError
    from conv_parity.upstream import draft, releases

    target = resolve(args.target, input_shape=args.input_shape, dtype=args.dtype,
                     mode=args.mode, report=args.report)
    backends = selected_backends(args.backends) if args.backends else target.backends
    if not backends:
        raise UsageError("a layer expression needs --backends (the backends to report on)")
    started = time.monotonic()
    log(f"conv-parity upstream: {target.case.id} ({target.source}) on {', '.join(backends)}")
    try:
        ev = draft.gather(target.case, backends, target.entry,
                          releases.cache_dir(args.cache), args.timeout)
    except draft.NotReproduced as exc:
        log(f"conv-parity upstream: not written: {one_line(exc, 1000)}")
        return EXIT_DISCREPANCY
    text = draft.markdown(ev, draft.fingerprint(target.entry.id) if target.entry else None)
    if args.out:
        Path(args.out).write_text(text)
        log(f"conv-parity upstream: wrote {args.out}")
    else:
        print(text, end="")
    log(f"conv-parity upstream: checked reproduction on {ev.backend}, Keras {ev.keras} "
        f"({time.monotonic() - started:.0f} s)")
    return EXIT_OK
