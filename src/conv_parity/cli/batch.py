"""``conv-parity check --cases FILE``: many cases through one set of workers.

Starting the backends costs seconds, checking a case milliseconds: a batch (the layer configs of
a real model, a rerun of a report) must pay the start once. A batch never aborts: an entry that
is not a valid case is listed with its index and reason, a configuration the spec rejects runs
anyway (every backend must reject it too), and the last lines count, per backend, what conforms
and what does not (conv_parity.report.matrix). An entry Keras accepts but conv-parity cannot
compute (a softmax head) is listed as not checked, as ``model`` lists the same layer, and does
not change the exit code: the batch was right to contain it.
"""

from __future__ import annotations

import argparse
import time

from conv_parity.cli.common import (
    EXIT_DISCREPANCY,
    EXIT_OK,
    EXIT_USAGE,
    emit_json,
    log,
    selected_backends,
    stdout_to_stderr,
)


def check_cases(args: argparse.Namespace) -> int:
    """Run a case file; exit 1 on a new discrepancy, else 2 when entries were rejected, else 0
    (uncheckable entries are listed, not counted against the batch)."""
    from conv_parity.engine import Engine
    from conv_parity.generate.case_file import read_cases
    from conv_parity.report import build_doc, dumps, write_all
    from conv_parity.report.matrix import counts_line, exit_code
    from conv_parity.report.writer import default_environment, normalize_result

    found = read_cases(args.cases)
    for index, why in found.rejected:
        log(f"conv-parity: {args.cases}: entry {index} is not a valid case, skipped: {why}")
    for index, why in found.uncheckable:
        log(f"conv-parity: {args.cases}: entry {index} not checked: {why}")
    backends = selected_backends(args.backends)
    started = time.monotonic()
    log(f"conv-parity: checking {len(found.cases)} cases from {args.cases} on "
        f"{', '.join(backends)}...")
    results: list[dict] = []
    env: dict = {}
    if found.cases:
        with stdout_to_stderr(args.json), Engine(
            backends, timeout=args.timeout, report_dir=args.report,
            strict_registry=args.strict_registry, repro=args.repro,
        ) as engine:
            engine.plan(found.cases)
            results = [o.to_json() for o in engine.check(found.cases)]
            env = engine.environment()
    run = {"front_door": "check --cases", "backends": backends, "cases_file": str(args.cases),
           "rejected": [{"index": i, "reason": why} for i, why in found.rejected],
           "not_checked": [{"index": i, "reason": why} for i, why in found.uncheckable]}
    doc = build_doc([normalize_result(r) for r in results], run, env or default_environment(),
                    complete=True)
    if args.report:
        write_all(doc, args.report)
    if args.json:
        emit_json(dumps(doc))
    else:
        for r in results:
            if (r.get("known") or {}).get("stale") or r["verdict"] not in (
                    "pass", "unsupported", "skip"):
                print(f"{r['case_id']} on {r['backend']}: {r['verdict']}: "
                      f"{' '.join(str(r.get('message') or '').split())[:200]}")
        print()
        for line in counts_line(results):
            print(line)
        for index, why in found.uncheckable:
            print(f"not checked: entry {index}: {why}")
        if found.rejected:
            print(f"{len(found.rejected)} entries of {args.cases} were not valid cases "
                  f"(listed above, on stderr)")
        print(f"{len(found.cases)} cases x {len(backends)} backends in "
              f"{time.monotonic() - started:.1f} s")
    if exit_code(results, fail_on_known=args.fail_on_known):
        return EXIT_DISCREPANCY
    return EXIT_USAGE if found.rejected else EXIT_OK
