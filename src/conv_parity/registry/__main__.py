"""``python -m conv_parity.registry``: the generated page of known discrepancies (the registry's
table and the mixed-dtype table), written, printed or checked for staleness."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conv_parity import registry
from conv_parity.mixed_dtypes import load_known, markdown
from conv_parity.registry import Registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conv_parity.registry", description=registry.__doc__)
    parser.add_argument("--write", metavar="PATH", help="write the Markdown table to PATH")
    parser.add_argument("--check", metavar="PATH", help="exit 1 if PATH is not up to date")
    args = parser.parse_args(argv)
    text = Registry.load().to_markdown() + markdown(load_known())
    if args.check:
        current = Path(args.check).read_text() if Path(args.check).exists() else ""
        if current != text:
            print(f"{args.check} is stale: run python -m conv_parity.registry --write {args.check}",
                  file=sys.stderr)
            return 1
        return 0
    if args.write:
        Path(args.write).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
