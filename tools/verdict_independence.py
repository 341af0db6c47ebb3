"""Prove that a verdict does not depend on which other backends were selected.

    python tools/verdict_independence.py --profile default --out independence/

Runs ``conv-parity run`` on the same profile with each installed backend alone, with
``tensorflow,torch`` and with all of them (every mode: eager, predict, jit, grad), then
compares every (case, backend) verdict across the runs that selected that backend, and checks
in each run that pytest's failed count equals the number of results the one classifier
(:func:`conv_parity.report.matrix.bucket`) calls new. Prints a Markdown table; exit 1 on any
difference. Not a test: the default profile takes many minutes per run on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from conv_parity import backends as targets
from conv_parity.report.matrix import bucket

MODES = "eager,predict,jit,grad"


def selections() -> list[str]:
    """Each installed backend alone, tensorflow with torch (when both are here), and all."""
    installed = targets.installed()
    chosen = list(installed)
    if {"tensorflow", "torch"} <= set(installed):
        chosen.append("tensorflow,torch")
    chosen.append(",".join(installed))
    return list(dict.fromkeys(chosen))


def run(selection: str, profile: str, out: Path) -> tuple[dict[tuple[str, str], str], int, int]:
    """(case id, backend) -> verdict of one run, pytest's failed count, the classifier's."""
    report = out / selection.replace(",", "+")
    proc = subprocess.run(
        [sys.executable, "-m", "conv_parity.cli", "run", "--profile", profile, "--backends",
         selection, "--modes", MODES, "--report", str(report), "--", "-q", "-p", "no:randomly"],
        capture_output=True, text=True)
    tail = proc.stdout.strip().splitlines()[-1:] or ["(no output)"]
    found = re.search(r"(\d+) failed", tail[0])
    pytest_failed = int(found.group(1)) if found else 0
    doc = json.loads((report / "report.json").read_text())
    verdicts = {(r["case_id"], r["backend"]): r["verdict"] for r in doc["results"]}
    classified_new = sum(bucket(r) == "new" for r in doc["results"])
    return verdicts, pytest_failed, classified_new


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--out", type=Path, default=Path("conv-parity-report/independence"))
    args = ap.parse_args(argv)
    runs: dict[str, dict[tuple[str, str], str]] = {}
    print("| selection | results | pytest failed | classified new | counts agree |")
    print("|---|---|---|---|---|")
    ok = True
    for selection in selections():
        verdicts, failed, new = run(selection, args.profile, args.out)
        runs[selection] = verdicts
        ok &= failed == new
        print(f"| {selection} | {len(verdicts)} | {failed} | {new} | "
              f"{'yes' if failed == new else 'NO'} |", flush=True)
    seen: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for selection, verdicts in runs.items():
        for key, verdict in verdicts.items():
            seen[key][selection] = verdict
    differ = {key: by for key, by in seen.items() if len(set(by.values())) > 1}
    compared = sum(len(by) > 1 for by in seen.values())
    print(f"\n{compared} (case, backend) pairs ran in more than one selection; "
          f"{len(differ)} changed verdict with the selection")
    for (case_id, backend), by in sorted(differ.items()):
        print(f"  {case_id} on {backend}: " + ", ".join(f"{s}: {v}" for s, v in by.items()))
    return 0 if ok and not differ else 1


if __name__ == "__main__":
    raise SystemExit(main())
