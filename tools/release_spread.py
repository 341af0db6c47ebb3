"""Run the default profile over a spread of Keras releases and print the README's table.

    python tools/release_spread.py --releases 3.1.0 3.4.1 3.8.0 --out spread/

Each release is installed once with ``pip install --no-deps --target DIR keras==X`` (into
``--cache``) and put first on ``PYTHONPATH``, so the rest of the environment (tensorflow, torch,
jax, numpy) stays the installed one. Each (release, backend) is one ``conv-parity run`` (one
backend per run: "every backend raised" then means what it says); tensorflow runs as both oneDNN
variants in one run. Prints a Markdown table of pytest's counts. Not a test: it takes minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

DEFAULT_RELEASES = ["3.1.0", "3.4.1", "3.6.0", "3.8.0", "3.10.0", "3.12.1", "3.13.2", "3.14.1",
                    "3.15.1"]
DEFAULT_BACKENDS = ["tensorflow:onednn-on,tensorflow:onednn-off", "torch", "jax"]


def install(release: str, cache: Path) -> Path:
    """The folder holding Keras ``release`` (installed on first use)."""
    target = cache / release
    if not (target / f"keras-{release}.dist-info").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(target), f"keras=={release}"], check=True)
    return target


def run(release_dir: Path, backends: str, report: Path, modes: str) -> str:
    """pytest's closing counts of one conv-parity run ("3 failed, 260 passed, ...")."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(release_dir), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run([sys.executable, "-m", "conv_parity.cli", "run", "--backends", backends,
                           "--modes", modes, "--report", str(report), "--", "-q", "-p",
                           "no:randomly"],
                          capture_output=True, text=True, env=env)
    found = re.findall(r"^(?:=+ )?(\d+ (?:passed|failed|xfailed).*?) in [\d.]+s", proc.stdout,
                       re.M)
    return found[-1] if found else f"no result (exit {proc.returncode})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--releases", nargs="+", default=DEFAULT_RELEASES)
    ap.add_argument("--backends", nargs="+", default=DEFAULT_BACKENDS)
    ap.add_argument("--cache", type=Path, default=Path(".keras-releases"))
    ap.add_argument("--out", type=Path, default=Path("conv-parity-report/spread"))
    ap.add_argument("--modes", default="eager",
                    help="the modes to run (default eager: the forward pass every release has)")
    args = ap.parse_args(argv)
    print("| Keras | backend | default profile |")
    print("|---|---|---|")
    for release in args.releases:
        folder = install(release, args.cache.resolve())
        for backends in args.backends:
            report = args.out / f"{release}-{backends.split(':')[0].split(',')[0]}"
            counts = run(folder, backends, report, args.modes)
            print(f"| {release} | {backends} | {counts} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
