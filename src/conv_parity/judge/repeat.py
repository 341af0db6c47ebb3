"""Two identical calls: how a second call of a failing case compared with the first, and the
note on an error every selected backend raised.

Pure rules (DESIGN.md, judge/): the engine makes the second call; this judges what it shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conv_parity import backends as targets
from conv_parity.case import ConvCase
from conv_parity.expected import Expected
from conv_parity.judge.compare import compare_values, reference_error_bound
from conv_parity.judge.verdict import Outcome, classify
from conv_parity.results import BackendResult


def repeat_record(case: ConvCase, ref: Expected, first: BackendResult, first_verdict: str,
                  second: BackendResult) -> dict[str, Any]:
    """How a second identical call compared with the first (already judged ``first_verdict``):
    ``differ`` when their verdicts differ, or both returned outputs and some output moved by
    more than the case's tolerance (measured against the first call, with the reference's
    magnitudes)."""
    again = classify(case, ref, second)
    record: dict[str, Any] = {"calls": 2, "verdicts": [first_verdict, again.verdict],
                              "differ": first_verdict != again.verdict, "max_difference": None}
    if first.status == "ok" and second.status == "ok":
        worst = 0.0
        for name, a in first.outputs.items():
            b = second.outputs.get(name)
            if b is None or b.shape != a.shape:
                record["differ"] = True
                continue
            if name not in ref.magnitudes or ref.magnitudes[name].shape != a.shape:
                continue
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            both_nan = np.isnan(a.astype(np.float64)) & np.isnan(b.astype(np.float64))
            diff = np.where(both_nan, 0.0, diff)
            if diff.size:
                worst = max(worst, float(np.nan_to_num(diff, nan=np.inf).max()))
            size = ref.reduction_sizes.get(name)
            bound = reference_error_bound(ref.magnitudes[name], size or 1)
            if not compare_values(b, a, ref.magnitudes[name], case.dtype, bound, size).ok:
                record["differ"] = True
        record["max_difference"] = worst
    first_text = first_verdict if first.status == "ok" else f"{first_verdict} ({first.status})"
    second_text = (again.verdict if second.status == "ok"
                   else f"{again.verdict} ({second.status})")
    record["summary"] = f"first call {first_text}, second call {second_text}"
    if record["max_difference"] is not None and record["differ"]:
        record["summary"] += f" (outputs differ by up to {record['max_difference']:.3g})"
    return record


def note_every_selected_raised(judged: list[tuple[int, Outcome, BackendResult | None]]) -> None:
    """In a run of several Keras backends, a new error-parity failure on a case every one of
    them raised on says so in its message; the verdict stays what it is alone (only a registry
    entry with ``keras_wide`` makes such a case ``unsupported``)."""
    by_case: dict[int, list[tuple[Outcome, BackendResult]]] = {}
    for i, out, res in judged:
        if res is not None and res.status != "unavailable":
            by_case.setdefault(i, []).append((out, res))
    for rows in by_case.values():
        keras_backends = {targets.keras_backend(out.backend) for out, _ in rows}
        if len(keras_backends) < 2 or not all(res.status == "error" for _, res in rows):
            continue
        for out, _ in rows:
            if out.verdict == "fail-error-parity":
                out.message += (f"\nevery selected backend ({', '.join(sorted(keras_backends))}) "
                                f"raises on this case: if Keras refuses it everywhere, register "
                                f"it as a Keras-wide limitation (keras_wide = true)")
