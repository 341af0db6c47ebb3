"""Where the variants of one backend disagree: "does my result change when oneDNN is on?".

Pure rules over report results (JSON dicts), so the terminal summary, ``check``, report.md and
report.html all say the same thing. Two targets of one Keras backend (``tensorflow`` and
``tensorflow:onednn-off``) disagree on a case when what they *did* differs: the verdict
observed before the registry turned it into ``xfail`` (a registered bug that shows only under
one setting is still a disagreement worth seeing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from conv_parity import backends as targets


@dataclass(frozen=True)
class Disagreement:
    """One case on which the targets of one Keras backend behaved differently."""

    case_id: str
    keras_backend: str
    observed: tuple[tuple[str, str], ...]  # (target, observed verdict), in display order

    def text(self) -> str:
        """``Conv2D-... on tensorflow: tensorflow:onednn-on pass, tensorflow:onednn-off
        fail-error-parity``."""
        parts = ", ".join(f"{t} {v}" for t, v in self.observed)
        return f"{self.case_id} on {self.keras_backend}: {parts}"


def observed_verdict(result: Mapping[str, Any]) -> str:
    """What the target did, before a registry entry turned it into ``xfail``."""
    return str(result.get("observed_verdict") or result["verdict"])


def _keras_backend(name: str) -> str | None:
    try:
        return targets.keras_backend(name)
    except Exception:  # a merged report may name a target this install does not know
        return None


def disagreements(results: Iterable[Mapping[str, Any]]) -> list[Disagreement]:
    """Every case where two targets of one Keras backend observed different verdicts
    (skipped targets do not count: they observed nothing)."""
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for r in results:
        base = _keras_backend(str(r["backend"]))
        if base is None or r["verdict"] == "skip":
            continue
        groups.setdefault((r["case_id"], base), {})[r["backend"]] = observed_verdict(r)
    found = []
    for (case_id, base), seen in groups.items():
        if len(seen) > 1 and len(set(seen.values())) > 1:
            order = targets.ordered(seen)
            found.append(Disagreement(case_id, base, tuple((t, seen[t]) for t in order)))
    return sorted(found, key=lambda d: (d.keras_backend, d.case_id))


def summary_lines(results: Iterable[Mapping[str, Any]], limit: int = 20) -> list[str]:
    """Plain-text lines for terminals (empty when every variant agrees)."""
    found = disagreements(results)
    if not found:
        return []
    lines = [f"{len(found)} case{'s' if len(found) != 1 else ''} where variants of one backend "
             "disagree:"]
    lines += [f"  {d.text()}" for d in found[:limit]]
    if len(found) > limit:
        lines.append(f"  ... and {len(found) - limit} more (see the report)")
    return lines
