"""The ``keras.ops`` conv family with an input and a kernel of different dtypes: do the backends
agree? (issue 15, item 3.)

Ops have no dtype policy, so a case runs both arrays in one dtype (:mod:`conv_parity.policies`).
What a user gets for ``ops.conv(x_float32, kernel_float16)`` is a separate question with no
reference value to compare against: Keras documents no promotion rule for these ops. So the
check is agreement, not correctness: for each probe (an op and an (input, kernel) dtype pair)
every backend either returns a tensor, whose dtype is recorded, or raises. The verdict is

* ``agree``: every backend that ran returned the same dtype, or every one raised;
* ``disagree``: anything else (some raise, some promote; or different result dtypes);
* ``known``: a disagreement a ``[[mixed_dtypes]]`` entry of ``known_discrepancies.toml``
  describes exactly (the same backends return a tensor, with the same dtype), so it is data
  rather than news; an entry whose disagreement no longer shows is reported as stale.

The worker half (:func:`run_probes`) runs in each backend's worker as the ``mixed_dtypes``
request; the parent half (:func:`check`) asks every selected backend through
:meth:`conv_parity.engine.Engine.request_all` and judges with :func:`judge` (pure, unit-tested).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conv_parity.errors import UsageError
from conv_parity.requests import MixedDtypesReply, MixedDtypesRequest

if TYPE_CHECKING:
    from conv_parity.engine import Engine

#: The ops checked, with a small valid configuration each: (call kwargs, input shape,
#: kernel shapes). Channels last, 1D: the dtype question does not depend on rank or layout.
OPS: dict[str, tuple[dict[str, Any], tuple[int, ...], tuple[tuple[int, ...], ...]]] = {
    "ops.conv": ({"strides": 1, "padding": "valid"}, (1, 6, 2), ((3, 2, 4),)),
    "ops.conv_transpose": ({"strides": 2, "padding": "valid"}, (1, 6, 2), ((3, 4, 2),)),
    "ops.depthwise_conv": ({"strides": 1, "padding": "valid"}, (1, 6, 2), ((3, 2, 1),)),
    "ops.separable_conv": ({"strides": 1, "padding": "valid"}, (1, 6, 2),
                           ((3, 2, 1), (1, 2, 4))),
}
#: The dtypes paired (every ordered pair of two different ones).
DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")
VERDICTS: tuple[str, ...] = ("agree", "disagree", "known")


@dataclass(frozen=True)
class Probe:
    """One op called with an input of ``input_dtype`` and kernels of ``kernel_dtype``."""

    op: str
    input_dtype: str
    kernel_dtype: str

    @property
    def id(self) -> str:
        """``ops.conv(x=float32, kernel=float16)``."""
        return f"{self.op}(x={self.input_dtype}, kernel={self.kernel_dtype})"

    def to_json(self) -> dict[str, str]:
        return {"op": self.op, "input_dtype": self.input_dtype, "kernel_dtype": self.kernel_dtype}


def probes(ops: Iterable[str] | None = None,
           dtypes: Sequence[str] = DTYPES) -> list[Probe]:
    """Every op of ``ops`` (default: all four) with every ordered pair of distinct dtypes."""
    names = list(OPS) if ops is None else list(ops)
    for name in names:
        if name not in OPS:
            raise UsageError(f"mixed-dtype check: unknown op {name!r}; choose from "
                             f"{', '.join(OPS)}")
    return [Probe(op, a, b) for op in names for a, b in itertools.permutations(dtypes, 2)]


# -- worker half ---------------------------------------------------------------------------
def run_probes(keras: Any, items: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    """In a worker: each probe's result dtype (``{"dtype": "float32"}``) or its error
    (``{"error": {"type", "message"}}``). Inputs are 0.5 everywhere: only dtypes matter."""
    import numpy as np

    out: list[dict[str, Any]] = []
    for item in items:
        kwargs, x_shape, k_shapes = OPS[item["op"]]
        try:
            x = keras.ops.convert_to_tensor(np.full(x_shape, 0.5, np.float32),
                                            dtype=item["input_dtype"])
            ks = [keras.ops.convert_to_tensor(np.full(s, 0.5, np.float32),
                                              dtype=item["kernel_dtype"]) for s in k_shapes]
            y = getattr(keras.ops, item["op"][len("ops."):])(x, *ks, **kwargs)
            out.append({"dtype": keras.backend.standardize_dtype(y.dtype)})
        except Exception as exc:
            lines = str(exc).strip().splitlines()
            out.append({"error": {"type": type(exc).__name__,
                                  "message": (lines[0] if lines else "")[:300]}})
    return out


# -- parent half ---------------------------------------------------------------------------
@dataclass(frozen=True)
class KnownDisagreement:
    """A ``[[mixed_dtypes]]`` entry: on these ops and dtype pairs, exactly the backends in
    ``returns`` return a tensor (of the dtype given; ``"*"``: of the pair's own rule, any
    dtype) and every other one raises."""

    id: str
    ops: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    returns: Mapping[str, str]
    link: str
    note: str
    keras: str = ">=3.0"

    def covers(self, probe: Probe, keras_version: str | None) -> bool:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version

        if keras_version is not None and Version(keras_version) not in SpecifierSet(self.keras):
            return False
        return probe.op in self.ops and (probe.input_dtype, probe.kernel_dtype) in self.pairs

    def explains(self, answers: Mapping[str, Mapping[str, Any]]) -> bool:
        """Whether the answers (Keras backend -> dtype or error) are exactly this entry's."""
        for backend, answer in answers.items():
            want = self.returns.get(backend)
            got = answer.get("dtype")
            if (want is None) != (got is None):
                return False
            if want not in (None, "*") and got != want:
                return False
        return True


