"""What a bisect means for a registry entry (its ``keras`` specifier and ``fixed_in``), shown as
a diff of known_discrepancies.toml and applied only when asked: the new text is parsed and loaded
as a registry first, then written to a temporary file and renamed over the old one, so the
registry is never half-written and never left invalid.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.specifiers import Specifier, SpecifierSet
from packaging.version import Version

from conv_parity.errors import UsageError
from conv_parity.registry import Entry, Registry
from conv_parity.upstream.bisect import Bisection


def proposed_fields(entry: Entry, found: Bisection,
                    known: Sequence[Version]) -> dict[str, str]:
    """The entry's new ``keras`` / ``fixed_in`` values ({} when the bisect agrees with it or
    found no change). A specifier that admits the same ``known`` releases is kept as written."""
    if found.after is None or found.direction not in ("fixed", "introduced"):
        return {}
    first = str(found.after.version)
    kept: list[Specifier]
    if found.direction == "fixed":
        kept = [s for s in entry.keras if s.operator not in ("<", "<=")]
        new = SpecifierSet(",".join([*map(str, kept), f"<{first}"]))
    else:
        kept = [s for s in entry.keras if s.operator not in (">", ">=")]
        new = SpecifierSet(",".join([f">={first}", *map(str, kept)]))
    changes: dict[str, str] = {}
    if [v for v in known if v in entry.keras] != [v for v in known if v in new]:
        changes["keras"] = str(new)
    assert found.before is not None
    recorded = Version(entry.fixed_in) if entry.fixed_in else None
    # A recorded fix between the two releases tried agrees with them (3.5.0 between 3.4.1 and
    # 3.10.0 when 3.5-3.9 were not tried): the coarser bisect does not overrule it.
    if found.direction == "fixed" and not (
            recorded is not None and found.before.version < recorded <= found.after.version):
        changes["fixed_in"] = first
    return changes


def edit_text(text: str, entry_id: str, changes: Mapping[str, str]) -> str:
    """``text`` (the TOML) with the entry's top-level ``key = "value"`` lines set (added after
    its ``keras`` line when missing); UsageError when the entry is not there."""
    blocks = re.split(r"(?m)^(?=\[\[)", text)
    id_line = re.compile(rf'(?m)^id\s*=\s*"{re.escape(entry_id)}"\s*$')
    for i, block in enumerate(blocks):
        if block.startswith("[[discrepancy]]") and id_line.search(block):
            for key, value in changes.items():
                line = f'{key} = "{value}"'
                pattern = re.compile(rf"(?m)^{re.escape(key)}\s*=.*$")
                if pattern.search(block):
                    block = pattern.sub(lambda _m, line=line: line, block, count=1)
                else:
                    block = re.sub(r'(?m)^(keras\s*=.*)$',
                                   lambda m, line=line: f"{m.group(1)}\n{line}", block, count=1)
            blocks[i] = block
            return "".join(blocks)
    raise UsageError(f"no [[discrepancy]] with id {entry_id!r} in the registry")


def unified_diff(old: str, new: str, path: Path | str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        f"a/{path}", f"b/{path}"))


def write_registry(path: Path, new_text: str) -> None:
    """Validate ``new_text`` as a registry, then replace ``path`` with it atomically."""
    fd, tmp = tempfile.mkstemp(prefix=".known_discrepancies-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new_text)
        Registry.load(tmp)  # raises UsageError on anything malformed; the old file is untouched
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["edit_text", "proposed_fields", "unified_diff", "write_registry"]
