"""Keras internals are found wherever a release keeps them, or refused by name (issue 23:
keras-nightly moved the torch backend's modules and the workers could not start)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conv_parity import keras_internal

SRC = Path(__file__).resolve().parents[2] / "src" / "conv_parity"
#: Modules a worker imports (facts, backends, mutations run inside every worker).
WORKER_SIDE = ("facts.py", "backends.py", "mutations.py", "workers", "modes")


def _private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras.src"):
            found.append(f"{path.name}:{node.lineno} from {node.module}")
        elif isinstance(node, ast.Import):
            found += [f"{path.name}:{node.lineno} import {a.name}" for a in node.names
                      if a.name.startswith("keras.src")]
    return found


def test_no_worker_side_module_imports_a_private_keras_path() -> None:
    files = []
    for name in WORKER_SIDE:
        p = SRC / name
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    offenders = [hit for f in files for hit in _private_imports(f)]
    assert not offenders, offenders


def test_find_takes_the_first_place_that_has_it_and_walks_attributes() -> None:
    import json

    assert keras_internal.find("dumps", "no_such_module_xyz", "json") is json.dumps
    assert keras_internal.find("sep", "os.path") == keras_internal._resolve("os.path").sep


def test_find_names_every_place_tried_when_none_has_it() -> None:
    pytest.importorskip("keras")
    with pytest.raises(keras_internal.KerasInternalMissing) as info:
        keras_internal.find("get_device", "keras.src.no_such_core", "json")
    text = str(info.value)
    assert "keras.src.no_such_core" in text and "json (no get_device)" in text
    assert isinstance(info.value, ImportError)


def test_the_registry_reads_the_version_of_the_keras_python_imports(tmp_path: Path) -> None:
    """A keras-nightly overlaid on a release with PYTHONPATH is what the workers import, so
    its version (not the release's) scopes the registry."""
    import os
    import subprocess
    import sys

    (tmp_path / "keras").mkdir()
    (tmp_path / "keras" / "__init__.py").write_text("")
    info = tmp_path / "keras_nightly-9.9.0.dev1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: keras-nightly\n"
                                   "Version: 9.9.0.dev1\n")
    src = str(SRC.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), src])}
    proc = subprocess.run([sys.executable, "-c", "from conv_parity.registry import "
                           "installed_keras_version as v; print(v())"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.stdout.strip() == "9.9.0.dev1", proc.stderr[-2000:]