def load_known(path: Any = None) -> list[KnownDisagreement]:
    """The ``[[mixed_dtypes]]`` entries of the registry file (default: the shipped one)."""
    from conv_parity.registry.source import read_table

    table, source = read_table("mixed_dtypes", path)
    known = []
    for raw in table:
        try:
            pairs = tuple((str(a), str(b)) for a, b in raw["pairs"])
            entry = KnownDisagreement(raw["id"], tuple(raw["ops"]), pairs,
                                      dict(raw.get("returns", {})), raw["link"], raw["note"],
                                      raw.get("keras", ">=3.0"))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{source}: mixed_dtypes entry {raw.get('id', '?')!r}: {exc}") \
                from None
        for op in entry.ops:
            if op not in OPS:
                raise UsageError(f"{source}: mixed_dtypes entry {entry.id!r}: unknown op {op!r}")
        known.append(entry)
    return known


def markdown(known: Sequence[KnownDisagreement]) -> str:
    """The ``[[mixed_dtypes]]`` entries as a Markdown section of the generated registry page."""
    lines = ["", "## Mixed input and kernel dtypes of the ops (`check --mixed-dtypes`)", ""]
    if not known:
        return "\n".join([*lines, "No known disagreements are registered."]) + "\n"
    lines += ["| id | Keras | ops | (input, kernel) dtypes | returns a tensor | upstream | note |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for e in known:
        pairs = ", ".join(f"({a}, {b})" for a, b in e.pairs)
        returns = ", ".join(f"{b}: {d}" for b, d in e.returns.items()) or "none"
        cells = [e.id, f"`{e.keras}`", ", ".join(e.ops), pairs,
                 returns + " (every other backend raises)", e.link,
                 e.note.replace("\n", " ").replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class Agreement:
    """The verdict on one probe across backends, with every backend's answer."""

    probe: Probe
    verdict: str
    message: str
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    known: str | None = None  # the entry's id
    stale: list[str] = field(default_factory=list)  # entries that cover it but did not hold

    def to_json(self) -> dict[str, Any]:
        return {"probe": self.probe.to_json(), "id": self.probe.id, "verdict": self.verdict,
                "message": self.message, "answers": self.answers, "known": self.known,
                "stale": self.stale}


def _answer_text(answer: Mapping[str, Any]) -> str:
    if "dtype" in answer:
        return answer["dtype"]
    err = answer.get("error") or {}
    return f"raises {err.get('type', 'Error')}"


def judge(probe: Probe, answers: Mapping[str, Mapping[str, Any]],
          known: Sequence[KnownDisagreement] = (), keras_version: str | None = None,
          keras_backend: Mapping[str, str] | None = None) -> Agreement:
    """The verdict on one probe from each backend's answer (``{"dtype": ...}``, ``{"error":
    ...}``, or ``{"skip": reason}`` for a backend that could not run). ``keras_backend`` maps a
    target (``tensorflow:onednn-off``) to the Keras backend entries name."""
    ran = {b: a for b, a in answers.items() if "skip" not in a}
    results = {_answer_text(a) for a in ran.values()}
    summary = ", ".join(f"{b}: {_answer_text(a)}" for b, a in ran.items())
    agreement = Agreement(probe, "agree", "", {b: dict(a) for b, a in answers.items()})
    if not ran:
        agreement.message = "no backend ran it"
    elif all("error" in a for a in ran.values()):
        agreement.message = f"every backend raises ({summary})"
    elif len(results) == 1:
        agreement.message = f"every backend returns {next(iter(results))}"
    else:
        agreement.verdict = "disagree"
        agreement.message = f"the backends disagree: {summary}"
    by_keras = {keras_backend.get(b, b) if keras_backend else b.split(":")[0]: a
                for b, a in ran.items()}
    for entry in known:
        if not entry.covers(probe, keras_version):
            continue
        if agreement.verdict == "disagree" and entry.explains(by_keras):
            agreement.verdict = "known"
            agreement.known = entry.id
            agreement.message += f" (known: {entry.id})"
            break
        agreement.stale.append(entry.id)
    return agreement


def check(engine: Engine, probe_list: Sequence[Probe] | None = None,
          known: Sequence[KnownDisagreement] | None = None) -> list[Agreement]:
    """Every probe on every backend of ``engine`` (one request per backend), judged."""
    from conv_parity import backends as targets

    probe_list = probes() if probe_list is None else list(probe_list)
    known = load_known() if known is None else known
    request = MixedDtypesRequest(tuple(p.to_json() for p in probe_list))
    replies = engine.request_all(request.to_header(), [])
    per_backend: dict[str, list[dict[str, Any]]] = {}
    for backend, (header, _) in replies.items():
        reply = MixedDtypesReply.from_header(header)
        answers = reply.answers
        if reply.status != "ok" or answers is None:
            err = reply.error or {}
            why = f"{reply.status}: {err.get('message', '')}"[:200]
            answers = [{"skip": why}] * len(probe_list)
        per_backend[backend] = answers
    keras_backend = {b: targets.keras_backend(b) for b in per_backend}
    return [judge(p, {b: per_backend[b][i] for b in per_backend}, known,
                  engine.keras_version, keras_backend) for i, p in enumerate(probe_list)]


__all__ = ["DTYPES", "OPS", "VERDICTS", "Agreement", "KnownDisagreement", "Probe", "check",
           "judge", "load_known", "markdown", "probes", "run_probes"]
