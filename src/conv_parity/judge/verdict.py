"""From a backend's result and the reference to a verdict and a message a person can act on.

Pure functions over data (no processes, no pytest), so every rule here is unit-testable with
synthetic results. The order of checks is the DESIGN's: shape, symbolic shape, dtype, values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conv_parity.case import ConvCase
from conv_parity.expected import Expected
from conv_parity.formats import fmt_shape
from conv_parity.integers import is_integer, rounding_of
from conv_parity.judge.compare import ValueCheck, compare_values, reference_error_bound
from conv_parity.results import BackendResult
from conv_parity.vocabulary import OK_VERDICTS

PASSING = OK_VERDICTS  # kept: the verdicts that are not failures


@dataclass
class Outcome:
    """The verdict on one case x backend, with everything a report needs (no big arrays)."""

    case: ConvCase
    backend: str
    verdict: str
    message: str
    reference_shape: tuple[int, ...] | None = None
    shape: tuple | None = None
    symbolic_shape: tuple | None = None
    functional_shape: tuple | None = None
    dtype: str | None = None
    max_abs_err: float | None = None
    tolerance: float | None = None
    mismatches: int | None = None
    worst: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    diagnosis: str | None = None
    diagnosis_code: str | None = None
    repro: str | None = None
    known: dict[str, Any] | None = None
    observed_verdict: str | None = None
    error_map: dict[str, Any] | None = None
    stderr_tail: str | None = None
    seconds: float | None = None
    #: A failing result is run twice (engine): both calls' verdicts, whether they differ.
    repeat: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """A failure, or under a strict registry an entry that did not reproduce."""
        return self.verdict not in PASSING or self.stale_strict

    @property
    def stale_strict(self) -> bool:
        known = self.known or {}
        return bool(known.get("stale") and known.get("strict", True))

    def to_json(self) -> dict[str, Any]:
        """One entry of report.json's `results` (the DESIGN contract's names)."""

        def lst(v: tuple | None) -> list | None:
            return None if v is None else list(v)

        return {
            "case_id": self.case.id,
            "case": self.case.to_json(),
            "layer": self.case.layer,
            "backend": self.backend,
            "verdict": self.verdict,
            "message": self.message,
            "shape": lst(self.shape),
            "symbolic_shape": lst(self.symbolic_shape),
            "functional_shape": lst(self.functional_shape),
            "reference_shape": lst(self.reference_shape),
            "dtype": self.dtype,
            "max_abs_err": self.max_abs_err,
            "tolerance": self.tolerance,
            "mismatches": self.mismatches,
            "worst": self.worst,
            "error": self.error,
            "diagnosis": self.diagnosis,
            "diagnosis_code": self.diagnosis_code,
            "repro": self.repro,
            "known": self.known,
            "observed_verdict": self.observed_verdict,
            "error_map": self.error_map,
            "stderr_tail": self.stderr_tail,
            "seconds": self.seconds,
            "repeat": self.repeat,
        }


def _err_text(err: dict[str, Any] | None) -> str:
    if not err:
        return "an unknown error"
    msg = str(err.get("message", "")).strip().splitlines()
    first = msg[0] if msg else ""
    if len(first) > 300:
        first = first[:300] + "..."
    phase = err.get("phase")
    where = f" during {phase}" if phase else ""
    return f"{err.get('type', 'Error')}{where}: {first}"


def _missing_feature(err: dict[str, Any] | None) -> bool:
    """An old Keras that lacks the layer/op or the keyword: a skip, not a discrepancy."""
    if not err or err.get("phase") not in ("construct", "call"):
        return False
    text = str(err.get("message", ""))
    if err.get("type") == "TypeError" and "unexpected keyword argument" in text:
        return True
    return err.get("type") == "AttributeError" and (
        "keras.layers" in text or "keras.ops" in text or "has no attribute" in text
    )


def _shapes_agree(symbolic: tuple | None, eager: tuple | None) -> bool:
    """A symbolic shape may leave a dimension unknown (None); known dimensions must agree."""
    if symbolic is None or eager is None:
        return True
    if len(symbolic) != len(eager):
        return False
    return all(s is None or s == e for s, e in zip(symbolic, eager))


def classify(case: ConvCase, ref: Expected, result: BackendResult) -> Outcome:
    """The verdict for one backend, from its own result and the reference alone: never from
    which other backends were selected or what they did (a verdict is a function of the case).

    Error parity: when the spec accepts a case and a backend raises, that is
    ``fail-error-parity`` unless Keras's own constructor rejected it (phase ``construct``:
    shared code, identical on every backend, so a Keras-wide ``unsupported``). Any other
    Keras-wide limitation is knowledge, not a vote among the selected backends: a registry
    entry with ``keras_wide = true`` turns it into ``unsupported`` (the engine applies it).
    When the spec rejects a case, a backend that raises agrees with it (``unsupported``); one
    that returns a tensor is a discrepancy (``fail-error-parity``).

    The steps, in order, each deciding or passing on: the worker's status, error parity,
    shapes (eager, symbolic, dtype, each named output's), then values.
    """
    out = Outcome(
        case=case,
        backend=result.backend,
        verdict="pass",
        message="",
        reference_shape=ref.shape,
        shape=result.shape,
        symbolic_shape=result.symbolic_shape,
        functional_shape=result.functional_shape,
        dtype=result.dtype,
        error=result.error,
        stderr_tail=result.stderr_tail,
        seconds=result.seconds,
    )
    if not (_worker_status(out, result) or _error_parity(out, ref, result)
            or _shapes(out, case, ref, result)):
        _values(out, case, ref, result)
    return out


def _decide(out: Outcome, verdict: str, message: str) -> bool:
    out.verdict, out.message = verdict, message
    return True


def _worker_status(out: Outcome, result: BackendResult) -> bool:
    """A backend that is not there, crashed or hung: skip, crash, timeout."""
    b = result.backend
    if result.status == "unavailable":
        return _decide(out, "skip", f"{b} is not available here: {_err_text(result.error)}")
    if result.status in ("crash", "timeout"):
        what = "crashed" if result.status == "crash" else "did not answer in time and was killed"
        message = f"the {b} worker {what} on this case: {_err_text(result.error)}"
        if result.stderr_tail:
            tail = result.stderr_tail.strip().splitlines()[-5:]
            message += "\nlast worker stderr lines:\n  " + "\n  ".join(tail)
        return _decide(out, result.status, message)
    return False


def _error_parity(out: Outcome, ref: Expected, result: BackendResult) -> bool:
    """The spec and the backend on whether the case is an error (see :func:`classify`)."""
    b = result.backend
    if ref.invalid is not None:
        if result.status == "error":
            return _decide(out, "unsupported", (
                f"the spec rejects this configuration ({ref.invalid}) and {b} rejects it too "
                f"({_err_text(result.error)})"
            ))
        return _decide(out, "fail-error-parity", (
            f"the spec rejects this configuration ({ref.invalid}), but {b} returned a "
            f"tensor of shape {fmt_shape(result.shape, 'None')} instead of raising"
        ))
    if result.status != "error":
        return False
    if _missing_feature(result.error):
        return _decide(out, "skip",
                       f"this Keras lacks the layer, op or argument: {_err_text(result.error)}")
    if (result.error or {}).get("phase") == "construct":
        return _decide(out, "unsupported", (
            f"a Keras-wide limitation (Keras's own constructor refuses it on every "
            f"backend): {_err_text(result.error)}; the spec gives shape {fmt_shape(ref.shape, 'None')}"
        ))
    return _decide(out, "fail-error-parity", (
        f"the spec accepts this configuration (output shape {fmt_shape(ref.shape, 'None')}), "
        f"but {b} raised {_err_text(result.error)}"
    ))


def _shapes(out: Outcome, case: ConvCase, ref: Expected, result: BackendResult) -> bool:
    """A tensor for a valid case: its shape, symbolic shapes, dtype and named outputs."""
    b = result.backend
    if tuple(result.shape or ()) != tuple(ref.shape or ()):
        return _decide(out, "fail-shape", (
            f"{b} output shape {fmt_shape(result.shape, 'None')} != reference shape "
            f"{fmt_shape(ref.shape, 'None')}"
        ))
    if result.symbolic_error:
        return _decide(out, "fail-symbolic-shape", (
            f"the eager call works, but symbolic shape inference raised "
            f"{_err_text(result.symbolic_error)}"
        ))
    for label, sym in (("compute_output_shape", result.symbolic_shape),
                       ("the functional API", result.functional_shape)):
        if not _shapes_agree(sym, result.shape):
            return _decide(out, "fail-symbolic-shape", (
                f"{label} says {fmt_shape(sym, 'None')} but the eager output is "
                f"{fmt_shape(result.shape, 'None')} on {b}"
            ))
    wrong_dtype = dtype_mismatch(case, result)
    if wrong_dtype:
        return _decide(out, "fail-values", wrong_dtype)
    for name, expected in ref.outputs.items():  # every named output is there, shaped right
        got = result.outputs.get(name)
        if got is None:
            return _decide(out, "fail-values",
                           f"{b} returned no {name!r} (outputs: {', '.join(result.outputs)})")
        if got.shape != expected.shape:
            return _decide(out, "fail-shape", (
                f"{b} {name} shape {fmt_shape(got.shape, 'None')} != reference shape "
                f"{fmt_shape(expected.shape, 'None')}"))
    return False


def _values(out: Outcome, case: ConvCase, ref: Expected, result: BackendResult) -> None:
    """The values of every named output against the tolerance; the worst one is reported."""
    worst = _compare_outputs(ref, result, case.dtype)
    if worst is None:  # nothing to compare (a mode without outputs)
        return
    name, check = worst
    out.max_abs_err = check.max_abs_err
    out.tolerance = check.worst_tolerance if not check.ok else check.max_tolerance
    out.mismatches = check.mismatches
    if check.worst_index is not None:
        out.worst = {
            "output": name,
            "output_shape": list(ref.outputs[name].shape),
            "index": list(check.worst_index),
            "value": check.worst_value,
            "reference": check.worst_reference,
            "tolerance": check.worst_tolerance,
        }
    integer = is_integer(case.dtype)
    if check.ok:
        out.message = (f"{result.backend} returned {result.dtype}, every value exact"
                       if integer else f"max |err| {check.max_abs_err:.3g} within tolerance")
        return
    size = int(np.prod(ref.outputs[name].shape))
    where = name + "[" + ", ".join(map(str, check.worst_index or ())) + "]"
    _decide(out, "fail-values", (
        f"{check.mismatches} of {size} elements differ; worst at {where}: {result.backend} "
        f"{check.worst_value:.7g} vs reference {check.worst_reference:.7g} "
        f"(|err| {abs((check.worst_value or 0) - (check.worst_reference or 0)):.3g} > "
        f"tolerance {check.worst_tolerance:.3g}); max |err| {check.max_abs_err:.3g}"
        + (_integer_note(result, ref, name) if integer else "")
    ))


def _integer_note(result: BackendResult, ref: Expected, name: str) -> str:
    """For an integer case: the dtype the backend returned and, where the exact values are
    not integers (an average), which rounding its output matches."""
    rounding = rounding_of(result.outputs[name], ref.outputs[name])
    how = f"; its {result.dtype} output is the exact mean {rounding}" if rounding else ""
    return f" ({result.backend} returned {result.dtype}{how})"


def expected_dtypes(case: ConvCase, names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The dtype each named output must have under the case's policy: ``y`` the compute dtype;
    a gradient the dtype of what it differentiates (``dx``: the input dtype, float32 under a
    mixed policy; a weight's: the variable dtype). An op's arrays are all in its dtype."""
    return {name: case.dtype if name == "y" else
            case.input_dtype if name == "dx" else case.variable_dtype for name in names}


def dtype_mismatch(case: ConvCase, result: BackendResult) -> str | None:
    """Why the result's dtypes break the case's policy (None when they keep it): the output in
    the compute dtype, gradients in their variables' dtypes (:func:`expected_dtypes`), a
    layer's weights in the variable dtype. Got, expected, where (STYLE.md 11)."""
    policy = f"policy {case.policy_name}"
    got_y = result.dtypes.get("y", result.dtype) if result.dtypes else result.dtype
    if got_y != case.dtype:
        why = (f"the dtype Keras's symbolic output claims for a {case.dtype} input"
               if is_integer(case.dtype) else f"the compute dtype of {policy}")
        return f"{result.backend} returned dtype {got_y}, expected {case.dtype} ({why})"
    for name, want in expected_dtypes(case, list(result.dtypes)).items():
        got = result.dtypes[name]
        if got != want:
            return (f"{result.backend} returned {name} in {got}, expected {want} (the dtype of "
                    f"what it differentiates under {policy})")
    wrong = [d for d in result.variable_dtypes or () if d != case.variable_dtype]
    if wrong:
        return (f"{result.backend} stores the layer's weights in {', '.join(sorted(set(wrong)))}, "
                f"expected {case.variable_dtype} (the variable dtype of {policy})")
    return None


def _compare_outputs(ref: Expected, result: BackendResult,
                     dtype: str) -> tuple[str, ValueCheck] | None:
    """Every named output (present and shaped right) against the reference's: the worst one,
    a failing one first, then the largest error relative to its tolerance, with its name."""
    checks = []
    for name, expected in ref.outputs.items():
        size = ref.reduction_sizes.get(name)
        bound = reference_error_bound(ref.magnitudes[name], size or 1)
        checks.append((name, compare_values(result.outputs[name], expected,
                                            ref.magnitudes[name], dtype, bound, size)))
    if not checks:
        return None

    def badness(item: tuple[str, ValueCheck]) -> tuple[bool, float]:
        check = item[1]
        err = abs((check.worst_value or 0) - (check.worst_reference or 0))
        with np.errstate(over="ignore"):  # tolerance 0 (an integer case): inf
            return (not check.ok,
                    float(err / max(check.worst_tolerance or 0, np.finfo(np.float64).tiny)))

    return max(checks, key=badness)
