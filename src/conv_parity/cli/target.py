"""CASE_OR_ENTRY of ``bisect`` and ``upstream``: a registry entry id (its example case, on its
backends under its facts), a case id from a report.json, or a layer expression with
``--input-shape``. One resolver, so both subcommands accept the same three spellings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.registry import Entry, Registry

DEFAULT_REPORT = Path("conv-parity-report") / "report.json"

#: An entry's facts -> the backend variant that holds them on any machine.
_FACT_VARIANTS = {("tensorflow.onednn", False): "tensorflow:onednn-off",
                  ("tensorflow.onednn", True): "tensorflow:onednn-on"}


@dataclass
class Target:
    """What to run: the case, the backends it is about, the entry when it came from one."""

    case: ConvCase
    backends: list[str]
    entry: Entry | None = None
    source: str = ""


def entry_backends(entry: Entry) -> list[str]:
    """The entry's backends, as the variant its facts need where there is one."""
    out = []
    for backend in entry.backends:
        variant = next((v for (fact, value), v in _FACT_VARIANTS.items()
                        if fact.split(".")[0] == backend and entry.facts.get(fact) is value),
                       None)
        out.append(variant or backend)
    return out


def resolve(text: str, *, input_shape: str | None = None, dtype: str | None = None,
            mode: str | None = None, report: str | None = None,
            registry: Registry | None = None) -> Target:
    """The target named by ``text``; UsageError saying the three accepted forms otherwise."""
    registry = registry or Registry.load()
    entry = next((e for e in registry.entries if e.id == text), None)
    if entry is not None:
        if not entry.example:
            raise UsageError(f"known discrepancy {text!r} has no example case to run")
        case = entry.example_case()
        if dtype or mode:
            case = ConvCase.make(case.layer, case.kwargs, case.input_shape,
                                 dtype=dtype or case.dtype, seed=case.seed,
                                 mode=mode or case.mode)
        return Target(case, entry_backends(entry), entry, f"registry entry {entry.id}")
    if input_shape is not None:
        from conv_parity.cli import parse

        parsed = parse.parse_layer(text)
        shape = parse.parse_input_shape(input_shape)
        case = ConvCase.make(parsed.name, parsed.kwargs, shape,
                             dtype=dtype or parsed.dtype or "float32", mode=mode or "eager")
        return Target(case, [], None, "layer expression")
    path = Path(report) if report else DEFAULT_REPORT
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
        rows = [r for r in doc.get("results", []) if r.get("case_id") == text]
        if rows:
            case = ConvCase.from_json(rows[0]["case"])
            failing = [r["backend"] for r in rows if r.get("verdict") not in ("pass", "skip")]
            return Target(case, failing or [r["backend"] for r in rows], None,
                          f"case {text} from {path}")
    raise UsageError(
        f"{text!r} is not a registry entry id, nor a case id in {path}"
        f"{'' if path.is_file() else ' (no such file; --report FILE names another)'}; "
        "give an entry id (conv-parity registry lists them), a case id with --report "
        "report.json, or a layer expression with --input-shape, e.g. "
        "\"Conv2D(8, 3)\" --input-shape 1,28,28,3")


__all__ = ["DEFAULT_REPORT", "Target", "entry_backends", "resolve"]
