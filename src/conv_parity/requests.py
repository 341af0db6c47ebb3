"""What is asked of a backend worker besides cases, and what it answers: typed records.

A case travels as a :class:`conv_parity.workers.protocol.WorkItem`. Two other requests cross
the pipe: a whole model (``model``: run a saved model on inputs, fetch named layer outputs) and
the mixed-dtype probes (``mixed_dtypes``). Each is a record here with ``to_header`` and
``from_header``, so the client that asks, the worker that answers and the pool's failure
replies (``unavailable``, ``timeout``, ``crash``) spell every field in one place instead of as
dict keys on both sides of the pipe. Records at the bottom of the tree: the worker, the engine,
``model`` and ``mixed_dtypes`` import them; they import nothing of the project's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The header key that names a request's handler in the worker (and a reply's kind).
TYPE = "type"


@dataclass(frozen=True)
class ModelRequest:
    """Run a saved model on the inputs of the next frame (one array per name in ``inputs``;
    the Keras 2 target's own weights follow them) and return its flat named outputs and those
    of ``layers``."""

    #: ``keras``: the model saved here; ``source``: the user's file (Keras 2); ``weights``: a
    #: ``.weights.h5`` written here, read back on every other backend (the round trip).
    files: Mapping[str, str | None]
    layers: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    #: The keras.applications call that built the model (``name``, ``kwargs``), which each
    #: worker repeats instead of loading a file.
    application: Mapping[str, Any] | None = None
    imports: tuple[str, ...] = ()
    cwd: str | None = None

    kind = "model"

    def to_header(self) -> dict[str, Any]:
        return {TYPE: self.kind, "files": dict(self.files), "layers": list(self.layers),
                "inputs": list(self.inputs),
                "application": None if self.application is None else dict(self.application),
                "imports": list(self.imports), "cwd": self.cwd}

    @classmethod
    def from_header(cls, header: Mapping[str, Any]) -> ModelRequest:
        return cls(files=dict(header.get("files") or {}),
                   layers=tuple(header.get("layers") or ()),
                   inputs=tuple(header.get("inputs") or ()),
                   application=header.get("application"),
                   imports=tuple(header.get("imports") or ()),
                   cwd=header.get("cwd"))


@dataclass
class ModelReply:
    """A whole model's answer. ``status`` as for cases (``ok``, ``error``, and the pool's
    ``unavailable``, ``timeout``, ``crash``); ``error["layer"]``: the leaf layer a forward pass
    raised in; ``outputs``: the names of the arrays that follow in ``parts`` frames."""

    status: str
    error: dict[str, Any] | None = None
    weights_error: str | None = None
    #: output name -> max |difference| of the same graph run twice (round-trip tolerance).
    jitter: dict[str, float] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    parts: int = 0
    seconds: float = 0.0
    stderr_tail: str | None = None

    kind = "model_result"

    def to_header(self) -> dict[str, Any]:
        return {TYPE: self.kind, "status": self.status, "error": self.error,
                "weights_error": self.weights_error, "jitter": dict(self.jitter),
                "outputs": list(self.outputs), "parts": self.parts, "seconds": self.seconds,
                "stderr_tail": self.stderr_tail}

    @classmethod
    def from_header(cls, header: Mapping[str, Any]) -> ModelReply:
        return cls(status=str(header.get("status") or "crash"), error=header.get("error"),
                   weights_error=header.get("weights_error"),
                   jitter={str(k): float(v) for k, v in (header.get("jitter") or {}).items()},
                   outputs=list(header.get("outputs") or ()),
                   parts=int(header.get("parts") or 0),
                   seconds=float(header.get("seconds") or 0.0),
                   stderr_tail=header.get("stderr_tail"))


@dataclass(frozen=True)
class MixedDtypesRequest:
    """Run each probe (``conv_parity.mixed_dtypes.Probe.to_json``): an op on an input and a
    kernel of different dtypes."""

    probes: tuple[Mapping[str, Any], ...]

    kind = "mixed_dtypes"

    def to_header(self) -> dict[str, Any]:
        return {TYPE: self.kind, "probes": [dict(p) for p in self.probes]}

    @classmethod
    def from_header(cls, header: Mapping[str, Any]) -> MixedDtypesRequest:
        return cls(tuple(header.get("probes") or ()))


@dataclass
class MixedDtypesReply:
    """One answer per probe, in order (its result dtype, or the error it raised), or the
    request's own failure."""

    status: str
    answers: list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None
    seconds: float = 0.0

    kind = "mixed_dtypes_result"

    def to_header(self) -> dict[str, Any]:
        return {TYPE: self.kind, "status": self.status, "answers": self.answers,
                "error": self.error, "seconds": self.seconds}

    @classmethod
    def from_header(cls, header: Mapping[str, Any]) -> MixedDtypesReply:
        answers = header.get("answers")
        return cls(status=str(header.get("status") or "crash"),
                   answers=list(answers) if isinstance(answers, Sequence) else None,
                   error=header.get("error"), seconds=float(header.get("seconds") or 0.0))


__all__ = ["TYPE", "MixedDtypesReply", "MixedDtypesRequest", "ModelReply", "ModelRequest"]
