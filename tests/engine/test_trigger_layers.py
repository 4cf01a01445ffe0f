"""The trigger sources sit below the engine: they see it through `triggers.host.TriggerHost` alone.

Imports are read from the source by tests/imports.py, lazy ones included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imports import ENGINE, import_graph, imported_modules, module_name, reachable

TRIGGERS = sorted((ENGINE / "triggers").glob("*.py"))
# The engine and the components it wires: a trigger source reaches them through its host.
ABOVE = (
    "tiercel.engine.engine",
    "tiercel.engine.wiring",
    "tiercel.engine.commands",
    "tiercel.engine.control",
    "tiercel.engine.connection",
    "tiercel.engine.executor",
    "tiercel.engine.worker",
    "tiercel.engine.flows",
)


def _is_above(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in ABOVE)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


@pytest.mark.parametrize("path", TRIGGERS, ids=lambda p: p.name)
def test_trigger_modules_do_not_reach_the_engine(path: Path, graph: dict[str, set[str]]) -> None:
    # Through any chain of imports: a helper the trigger imports may not import the engine either.
    above = {name for name in reachable(graph, [module_name(path)]) if _is_above(name)}
    assert not above, f"{path.name} reaches {sorted(above)}: ask the TriggerHost instead"


def test_trigger_state_is_importable_without_the_scheduler() -> None:
    # The command surface lists TriggerState; it must not pull in the scheduler's machinery.
    imported = imported_modules(ENGINE / "triggers" / "state.py")
    assert not {m for m in imported if m.startswith(("tiercel.engine.triggers.schedule", "asyncio"))}
