"""Text for people: aligned tables, shapes and numbers, one-line messages.

One module so that every subcommand prints the same way (a shape is ``(1, 28, 28, 3)`` with
``None`` for unknown dimensions, an error ``5e-07``, a missing value ``-``) and so that the
subcommand modules hold only what they decide, not how it is laid out.
"""

from __future__ import annotations

from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Aligned text columns; the last column is not padded (it holds free text)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        padded = [c.ljust(widths[i]) for i, c in enumerate(cells[:-1])]
        return " | ".join([*padded, cells[-1]]).rstrip()

    head = line(headers)
    rule = "-+-".join("-" * w for w in widths[:-1]) + "-+-" + "-" * max(len(headers[-1]), 9)
    return [head, rule, *(line(r) for r in rows)]


def one_line(text: object, limit: int = 160) -> str:
    """Whitespace collapsed, cut to `limit` characters with "...": for messages in a table
    cell or after "error:" (a traceback's text must not break the one-line contract)."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def failure_lines(message: object, diagnosis: str | None, repro: str | None) -> list[str]:
    """The indented body every front door prints under a failure's heading: the message,
    then its diagnosis and repro command when there are any."""
    lines = [f"  {line}" for line in str(message).splitlines()]
    if diagnosis:
        lines.append(f"  diagnosis: {diagnosis}")
    if repro:
        lines.append(f"  repro: python {repro}")
    return lines
