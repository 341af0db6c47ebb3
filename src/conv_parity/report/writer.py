"""Writing, loading and merging report.json, atomically.

Every file is written to a temporary file in the same folder and moved into place with
``os.replace``, so a reader (or a run killed half-way) only ever sees a complete previous
version or a complete new one. While a run is going, report.json says ``"complete": false``;
only :meth:`ReportWriter.close` with ``complete=True`` sets it, so a report that survives a
Ctrl-C or a kill says that it is partial.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from conv_parity.report import schema
from conv_parity.report.schema import SCHEMA_VERSION, decode, summarize, to_jsonable, validate

JSON_NAME = "report.json"
MD_NAME = "report.md"
HTML_NAME = "report.html"


def _read_umask() -> int:
    mask = os.umask(0o022)  # os.umask can only be read by setting it: do it once, at import
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()  # what open() would give; mkstemp's 0600 hides artifacts


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _tool() -> dict[str, str]:
    from conv_parity._version import __version__

    return {"name": "conv-parity", "version": __version__}


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def default_environment() -> dict[str, Any]:
    """What the parent process knows without importing Keras (which would pin a backend)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "keras": _dist_version("keras"),
        "numpy": np.__version__,
        "backends": {},
    }


def _sort_key(r: Mapping[str, Any]) -> tuple[str, str, str]:
    return (r["layer"], r["case_id"], r["backend"])


def build_doc(
    results: Iterable[Mapping[str, Any]],
    run: Mapping[str, Any],
    environment: Mapping[str, Any],
    complete: bool,
) -> dict[str, Any]:
    """A schema-v1 document (in memory, floats decoded) with a freshly computed summary."""
    ordered = sorted(results, key=_sort_key)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": _now(),
        "tool": _tool(),
        "complete": bool(complete),
        "run": dict(run),
        "environment": dict(environment),
        "summary": summarize(ordered),
        "results": list(ordered),
    }


def normalize_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """Plain-JSON copy of a result with every optional field present (defaults filled in).

    ``layer`` is taken from ``case.layer`` when absent. Floats are kept as floats (non-finite
    included); encoding happens at write time.
    """
    plain = schema.decode_result(to_jsonable(result))
    if not isinstance(plain, dict):
        raise ValueError(f"report.json field result: expected an object, got {result!r:.80}")
    if "layer" not in plain and isinstance(plain.get("case"), dict) and "layer" in plain["case"]:
        plain["layer"] = plain["case"]["layer"]
    for key, default in schema.RESULT_DEFAULTS.items():
        plain.setdefault(key, copy.deepcopy(default))
    if plain["message"] is None:
        plain["message"] = ""
    return plain


# --------------------------------------------------------------------------- atomic files


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never half.

    The temporary file sits in the same folder (``os.replace`` is atomic only within one
    filesystem) and is removed if anything fails before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def result_line(result: Mapping[str, Any]) -> str:
    """One result as one line of strict JSON (non-finite floats encoded)."""
    return json.dumps(to_jsonable(result), ensure_ascii=False, allow_nan=False)


def _assemble(head: Mapping[str, Any], lines: list[str]) -> str:
    """The document text: header fields indented for people, then one result per line.

    One line per result keeps big reports small and diffable (an error map is one line, not
    2,000) and lets the writer cache each result's text instead of re-encoding all of them at
    every flush.
    """
    head_text = json.dumps(to_jsonable(head), indent=1, ensure_ascii=False, allow_nan=False)
    body = ",\n".join(lines)
    results = "[\n" + body + "\n]" if lines else "[]"
    return head_text[:-2] + ',\n "results": ' + results + "\n}\n"


def dumps(doc: Mapping[str, Any]) -> str:
    """Strict JSON text of a document (non-finite floats as "nan"/"inf"/"-inf")."""
    head = {k: v for k, v in doc.items() if k != "results"}
    return _assemble(head, [result_line(r) for r in doc["results"]])


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read, decode and validate a report.json; ValueError naming the file and the bad field."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    try:
        validate(doc)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return decode(doc)


