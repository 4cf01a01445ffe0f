"""The executions table's columns fill its width: labels take what is left, cut with "…" when short of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.widgets.executions import COLUMNS, ExecutionsTable, fit_columns
from tiercel.app.widgets.namespaces import NodeRef
from tiercel.app.widgets.states import fmt_start
from tiercel.engine.model import Execution, History, Label, State, StateType
from tiercel.engine.store import Store

LOG = "io.kestra.plugin.core.log.Log"
LONG = "nightly_pipeline_of_the_warehouse"
LABELS = "team=data-platform owner=someone"
NOW = datetime.now(UTC).replace(microsecond=0)
EARLIER = NOW - timedelta(minutes=5)
DAYS_AGO = NOW - timedelta(days=3)
SCHEDULE = {"id": "nightly", "type": "io.kestra.plugin.core.trigger.Schedule"}


def flow(flow_id: str, task: str = f"{{id: say, type: {LOG}, message: hi}}") -> str:
    return f"id: {flow_id}\nnamespace: acme\ntasks:\n  - {task}\n"


def finished(final: StateType, start: datetime, seconds: float) -> State:
    steps = (StateType.CREATED, StateType.RUNNING, final)
    moments = (start, start, start + timedelta(seconds=seconds))
    return State(final, tuple(History(step, at) for step, at in zip(steps, moments, strict=True)))


SEEDED = [
    Execution(
        "5c0ffee0a1b2c3d4e5f6a7",
        "acme",
        LONG,
        1,
        finished(StateType.SUCCESS, EARLIER, 42.0),
        labels=(Label("team", "data-platform"), Label("owner", "someone")),
        trigger=SCHEDULE,
    ),
    Execution("7a41c9e2d3b54f6a8c7d90", "acme", "hello", 1, finished(StateType.FAILED, DAYS_AGO, 3.4)),
]


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    folder = tmp_path / "flows" / "acme"
    folder.mkdir(parents=True)
    (folder / f"{LONG}.yml").write_text(flow(LONG))
    (folder / "hello.yml").write_text(flow("hello"))
    (folder / "failing.yml").write_text(
        flow("failing", "{id: boom, type: io.kestra.plugin.core.execution.Fail}")
    )
    return folder.parent


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    path = tmp_path / "db" / "tiercel.db"
    store = await Store.open(path)
    for execution in SEEDED:
        await store.save_execution(execution)
    await store.close()
    return path


async def start(
    flows: Path, db: Path, size: tuple[int, int]
) -> AsyncIterator[tuple[TiercelApp, Pilot[None]]]:
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=size) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == 3)
        assert app.ns_tree.select_ref(NodeRef("namespace", "acme"))
        await until_drawn(pilot, lambda: len(app.table.rows_by_id) == len(SEEDED))
        await pilot.pause()
        yield app, pilot


@pytest.fixture
async def narrow(flows: Path, db: Path) -> AsyncIterator[tuple[TiercelApp, Pilot[None]]]:
    async for running in start(flows, db, (80, 24)):
        yield running


@pytest.fixture
async def wide(flows: Path, db: Path) -> AsyncIterator[tuple[TiercelApp, Pilot[None]]]:
    async for running in start(flows, db, (160, 40)):
        yield running


def widths(table: ExecutionsTable) -> dict[str, int]:
    return {str(column.key.value): column.get_render_width(table) for column in table.ordered_columns}


def drawn(table: ExecutionsTable, execution_id: str) -> dict[str, str]:
    """The row's cells as the table draws them, by column."""
    line = table.render_line(table.get_row_index(execution_id) + 1 - table.scroll_offset.y).text
    cells, x = {}, 0
    for key, width in widths(table).items():
        cells[key] = line[x : x + width].strip()
        x += width
    return cells


def room(table: ExecutionsTable) -> int:
    """The table's width but for the vertical scrollbar's, which the columns always leave free."""
    return table.size.width - table.styles.scrollbar_size_vertical


