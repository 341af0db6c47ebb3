"""Benchmark: ``conv-parity check`` warm (workers borrowed from the daemon) against cold.

Side by side in one run, alternating, each a fresh ``conv-parity check`` process as a user runs
it: cold with ``--no-daemon`` (every backend worker imports its library), warm with the service
on, after one untimed call has started it. Both sides run with compiled bytecode (an untimed
call writes it to a private PYTHONPYCACHEPREFIX first: PYTHONDONTWRITEBYTECODE would otherwise
make every call compile conv-parity's sources). The daemon runs in a temporary folder and is
stopped at the end. Targets (issue 25): warm <= 1.5 s wall and <= 0.2x cold.

Run:  nice -n 10 python benchmarks/bench_daemon.py [--rounds 3]
          [--backends tensorflow,torch,jax,numpy,openvino]
This is a measurement, not a test: on a shared machine the numbers are noisy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

LAYER = "Conv2D(8, kernel_size=(4, 4), strides=(2, 2), padding='same', use_bias=False)"


def _check(env: dict[str, str], backends: str | None, shape: str, cold: bool) -> float:
    cmd = [sys.executable, "-m", "conv_parity.cli", "check", LAYER, "--input-shape", shape]
    if backends:
        cmd += ["--backends", backends]
    if cold:
        cmd.append("--no-daemon")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"check failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backends", default=None, help="default: every installed backend")
    ap.add_argument("--input-shape", default="1,28,28,3")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="cpd-bench-")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "CI", "CONV_PARITY_DAEMON")}
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env.update(CONV_PARITY_DAEMON_DIR=folder, CONV_PARITY_DAEMON_IDLE="600",
               PYTHONPYCACHEPREFIX=os.path.join(folder, "pyc"),
               PYTHONPATH=os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])]))
    try:
        _check(env, args.backends, args.input_shape, cold=False)  # bytecode + the daemon
        cold, warm = [], []
        for _ in range(args.rounds):
            cold.append(_check(env, args.backends, args.input_shape, cold=True))
            warm.append(_check(env, args.backends, args.input_shape, cold=False))
    finally:
        subprocess.run([sys.executable, "-m", "conv_parity.cli", "daemon", "stop"], env=env,
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"check {LAYER} --input-shape {args.input_shape} on "
          f"{args.backends or 'every installed backend'}, {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"cold (--no-daemon): median {c:.2f} s  {' '.join(f'{s:.2f}' for s in cold)}")
    print(f"warm (daemon):      median {w:.2f} s  {' '.join(f'{s:.2f}' for s in warm)}")
    print(f"warm / cold: {w / c:.3f}  (targets: warm <= 1.5 s, ratio <= 0.2)")


if __name__ == "__main__":
    main()
