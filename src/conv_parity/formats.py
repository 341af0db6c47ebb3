"""Numbers and shapes as people read them: one formatter per thing (the CLI, the reports and
the verdict's messages differ only in what they write for a missing value and how many digits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def fmt_shape(shape: Sequence[int | None] | None, missing: str = "-") -> str:
    """A shape as Python writes a tuple, unknown dimensions as None: fmt_shape((None, 3)) ==
    "(None, 3)"; no shape: `missing`."""
    if shape is None:
        return missing
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def fmt_float(x: Any, digits: int = 2, missing: str = "-") -> str:
    """`digits` significant digits: fmt_float(1.234e-7) == "1.2e-07", nan and inf spelled as
    Python does; None: `missing`; text as it is."""
    if x is None:
        return missing
    if isinstance(x, str):
        return x
    try:
        return f"{float(x):.{digits}g}"
    except (TypeError, ValueError):
        return str(x)


def freeze(value: Any) -> Any:
    """Lists to tuples, recursively (JSON's arrays back to a hashable kwarg value):
    freeze([1, [2, 3]]) == (1, (2, 3))."""
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


__all__ = ["fmt_float", "fmt_shape", "freeze"]