async def test_at_80_columns_id_state_start_took_and_trigger_show_whole(
    narrow: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = narrow
    table = app.table
    assert sum(widths(table).values()) <= room(table)
    await until_drawn(pilot, lambda: table.max_scroll_x == 0)
    scheduled = drawn(table, SEEDED[0].id)
    assert scheduled["id"] == SEEDED[0].id[:6]
    assert scheduled["state"] == "✔ SUCCESS"
    assert scheduled["start"] == fmt_start(EARLIER)
    assert scheduled["duration"] == "42s"
    assert scheduled["trigger"] == "Schedule"
    assert scheduled["flow"].startswith(LONG[:6]) and scheduled["flow"].endswith("…")
    older = drawn(table, SEEDED[1].id)
    assert (
        older["state"] == "✘ FAILED" and older["start"] == fmt_start(DAYS_AGO) and older["duration"] == "3.4s"
    )
    assert older["trigger"] == "manual" and older["flow"] == "hello"


async def test_labels_take_the_width_left_and_show_whole_when_it_is_enough(
    wide: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, _ = wide
    table = app.table
    assert sum(widths(table).values()) == room(table)
    cells = drawn(table, SEEDED[0].id)
    assert cells["labels"] == LABELS and cells["flow"] == LONG
    assert widths(table)["labels"] > len(LABELS) + 1


async def test_a_label_added_by_a_restart_shows_whole(wide: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = wide
    table = app.table
    assert app.ns_tree.select_ref(NodeRef("flow", "acme", "failing"))
    await until_drawn(pilot, lambda: app.selected_flow is not None and app.selected_flow.id == "failing")
    await pilot.press("r")
    await until_drawn(pilot, lambda: any(s.state == "FAILED" for s in table.rows_by_id.values()))
    failed = next(iter(table.rows_by_id))
    await pilot.press("2", "R")
    await until_drawn(
        pilot,
        lambda: (
            table.rows_by_id[failed].state == "FAILED"
            and "system.restarted" in table.rows_by_id[failed].labels
        ),
    )
    await pilot.pause()
    assert drawn(table, failed)["labels"] == "system.restarted=true"


async def test_the_columns_follow_a_resize_and_cut_labels_only_when_short_of_room(
    wide: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = wide
    table = app.table
    await pilot.resize_terminal(80, 24)
    await until_drawn(pilot, lambda: sum(widths(table).values()) <= room(table) < 60)
    assert drawn(table, SEEDED[0].id)["trigger"] == "Schedule"
    # A width where the labels get some room, not all they need: they are cut with an ellipsis.
    await pilot.resize_terminal(112, 30)
    await until_drawn(pilot, lambda: 8 <= widths(table)["labels"] < len(LABELS) + 1)
    assert sum(widths(table).values()) == room(table)
    labels = drawn(table, SEEDED[0].id)["labels"]
    assert labels.startswith("team=") and labels.endswith("…")
    await pilot.resize_terminal(160, 40)
    await until_drawn(pilot, lambda: drawn(table, SEEDED[0].id)["labels"] == LABELS)


def test_fit_columns_gives_the_flow_id_its_width_first_and_labels_the_rest() -> None:
    widest = (7, 20, 10, 9, 6, 8, 40)  # id, flow, state, start, took, trigger, labels
    fixed = 7 + 10 + 9 + 6 + 8
    assert fit_columns(fixed + 100, widest) == (7, 20, 10, 9, 6, 8, 80)
    assert fit_columns(fixed + 30, widest) == (7, 20, 10, 9, 6, 8, 10)
    # Less room: the flow id is cut to leave labels a few cells, down to its least width ...
    assert fit_columns(fixed + 20, widest) == (7, 12, 10, 9, 6, 8, 8)
    # ... and labels too narrow to say anything give their room to the flow id.
    assert fit_columns(fixed + 14, widest) == (7, 14, 10, 9, 6, 8, 0)
    assert fit_columns(fixed + 3, widest) == (7, 9, 10, 9, 6, 8, 0)
    assert len(fit_columns(0, widest)) == len(COLUMNS)
