"""The history screen driven by Textual's Pilot, on a real engine and a temporary SQLite database."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.screens.history import HistoryScreen
from tiercel.app.widgets.history_chart import HistoryChart
from tiercel.app.widgets.state_chart import StateChart
from tiercel.engine.engine import Engine
from tiercel.engine.flowtests import RESULTS_FILE
from tiercel.engine.model import Execution, History, State, StateType
from tiercel.engine.store import Store

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STATES = (StateType.SUCCESS, StateType.SUCCESS, StateType.FAILED, StateType.WARNING, StateType.KILLED)


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "UTC")
        time.tzset()
        yield
    time.tzset()


def execution(number: int, namespace: str, flow_id: str, state: StateType, minutes_ago: float) -> Execution:
    """An execution that started `minutes_ago` and took 10 s plus a second per `number` (or runs)."""
    start = NOW - timedelta(minutes=minutes_ago)
    steps = [History(StateType.CREATED, start), History(StateType.RUNNING, start)]
    if state is not StateType.RUNNING:
        steps.append(History(state, start + timedelta(seconds=10 + number % 50)))
    return Execution(f"{number:022d}", namespace, flow_id, 1, State(state, tuple(steps)))


async def save(store: Store, executions: list[Execution]) -> None:
    for first in range(0, len(executions), 1000):
        await asyncio.gather(*(store.save_execution(e) for e in executions[first : first + 1000]))


class Host(App[None]):
    """A bare app that shows one screen."""

    def __init__(self, screen: HistoryScreen) -> None:
        super().__init__()
        self.shown = screen

    def on_mount(self) -> None:
        self.push_screen(self.shown)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    flows = tmp_path / "flows"
    flows.mkdir()
    engine = Engine(await Store.open(tmp_path / "db" / "tiercel.db"), flows_dir=flows)
    await engine.start(control=False, triggers=False)
    yield engine
    await engine.stop()


@asynccontextmanager
async def shown(screen: HistoryScreen, size: tuple[int, int]) -> AsyncIterator[Pilot[None]]:
    """The screen on a bare app of `size`, once it has read the executions."""
    app = Host(screen)
    async with app.run_test(size=size) as pilot:
        await until_drawn(pilot, lambda: screen.loaded >= 1, what="the history read")
        await pilot.pause()
        yield pilot


def screen_text(pilot: Pilot[None]) -> str:
    return "\n".join(strip.text for strip in pilot.app.screen._compositor.render_strips())


async def test_a_flows_history_shows_its_own_runs_as_bars_with_a_summary(engine: Engine) -> None:
    own = [execution(i, "acme", "etl", STATES[i % 5], 600 - i * 10) for i in range(30)]
    own.append(execution(30, "acme", "etl", StateType.RUNNING, 1))
    others = [execution(100 + i, "acme.child", "etl", StateType.FAILED, 5) for i in range(5)]
    others += [execution(200 + i, "acme", "other", StateType.SUCCESS, 5) for i in range(5)]
    await save(engine.store, own + others)
    screen = HistoryScreen(engine, "acme", "etl", clock=lambda: NOW)
    async with shown(screen, (80, 24)) as pilot:
        assert sorted(run.id for run in screen.executions) == sorted(e.id for e in own)
        text = screen_text(pilot)
        assert "History of acme.etl: 31 executions" in text
        assert "60% ok (18/30)" in text  # 12 SUCCESS and 6 WARNING of 30 finished
        assert "last ▶ RUNNING 11:59:00 for 1m00s" in text
        assert "▌" in text or "█" in text
        assert not screen.query_one(StateChart).display  # 24 rows: the bars only
        chart = screen.query_one(HistoryChart)
        assert len(chart.runs) == 31


async def test_at_120x40_a_flow_shows_both_charts(engine: Engine) -> None:
    await save(engine.store, [execution(i, "acme", "etl", STATES[i % 5], 3000 - i * 25) for i in range(120)])
    screen = HistoryScreen(engine, "acme", "etl", clock=lambda: NOW)
    async with shown(screen, (120, 40)) as pilot:
        assert screen.query_one(StateChart).display
        text = screen_text(pilot)
        assert "per hour" in text
        assert "█ SUCCESS 48  █ WARNING 24  █ FAILED 24  █ KILLED/CANCELLED 24  █ RUNNING 0" in text
        assert len(screen.query_one(HistoryChart).runs) == 100


async def test_a_namespace_shows_states_over_time_and_a_row_per_flow(engine: Engine, tmp_path: Path) -> None:
    rows = [execution(i, "acme", "etl", STATES[i % 5], 100 + i) for i in range(10)]
    rows += [execution(20 + i, "acme.finance", "close", StateType.SUCCESS, 50 + i) for i in range(4)]
    rows += [execution(40, "acme.finance", "close", StateType.RUNNING, 2)]
    rows += [execution(50, "acmeco", "outside", StateType.SUCCESS, 2)]
    await save(engine.store, rows)
    # What `tiercel test` kept of the flows' tests: one of etl's two cases failed.
    results = {
        "acme.etl": {
            "ranAt": "2026-03-02T09:00:00.000Z",
            "cases": [{"outcome": "PASSED"}, {"outcome": "FAILED"}],
        },
        "acme.finance.audit": {"ranAt": "2026-03-02T09:00:00.000Z", "cases": [{"outcome": "PASSED"}]},
        "acmeco.outside": {"ranAt": "2026-03-02T09:00:00.000Z", "cases": [{"outcome": "PASSED"}]},
    }
    (tmp_path / RESULTS_FILE).write_text(json.dumps(results))
    screen = HistoryScreen(engine, "acme", clock=lambda: NOW, tests_folder=tmp_path)
    async with shown(screen, (80, 24)) as pilot:
        table = screen.query_one(DataTable)
        cells = [[str(cell) for cell in table.get_row_at(index)] for index in range(table.row_count)]
        assert cells == [
            ["etl", "✔ SUCCESS", "10", "60%", "14s", "19s", "10:20:00", "1/2"],
            ["finance.close", "▶ RUNNING", "5", "100%", "31s", "33s", "11:58:00", "-"],
            ["finance.audit", "-", "0", "-", "-", "-", "-", "1/1"],  # tested, never run here
        ]
        assert "History of acme: 15 executions" in screen_text(pilot)
        assert "█ SUCCESS 8" in screen_text(pilot)
    flow = HistoryScreen(engine, "acme", "etl", clock=lambda: NOW, tests_folder=tmp_path)
    async with shown(flow, (120, 40)) as pilot:
        assert "tests: 1 failed, 1 passed (2026-03-02 09:00 UTC)" in screen_text(pilot)
    # For someone who may not read acme.finance (the dashboard passes what its person may read).
    partial = HistoryScreen(
        engine, "acme", clock=lambda: NOW, tests_folder=tmp_path, readable=lambda ns: ns == "acme"
    )
    async with shown(partial, (80, 24)):
        table = partial.query_one(DataTable)
        flows = [str(table.get_row_at(index)[0]) for index in range(table.row_count)]
        assert "finance.audit" not in flows and "etl" in flows


async def test_ten_thousand_executions_are_read_up_to_the_scan_and_said_so(engine: Engine) -> None:
    await save(engine.store, [execution(i, "acme", "etl", STATES[i % 5], 10_000 - i) for i in range(10_000)])
    screen = HistoryScreen(engine, "acme", "etl", clock=lambda: NOW)
    async with shown(screen, (120, 40)) as pilot:
        assert len(screen.executions) == 5_000 and screen.more
        assert "the newest 5,000; older ones are not counted" in screen_text(pilot)
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert "ok (" in screen_text(pilot)


async def test_no_execution_yet_then_r_reads_again_and_escape_closes(engine: Engine) -> None:
    screen = HistoryScreen(engine, "acme", "etl", clock=lambda: NOW)
    async with shown(screen, (80, 24)) as pilot:
        assert "no executions yet" in screen_text(pilot)
        await engine.store.save_execution(execution(1, "acme", "etl", StateType.SUCCESS, 3))
        await pilot.press("r")
        await until_drawn(pilot, lambda: screen.loaded >= 2)
        assert "100% ok (1/1)" in screen_text(pilot)
        await engine.store.save_execution(execution(2, "acme", "etl", StateType.FAILED, 2))
        screen.executions_changed()
        screen.executions_changed()  # one reread for a burst of changes
        await until_drawn(pilot, lambda: screen.loaded >= 3)
        assert "50% ok (1/2)" in screen_text(pilot)
        await pilot.press("escape")
        await until_drawn(pilot, lambda: screen not in pilot.app.screen_stack)
    assert screen.loaded == 3


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    shutil.copytree(REPO / "sample_flows", folder)
    return folder


async def test_on_the_dashboard_r_and_q_act_on_the_history(flows: Path, tmp_path: Path) -> None:
    app: TiercelApp = TiercelApp(flows, tmp_path / "db" / "tiercel.db", control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
        assert app.engine is not None
        screen = HistoryScreen(app.engine, "acme", "hello_world", clock=lambda: NOW)
        app.push_screen(screen)
        await until_drawn(pilot, lambda: screen.loaded >= 1)
        await pilot.press("r")  # the history's refresh, not the dashboard's run form
        await until_drawn(pilot, lambda: screen.loaded >= 2)
        assert app.screen is screen
        await pilot.press("q")  # closes the history; the dashboard goes on
        await until_drawn(pilot, lambda: app.screen is not screen)
        assert app.is_running and app.engine is not None


async def test_on_a_narrow_screen_the_summary_is_cut_rather_than_wrapped(engine: Engine) -> None:
    await save(engine.store, [execution(i, "acme", "etl", STATES[i % 5], 100 - i) for i in range(40)])
    screen = HistoryScreen(engine, "acme", "etl", clock=lambda: NOW)
    async with shown(screen, (36, 10)) as pilot:
        rows = screen_text(pilot).split("\n")
        summary = next(index for index, row in enumerate(rows) if "ok (" in row)
        assert "…" in rows[summary] and "┤" in rows[summary + 1]
