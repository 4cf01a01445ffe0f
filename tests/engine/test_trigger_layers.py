"""The trigger sources sit below the engine: they see it through `triggers.host.TriggerHost` alone.

Imports are read from the source by tests/imports.py, lazy ones included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imports import ENGINE, imported_modules

TRIGGERS = sorted((ENGINE / "triggers").glob("*.py"))
# The engine and the components it wires: a trigger source reaches them through its host.
ABOVE = (
    "tiercel.engine.engine",
    "tiercel.engine.commands",
    "tiercel.engine.control",
    "tiercel.engine.connection",
    "tiercel.engine.executor.loop",
    "tiercel.engine.worker",
    "tiercel.engine.flows",
)


@pytest.mark.parametrize("path", TRIGGERS, ids=lambda p: p.name)
def test_trigger_modules_do_not_import_the_engine(path: Path) -> None:
    above = {name for name in imported_modules(path) if name.startswith(ABOVE)}
    assert not above, f"{path.name} imports {sorted(above)}: ask the TriggerHost instead"


def test_trigger_state_is_importable_without_the_scheduler() -> None:
    # The command surface lists TriggerState; it must not pull in the scheduler's machinery.
    imported = imported_modules(ENGINE / "triggers" / "state.py")
    assert not {m for m in imported if m.startswith(("tiercel.engine.triggers.schedule", "asyncio"))}
