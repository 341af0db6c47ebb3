"""The import contract: no cycle, and each layer imports only from the layers below it.

DESIGN.md, "The layered tree". Every import counts, at module top, inside a function or under
``TYPE_CHECKING``: when an import has to hide to work, the concept is in the wrong module.

The table below is the one place that says which module sits in which layer: moving a file is
one edit here. A module that no row covers fails the test, so a new module gets a layer on day one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from import_graph import Graph, cycles, describe_cycle, import_graph

SRC = Path(__file__).resolve().parents[2] / "src" / "conv_parity"
PACKAGE = "conv_parity"

#: Layer -> the modules and packages in it, bottom first; a module may import from its own layer
#: and the layers below. A name covers its submodules; the longest name that covers a module wins.
LAYERS: dict[str, tuple[str, ...]] = {
    # Records: values and facts, import nothing above them.
    "records": ("errors", "vocabulary", "formats", "_version", "facts", "kinds", "policies", "case",
                "backends", "variants", "geometry", "reference", "expected", "results", "values",
                "keras_internal", "mutants", "phases", "requests", "integers"),
    # Pure rules: no processes, no pytest. What a verdict is, what the registry knows, what each
    # mode computes, what explains a failure.
    "rules": ("judge", "registry", "bug_models", "modes", "mutations",
              "explain", "mixed_dtypes"),
    # Processes: the workers, the engine and what feeds it.
    "processes": ("workers", "engine", "generate"),
    # Clients of the engine. `suite` is the pytest suite the plugin ships; `fuzzing` holds the
    # hypothesis profiles and the fuzz campaign, which runs the engine and writes a report.
    "clients": ("model", "report", "plugin", "cli", "suite", "fuzzing", "audit", "upstream",
                "strategies"),
    # The public facade: conv_parity/__init__.py (its `check_model` is lazy).
    "facade": ("",),
}

#: Imports that the rank rule allows but DESIGN.md forbids: importer -> what it must not import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "judge": ("workers", "engine", "generate", "model", "cli", "plugin", "report"),
    "workers": ("engine", "model", "registry", "report", "cli", "plugin"),
    "engine": ("model", "cli", "plugin", "report"),
}

#: Who may import the engine (DESIGN.md: "only cli/, plugin/ and model/ import the engine";
#: the plugin's shipped suite and the fuzz campaign are front doors of the same kind).
ENGINE_CLIENTS = ("cli", "plugin", "model", "suite", "fuzzing", "audit", "upstream")

#: Third-party modules that the records and the pure rules never import.
NOT_BELOW_PROCESSES = ("pytest", "_pytest")

#: The upward imports still allowed, each with its reason (at most three).
ALLOWED: dict[tuple[str, str], str] = {
    # The mixed-dtype probes are pure rules and data (the probes, the worker half `run_probes`,
    # the known table, the judgement) but for `check(engine)`, which sends them through
    # `Engine.request_all`: an engine type under TYPE_CHECKING, never imported at run time.
    ("mixed_dtypes", "engine"): "check(engine) takes the engine that sends the probes",
}

RANK = {layer: i for i, layer in enumerate(LAYERS)}


def _full(name: str) -> str:
    return f"{PACKAGE}.{name}" if name else PACKAGE


def _covers(prefix: str, module: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> str | None:
    """The layer of the longest table name that covers `module` (None: no row covers it)."""
    best: tuple[int, str] | None = None
    for layer, names in LAYERS.items():
        for name in names:
            if _covers(_full(name), module) and (best is None or len(_full(name)) > best[0]):
                best = (len(_full(name)), layer)
    return best and best[1]


def _short(module: str) -> str:
    return module.removeprefix(PACKAGE + ".")


def _allowed(source: str, target: str) -> bool:
    return any(_covers(_full(a), source) and _covers(_full(b), target) for a, b in ALLOWED)


def violations(graph: Graph) -> list[str]:
    """Every import that breaks a layer rule, one line each with where it is made."""
    found = []
    for source, targets in sorted(graph.items()):
        for target, edges in sorted(targets.items()):
            where = ", ".join(map(str, edges))
            if _allowed(source, target):
                continue
            low, high = layer_of(source), layer_of(target)
            if low and high and RANK[high] > RANK[low]:
                found.append(f"{_short(source)} ({low}) imports {_short(target)} ({high}), "
                             f"a layer above it, at {where}")
            for importer, banned in FORBIDDEN.items():
                if _covers(_full(importer), source) and any(
                        _covers(_full(b), target) for b in banned):
                    found.append(f"{_short(source)} imports {_short(target)}, which {importer} "
                                 f"must not, at {where}")
            if _covers(_full("engine"), target) and not any(
                    _covers(_full(c), source) for c in ENGINE_CLIENTS):
                found.append(f"{_short(source)} imports the engine, which only "
                             f"{', '.join(ENGINE_CLIENTS)} may, at {where}")
    return found


def third_party_violations(root: Path) -> list[str]:
    """Records and pure rules that import pytest."""
    import ast

    found = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        module = ".".join([PACKAGE, *parts])
        layer = layer_of(module)
        if layer is None or RANK[layer] >= RANK["processes"]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            for name in names:
                if name.split(".")[0] in NOT_BELOW_PROCESSES:
                    found.append(f"{_short(module)} ({layer}) imports {name} at "
                                 f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(SRC, PACKAGE)


def test_every_module_has_a_layer(graph: Graph) -> None:
    orphans = [m for m in graph if layer_of(m) is None]
    assert not orphans, f"add these modules to LAYERS in {__file__}: {orphans}"


def test_every_table_name_is_a_module(graph: Graph) -> None:
    """A row that names nothing is a stale row (the module moved): edit it with the move."""
    stale = [n for names in LAYERS.values() for n in names
             if n and not any(_covers(_full(n), m) for m in graph)]
    # Names of modules that the layered tree will add; drop each from here as it lands.
    planned: set[str] = set()
    assert not [n for n in stale if n not in planned], stale


def test_no_import_cycle(graph: Graph) -> None:
    found = cycles(graph)
    assert not found, "\n\n".join(describe_cycle(graph, c) for c in found)


def test_layer_rules(graph: Graph) -> None:
    found = violations(graph)
    assert not found, "\n".join(found)


def test_no_pytest_below_processes() -> None:
    found = third_party_violations(SRC)
    assert not found, "\n".join(found)


def test_allow_list_is_short_and_used(graph: Graph) -> None:
    assert len(ALLOWED) <= 3, "the allow-list is for exceptions: move the concept instead"
    for source, target in ALLOWED:
        used = any(_covers(_full(source), s) and _covers(_full(target), t)
                   for s, ts in graph.items() for t in ts)
        assert used, f"ALLOWED names {source} -> {target}, which no module imports: drop it"


# -- the checker itself, on synthetic packages ------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_checker_finds_a_cycle_closed_by_hidden_imports(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "a.py": "from pkg.b import thing\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.c import C\n",
        "c.py": "def f():\n    from pkg import a\n",
        "d.py": "import pkg.a\n",
    })
    graph = import_graph(root, "pkg")
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    text = describe_cycle(graph, cycles(graph)[0])
    assert "pkg.b -> pkg.c  at pkg/b.py:3 (TYPE_CHECKING)" in text
    assert "pkg.c -> pkg.a  at pkg/c.py:2 (function)" in text


def test_checker_follows_relative_imports_and_package_inits(tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "sub/__init__.py": "from .inner import x\nfrom pkg import top\n",
        "sub/inner.py": "from . import other\nx = 1\n",
        "sub/other.py": "",
        "top.py": "from pkg.sub.inner import x\n",
    })
    graph = import_graph(root, "pkg")
    assert set(graph["pkg.sub.inner"]) == {"pkg.sub.other"}
    # importing pkg.sub.inner from outside runs pkg/sub/__init__.py, which imports top: a cycle
    assert set(graph["pkg.top"]) == {"pkg.sub.inner", "pkg.sub"}
    assert cycles(graph) == [["pkg.sub", "pkg.top"]]


def test_checker_finds_an_upward_import() -> None:
    graph: Graph = {"conv_parity.case": {"conv_parity.modes": []}, "conv_parity.modes": {}}
    assert violations(graph) == [
        "case (records) imports modes (rules), a layer above it, at "]
    graph = {"conv_parity.workers.pool": {"conv_parity.registry": []}, "conv_parity.registry": {}}
    assert violations(graph) == [
        "workers.pool imports registry, which workers must not, at "]
