"""Case files: a JSON list of case objects, or a report.json whose results' cases are rerun.

One reader for every front door (``check --cases``, ``--conv-cases``): a batch never aborts on
one bad entry. Each entry that is not a valid case is listed with its index and the reason, and
the rest run. An entry Keras accepts but conv-parity cannot compute (a softmax head: the
layers ``model`` lists as not checked) is kept apart as *uncheckable*: a gap in coverage to
list, not bad input to fail the batch for. The format of an entry is :meth:`ConvCase.to_json`'s::

    {"layer": "Conv2D", "kwargs": {"filters": 8, "kernel_size": [3, 3], "padding": "same"},
     "input_shape": [1, 28, 28, 3], "dtype": "float32"}

(``seed``, ``mode`` and ``policy`` are optional; kwargs take the layer's own keyword
arguments; ``dtype`` may be any dtype policy, or a pasted ``DTypePolicy`` config dict.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from conv_parity.case import ConvCase
from conv_parity.errors import ConvParityError, Uncheckable, UsageError


@dataclass
class CaseFile:
    """The cases of a file (in order, each once), the entries that are not cases, and the
    entries that are layers conv-parity cannot check."""

    cases: list[ConvCase] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (index, why)
    uncheckable: list[tuple[int, str]] = field(default_factory=list)  # (index, why)


def read_cases(path: Path | str) -> CaseFile:
    """Read a case file; a file that is not one (unreadable, not JSON, neither a list nor a
    report) is a UsageError naming it; a bad entry is listed in ``rejected``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read a JSON case file ({exc})") from None
    if isinstance(data, dict):
        data = [r.get("case") for r in data.get("results", []) if isinstance(r, dict)]
    if not isinstance(data, list):
        raise UsageError(f"{path}: expected a JSON list of cases or a report.json, got "
                         f"{type(data).__name__}")
    out = CaseFile()
    seen: set[ConvCase] = set()
    for i, item in enumerate(data):
        try:
            if not isinstance(item, dict):
                raise UsageError(f"expected a case object, got {type(item).__name__}")
            case = ConvCase.from_json(item)
        except Uncheckable as exc:
            what = f"{item.get('layer')}: " if isinstance(item.get("layer"), str) else ""
            out.uncheckable.append((i, what + " ".join(str(exc).split())))
            continue
        except ConvParityError as exc:
            out.rejected.append((i, " ".join(str(exc).split())))
            continue
        if case not in seen:
            seen.add(case)
            out.cases.append(case)
    return out
