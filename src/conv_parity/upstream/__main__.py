"""``python -m conv_parity.upstream``: write (or check) docs/upstream/, a checked draft issue per
unreported registry entry (see :mod:`conv_parity.upstream.catalog`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from conv_parity.errors import HarnessError
from conv_parity.registry import Registry
from conv_parity.upstream import catalog, draft, releases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conv_parity.upstream",
                                     description=catalog.__doc__)
    parser.add_argument("--write", metavar="DIR", help="draft every unreported entry into DIR")
    parser.add_argument("--check", metavar="DIR", help="exit 1 if DIR is not up to date")
    parser.add_argument("--only", metavar="IDS", default=None,
                        help="comma-separated entry ids to (re)draft; the index is rewritten")
    parser.add_argument("--missing", action="store_true",
                        help="draft only entries without an up-to-date draft")
    parser.add_argument("--cache", metavar="DIR", default=None, help="the Keras release cache")
    args = parser.parse_args(argv)
    registry = Registry.load()
    if args.check:
        found = catalog.problems(Path(args.check), registry, draft.fingerprint)
        for line in found:
            print(line, file=sys.stderr)
        if found:
            print(f"regenerate: python -m conv_parity.upstream --write {args.check} --missing",
                  file=sys.stderr)
        return 1 if found else 0
    if not args.write:
        parser.error("give --write DIR or --check DIR")
    directory = Path(args.write)
    directory.mkdir(parents=True, exist_ok=True)
    entries = catalog.unreported(registry)
    only = set(filter(None, (args.only or "").split(",")))
    cache = releases.cache_dir(args.cache)
    from conv_parity.cli.target import entry_backends

    for e in entries:
        path = directory / f"{e.id}.md"
        if only and e.id not in only:
            continue
        if args.missing and catalog.draft_fingerprint(path) == draft.fingerprint(e.id):
            continue
        started = time.monotonic()
        skipped = catalog.not_drafted(directory)
        try:
            ev = draft.gather(e.example_case(), entry_backends(e), e, cache)
            catalog.write_atomically(path, draft.markdown(ev, draft.fingerprint(e.id)))
            skipped.pop(e.id, None)
            said = f"drafted on {ev.backend}, Keras {ev.keras}"
        except (HarnessError, releases.ReleaseUnavailable) as exc:
            path.unlink(missing_ok=True)
            skipped[e.id] = " ".join(str(exc).split())[:300]
            said = f"not drafted: {skipped[e.id]}"
        catalog.write_atomically(directory / catalog.NOT_DRAFTED,
                                 json.dumps(dict(sorted(skipped.items())), indent=1) + "\n")
        print(f"{e.id}: {said} ({time.monotonic() - started:.0f} s)", file=sys.stderr,
              flush=True)
    catalog.write_atomically(directory / catalog.INDEX, catalog.index_markdown(entries, directory))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
