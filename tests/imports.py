"""Tiercel's import graph, read from the source.

Imports inside functions and under TYPE_CHECKING count too, so a lazy import cannot hide a
dependency that an import at the top would show. The architecture tests build on this.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
ENGINE = REPOSITORY / "engine"
APP = REPOSITORY / "app"
# Each source folder and the package it is installed as (pyproject.toml's package-dir).
PACKAGES = {ENGINE: "tiercel.engine", APP: "tiercel.app"}


def module_name(path: Path) -> str:
    """`engine/executor/loop.py` -> `tiercel.engine.executor.loop`; a package's __init__ is the package."""
    for root, package in PACKAGES.items():
        if path.is_relative_to(root):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            return ".".join([package, *parts])
    raise ValueError(f"{path} is outside engine/ and app/")


def imported_modules(path: Path) -> set[str]:
    """Every name `path` imports, absolute: modules, and `module.Name` for each name taken from one."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def source_modules() -> dict[str, Path]:
    """Every module of engine/ and app/ by its installed name."""
    return {module_name(path): path for root in PACKAGES for path in sorted(root.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of engine/ and app/ it imports (a name taken from a module counts as
    that module; importing a submodule counts as the submodule, not its package)."""
    modules = source_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {target for target in imported_modules(path) if target in modules}
        # `from pkg import sub` lists both pkg and pkg.sub: the edge is to sub alone.
        graph[name] = {t for t in targets if not any(o.startswith(t + ".") and o in targets for o in targets)}
        graph[name].discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph`: its strongly connected components of more than one module
    (Tarjan's algorithm, iterative so a deep graph cannot overflow the stack)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in graph:
                    continue
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def reachable(graph: dict[str, set[str]], roots: Iterable[str]) -> set[str]:
    """Every module `roots` import, directly or through others (the roots themselves only when an
    import leads back to them)."""
    found: set[str] = set()
    waiting = [target for root in roots for target in graph.get(root, ())]
    while waiting:
        module = waiting.pop()
        if module not in found:
            found.add(module)
            waiting.extend(graph.get(module, ()))
    return found


def package_graph(graph: dict[str, set[str]], package: str) -> dict[str, set[str]]:
    """`graph` restricted to `package` and collapsed to its first level: `package.sub.mod` becomes
    `package.sub`; a module directly in `package` stays a node of its own."""
    depth = package.count(".") + 2

    def node(module: str) -> str:
        return ".".join(module.split(".")[:depth])

    inside = {module for module in graph if module == package or module.startswith(package + ".")}
    collapsed: dict[str, set[str]] = {node(module): set() for module in inside}
    for module in inside:
        collapsed[node(module)] |= {node(target) for target in graph[module] if target in inside}
    for name, targets in collapsed.items():
        targets.discard(name)
    return collapsed
