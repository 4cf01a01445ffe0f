"""The executor's layering: task types below it, and nothing that does I/O inside it.

Imports are read from the source (inside functions and under TYPE_CHECKING too), so a lazy import
cannot hide a dependency that an import at the top would show.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "engine"


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, as absolute `tiercel.engine...` (or top-level) names."""
    parts = ["tiercel", "engine", *path.relative_to(ENGINE).with_suffix("").parts]
    package = parts[:-1]  # a module's package; for an __init__, the package itself
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_imported_modules_resolves_relative_imports() -> None:
    assert {"tiercel.engine.model", "tiercel.engine.model.StateType"} <= imported_modules(
        ENGINE / "tasks" / "flowable.py"
    )


@pytest.mark.parametrize("path", sorted((ENGINE / "tasks").rglob("*.py")), ids=lambda p: p.name)
def test_task_types_do_not_import_the_executor(path: Path) -> None:
    executor = {name for name in imported_modules(path) if name.startswith("tiercel.engine.executor")}
    assert not executor, f"{path.name} imports {sorted(executor)}: depend on engine.tasks.flowable instead"


def test_the_task_type_table_imports_nothing_of_the_engine() -> None:
    imported = imported_modules(ENGINE / "tasks" / "types.py")
    assert not {m for m in imported if m.startswith("tiercel.")}


def test_the_flowable_api_sits_on_the_model_alone() -> None:
    engine = {m for m in imported_modules(ENGINE / "tasks" / "flowable.py") if m.startswith("tiercel.")}
    assert engine and all(m.startswith("tiercel.engine.model") for m in engine), sorted(engine)


@pytest.mark.parametrize("name", ["decisions.py", "working_copy.py", "variables.py"])
def test_the_executor_decides_without_io(name: str) -> None:
    imported = imported_modules(ENGINE / "executor" / name)
    forbidden = (
        "asyncio",
        "sqlite3",
        "subprocess",
        "socket",
        "tiercel.engine.store",
        "tiercel.engine.worker",
    )
    forbidden += ("tiercel.engine.engine", "tiercel.engine.internal_storage", "tiercel.engine.flows")
    assert not {m for m in imported if m.startswith(forbidden)}
