"""``python -m conv_parity.upstream``: write (or check) docs/upstream/, a checked draft issue per
unreported registry entry (see :mod:`conv_parity.upstream.catalog`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from conv_parity.errors import HarnessError, InvalidConfig
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
        return _check(Path(args.check), registry)
    if not args.write:
        parser.error("give --write DIR or --check DIR")
    directory = Path(args.write)
    directory.mkdir(parents=True, exist_ok=True)
    entries = catalog.unreported(registry)
    todo = _todo(directory, entries, args)
    by_release: dict[str | None, list] = {}
    for e in todo:  # one set of workers per Keras release, every case of it in one batch
        by_release.setdefault(draft.keras_for(e), []).append(e)
    cache = releases.cache_dir(args.cache)
    # the installed release first: most entries are about it
    for release, group in sorted(by_release.items(), key=lambda kv: kv[0] is not None):
        _draft_release(directory, entries, group, release, cache)
    left = {k: v for k, v in catalog.not_drafted(directory).items()
            if not (directory / f"{k}.md").is_file()}  # a draft written just before a stop
    _save(directory, left, entries)
    return 0


def _check(directory: Path, registry: Registry) -> int:
    """``--check``: each way DIR is out of date, on stderr; 1 when there is any."""
    found = catalog.problems(directory, registry, draft.fingerprint)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"regenerate: python -m conv_parity.upstream --write {directory} --missing",
              file=sys.stderr)
    return 1 if found else 0


def _todo(directory: Path, entries: list, args: argparse.Namespace) -> list:
    """The entries to draft (``--only``, ``--missing``); each is marked "not generated yet"
    first, so an interrupted run leaves every entry drafted or saying why not."""
    only = set(filter(None, (args.only or "").split(",")))
    todo = [e for e in entries if (not only or e.id in only) and not (
        args.missing and catalog.draft_fingerprint(directory / f"{e.id}.md")
        == draft.fingerprint(e.id))]
    pending = catalog.not_drafted(directory)
    for e in todo:
        if not (directory / f"{e.id}.md").is_file():
            pending.setdefault(e.id, "not generated yet: python -m conv_parity.upstream "
                                     f"--write {args.write} --missing")
    _save(directory, pending, entries)
    return todo


def _draft_release(directory: Path, entries: list, group: list, release: str | None,
                   cache: Path) -> None:
    """Run one release's example cases in one batch, then draft each entry of the group (one
    entry's failure is its reason in not-drafted.json, never the run's)."""
    from conv_parity.cli.target import entry_backends

    started = time.monotonic()
    skipped = catalog.not_drafted(directory)
    cases = [e.example_case() for e in group]
    try:
        runs = draft.run_cases(cases, sorted({b for e in group for b in entry_backends(e)}),
                               release, cache)
    except (HarnessError, releases.ReleaseUnavailable) as exc:
        for e in group:
            skipped[e.id] = f"Keras {release} did not run here: " + " ".join(str(exc).split())[:200]
        _save(directory, skipped, entries)
        print(f"Keras {release or 'installed'}: {exc}", file=sys.stderr, flush=True)
        return
    print(f"Keras {release or 'installed'}: {len(group)} cases run "
          f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    for e, case in zip(group, cases):
        started = time.monotonic()
        path = directory / f"{e.id}.md"
        try:
            ev = draft.evidence(case, entry_backends(e), e, runs, release, cache)
            catalog.write_atomically(path, draft.markdown(ev, draft.fingerprint(e.id)))
            skipped.pop(e.id, None)
            said = f"drafted on {ev.backend}, Keras {ev.keras}"
        except Exception as exc:  # one entry's failure is its reason, not the run's
            path.unlink(missing_ok=True)
            skipped[e.id] = _why_not(exc)
            said = f"not drafted: {skipped[e.id]}"
        _save(directory, skipped, entries)
        print(f"{e.id}: {said} ({time.monotonic() - started:.0f} s)", file=sys.stderr,
              flush=True)


def _why_not(exc: Exception) -> str:
    if isinstance(exc, InvalidConfig):  # the case should raise: no repro script
        kind = ("the spec rejects this case and explain.repro writes scripts only for cases it "
                "accepts: ")
    elif isinstance(exc, (HarnessError, releases.ReleaseUnavailable)):
        kind = ""
    else:
        kind = f"draft failed: {type(exc).__name__}: "
    return kind + " ".join(str(exc).split())[:300]


def _save(directory: Path, skipped: dict[str, str], entries: list) -> None:
    """The reasons and the index, after every entry (an interrupted run stays consistent)."""
    ids = {e.id for e in entries}
    kept = {k: v for k, v in sorted(skipped.items()) if k in ids}
    catalog.write_atomically(directory / catalog.NOT_DRAFTED, json.dumps(kept, indent=1) + "\n")
    catalog.write_atomically(directory / catalog.INDEX, catalog.index_markdown(entries, directory))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
