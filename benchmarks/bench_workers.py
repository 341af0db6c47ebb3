"""Benchmark: what the worker pool costs compared with calling Keras directly.

Per backend, on the same N mixed Conv2D cases (default 200):
  (a) bare: one warm process (Keras already imported) calling exactly what a worker calls
      (``handlers.cases.run_case`` + ``symbolic_shapes``) in a loop;
  (b) pool: ``WorkerPool.run`` on a worker (framing, sockets, result objects included).
Both stay alive side by side and take turns on the same cases, in samples of --chunk cases (a
shared machine's load drifts; interleaving makes both sides see the same drift). Pass 1 sees
every shape for the first time (JAX compiles); pass 2 runs all cases again --repeats times.
Each ratio is the median of per-sample pool/bare ratios. Targets (issue 4): pool/bare <= 1.25
per case on every backend, and pool start-up <= 1.2 x max(slowest single import, sum of
imports / cores).

Run:  python benchmarks/bench_workers.py [--backends ...] [--cases 200] [--repeats 5]
This is a measurement, not a test: on a shared machine the numbers are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from conv_parity import BACKENDS
from conv_parity.case import ConvCase
from conv_parity.cli.common import positive_int
from conv_parity.workers import WorkerPool, WorkItem, make_items
from conv_parity.workers.pool import _pythonpath_for_child, limit_threads_env


def mixed_conv2d_cases(n: int, seed: int = 0) -> list[ConvCase]:
    """`n` valid Conv2D configurations with every knob varied (small shapes, like the suite)."""
    rng = np.random.default_rng(seed)
    cases: list[ConvCase] = []
    while len(cases) < n:
        c = int(rng.choice([1, 2, 3, 4, 6, 8]))
        groups = int(rng.choice([g for g in (1, 2, 3) if c % g == 0]))
        filters = groups * int(rng.integers(1, 5))
        k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        strides = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        dil = (1, 1) if strides != (1, 1) else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        h, w = int(rng.integers(6, 33)), int(rng.integers(6, 33))
        if any(s < (kk - 1) * d + 1 for s, kk, d in zip((h, w), k, dil)):
            continue
        fmt = str(rng.choice(["channels_last", "channels_first"]))
        batch = int(rng.integers(1, 5))
        shape = (batch, h, w, c) if fmt == "channels_last" else (batch, c, h, w)
        kwargs = {
            "filters": filters, "kernel_size": k, "strides": strides,
            "padding": str(rng.choice(["valid", "same"])), "data_format": fmt,
            "dilation_rate": dil, "groups": groups, "use_bias": bool(rng.integers(0, 2)),
        }
        cases.append(ConvCase.make("Conv2D", kwargs, shape, seed=len(cases)))
    return cases


def warmup_cases() -> list[ConvCase]:
    return [ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 2}, (1, 5, 5, 1), seed=s)
            for s in range(3)]


# ----------------------------------------------------------------------------- bare loop
def bare_main(backend: str, cases_path: str) -> None:
    """Runs in a subprocess with KERAS_BACKEND set: the bare warm loop, driven over stdin.

    Each stdin line ``a b`` runs cases[a:b] and answers one JSON line of timings, so the
    parent can interleave bare and pool samples of the same cases.
    """
    from conv_parity.backends import get
    from conv_parity.workers import child
    from conv_parity.workers.context import WorkerContext
    from conv_parity.workers.handlers.cases import run_case, symbolic_shapes

    child._limit_threads(get(backend))
    import keras

    ctx = WorkerContext(keras, get(backend))
    cases = [ConvCase.from_json(c) for c in json.loads(Path(cases_path).read_text())]

    def loop(cs: list[ConvCase]) -> tuple[float, float]:
        arrays = [c.arrays() for c in cs]
        t0, c0 = time.perf_counter(), time.process_time()
        for case, (x, ws) in zip(cs, arrays):
            with contextlib.suppress(Exception):
                run_case(ctx, case, x, ws)
            symbolic_shapes(ctx, case)
        return time.perf_counter() - t0, time.process_time() - c0

    loop(warmup_cases())
    print("ready", flush=True)
    for line in sys.stdin:
        lo, hi = (int(v) for v in line.split())
        wall, cpu = loop(cases[lo:hi])
        print(json.dumps({"wall": wall, "cpu": cpu}), flush=True)


class Bare:
    """The bare loop's process, started once per backend and asked for one sample at a time."""

    def __init__(self, backend: str, cases_path: str, threads: int | None) -> None:
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=_pythonpath_for_child(),
                   TF_CPP_MIN_LOG_LEVEL="2")
        limit_threads_env(env, threads)  # exactly what the pool sets for its workers
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--bare", backend, cases_path],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True,
        )
        while (line := self.proc.stdout.readline()).strip() != "ready":
            if not line:
                raise RuntimeError(f"the bare {backend} process died while starting")

    def sample(self, lo: int, hi: int) -> dict[str, float]:
        self.proc.stdin.write(f"{lo} {hi}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# ----------------------------------------------------------------------------- pool
def pool_sample(pool: WorkerPool, backend: str, items: list[WorkItem]) -> dict[str, float]:
    """One pool run of ``items``: wall time, and CPU seconds of worker + parent."""
    proc = psutil.Process(pool.pids()[backend])
    cpu0 = sum(proc.cpu_times()[:2]) + time.process_time()
    t0 = time.perf_counter()
    results = list(pool.run(backend, items))
    wall = time.perf_counter() - t0
    cpu = sum(proc.cpu_times()[:2]) + time.process_time() - cpu0
    bad = [r for r in results if r.status in ("crash", "timeout")]
    if bad:
        print(f"warning: {backend}: {len(bad)} crash/timeout results", file=sys.stderr)
    return {"wall": wall, "cpu": cpu, "errors": sum(r.status == "error" for r in results)}


def side_by_side(pool: WorkerPool, bare: Bare, backend: str, cases: list[ConvCase],
                 chunk: int, repeats: int, pause: float) -> dict[str, Any]:
    """Interleaved samples of the pool and the bare loop on the same cases.

    Both passes go chunk by chunk (the engine, too, sends a batch of 16 cases at a time), pool
    and bare alternating which goes first: pass 1 once (shapes new to both processes), pass 2
    ``repeats`` times over. A ratio is the median of per-sample ratios, so the drifts of a
    shared machine's load, which both sides of a sample see alike, cancel out.
    """
    items = make_items(cases)
    list(pool.run(backend, make_items(warmup_cases())))
    restarts = pool.restarts[backend]
    out: dict[str, Any] = {}
    chunks = [(lo, min(lo + chunk, len(cases))) for lo in range(0, len(cases), chunk)]
    for k, ranges in ((1, chunks), (2, chunks * repeats)):
        samples: list[tuple[dict[str, float], dict[str, float]]] = []  # (bare, pool)
        for i, (lo, hi) in enumerate(ranges):
            pair: dict[str, dict[str, float]] = {}
            for side in (("pool", "bare") if i % 2 == 0 else ("bare", "pool")):
                time.sleep(pause)
                pair[side] = (pool_sample(pool, backend, items[lo:hi]) if side == "pool"
                              else bare.sample(lo, hi))
            samples.append((pair["bare"], pair["pool"]))
        n = len(cases) if k == 1 else len(cases) * repeats
        for m in ("wall", "cpu"):
            out[f"bare_{m}{k}"] = sum(b[m] for b, _ in samples) / n
            out[f"pool_{m}{k}"] = sum(p[m] for _, p in samples) / n
            out[f"ratio_{m}{k}"] = statistics.median(p[m] / b[m] for b, p in samples)
        out[f"samples{k}"] = [(b["wall"], p["wall"]) for b, p in samples]
    out["errors"] = sum(p["errors"] for _, p in samples[: len(chunks)])  # each case once
    out["worker_restarts"] = pool.restarts[backend] - restarts  # (would mean recompiling)
    return out


def import_time(backend: str) -> float:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import keras"], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backends", nargs="*", default=list(BACKENDS))
    ap.add_argument("--cases", type=positive_int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="worker intra-op threads (0: default)")
    ap.add_argument("--chunk", type=positive_int, default=20,
                    help="cases per sample (one pool batch), pool and bare in turn")
    ap.add_argument("--repeats", type=positive_int, default=5,
                    help="how many times pass 2 (shapes seen before) goes over all cases")
    ap.add_argument("--pause", type=float, default=0.1, help="seconds of rest before a sample")
    ap.add_argument("--json", type=Path, help="also write the numbers (and samples) here")
    ap.add_argument("--bare", nargs=2, metavar=("BACKEND", "CASES_JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare:
        bare_main(*args.bare)
        return
    threads = args.threads or None
    cases = mixed_conv2d_cases(args.cases)
    cores = os.cpu_count() or 1

    # Start-up: each import alone (sequentially), then the pool starting all at once.
    imports = {b: import_time(b) for b in args.backends}
    t0 = time.perf_counter()
    pool = WorkerPool(timeout=300, threads=threads)
    pool.start(args.backends)
    infos = {b: pool.info(b) for b in args.backends}
    startup = time.perf_counter() - t0
    backends = [b for b in args.backends if infos[b].available]

    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cases.json"
        path.write_text(json.dumps([c.to_json() for c in cases]))
        for b in backends:
            bare = Bare(b, str(path), threads)
            try:
                rows[b] = side_by_side(pool, bare, b, cases, args.chunk, args.repeats,
                                       args.pause)
            finally:
                bare.close()
    pool.close()

    print(f"\n{len(cases)} mixed Conv2D cases per backend; {cores} cores; worker threads="
          f"{threads}; ms per case. Pass 1: shapes new to both processes; pass 2: the same cases "
          f"{args.repeats} times again. Samples of {args.chunk} cases, pool and bare in turn; "
          "a ratio is the median of per-sample ratios.\n"
          "wall = elapsed time, cpu = CPU seconds of the process(es) doing the work "
          "(pool: worker + parent)\n")
    print("| backend | pass | bare wall | pool wall | ratio | bare cpu | pool cpu | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for b, r in rows.items():
        for k in (1, 2):
            print(f"| {b} | {k} | {1e3 * r[f'bare_wall{k}']:.2f} | {1e3 * r[f'pool_wall{k}']:.2f} "
                  f"| {r[f'ratio_wall{k}']:.2f} | {1e3 * r[f'bare_cpu{k}']:.2f} | "
                  f"{1e3 * r[f'pool_cpu{k}']:.2f} | {r[f'ratio_cpu{k}']:.2f} |")
        if r["worker_restarts"]:
            print(f"| {b} | (the worker restarted {r['worker_restarts']} times) |")
    slowest = max(imports.values())
    bound = max(slowest, sum(imports.values()) / cores)
    print("\n| backend | import alone (s) | worker import in pool (s) | ready after (s) |")
    print("|---|---:|---:|---:|")
    for b in args.backends:
        i = infos[b]
        print(f"| {b} | {imports[b]:.2f} | {i.import_seconds or float('nan'):.2f} | "
              f"{i.startup_seconds or float('nan'):.2f} |")
    print(f"\npool start-up (all concurrently): {startup:.2f} s; slowest import {slowest:.2f} s; "
          f"sum/cores {sum(imports.values()) / cores:.2f} s; target <= 1.2 x {bound:.2f} = "
          f"{1.2 * bound:.2f} s -> ratio {startup / bound:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "imports": imports, "startup": startup,
                                         "cores": cores, "threads": threads}, indent=1))


if __name__ == "__main__":
    main()
