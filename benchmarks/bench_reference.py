"""Benchmark of the NumPy reference against torch's CPU conv2d and the GEMM bound.

Run:  PYTHONPATH=src python benchmarks/bench_reference.py [--rounds 7] [--pause 0.15]

For each case and dtype (float64, float32) three implementations are timed side by side:

* ``ours``: ``conv_parity.reference.ops.conv`` (always computes in float64, whatever the input);
* ``torch``: ``torch.nn.functional.conv2d`` on CPU in the same dtype (NCHW, converted untimed);
* ``gemm``: one ``np.matmul`` with the im2col shapes ``(N*OH*OW, KH*KW*C/G) @ (.., F/G)``
  (batched over groups) in the same dtype, on preallocated operands: what the arithmetic
  alone costs with this BLAS.

The machine is shared and OpenBLAS threads keep spinning ~0.1 s after a matmul, slowing whatever
runs next, so every sample is preceded by a pause, the implementations are interleaved (their
order rotates each round), and the table reports the median of per-round ratios next to the
median times. It also reports the tracemalloc peak of ``ours`` on the large case (float64)
against padded input + output + scratch budget, and the per-call time on a tiny 2x8x8x3 input.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from conv_parity import reference
from conv_parity.cli.common import positive_int
from conv_parity.reference import ops


@dataclass(frozen=True)
class Case:
    name: str
    shape: tuple[int, int, int, int]  # N, H, W, C (channels_last)
    filters: int
    kernel: int
    strides: int = 1
    padding: str = "same"
    dilation: int = 1
    groups: int = 1


CASES = [
    Case("small", (2, 8, 8, 3), 8, 3),
    Case("medium", (8, 32, 32, 16), 32, 3),
    Case("large", (16, 64, 64, 64), 64, 3),
    Case("strided", (8, 64, 64, 32), 64, 5, strides=2, padding="valid"),
    Case("dilated+grouped", (8, 32, 32, 16), 32, 3, dilation=2, groups=4),
]


def _out_size(n: int, c: Case) -> int:
    span = (c.kernel - 1) * c.dilation + 1
    return -(-n // c.strides) if c.padding == "same" else (n - span) // c.strides + 1


def _make(case: Case, dtype: str, torch) -> dict[str, Callable[[], object]]:
    rng = np.random.default_rng(0)
    n, h, w, ch = case.shape
    x = rng.standard_normal(case.shape).astype(dtype)
    k = rng.standard_normal((case.kernel, case.kernel, ch // case.groups, case.filters))
    k = k.astype(dtype)
    fns: dict[str, Callable[[], object]] = {
        "ours": lambda: ops.conv(x, k, case.strides, case.padding, None, case.dilation),
    }
    if torch is not None:
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        wt = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
        pad = "same" if case.padding == "same" else 0
        if case.padding == "same" and case.strides > 1:
            raise ValueError("torch 'same' needs stride 1")

        def run_torch():
            with torch.no_grad():
                return torch.nn.functional.conv2d(
                    xt, wt, stride=case.strides, padding=pad, dilation=case.dilation,
                    groups=case.groups,
                )

        fns["torch"] = run_torch
    m = n * _out_size(h, case) * _out_size(w, case)
    kc = case.kernel * case.kernel * ch // case.groups
    fg = case.filters // case.groups
    if case.groups == 1:
        a, b, c = rng.standard_normal((m, kc)), rng.standard_normal((kc, fg)), np.empty((m, fg))
    else:
        g = case.groups
        a, b, c = (rng.standard_normal((g, m, kc)), rng.standard_normal((g, kc, fg)),
                   np.empty((g, m, fg)))
    a, b, c = a.astype(dtype), b.astype(dtype), c.astype(dtype)
    fns["gemm"] = lambda: np.matmul(a, b, out=c)
    return fns


def _time(fn: Callable[[], object], pause: float, min_time: float = 0.02) -> float:
    """Seconds per call: pause (let BLAS threads settle), then enough calls to last min_time."""
    time.sleep(pause)
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    reps = max(1, int(min_time / max(once, 1e-7)))
    if reps == 1:
        return once
    time.sleep(pause)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def _peak_large(budget: int) -> tuple[float, float]:
    """tracemalloc peak of ours on the large case (MiB) and the bound it should stay under."""
    c = CASES[2]
    rng = np.random.default_rng(1)
    x = rng.standard_normal(c.shape)
    k = rng.standard_normal((c.kernel, c.kernel, c.shape[-1], c.filters))
    n, h, w, ch = c.shape
    pad = c.kernel - 1
    bound = 8 * (n * (h + pad) * (w + pad) * ch + n * h * w * c.filters) + budget
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    ops.conv(x, k, 1, "same", scratch_bytes=budget)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak / 2**20, bound / 2**20


def _tiny_us() -> float:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 8, 8, 3))
    w = [rng.standard_normal((3, 3, 3, 4)), rng.standard_normal(4)]
    kw = dict(filters=4, kernel_size=3, padding="same")
    reference.forward("Conv2D", x, w, **kw)
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(500):
            reference.forward("Conv2D", x, w, **kw)
        best = min(best, (time.perf_counter() - t0) / 500)
    return best * 1e6


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=positive_int, default=7)
    ap.add_argument("--pause", type=float, default=0.15)
    ap.add_argument("--cases", nargs="*", default=[c.name for c in CASES])
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:  # the table still has ours vs the GEMM bound
        torch = None
    print(f"numpy {np.__version__}, torch {getattr(torch, '__version__', 'absent')} "
          f"(threads {torch.get_num_threads() if torch else '-'}), cpus {os.cpu_count()}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')!r}, "
          f"scratch budget {reference.DEFAULT_SCRATCH_BYTES // 2**20} MiB, "
          f"rounds {args.rounds}, pause {args.pause}s")
    head = (f"{'case':<16} {'dtype':<8} {'ours ms':>9} {'torch ms':>9} {'gemm ms':>9} "
            f"{'ours/torch':>10} {'ours/gemm':>10}")
    print(head)
    print("-" * len(head))
    for case in (c for c in CASES if c.name in args.cases):
        for dtype in ("float64", "float32"):
            fns = _make(case, dtype, torch)
            names = list(fns)
            for fn in fns.values():  # warm up (allocations, plan cache, torch dispatch)
                fn()
            times: dict[str, list[float]] = {k: [] for k in names}
            for r in range(args.rounds):
                order = names[r % len(names):] + names[: r % len(names)]
                for name in order:
                    times[name].append(_time(fns[name], args.pause))
            med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            ratio = {
                other: statistics.median(o / t for o, t in zip(times["ours"], times[other]))
                for other in names if other != "ours"
            }
            print(f"{case.name:<16} {dtype:<8} {med['ours']:>9.2f} "
                  f"{med.get('torch', float('nan')):>9.2f} {med['gemm']:>9.2f} "
                  f"{ratio.get('torch', float('nan')):>10.2f} {ratio['gemm']:>10.2f}")
    peak, bound = _peak_large(reference.DEFAULT_SCRATCH_BYTES)
    print(f"\npeak extra memory, large case float64 (tracemalloc): {peak:.1f} MiB "
          f"(padded input + output + scratch budget = {bound:.1f} MiB; "
          f"input alone is {16 * 64 * 64 * 64 * 8 / 2**20:.1f} MiB)")
    print(f"tiny call (Conv2D k3 same on 2x8x8x3, layer forward): {_tiny_us():.1f} µs")


if __name__ == "__main__":
    main()
