"""Benchmark: fuzz examples per second vs grid cases per second, same engine, same run.

The grid path sends a whole profile to every backend in batched round trips
(``Engine.check(grid.cases(profile))``); the fuzz path (``run_campaign``, which the CLI's
``fuzz`` and the shipped fuzz tests share) sends one drawn case per round trip, to all backends
concurrently. Both run on one warm engine, so worker start-up is excluded from both. Per-backend
columns are the worker-side seconds per case (what each backend itself spends); the totals are
wall-clock. Target (issue 8): fuzz seconds per case <= 1.5 x grid seconds per case.

Run:  .venv/bin/python benchmarks/bench_fuzz.py [--backends tensorflow,jax] [--examples 60]
This is a measurement, not a test: on a shared machine the numbers are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from conv_parity.engine import Engine
from conv_parity.fuzzing import run_campaign
from conv_parity.generate import grid


def _per_backend(outcomes: list[Any], backends: list[str]) -> dict[str, float]:
    total = dict.fromkeys(backends, 0.0)
    for o in outcomes:
        if o.seconds:
            total[o.backend] += o.seconds
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=None, help="comma-separated (default: installed)")
    parser.add_argument("--examples", type=int, default=60, help="fuzz examples")
    parser.add_argument("--profile", default="smoke", choices=grid.PROFILES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)

    with Engine(args.backends) as engine:
        t0 = time.perf_counter()
        engine.environment()  # start every worker and wait for it: excluded from both paths
        startup = time.perf_counter() - t0
        backends = list(engine.backends)

        cases = grid.cases(args.profile)
        t0 = time.perf_counter()
        outcomes = engine.check(cases)
        grid_s = time.perf_counter() - t0
        grid_b = _per_backend(outcomes, backends)

        result = run_campaign(max_examples=args.examples, seed=args.seed, engine=engine,
                              registry=engine.registry)
        fuzz_n = result.examples + result.shrink_examples
        fuzz_s = result.seconds

    rows = {
        "grid": {"cases": len(cases), "seconds": grid_s, "per_case": grid_s / len(cases),
                 "backend_per_case": {b: s / len(cases) for b, s in grid_b.items()}},
        "fuzz": {"cases": fuzz_n, "seconds": fuzz_s, "per_case": fuzz_s / max(1, fuzz_n),
                 "backend_per_case": {b: s / max(1, fuzz_n)
                                      for b, s in result.backend_seconds.items()},
                 "distinct_discrepancies": len(result.discrepancies),
                 "filtered_known": result.filtered_known},
    }
    ratio = rows["fuzz"]["per_case"] / rows["grid"]["per_case"]
    summary = {"backends": backends, "startup_seconds": startup, "cpus": os.cpu_count(),
               "rows": rows, "fuzz_over_grid_per_case": ratio, "target": 1.5,
               "ok": ratio <= 1.5}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"backends: {', '.join(backends)}; {os.cpu_count()} CPUs; worker start-up "
          f"{startup:.1f}s (excluded)")
    head = f"{'path':<6} {'cases':>6} {'wall s':>8} {'cases/s':>8} {'ms/case':>8} | " + " | ".join(
        f"{b[:10]:>10}" for b in backends)
    print(head)
    print("-" * len(head))
    for name, r in rows.items():
        per_b = " | ".join(f"{1000 * r['backend_per_case'].get(b, 0.0):>8.1f}ms"
                           for b in backends)
        print(f"{name:<6} {r['cases']:>6} {r['seconds']:>8.2f} {r['cases'] / r['seconds']:>8.2f} "
              f"{1000 * r['per_case']:>8.1f} | {per_b}")
    print(f"fuzz/grid seconds per case: {ratio:.2f} (target <= 1.5: "
          f"{'ok' if ratio <= 1.5 else 'MISSED'}); fuzz found "
          f"{rows['fuzz']['distinct_discrepancies']} distinct discrepancies, filtered "
          f"{rows['fuzz']['filtered_known']} known")
    print("per-backend columns: worker-side ms per case (the backends run concurrently)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
