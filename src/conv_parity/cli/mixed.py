"""``conv-parity check --mixed-dtypes``: the ``keras.ops`` conv family with an input and a
kernel of different dtypes, on every selected backend (:mod:`conv_parity.mixed_dtypes`).

One table: a row per probe (op and dtype pair), a column per backend with the result dtype or
the exception's type, then the verdict. Exit 1 only for a disagreement no ``[[mixed_dtypes]]``
entry describes (or, with ``--strict-registry``, an entry that no longer holds).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from conv_parity.cli.common import (
    EXIT_DISCREPANCY,
    EXIT_OK,
    emit_json,
    log,
    selected_backends,
    stdout_to_stderr,
)
from conv_parity.cli.text import table


def _cell(answer: dict[str, Any]) -> str:
    if "dtype" in answer:
        return answer["dtype"]
    if "skip" in answer:
        return "skip"
    return f"raises {(answer.get('error') or {}).get('type', 'Error')}"


def cmd_mixed(args: argparse.Namespace) -> int:
    """Run the probes, print the table (or JSON), exit 0 / 1."""
    import json

    from conv_parity import mixed_dtypes
    from conv_parity.engine import Engine

    ops = None if args.mixed_dtypes == "all" else [
        o if o.startswith("ops.") else f"ops.{o}" for o in args.mixed_dtypes.split(",")]
    probe_list = mixed_dtypes.probes(ops)
    backends = selected_backends(args.backends)
    log(f"conv-parity: {len(probe_list)} mixed input/kernel dtype probes on "
        f"{', '.join(backends)}")
    started = time.monotonic()
    with stdout_to_stderr(args.json), Engine(backends, timeout=args.timeout) as engine:
        results = mixed_dtypes.check(engine, probe_list)
        keras_version = engine.keras_version
    new = [r for r in results if r.verdict == "disagree"]
    stale = [r for r in results if r.stale and r.verdict != "known"]
    if args.json:
        emit_json(json.dumps({"keras": keras_version, "backends": backends,
                              "mixed_dtypes": [r.to_json() for r in results]}, indent=1))
    else:
        rows = [[r.probe.op, r.probe.input_dtype, r.probe.kernel_dtype,
                 *(_cell(r.answers.get(b, {"skip": ""})) for b in backends),
                 r.verdict + (f" ({r.known})" if r.known else "")] for r in results]
        for line in table(["op", "x", "kernel", *backends, "verdict"], rows):
            print(line)
        print()
        for r in new:
            print(f"NEW: {r.probe.id}: {r.message}")
        for r in stale:
            print(f"note: {r.probe.id}: known entry {', '.join(r.stale)} did not reproduce "
                  f"({r.message})")
        counts = {v: sum(r.verdict == v for r in results) for v in mixed_dtypes.VERDICTS}
        print(", ".join(f"{n} {v}" for v, n in counts.items())
              + f" ({time.monotonic() - started:.1f} s)")
    failed = bool(new) or (args.strict_registry and bool(stale))
    return EXIT_DISCREPANCY if failed else EXIT_OK
