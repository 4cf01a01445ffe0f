"""The executor's layering: task types below it, and nothing that does I/O inside it.

Imports are read from the source by tests/imports.py, lazy ones included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imports import ENGINE, import_graph, imported_modules, reachable


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


@pytest.mark.parametrize(
    "name", ["executor/decisions.py", "executor/working_copy.py", "expressions/variables.py"]
)
def test_the_executor_decides_without_io(name: str) -> None:
    imported = imported_modules(ENGINE / name)
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


EXECUTOR = "tiercel.engine.executor"
WORKER = "tiercel.engine.worker"


def _modules_of(package: str, graph: dict[str, set[str]]) -> list[str]:
    return sorted(m for m in graph if m == package or m.startswith(package + "."))


def test_the_executor_does_not_reach_the_worker() -> None:
    # They meet through engine.messages and engine.queue alone, so a remote worker can replace the
    # in-process one: not even a module the executor imports may import the worker.
    graph = import_graph()
    for module in _modules_of(EXECUTOR, graph):
        worker = {m for m in reachable(graph, [module]) if m == WORKER or m.startswith(WORKER + ".")}
        assert not worker, f"{module} reaches {sorted(worker)}"


def test_the_worker_does_not_reach_the_executor() -> None:
    graph = import_graph()
    for module in _modules_of(WORKER, graph):
        executor = {m for m in reachable(graph, [module]) if m == EXECUTOR or m.startswith(EXECUTOR + ".")}
        assert not executor, f"{module} reaches {sorted(executor)}"
