"""What a worker reports: per-case :class:`BackendResult` and per-backend :class:`BackendInfo`.

Records at the bottom of the tree (DESIGN.md, "The layered tree"): the verdict and the reports
read them without importing the workers; :mod:`conv_parity.workers` re-exports them.

Plain dataclasses so the engine, the report and the tests share one vocabulary. Arrays never go
into ``to_json()``: reports carry shapes and errors, the comparison carries the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from conv_parity.vocabulary import PHASES, STATUSES

if TYPE_CHECKING:
    pass  # for types only: keeps this module light

#: What a worker answered on one case (the meanings: vocabulary.STATUSES).
Status = Literal["ok", "error", "crash", "timeout", "unavailable"]


@dataclass
class BackendResult:
    """The outcome of one case on one backend.

    `error` is the first failure of the eager path (phase construct / build / call; "worker"
    for crash, timeout and unavailable). `symbolic_error` is set whenever the symbolic phase
    (compute_output_shape or the functional KerasTensor call) failed, whether or not the eager
    call succeeded; when the eager call succeeded it is the only error.
    """

    backend: str
    case_id: str
    status: Status
    #: What the mode computed, by name (``{"y": ...}`` for a forward pass); empty on errors.
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    shape: tuple | None = None  # the first output's (``y``)
    dtype: str | None = None  # the first output's, as the backend returned it (bfloat16 too)
    #: Every output's dtype as returned (arrays of a dtype NumPy lacks travel widened).
    dtypes: dict[str, str] = field(default_factory=dict)
    #: A layer's weights' dtypes (the policy's variable dtype); None for an op.
    variable_dtypes: list[str] | None = None
    symbolic_shape: tuple | None = None
    functional_shape: tuple | None = None
    error: dict[str, Any] | None = None
    symbolic_error: dict[str, Any] | None = None
    stderr_tail: str | None = None
    seconds: float = 0.0
    pid: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def output(self) -> np.ndarray | None:
        """The first output (``y`` of a forward pass), None when there is none."""
        return next(iter(self.outputs.values()), None)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict without the output array."""
        return {
            "backend": self.backend,
            "case_id": self.case_id,
            "status": self.status,
            "outputs": list(self.outputs),
            "shape": None if self.shape is None else list(self.shape),
            "dtype": self.dtype,
            "dtypes": dict(self.dtypes),
            "variable_dtypes": self.variable_dtypes,
            "symbolic_shape": _listify(self.symbolic_shape),
            "functional_shape": _listify(self.functional_shape),
            "error": self.error,
            "symbolic_error": self.symbolic_error,
            "stderr_tail": self.stderr_tail,
            "seconds": round(self.seconds, 6),
            "pid": self.pid,
        }


def _listify(shape: tuple | None) -> list | None:
    return None if shape is None else list(shape)


@dataclass
class BackendInfo:
    """Facts a worker reports once, at start-up: what exactly is under test on this backend."""

    backend: str
    available: bool
    import_error: str | None = None
    keras_version: str | None = None
    backend_version: str | None = None
    versions: dict[str, str] = field(default_factory=dict)  # every relevant library -> version
    device: str | None = None
    fp_settings: dict[str, Any] = field(default_factory=dict)
    #: Platform facts in force in this worker (conv_parity.facts): what the registry scopes by.
    facts: dict[str, Any] = field(default_factory=dict)
    #: The target's record (conv_parity.backends.BackendSpec.to_json): keras backend, setting.
    target: dict[str, Any] = field(default_factory=dict)
    import_seconds: float | None = None  # measured inside the worker: import keras + backend
    startup_seconds: float | None = None  # measured by the pool: spawn -> ready message
    pid: int | None = None
    python: str | None = None
    log_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (everything here is already plain data)."""
        return {
            "backend": self.backend,
            "available": self.available,
            "import_error": self.import_error,
            "keras_version": self.keras_version,
            "backend_version": self.backend_version,
            "versions": dict(self.versions),
            "device": self.device,
            "fp_settings": dict(self.fp_settings),
            "facts": dict(self.facts),
            "target": dict(self.target),
            "import_seconds": self.import_seconds,
            "startup_seconds": self.startup_seconds,
            "pid": self.pid,
            "python": self.python,
            "log_path": self.log_path,
        }


__all__ = ["PHASES", "STATUSES", "BackendInfo", "BackendResult", "Status"]
