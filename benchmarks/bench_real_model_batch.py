"""Benchmark: the conv-family layer configs of real keras.applications CNNs, as one batch.

Builds each model offline (``weights=None``) on one Keras backend, takes every conv-family
layer use at its real input shape (``conv_parity.model.extract``: real config, shape from the
model's graph), keeps each distinct (config, input shape) once, writes them as a case file
(the JSON list ``conv-parity check --cases`` reads) and runs that file through
``conv-parity check --cases`` in ONE invocation: one set of workers for the whole batch.

Reports the number of configs, the batch's wall time, and the check's own summary (its last
line and exit code). The issue this answers: checking these configs one ``check`` call at a
time costs a worker start-up per call (5.5-8 s each).

Run:  python benchmarks/bench_real_model_batch.py [--models ResNet50,MobileNetV2,...]
          [--batch 1] [--backends all] [--out real-model-cases.json] [--no-run]
This is a measurement, not a test: on a shared machine the numbers are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_MODELS = ("ResNet50", "MobileNetV2", "MobileNetV3Small", "EfficientNetB0", "DenseNet121",
                  "InceptionV3", "Xception", "VGG16")


def model_cases(names: list[str], batch: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Distinct case objects of every conv-family layer use in the models, and a count per
    model (of the configs it added that no earlier model had)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")  # builds fastest; the configs do not depend on it
    import keras

    from conv_parity.model.extract import extract

    seen: dict[str, dict[str, Any]] = {}
    added: dict[str, int] = {}
    for name in names:
        model = getattr(keras.applications, name)(weights=None)
        # open spatial sizes (MobileNetV3 builds with (None, None, 3)): the 224x224 it is made for
        shape = (batch, *(224 if d is None else int(d) for d in model.input_shape[1:]))
        before = len(seen)
        for use in extract(model, shape, source=name).checkable:
            data = use.case.to_json()
            data.pop("seed")  # derived from the configuration: the same case everywhere
            seen.setdefault(use.case.id, data)
        added[name] = len(seen) - before
        del model
        keras.backend.clear_session()
    return list(seen.values()), added


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--backends", default="all")
    ap.add_argument("--out", default="real-model-cases.json")
    ap.add_argument("--no-run", action="store_true", help="write the case file only")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cases, added = model_cases(args.models.split(","), args.batch)
    Path(args.out).write_text(json.dumps(cases, indent=1))
    print(f"{len(cases)} distinct conv-family configs from {len(added)} models "
          f"({', '.join(f'{m} +{n}' for m, n in added.items())}) -> {args.out} "
          f"({time.perf_counter() - t0:.0f} s to build and extract)")
    if args.no_run:
        return 0
    cmd = [sys.executable, "-m", "conv_parity.cli", "check", "--cases", args.out,
           "--backends", args.backends, "--report", "real-model-report"]
    t1 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t1
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-12:]
    print("\n".join(tail))
    print(f"conv-parity check --cases: {len(cases)} configs in {wall:.0f} s, exit code "
          f"{proc.returncode} (report: real-model-report/)")
    if proc.returncode not in (0, 1):
        print(proc.stderr[-3000:], file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