def _write_files(text: str, directory: Path) -> dict[str, Path]:
    """report.json from `text`, then report.md and report.html rendered from that same text."""
    from conv_parity.report.htmlreport import render_html
    from conv_parity.report.markdown import render_markdown

    atomic_write_text(directory / JSON_NAME, text)
    reread = decode(json.loads(text))
    atomic_write_text(directory / MD_NAME, render_markdown(reread))
    atomic_write_text(directory / HTML_NAME, render_html(reread))
    return {"json": directory / JSON_NAME, "md": directory / MD_NAME,
            "html": directory / HTML_NAME}


def write_all(doc: Mapping[str, Any], directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Validate `doc`, then write report.json, report.md and report.html atomically.

    The Markdown and HTML are rendered from the JSON text just written (decoded again), so
    they are exactly what ``conv-parity report report.json`` would regenerate.
    """
    validate(doc)
    return _write_files(dumps(doc), Path(directory))


# --------------------------------------------------------------------------- merge


def _merge_backend_info(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    # A shard that could not import a backend must not hide one that could.
    if old is not None and old.get("available") and not new.get("available"):
        return dict(old)
    return dict(new)


def merge_environments(envs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Backends merged per name (later wins, but an available one beats an unavailable one).

    For python/platform/keras/numpy the first known value is kept; when shards disagree, every
    value seen is listed under ``conflicts`` so a mixed-version merge is visible.
    """
    merged: dict[str, Any] = {"python": None, "platform": None, "keras": None, "numpy": None,
                              "backends": {}}
    seen: dict[str, list[Any]] = {}
    for env in envs:
        for key, value in env.items():
            if key in ("backends", "conflicts"):
                continue
            if value is None:
                continue
            values = seen.setdefault(key, [])
            if value not in values:
                values.append(value)
            if merged.get(key) is None:
                merged[key] = value
        for name, info in (env.get("backends") or {}).items():
            merged["backends"][name] = _merge_backend_info(merged["backends"].get(name), info)
        for key, values in (env.get("conflicts") or {}).items():
            for value in values:
                bucket = seen.setdefault(key, [])
                if value not in bucket:
                    bucket.append(value)
    merged["backends"] = dict(sorted(merged["backends"].items()))
    conflicts = {k: v for k, v in seen.items() if len(v) > 1}
    if conflicts:
        merged["conflicts"] = conflicts
    return merged


def merge_reports(docs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One document from several shards/backends: the union of results, deduplicated by
    (case_id, backend) with later documents winning, environments merged per backend, the
    summary recomputed. The merge is complete only if every input was.
    """
    docs = list(docs)
    if not docs:
        raise ValueError("merge_reports needs at least one report")
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        for r in doc["results"]:
            results[(r["case_id"], r["backend"])] = copy.deepcopy(dict(r))
    runs = [dict(d.get("run") or {}) for d in docs]
    backends: list[str] = []
    for run in runs:
        for b in run.get("backends") or []:
            if b not in backends:
                backends.append(b)
    for _, b in results:
        if b not in backends:
            backends.append(b)
    profiles = sorted({str(r["profile"]) for r in runs if r.get("profile") is not None})
    run = {
        "merged": True,
        "profile": profiles[0] if len(profiles) == 1 else (profiles or None),
        "backends": backends,
        "sources": runs,
    }
    env = merge_environments(d.get("environment") or {} for d in docs)
    merged = build_doc(results.values(), run, env, all(bool(d.get("complete")) for d in docs))
    fuzz = [dict(d["fuzz"]) for d in docs if d.get("fuzz")]
    if fuzz:  # counts add up over shards; each input's own block is kept
        merged["fuzz"] = {"filtered_known": sum(int(f.get("filtered_known") or 0) for f in fuzz),
                          "sources": fuzz}
    return merged


# --------------------------------------------------------------------------- the writer


class ReportWriter:
    """Collects results during a run and keeps report.json on disk up to date.

    Thread-safe. ``add`` flushes at most every `flush_interval` seconds, so a run that dies
    loses at most that much; ``close`` writes the final JSON and renders report.md and
    report.html from it. Usable as a context manager: leaving on an exception closes the report
    as partial.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        run_info: Mapping[str, Any],
        flush_interval: float = 2.0,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.run_info = to_jsonable(dict(run_info))
        self.flush_interval = flush_interval
        self._environment: dict[str, Any] = default_environment()
        self._fuzz: dict[str, Any] | None = None
        # (case_id, backend) -> (the fields the summary needs, the result's JSON line)
        self._results: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        self._lock = threading.RLock()
        self._last_flush = 0.0
        self._closed = False
        self.flush()  # a report exists (marked partial) from the first moment

    @property
    def path(self) -> Path:
        return self.directory / JSON_NAME

    def set_environment(self, env: Mapping[str, Any]) -> None:
        """Record versions and backend facts; keys not given keep their defaults."""
        with self._lock:
            plain = to_jsonable(dict(env))
            backends = dict(self._environment.get("backends") or {})
            backends.update(plain.pop("backends", None) or {})
            self._environment.update(plain)
            self._environment["backends"] = backends

    def set_fuzz(self, stats: Mapping[str, Any]) -> None:
        """Record the run's fuzzing counts (the document's optional ``fuzz`` block)."""
        with self._lock:
            self._fuzz = to_jsonable(dict(stats))

    def add(self, result: Mapping[str, Any]) -> None:
        """Add one case x backend result (a later one for the same pair replaces it).

        Validated here, so a producer bug fails where it is made, naming the field. Its JSON
        line is made once, here, so a flush costs a string join rather than a re-encoding.
        """
        plain = normalize_result(result)
        schema.validate_result(plain)
        line = result_line(plain)
        key = (plain["case_id"], plain["backend"])
        # what summarize and the one classifier (report.matrix.bucket) read
        slim = {"layer": plain["layer"], "case_id": key[0], "backend": key[1],
                "verdict": plain["verdict"], "known": plain.get("known"),
                "observed_verdict": plain.get("observed_verdict")}
        with self._lock:
            if self._closed:
                raise RuntimeError("ReportWriter.add after close")
            self._results[key] = (slim, line)
            if time.monotonic() - self._last_flush >= self.flush_interval:
                self._flush_locked(complete=False)

    def results(self) -> list[dict[str, Any]]:
        """The results so far (decoded copies), in report order."""
        with self._lock:
            entries = sorted(self._results.values(), key=lambda e: _sort_key(e[0]))
        return [schema.decode_result(json.loads(line)) for _, line in entries]

    def document(self, complete: bool = False) -> dict[str, Any]:
        """The report as it stands, as a (decoded) document."""
        return decode(json.loads(self._text(complete)))

    def _text(self, complete: bool) -> str:
        with self._lock:
            entries = sorted(self._results.values(), key=lambda e: _sort_key(e[0]))
            head = {
                "schema_version": SCHEMA_VERSION,
                "generated_at": _now(),
                "tool": _tool(),
                "complete": bool(complete),
                "run": self.run_info,
                "environment": self._environment,
                "summary": summarize(slim for slim, _ in entries),
            }
            if self._fuzz is not None:
                head["fuzz"] = self._fuzz
            return _assemble(head, [line for _, line in entries])

    def _flush_locked(self, complete: bool) -> None:
        atomic_write_text(self.path, self._text(complete))
        self._last_flush = time.monotonic()

    def flush(self) -> None:
        """Write report.json now (atomically), marked partial; a no-op once closed."""
        with self._lock:
            if self._closed:
                return
            self._flush_locked(complete=False)

    def close(self, complete: bool = True) -> None:
        """Final report.json, then report.md and report.html rendered from it. Idempotent."""
        with self._lock:
            if self._closed:
                return
            _write_files(self._text(complete), self.directory)
            self._closed = True

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(complete=exc_type is None)
