"""``conv-parity registry audit``: prove every known-discrepancy entry's scope by running it.

For each entry possible with the installed Keras and libraries, its example is varied one
dimension at a time on the example's backend (:mod:`conv_parity.audit`): inside the entry's
scope every run must reproduce the entry; just outside it every run must pass or be explained by
another entry. One table (a row per run), a summary line per entry and a final line; ``--json``
prints one JSON document instead. Exit 0 when every audited entry is proven, 1 on a finding,
2 on a usage error (an unknown entry id), 3 when the harness fails (a worker cannot start).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from conv_parity.cli.common import (
    EXIT_DISCREPANCY,
    EXIT_OK,
    EXIT_USAGE,
    emit_json,
    log,
    positive_float,
    stdout_to_stderr,
)
from conv_parity.cli.text import table

EXAMPLES = """\
examples:
  conv-parity registry audit
  conv-parity registry audit --entries tf-pool3d-same-negative-padding
  conv-parity registry audit --backends tensorflow:onednn-on,tensorflow:onednn-off --json

Each entry's example is varied one dimension at a time on its backend: the modes, the dtype
policies and the variants (tensorflow:onednn-on / -off, torch:mkldnn-off) in its scope must
reproduce it (xfail naming it); the nearest ones outside must pass, or be explained by another
entry. Findings: "does not reproduce: scope too wide" and "scope too narrow (widen the entry?)".
Entries about another Keras release or a backend not installed are listed as "not here".
exit codes: 0 every audited entry proven, 1 a finding, 2 bad input, 3 conv-parity itself failed.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    reg = sub.add_parser(
        "registry", help="prove the known-discrepancy registry's scopes",
        description="Work on the known-discrepancy registry (known_discrepancies.toml).",
        epilog=EXAMPLES)
    actions = reg.add_subparsers(dest="registry_command", metavar="ACTION",
                                 parser_class=type(reg))
    audit = actions.add_parser(
        "audit", help="vary every entry's example across its scope and just outside it",
        description="Prove each entry's scope: its example, varied one dimension at a time, "
                    "must reproduce inside the scope and pass (or be another entry's) outside.",
        epilog=EXAMPLES)
    audit.example = "conv-parity registry audit --entries tf-pool3d-same-negative-padding"
    audit.add_argument("--entries", metavar="ID[,ID...]",
                       help="only these entry ids (default: every entry)")
    audit.add_argument("--backends", metavar="LIST",
                       help="only entries whose example runs on these targets, run there "
                            "(names, 'all', 'BACKEND:*'; default: every installed backend and "
                            "variant)")
    audit.add_argument("--json", action="store_true", help="one JSON document on stdout")
    audit.add_argument("--timeout", type=positive_float, default=120.0, metavar="S",
                       help="per-case timeout in seconds (default: 120)")
    audit.set_defaults(action=cmd_audit)
    reg.set_defaults(func=cmd_registry, registry_parser=reg)


def cmd_registry(args: argparse.Namespace) -> int:
    """Dispatch to the action; none given is a usage error that shows the actions."""
    if getattr(args, "registry_command", None) is None:
        args.registry_parser.print_help(sys.stderr)
        log("conv-parity registry: error: name an action, e.g. `conv-parity registry audit`")
        return EXIT_USAGE
    return int(args.action(args))


def cmd_audit(args: argparse.Namespace) -> int:
    """Plan, run and judge; print the table (or JSON); exit 0 proven / 1 a finding."""
    from conv_parity import audit
    from conv_parity import backends as targets
    from conv_parity.engine import Engine
    from conv_parity.registry import Registry, installed_keras_version

    ids = [i.strip() for i in args.entries.split(",") if i.strip()] if args.entries else None
    registry = Registry.load()
    audit.select(registry, ids)  # an unknown id is a usage error before any worker starts
    selected = targets.parse(args.backends)[0] if args.backends else audit.default_targets()
    started = time.monotonic()

    def open_engine(target: str) -> Engine:
        return Engine([target], timeout=args.timeout, registry=registry, diagnose=False,
                      strict_registry=True)

    with stdout_to_stderr(args.json):
        done = audit.audit(registry, installed_keras_version(), selected, open_engine, ids,
                           log=log)
    seconds = time.monotonic() - started
    if args.json:
        emit_json(json.dumps({**done.to_json(), "seconds": round(seconds, 1)}, indent=1,
                             default=str))
    else:
        audited = [a for a in done.entries if a.plan.status == audit.AUDITED]
        if audited:
            for line in table(audit.HEADERS, audit.rows(audited)):
                print(line)
            print()
        for a in done.entries:
            print(a.summary())
            for note in a.plan.notes:
                print(f"  note: {note}")
        print()
        print(f"{done.final_line()} ({seconds:.1f} s)")
    return EXIT_DISCREPANCY if done.findings else EXIT_OK
