"""Synthetic results for the report tests (the engine is not needed to test the reports).

A uniquely named module, not conftest.py: test modules import it by name, and several
conftest.py files in one run would shadow each other as `conftest`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from conv_parity.case import ConvCase
from conv_parity.report import build_doc, error_map


def make_result(
    layer: str = "Conv2D",
    kwargs: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] = (2, 12, 10, 3),
    backend: str = "torch",
    verdict: str = "pass",
    seed: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """One case x backend result as the engine produces it."""
    if kwargs is None:
        kwargs = {"filters": 4, "kernel_size": 3} if not layer.startswith("MaxPool") else {}
    case = ConvCase.make(layer, kwargs, input_shape, seed=seed)
    result: dict[str, Any] = {
        "case_id": case.id,
        "case": case.to_json(),
        "layer": layer,
        "backend": backend,
        "verdict": verdict,
        "message": "",
    }
    result.update(extra)
    return result


def border_bug(ref: np.ndarray) -> np.ndarray:
    out = ref.copy()
    out[:, :, -1, :] += 0.5
    return out


def shift_with_nan(ref: np.ndarray) -> np.ndarray:
    """Rows shifted down by one (zero row on top), one NaN pixel."""
    out = np.zeros_like(ref)
    out[:, 1:] = ref[:, :-1]
    out[0, 5, 2, 1] = np.nan
    return out


def value_failure(backend: str = "torch", seed: int = 1, bug: Any = border_bug,
                  **extra: Any) -> dict[str, Any]:
    """A fail-values result; by default its error map shows a wrong last column (a border bug).
    """
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((2, 10, 8, 4))
    out = bug(ref)
    fields: dict[str, Any] = {
        "message": "values differ: 80 of 640 elements outside tolerance",
        "shape": [2, 10, 8, 4], "reference_shape": [2, 10, 8, 4], "dtype": "float32",
        "max_abs_err": 0.5, "tolerance": 1e-5, "mismatches": 80,
        "worst": {"index": [0, 3, 7, 1], "value": 1.25, "reference": 0.75, "tolerance": 1e-5},
        "diagnosis": "torch's output equals the reference with the extra padding column at "
                     "the left instead of the right",
        "repro": "conv-parity-report/repro/Conv2D-f4-k3x3-same.py",
        "error_map": error_map(out, ref, "channels_last"),
        "seconds": 0.12,
    }
    fields.update(extra)
    return make_result("Conv2D", {"filters": 4, "kernel_size": 3, "padding": "same"},
                       (2, 10, 8, 3), backend=backend, verdict="fail-values", seed=seed, **fields)


def sample_results() -> list[dict[str, Any]]:
    """A little of everything: passes, each failure kind, xfail, unsupported, skip, NaN."""
    rs: list[dict[str, Any]] = []
    for seed in range(3):
        for backend in ("tensorflow", "jax", "torch"):
            rs.append(make_result(seed=seed, backend=backend, seconds=0.01 * (seed + 1)))
            rs.append(make_result("MaxPooling2D", {"pool_size": 2}, (1, 8, 6, 2), seed=seed,
                                  backend=backend))
        rs.append(make_result(seed=seed, backend="openvino", verdict="skip",
                              message="openvino is not installed"))
    rs.append(value_failure("torch"))
    rs.append(value_failure("jax", seed=2, bug=shift_with_nan, max_abs_err=math.nan,
                            mismatches=3,
                            worst={"index": [1, 0, 0, 2], "value": math.nan,
                                   "reference": 0.5, "tolerance": 1e-5},
                            diagnosis=None, message="NaN in output where reference is finite"))
    rs.append(make_result("Conv1D", {"filters": 3, "kernel_size": 2, "strides": 2},
                          (1, 9, 2), backend="tensorflow", verdict="fail-shape",
                          shape=[1, 5, 3], reference_shape=[1, 4, 3],
                          message="shape (1, 5, 3) != reference (1, 4, 3)"))
    rs.append(make_result("Conv1D", {"filters": 3, "kernel_size": 2}, (1, 9, 2),
                          backend="jax", verdict="crash",
                          message="worker died (SIGSEGV) <script>alert(1)</script>",
                          error={"type": "WorkerCrash", "message": "signal 11", "phase": "call"},
                          stderr_tail="Fatal Python error: Segmentation fault\n  File ..."))
    rs.append(make_result("Conv3D", {"filters": 2, "kernel_size": 2}, (1, 4, 5, 6, 2),
                          backend="torch", verdict="xfail",
                          known={"id": "torch-conv3d-odd", "link": "https://github.com/keras-team/keras/issues/1",
                                 "note": "known upstream"},
                          message="known discrepancy"))
    rs.append(make_result("Conv3D", {"filters": 2, "kernel_size": 9}, (1, 4, 5, 6, 2),
                          backend="jax", verdict="unsupported",
                          message="every backend rejects kernel larger than input"))
    return rs


def sample_doc(complete: bool = True) -> dict[str, Any]:
    env = {
        "python": "3.11.7", "platform": "Linux-x86_64", "keras": "3.6.0", "numpy": "2.1.0",
        "backends": {
            "tensorflow": {"available": True, "keras_version": "3.6.0",
                           "backend_version": "2.17.0", "device": "cpu",
                           "fp_settings": {"tf32": False}, "import_error": None},
            "torch": {"available": True, "keras_version": "3.6.0", "backend_version": "2.4.0",
                      "device": "cpu", "fp_settings": None, "import_error": None},
            "jax": {"available": True, "keras_version": "3.6.0", "backend_version": "0.4.30",
                    "device": "cpu", "fp_settings": None, "import_error": None},
            "openvino": {"available": False, "keras_version": None, "backend_version": None,
                         "device": None, "fp_settings": None,
                         "import_error": "ModuleNotFoundError: No module named 'openvino'"},
        },
    }
    run = {"profile": "smoke", "backends": ["tensorflow", "torch", "jax", "openvino"],
           "shard": None, "argv": ["conv-parity", "run"]}
    return build_doc(sample_results(), run, env, complete)
