"""Cost of the modes against eager, per backend, through the real engine and workers.

For each backend, the same configurations (a seeded sample of the default grid's valid layer
cases) run in eager, grad and predict; the per-case worker time (``Outcome.seconds``: the
mode's worker half plus the symbolic-shape phase) is summed per mode. predict runs every
configuration twice, with two seeds: the second pass reuses the traced model (the issue's
no-retrace rule), so its time is the steady-state cost a profile pays per case.

    python benchmarks/bench_modes.py --cases 40 --backends jax,torch,tensorflow
"""

from __future__ import annotations

import argparse
import random

from conv_parity.case import ConvCase
from conv_parity.engine import Engine
from conv_parity.generate import grid


def _configs(n: int) -> list[ConvCase]:
    valid = [c for c in grid.cases("default", modes=["eager"])
             if not c.kind.is_op and c.input_shape[0] > 0]
    random.Random(1).shuffle(valid)
    return valid[:n]


def _remake(case: ConvCase, mode: str, seed: int | None = None) -> ConvCase:
    return ConvCase.make(case.layer, case.kwargs, case.input_shape, case.dtype, seed=seed,
                         mode=mode)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--backends", default="jax,torch,tensorflow")
    args = ap.parse_args()
    configs = _configs(args.cases)
    runs = {
        "eager": [_remake(c, "eager", 1) for c in configs],
        "grad": [_remake(c, "grad", 1) for c in configs],
        "predict (first seed: traces)": [_remake(c, "predict", 1) for c in configs],
        "predict (second seed: reuses)": [_remake(c, "predict", 2) for c in configs],
    }
    for backend in args.backends.split(","):
        with Engine([backend], diagnose=False) as engine:
            engine.check(runs["eager"][:2])  # warm the worker up
            totals = {}
            for name, cases in runs.items():
                outs = engine.check(cases)
                totals[name] = sum(o.seconds or 0.0 for o in outs)
        eager = totals["eager"]
        parts = ", ".join(f"{k} {v * 1000 / len(configs):.1f} ms ({v / eager:.2f}x)"
                          for k, v in totals.items())
        print(f"{backend}: per case: {parts}")


if __name__ == "__main__":
    main()
