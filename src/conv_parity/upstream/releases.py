"""Keras releases side by side: which ones PyPI serves, and each one unpacked on its own into a
cache folder (``pip install --no-deps --target <cache>/keras-<version>``) so that a worker can run
it by putting that folder first on its PYTHONPATH, without touching the installed Keras.

``--no-deps`` because the backends (TensorFlow, torch, jax, OpenVINO) are the installed ones: a
bisect asks "which Keras release broke it with *these* libraries", and an old Keras that cannot
import with them is reported as such (see :mod:`conv_parity.upstream.bisect`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from packaging.version import InvalidVersion, Version

from conv_parity.errors import UsageError

#: Overrides the cache folder (as ``--cache`` does).
CACHE_ENV = "CONV_PARITY_KERAS_CACHE"
DEFAULT_CACHE = Path("~/.cache/conv-parity/keras-releases")
#: Oldest Keras 3 release bisected by default (3.0.x needs older backends than any installed here).
DEFAULT_OLDEST = "3.1"


class ReleaseUnavailable(Exception):
    """pip could not fetch a release (no network, yanked, no wheel): said in one line."""


def cache_dir(option: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``option``, else $CONV_PARITY_KERAS_CACHE, else the default."""
    raw = option or os.environ.get(CACHE_ENV) or DEFAULT_CACHE
    return Path(raw).expanduser()


def cached_versions(cache: Path) -> list[Version]:
    """Releases already unpacked in ``cache`` (``keras-3.4.1/`` or a bare ``3.4.1/``)."""
    found = set()
    if cache.is_dir():
        for child in cache.iterdir():
            if _release_dir_ok(child):
                try:
                    found.add(Version(child.name.removeprefix("keras-")))
                except InvalidVersion:
                    continue
    return sorted(found)


def index_versions(python: str = sys.executable, timeout: float = 120.0) -> list[Version]:
    """Keras 3 final releases that pip's index serves, oldest first (``pip index versions``);
    ReleaseUnavailable when pip cannot reach an index."""
    return parse_versions(pip_index_versions("keras", python=python, timeout=timeout))


def pip_index_versions(package: str, *options: str, python: str = sys.executable,
                       timeout: float = 120.0) -> list[str]:
    """The version strings ``pip index versions PACKAGE [OPTIONS]`` lists (the releases and,
    with ``--pre``, the nightlies share it); ReleaseUnavailable when pip cannot reach an index."""
    label = f"pip index versions {package}"
    try:
        proc = subprocess.run([python, "-m", "pip", "index", "versions", package, *options],
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReleaseUnavailable(f"{label}: {exc}") from None
    match = re.search(r"Available versions:\s*(.+)", proc.stdout)
    if proc.returncode != 0 or not match:
        why = (proc.stderr or proc.stdout).strip().splitlines()
        raise ReleaseUnavailable(f"{label} failed: "
                                 + (why[-1] if why else f"exit {proc.returncode}"))
    return match.group(1).split(",")


def keras3_versions(texts: Iterable[str], keep: Callable[[Version], bool]) -> list[Version]:
    """The Keras 3 versions among ``texts`` that ``keep`` accepts, oldest first; text that is
    no version is left out."""
    out = set()
    for text in texts:
        try:
            v = Version(text.strip())
        except InvalidVersion:
            continue
        if v.major == 3 and keep(v):
            out.add(v)
    return sorted(out)


def parse_versions(texts: Iterable[str]) -> list[Version]:
    """Keras 3 final releases among ``texts``, oldest first: parse_versions(["3.1.0", "2.15.0",
    "3.2.0rc1"]) == [Version("3.1.0")]."""
    return keras3_versions(texts, lambda v: not v.is_prerelease and not v.is_devrelease)


def select(versions: Sequence[Version], spec: str | None) -> list[Version]:
    """The releases in ``spec`` ("3.1..3.15": both ends inclusive, a short end covers its
    patches, so ..3.15 includes 3.15.1; "3.4.1": that one; None: from 3.1 on)."""
    lo_text, hi_text = (DEFAULT_OLDEST, "")
    if spec:
        if ".." in spec:
            lo_text, hi_text = (p.strip() for p in spec.split("..", 1))
        else:
            lo_text = hi_text = spec.strip()
    try:
        lo = Version(lo_text) if lo_text else None
        hi = Version(hi_text) if hi_text else None
    except InvalidVersion:
        raise UsageError(f"--keras {spec!r}: expected a range like 3.1..3.15 or one release "
                         f"like 3.4.1") from None

    def within(v: Version) -> bool:
        if lo is not None and v < lo:
            return False
        return not (hi is not None and v.release[:len(hi.release)] > hi.release)

    chosen = [v for v in versions if within(v)]
    if not chosen:
        raise UsageError(f"--keras {spec!r} holds none of the releases known here "
                         f"({', '.join(map(str, versions)) or 'none'})")
    return chosen


def _release_dir_ok(path: Path) -> bool:
    return (path / "keras" / "__init__.py").is_file()


def release_dir(version: Version | str, cache: Path, package: str = "keras") -> Path | None:
    """The unpacked release of ``package`` (keras, or keras-nightly) in ``cache``, if it is
    there."""
    names = [f"{package}-{version}"] + ([str(version)] if package == "keras" else [])
    for name in names:
        if _release_dir_ok(cache / name):
            return cache / name
    return None


def ensure(version: Version | str, cache: Path, python: str = sys.executable,
           timeout: float = 300.0, package: str = "keras") -> Path:
    """The folder holding ``package`` (keras, or keras-nightly) ``version``, installed there
    first when missing: unpacked into a temporary folder and renamed, so an interrupted install
    never looks complete."""
    found = release_dir(version, cache, package)
    if found is not None:
        return found
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{package}-{version}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{package}-{version}-", dir=cache))
    try:
        try:
            proc = subprocess.run(
                [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
                 "--disable-pip-version-check", "--target", str(tmp), f"{package}=={version}"],
                capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ReleaseUnavailable(f"{package} {version}: pip: {exc}") from None
        if proc.returncode != 0 or not _release_dir_ok(tmp):
            lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            raise ReleaseUnavailable(f"{package} {version}: pip could not install it: "
                                     + (lines[-1].strip() if lines else f"exit {proc.returncode}"))
        try:
            tmp.rename(target)
        except OSError:
            if release_dir(version, cache, package) is None:  # not a concurrent install that won
                raise
        return release_dir(version, cache, package) or target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def first_on_path(folder: Path | None) -> Iterator[None]:
    """``folder`` first on the PYTHONPATH that subprocesses (workers, repro scripts) started
    meanwhile inherit; None: leave it as it is (the installed Keras)."""
    if folder is None:
        yield
        return
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), *([old] if old else [])])
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


__all__ = ["CACHE_ENV", "DEFAULT_CACHE", "ReleaseUnavailable", "cache_dir", "cached_versions",
           "ensure", "first_on_path", "index_versions", "parse_versions", "release_dir", "select"]
