"""Raw verdicts (no registry) of 3D pooling under every dtype policy and mode, for confirming
and scoping the dtype-policy registry entries. Not a test: it takes minutes.

    PYTHONPATH=src python tools/policy_probe.py [--backends ...] [--layers ...]

Prints one line per (layer, policy, mode, backend) with the verdict and the error's first
line, grouped so a scope can be read off.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from conv_parity.case import ConvCase
from conv_parity.engine import Engine
from conv_parity.policies import POLICIES
from conv_parity.registry import Registry

CONFIGS = [
    ({"pool_size": 2}, (1, 4, 4, 4, 2)),
    ({"pool_size": (2, 1, 3), "strides": 1, "padding": "same",
      "data_format": "channels_first"}, (2, 2, 3, 4, 5)),
]
OPS = [({"pool_size": 2, "strides": 2}, (1, 4, 4, 4, 2))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backends", default="tensorflow:onednn-on,tensorflow:onednn-off,torch,jax")
    ap.add_argument("--layers", nargs="+", default=["MaxPooling3D", "AveragePooling3D",
                                                    "ops.max_pool", "ops.average_pool"])
    ap.add_argument("--modes", default="eager,predict,jit,grad")
    args = ap.parse_args(argv)
    cases = []
    for layer in args.layers:
        for kw, shape in (OPS if layer.startswith("ops.") else CONFIGS):
            for policy in POLICIES:
                if layer.startswith("ops.") and POLICIES[policy].mixed:
                    continue
                for mode in args.modes.split(","):
                    cases.append(ConvCase.make(layer, kw, shape, dtype=policy, mode=mode))
    rows: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    with Engine(args.backends, registry=Registry([]), diagnose=False) as engine:
        for out in engine.check(cases):
            err = (out.error or {}).get("message", "").strip().splitlines()
            what = out.verdict + (f" ({out.error.get('type')}: {err[0][:90] if err else ''})"
                                  if out.verdict != "pass" and out.error else
                                  f" ({out.message[:90]})" if out.verdict != "pass" else "")
            rows[(out.case.layer, out.case.policy_name, out.backend)].append(
                f"{out.case.mode}={what}")
    for (layer, policy, backend), verdicts in rows.items():
        print(f"{layer:17} {policy:15} {backend:22} " + "; ".join(dict.fromkeys(verdicts)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
