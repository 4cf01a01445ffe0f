"""The executions table's vim keys: j and k move, g and G (like home and end) go to the first and last row."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.app.test_executions_columns import EARLIER, finished, flows
from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.widgets.namespaces import NodeRef
from tiercel.engine.model import Execution, StateType
from tiercel.engine.store import Store

__all__ = ["flows"]  # a fixture shared with test_executions_columns

ROWS = 6


@pytest.fixture
async def table(flows: Path, tmp_path: Path) -> AsyncIterator[tuple[TiercelApp, Pilot[None]]]:
    db = tmp_path / "db" / "tiercel.db"
    store = await Store.open(db)
    for n in range(ROWS):
        start = EARLIER - timedelta(minutes=n)
        await store.save_execution(
            Execution(
                f"{n:02d}c0ffee0a1b2c3d4e5f6a", "acme", "hello", 1, finished(StateType.SUCCESS, start, 1.0)
            )
        )
    await store.close()
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == 3)
        assert app.ns_tree.select_ref(NodeRef("namespace", "acme"))
        await until_drawn(pilot, lambda: app.table.row_count == ROWS)
        await pilot.press("2")
        await until_drawn(pilot, lambda: app.focused is app.table)
        yield app, pilot


async def test_j_and_k_move_down_and_up(table: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = table
    first = app.table.selected_id
    assert app.table.cursor_row == 0
    await pilot.press("j", "j")
    assert app.table.cursor_row == 2
    await pilot.press("k")
    assert app.table.cursor_row == 1
    await pilot.press("k", "k")  # stays on the first row
    assert app.table.cursor_row == 0 and app.table.selected_id == first


@pytest.mark.parametrize(("last", "first"), [("G", "g"), ("end", "home")])
async def test_jump_to_the_last_and_the_first_row(
    table: tuple[TiercelApp, Pilot[None]], last: str, first: str
) -> None:
    app, pilot = table
    await pilot.press(last)
    assert app.table.cursor_row == ROWS - 1
    # The oldest execution is the last row; the detail pane follows the cursor there.
    oldest = f"{ROWS - 1:02d}c0ffee0a1b2c3d4e5f6a"
    assert app.table.selected_id == oldest
    await until_drawn(pilot, lambda: app.detail.execution_id == oldest)
    await pilot.press(first)
    assert app.table.cursor_row == 0
