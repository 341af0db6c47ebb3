"""The one reader of ``known_discrepancies.toml``: every table in it (``[[discrepancy]]`` for the
registry, ``[[mixed_dtypes]]`` for the mixed-dtype probes) comes through here, so a missing or
malformed file gets the same clear error whoever reads it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from conv_parity.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "known_discrepancies.toml"


def read_table(name: str, path: Path | str | None = None) -> tuple[list[dict[str, Any]], Path]:
    """The entries of the array of tables ``name`` in the registry file (default: the shipped
    one), and the path read; UsageError naming the file when it cannot be read or parsed."""
    source = Path(path) if path is not None else DEFAULT_PATH
    try:
        data = tomllib.loads(source.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read known discrepancies {source}: {exc}") from None
    table = data.get(name, [])
    if not isinstance(table, list) or not all(isinstance(t, dict) for t in table):
        raise UsageError(f"{source}: [[{name}]] must be an array of tables")
    return table, source
