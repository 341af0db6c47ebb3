"""The vocabulary: every verdict name, in report order, and which ones are failures; the mode
names; a worker's statuses and the phases of a call.

One home (DESIGN.md "Contracts"): the rules that pick a verdict (:mod:`conv_parity.judge.verdict`),
the registry, the report schema, the plugin and the CLI all read these names from here.
"""

from __future__ import annotations

#: Every verdict, in the order reports list them.
VERDICTS: tuple[str, ...] = (
    "pass",
    "fail-shape",
    "fail-values",
    "fail-symbolic-shape",
    "fail-error-parity",
    "crash",
    "timeout",
    "unsupported",
    "skip",
    "xfail",
)
#: Verdicts that are not failures: everything else is a discrepancy a person must look at.
OK_VERDICTS: frozenset[str] = frozenset({"pass", "skip", "xfail", "unsupported"})
#: The failures, in report order (also what a known-discrepancy entry may expect).
FAILURE_VERDICTS: tuple[str, ...] = tuple(v for v in VERDICTS if v not in OK_VERDICTS)
#: Verdicts that say the backend conforms on the case (a test passes without a mark).
CONFORMING: frozenset[str] = frozenset({"pass", "unsupported"})

#: Every mode's name, in the order they are listed (:mod:`conv_parity.modes` says how each is
#: computed; a case checks its mode against these names without importing any mode's code).
MODE_NAMES: tuple[str, ...] = ("eager", "predict", "jit", "grad")

#: The value regimes a case's input can be drawn from (issue 23). "normal" (seeded N(0, 1)) is
#: the default and leaves a case's id and JSON as they were; the others add ``-v<regime>``:
#: "positive" one-signed (post-ReLU), "large" magnitudes near the dtype's range, "nan" and
#: "inf" at seeded positions (a whole window included), "ties" exact ties, "zeros" all zeros.
VALUE_REGIMES: tuple[str, ...] = ("normal", "positive", "large", "nan", "inf", "ties", "zeros")

#: How a case calls its layer or op (issue 23): "tensor" (backend tensors, tuple arguments:
#: the default, id unchanged), "numpy" (NumPy arrays in), "list" (list arguments where the
#: API takes a tuple), "numpy-list" (both). Others add ``-c<form>`` to the id.
CALL_FORMS: tuple[str, ...] = ("tensor", "numpy", "list", "numpy-list")

#: A worker's answer on one case: "ok": the call returned a tensor; "error": an exception in
#: some phase (captured as data); "crash": the worker died or broke the protocol; "timeout": it
#: hung and was killed; "unavailable": the backend could not be imported.
STATUSES: tuple[str, ...] = ("ok", "error", "crash", "timeout", "unavailable")
#: The phases of a call, in order, that an error names.
PHASES: tuple[str, ...] = ("construct", "build", "symbolic", "call")


def is_failure(verdict: str) -> bool:
    """``is_failure("fail-values") is True``; pass, skip, xfail and unsupported are not."""
    return verdict not in OK_VERDICTS
