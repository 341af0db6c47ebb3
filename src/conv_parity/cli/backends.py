"""``conv-parity backends``: what is installed and importable here, and under which settings.

A verdict depends on the Keras release, the library versions and the platform facts a worker
observes (DESIGN.md), so the first question about a surprising result is "what exactly ran?".
This starts one worker per installed backend and variant, concurrently (the same workers the
engine uses, so an import that fails here fails there too), and reports each one's versions,
device, facts and import time.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from conv_parity import backends as targets
from conv_parity.cli.common import EXIT_OK, emit_json, positive_float, stdout_to_stderr
from conv_parity.cli.progress import Progress, add_progress_option, wanted
from conv_parity.cli.text import one_line, table

EXAMPLES = """\
examples:
  conv-parity backends
  conv-parity backends --json
  conv-parity backends --backends tensorflow:*

Starts one worker per installed backend and variant (concurrently) and reports its versions,
device, platform facts (CPU ISA, TensorFlow's oneDNN, torch's mkldnn, OpenVINO's precision...)
and import time; a backend that is installed but fails to import shows its error. A variant
(BACKEND:SETTING) is the same backend started under one setting, with its own worker and row:
name it in --backends of any subcommand.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    back = sub.add_parser(
        "backends", help="which backends are importable here",
        epilog=EXAMPLES,
        description="Import every installed Keras backend and variant in its own worker and "
                    "report versions, device, platform facts and import time.")
    back.add_argument("--backends", metavar="LIST",
                      help="only these targets (names, 'all', 'BACKEND:*'; default: every "
                           "installed backend and variant)")
    back.add_argument("--json", action="store_true", help="one JSON document on stdout")
    back.add_argument("--timeout", type=positive_float, default=120.0, metavar="S",
                      help=argparse.SUPPRESS)
    add_progress_option(back)
    back.set_defaults(func=cmd_backends)


def cmd_backends(args: argparse.Namespace) -> int:
    """Start every installed target's worker concurrently and report what each one says."""
    from conv_parity import facts
    from conv_parity.workers import WorkerPool

    if args.backends:
        names, _ = targets.parse(args.backends)
    else:
        names = [n for n, s in targets.SPECS.items() if s.installed()]
    rows: list[dict[str, Any]] = []
    with stdout_to_stderr(args.json), Progress(wanted(args)) as progress, \
            WorkerPool(timeout=args.timeout) as pool:
        if names:
            progress(f"conv-parity: importing {', '.join(names)} (one worker each, "
                     f"concurrently)...")
            progress.phase("workers ready")
        pool.start(names)
        infos: dict[str, Any] = {}
        for b in names:
            progress.count(len(infos), len(names))
            infos[b] = pool.info(b)
    shown = names if args.backends else list(targets.SPECS)
    for backend in shown:
        spec = targets.get(backend)
        if backend in infos:
            entry = {**infos[backend].to_json(), "installed": True}
        else:
            entry = {"backend": backend, "installed": False, "available": False,
                     "import_error": f"not installed (needs {'/'.join(spec.modules)})"}
        entry["summary"] = spec.summary
        rows.append(entry)
    if args.json:
        from conv_parity.report import SCHEMA_VERSION
        from conv_parity.report.writer import default_environment

        env = default_environment()
        env["backends"] = {r["backend"]: r for r in rows if r["installed"]}
        emit_json(json.dumps({"schema_version": SCHEMA_VERSION, "environment": env,
                              "backends": rows}, indent=1, default=str))
        return EXIT_OK
    cpu = facts.cpu()
    print(f"CPU: {cpu['cpu.model']} ({cpu['cpu.count']} cores; "
          f"{' '.join(cpu['cpu.isa']) or 'no AVX2/AVX-512/AMX'})")
    rows_text = []
    for r in rows:
        if r["available"]:
            status = "yes"
        elif r["installed"]:
            status = "NO (import failed)"
        else:
            status = "not installed"
        secs = r.get("import_seconds")
        rows_text.append([
            r["backend"], status, r.get("keras_version") or "-",
            r.get("backend_version") or "-", r.get("device") or "-",
            facts.describe(r.get("facts") or {}, facts.HEADLINE) or "-",
            f"{secs:.1f} s" if isinstance(secs, (int, float)) else "-",
            one_line(r.get("import_error") if r["installed"] and not r["available"] else "", 100)
            or "-",
        ])
    for line in table(["backend", "importable", "keras", "backend version", "device",
                       "facts", "import time", "error"], rows_text):
        print(line)
    return EXIT_OK
