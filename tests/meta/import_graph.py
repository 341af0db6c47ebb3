"""The internal import graph of a package, read with `ast` (nothing is imported or run).

Every import counts: at module top, inside a function, under ``if TYPE_CHECKING:``. A lazy import
still ties two modules (DESIGN.md, "The layered tree"), so the graph is the one a reader sees.

    graph = import_graph(Path("src/conv_parity"), "conv_parity")
    graph["conv_parity.judge.verdict"]    # {"conv_parity.judge.compare": [Edge(...), ...], ...}

Edges go from module to module (a package is its ``__init__``). ``from pkg.mod import name``
points at ``pkg.mod.name`` when that is a module, else at ``pkg.mod``. Importing a submodule from
outside its package also runs the package's ``__init__``, so it adds an edge to that package too
(``from conv_parity.workers.pool import X`` loads ``conv_parity.workers`` and all it imports);
the root package is left out of that rule, as every module sits under it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Edge:
    """One import statement: where it is and how it is made (``top``, ``function``, ``TYPE_CHECKING``)."""

    path: str
    line: int
    how: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.how})"


Graph = dict[str, dict[str, list[Edge]]]


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under `root` (the package's folder)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package, *parts])] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module) -> Iterable[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement in `tree` with how it is made."""

    def walk(node: ast.AST, how: str) -> Iterable[tuple[ast.Import | ast.ImportFrom, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, how
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from walk(child, "function")
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), "TYPE_CHECKING")
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), how)
            else:
                yield from walk(child, how)

    return walk(tree, "top")


def _targets(node: ast.Import | ast.ImportFrom, name: str, is_package: bool,
             known: Mapping[str, Path]) -> list[str]:
    """The modules of `known` that one import statement in module `name` loads."""
    if isinstance(node, ast.Import):
        wanted = [alias.name for alias in node.names]
    else:
        if node.level:
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            module = ".".join([*base, node.module] if node.module else base)
        else:
            module = node.module or ""
        wanted = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                  for alias in node.names]
    found = []
    for target in wanted:
        while target and target not in known:  # `import pkg.mod.Class` style leftovers
            target = target.rpartition(".")[0]
        if target:
            found.append(target)
    return found


def import_graph(root: Path, package: str) -> Graph:
    """module -> {imported module -> the import statements}, internal imports only."""
    known = modules(root, package)
    graph: Graph = {name: {} for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        where = str(path.relative_to(root.parent))
        for node, how in _imports(tree):
            for target in _targets(node, name, is_package, known):
                edge = Edge(where, node.lineno, how)
                for hop in _with_parents(target, name, package):
                    if hop != name:
                        graph[name].setdefault(hop, []).append(edge)
    return graph


def _with_parents(target: str, importer: str, package: str) -> list[str]:
    """`target` and the packages above it that importing it runs, but not the root package nor a
    package that `importer` itself is in (a package's own modules import each other freely)."""
    hops = [target]
    parent = target.rpartition(".")[0]
    while parent and parent != package:
        if not (importer == parent or importer.startswith(parent + ".")):
            hops.append(parent)
        parent = parent.rpartition(".")[0]
    return hops


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def describe_cycle(graph: Graph, component: list[str]) -> str:
    """The imports that tie one cycle, one ``a -> b  at path:line (how)`` per line."""
    members = set(component)
    lines = [f"cycle of {len(component)} modules: {', '.join(component)}"]
    for source in component:
        for target, edges in sorted(graph[source].items()):
            if target in members:
                lines.append(f"  {source} -> {target}  at {', '.join(map(str, edges))}")
    return "\n".join(lines)
