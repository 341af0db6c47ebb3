"""The smoke profile on keras-nightly starts and answers on every backend (issue 23: the
nightly moved keras.src.backend.torch.core and every torch result was `crash`).

Run by the ``nightly`` nox session (``CONV_PARITY_NIGHTLY_SMOKE=1``, keras-nightly installed);
skipped elsewhere, because on a release it repeats what the smoke suite already runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conv_parity import backends as targets

BACKENDS = ("torch", "jax", "tensorflow")


@pytest.mark.skipif(os.environ.get("CONV_PARITY_NIGHTLY_SMOKE") != "1",
                    reason="the nightly nox session runs it (CONV_PARITY_NIGHTLY_SMOKE=1)")
def test_smoke_profile_on_keras_nightly_has_no_crash(tmp_path) -> None:
    installed = [b for b in BACKENDS if targets.get(b).installed()]
    if not installed:
        pytest.skip("none of torch, jax, tensorflow is installed")
    proc = subprocess.run(
        [sys.executable, "-m", "conv_parity.cli", "run", "--backends", ",".join(installed),
         "--profile", "smoke", "--json", "--report", str(tmp_path)],
        capture_output=True, text=True, timeout=3000)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    broken = [(r["backend"], r["case_id"], r["verdict"], (r.get("message") or "")[:200])
              for r in doc["results"] if r["verdict"] in ("crash", "timeout", "unavailable")]
    assert not broken, broken[:20]
    assert {r["backend"] for r in doc["results"]} == set(installed)
