"""Benchmark: what ``conv-parity model`` costs against running the model on each backend.

For each keras.applications model (default ResNet50 and MobileNetV2 at 2x224x224x3):
  (a) conv-parity: ``conv-parity model keras.applications.NAME --input-shape ... --json`` as a
      user runs it (every conv-family layer checked against the float64 reference, the whole
      model end to end with every top-level output, round trips), wall time, and the peak of
      the summed RSS of its process tree (the CLI and its workers), sampled every 0.2 s;
  (b) bare: per backend, a fresh process that imports Keras, builds the same model
      (``weights=None``) and runs one forward pass (``model(x)``, the first call: what
      conv-parity's end to end does once), then a second (warm) one; its import+build time,
      both forwards and its peak RSS.
The ratio to read is (a) against the sum over backends of (b)'s import + build + first forward:
what checking costs beyond running the model once on every backend by hand.

Run:  nice -n 10 python benchmarks/bench_model.py [--models ResNet50,MobileNetV2]
          [--backends tensorflow,torch,jax,numpy,openvino] [--input-shape 2,224,224,3]
This is a measurement, not a test: on a shared machine the numbers are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import psutil

_BARE = r"""
import json, sys, time, resource
t0 = time.perf_counter()
import keras
import numpy as np
name, shape = sys.argv[1], tuple(int(d) for d in sys.argv[2].split(","))
model = getattr(keras.applications, name)(weights=None, input_shape=shape[1:])
x = np.random.default_rng(0).standard_normal(shape).astype("float32")
t1 = time.perf_counter()
keras.ops.convert_to_numpy(model(x, training=False))
t2 = time.perf_counter()
keras.ops.convert_to_numpy(model(x, training=False))
t3 = time.perf_counter()
print(json.dumps({"import_build": t1 - t0, "first": t2 - t1, "warm": t3 - t2,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _tree_rss_mb(proc: psutil.Process) -> float:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 2**20


def run_sampled(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[
        subprocess.CompletedProcess[str], float, float]:
    """(the finished process, wall seconds, peak summed RSS of its tree in MiB)."""
    peak = [0.0]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    ps = psutil.Process(proc.pid)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                peak[0] = max(peak[0], _tree_rss_mb(ps))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    done.set()
    sampler.join()
    return (subprocess.CompletedProcess(cmd, proc.returncode, out, err),
            time.perf_counter() - started, peak[0])


def bare(backend: str, name: str, shape: str, timeout: float) -> dict[str, Any]:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    proc, wall, _ = run_sampled([sys.executable, "-c", _BARE, name, shape], env, timeout)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200], "wall": wall}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall": wall}


def checked(name: str, shape: str, backends: str, timeout: float, cli_timeout: float
            ) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "conv_parity.cli", "model", f"keras.applications.{name}",
           "--input-shape", shape, "--backends", backends, "--json",
           "--timeout", str(cli_timeout)]
    proc, wall, peak = run_sampled(cmd, dict(os.environ), timeout)
    result: dict[str, Any] = {"exit": proc.returncode, "wall": wall, "peak_mb": peak}
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        result["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:300]
        return result
    model = doc["model"]
    result["layer_uses"] = sum(1 for r in model["layers"] if r["checked"])
    result["distinct"] = model["distinct_cases"]
    verdicts: dict[str, int] = {}
    for r in doc["results"]:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    result["layer_verdicts"] = verdicts
    result["end_to_end"] = {r["backend"]: (r["verdict"], r["max_abs_err"], r["tolerance"])
                            for r in (model["end_to_end"] or {}).get("results", [])}
    result["round_trip_ok"] = (model["round_trip"] or {}).get("ok")
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="ResNet50,MobileNetV2")
    ap.add_argument("--backends", default="tensorflow,torch,jax,numpy,openvino")
    ap.add_argument("--input-shape", default="2,224,224,3")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="wall limit of each conv-parity run, seconds")
    ap.add_argument("--cli-timeout", type=float, default=120.0,
                    help="conv-parity's own --timeout (per backend request)")
    args = ap.parse_args()
    backends = args.backends.split(",")
    for name in args.models.split(","):
        rows = {b: bare(b, name, args.input_shape, args.timeout) for b in backends}
        for b, r in rows.items():
            if "error" in r:
                print(f"{name} bare {b}: failed: {r['error']}")
            else:
                print(f"{name} bare {b}: import+build {r['import_build']:.1f} s, first forward "
                      f"{r['first']:.2f} s, warm forward {r['warm']:.2f} s, peak RSS "
                      f"{r['peak_mb']:.0f} MiB")
        ok = [r for r in rows.values() if "error" not in r]
        sum_first = sum(r["first"] for r in ok)
        sum_all = sum(r["import_build"] + r["first"] for r in ok)
        c = checked(name, args.input_shape, args.backends, args.timeout, args.cli_timeout)
        print(f"{name} conv-parity model: {c['wall']:.0f} s wall, exit {c['exit']}, peak RSS "
              f"(CLI + workers) {c['peak_mb']:.0f} MiB; {c.get('layer_uses')} layer uses, "
              f"{c.get('distinct')} distinct configs, verdicts {c.get('layer_verdicts')}")
        print(f"{name} end to end: {c.get('end_to_end')}; round trips ok: "
              f"{c.get('round_trip_ok')}" + (f"; error: {c['error']}" if "error" in c else ""))
        print(f"{name} sum over backends: first forward {sum_first:.1f} s, import+build+first "
              f"forward {sum_all:.1f} s; conv-parity / that = {c['wall'] / sum_all:.1f}x; max "
              f"single-backend peak RSS {max((r['peak_mb'] for r in ok), default=0):.0f} MiB")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
