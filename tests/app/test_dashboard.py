"""Pilot tests of the dashboard: the real app, engine and store on a copy of sample_flows."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static, Switch
from textual.worker import WorkerState

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.cli import main
from tiercel.app.screens.confirm import ConfirmScreen
from tiercel.app.screens.help import HelpScreen
from tiercel.app.screens.run_form import ResumeFormScreen, RunFormScreen
from tiercel.app.screens.viewer import ViewerScreen
from tiercel.app.screenshots import take
from tiercel.app.widgets.detail import TaskRunTree, timeline_text
from tiercel.app.widgets.namespaces import NodeRef
from tiercel.app.widgets.states import fmt_duration
from tiercel.engine.engine import Engine
from tiercel.engine.model import Execution, Label, LogEntry, LogLevel, State, StateType, TaskRun
from tiercel.engine.store import Store

REPO = Path(__file__).resolve().parents[2]

SLEEPY = """
id: sleepy
namespace: acme.platform.ops
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""

TYPED = """
id: typed
namespace: acme
inputs:
  - id: count
    type: INT
    defaults: 3
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "count is {{ inputs.count }}"
"""

WAITING = """
id: waiting
namespace: acme
tasks:
  - {id: pause, type: io.kestra.plugin.core.flow.Pause}
  - {id: after, type: io.kestra.plugin.core.log.Log, message: resumed fine}
"""

FAILING = """
id: failing
namespace: acme
tasks:
  - {id: boom, type: io.kestra.plugin.core.execution.Fail}
"""

APPROVAL = """
id: approval
namespace: acme
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - {id: approved, type: BOOLEAN}
      - {id: count, type: INT, defaults: 3}
  - {id: after, type: io.kestra.plugin.core.log.Log, message: "approved={{ outputs.gate.onResume.approved }}"}
"""

BROKEN = """
id: broken
namespace: acme
tasks:
  - id: oops
    type: io.kestra.plugin.core.log.Log
    message: [unclosed
"""


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    shutil.copytree(REPO / "sample_flows", folder)
    (folder / "acme" / "platform" / "ops" / "sleepy.yml").write_text(SLEEPY)
    (folder / "acme" / "typed.yml").write_text(TYPED)
    (folder / "acme" / "broken.yml").write_text(BROKEN)
    (folder / "acme" / "waiting.yml").write_text(WAITING)
    (folder / "acme" / "failing.yml").write_text(FAILING)
    (folder / "acme" / "approval.yml").write_text(APPROVAL)
    return folder


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "db" / "tiercel.db"


@pytest.fixture
async def running(flows: Path, db: Path) -> AsyncIterator[tuple[TiercelApp, Pilot[None]]]:
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
        await until_drawn(pilot, lambda: app.executions_pane.loads > 0, what="the first flow's executions")
        await pilot.pause()
        yield app, pilot


async def select_flow(app: TiercelApp, pilot: Pilot[None], namespace: str, flow_id: str) -> None:
    assert app.ns_tree.select_ref(NodeRef("flow", namespace, flow_id))
    await until_drawn(pilot, lambda: app.selected_flow is not None and app.selected_flow.id == flow_id)
    await pilot.pause()


def only_state(app: TiercelApp) -> str | None:
    rows = list(app.table.rows_by_id.values())
    return rows[0].state if len(rows) == 1 else None


def labels(app: TiercelApp) -> list[str]:
    found = []
    stack = [app.ns_tree.root]
    while stack:
        node = stack.pop()
        found.append(str(node.label))
        stack.extend(node.children)
    return found


async def test_tree_shows_namespaces_flows_and_the_broken_file(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    tree = app.ns_tree
    acme = next(n for n in tree.root.children if n.data == NodeRef("namespace", "acme"))
    finance = next(n for n in acme.children if n.data == NodeRef("namespace", "acme.finance"))
    reports = next(n for n in finance.children if n.data == NodeRef("namespace", "acme.finance.reports"))
    assert "monthly_report" in [n.data.flow_id for n in reports.children if n.data]
    assert any("hello_world" in label for label in labels(app))
    errors = [label for label in labels(app) if label.startswith("acme/broken.yml:")]
    assert errors, labels(app)
    assert "✘1" in str(app.query_one("#left").border_title)
    error_node = next(n for n in tree.root.children if n.data == NodeRef("errors")).children[0]
    tree.move_cursor(error_node)
    await until_drawn(pilot, lambda: any("broken.yml" in line for line in app.detail.log_widget.lines))


async def test_run_hello_world_reaches_success_with_its_logs(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    await select_flow(app, pilot, "acme", "hello_world")
    await pilot.press("r")
    await until_drawn(pilot, lambda: isinstance(app.screen, RunFormScreen))
    assert app.screen.query_one("#input-name", Input).value == "world"
    await pilot.press("enter")
    await until_drawn(pilot, lambda: only_state(app) == "SUCCESS")
    assert app.table.selected_id == app.detail.execution_id
    await until_drawn(pilot, lambda: any("Hello, world!" in line for line in app.detail.log_widget.lines))
    assert any("✔" in label and "hello_world" in label for label in labels(app))


@pytest.mark.slow
async def test_log_stops_following_when_scrolled_up_and_counts_new_lines(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    await select_flow(app, pilot, "acme", "hello_world")
    await pilot.press("r", "enter")
    await until_drawn(pilot, lambda: only_state(app) == "SUCCESS" and len(app.detail.log_widget.lines) >= 2)
    execution_id = app.detail.execution_id
    assert execution_id is not None

    def entries(count: int) -> list[LogEntry]:
        now = datetime.now(UTC)
        info = LogLevel.INFO
        return [LogEntry(execution_id, "acme", "hello_world", now, info, f"line {n}") for n in range(count)]

    log = app.detail.log_widget
    app.detail.add_entries(entries(100))
    await until_drawn(pilot, lambda: len(log.lines) >= 102 and log.max_scroll_y > 0)
    await until_drawn(pilot, lambda: log.scroll_y == log.max_scroll_y)
    log.scroll_home(animate=False)
    await pilot.pause()
    app.detail.add_entries(entries(5))
    await until_drawn(pilot, lambda: app.detail.border_subtitle == "5 new lines ↓ (End follows)")
    assert log.scroll_y == 0
    log.scroll_end(animate=False)
    await until_drawn(pilot, lambda: not app.detail.border_subtitle)


async def test_kill_asks_first_defaults_to_no_then_kills(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await select_flow(app, pilot, "acme.platform.ops", "sleepy")
    await pilot.press("r")
    await until_drawn(pilot, lambda: only_state(app) == "RUNNING" and app.detail.execution_id is not None)
    await pilot.press("K")
    await until_drawn(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("enter")
    await until_drawn(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
    await pilot.pause(0.2)
    assert only_state(app) == "RUNNING"
    await pilot.press("K")
    await until_drawn(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("y")
    await until_drawn(pilot, lambda: only_state(app) == "KILLED")
    killed = next(iter(app.table.rows_by_id.values()))
    assert killed.start and killed.end
    duration = app.table.get_cell(killed.id, "duration")
    assert str(duration).strip() == fmt_duration(killed.end - killed.start)


async def test_resume_a_paused_execution(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await select_flow(app, pilot, "acme", "waiting")
    await pilot.press("K")  # nothing selected yet: the key is unavailable
    assert not isinstance(app.screen, ConfirmScreen)
    await pilot.press("r")
    await until_drawn(pilot, lambda: only_state(app) == "PAUSED")
    await pilot.press("u")
    await until_drawn(pilot, lambda: only_state(app) == "SUCCESS")
    await until_drawn(pilot, lambda: any("resumed fine" in line for line in app.detail.log_widget.lines))


async def test_restart_a_failed_execution(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await select_flow(app, pilot, "acme", "failing")
    await pilot.press("r")
    await until_drawn(pilot, lambda: only_state(app) == "FAILED")
    execution_id = app.table.selected_id
    assert execution_id is not None
    await pilot.press("K")  # a finished execution cannot be killed
    assert not isinstance(app.screen, ConfirmScreen)
    await pilot.press("R")

    def restarted_and_failed_again() -> bool:
        shown = app.detail.execution
        if shown is None or shown.id != execution_id or shown.state.current.value != "FAILED":
            return False
        return any(h.state.value == "RESTARTED" for h in shown.state.histories)

    await until_drawn(pilot, restarted_and_failed_again)
    assert only_state(app) == "FAILED" and app.table.selected_id == execution_id


async def test_inputs_form_shows_the_engine_error_for_a_bad_int(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    await select_flow(app, pilot, "acme", "typed")
    await pilot.press("r")
    await until_drawn(pilot, lambda: isinstance(app.screen, RunFormScreen))
    form = app.screen
    field = form.query_one("#input-count", Input)
    assert field.value == "3"
    field.value = "many"
    await pilot.press("enter")
    error = form.query_one("#error-count", Static)
    await until_drawn(pilot, lambda: "count" in str(error.render()))
    assert app.screen is form and not app.table.rows_by_id
    field.value = "7"
    await pilot.press("enter")
    await until_drawn(pilot, lambda: only_state(app) == "SUCCESS")
    await until_drawn(pilot, lambda: any("count is 7" in line for line in app.detail.log_widget.lines))


async def test_keys_focus_panes_and_open_help(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await pilot.press("2")
    assert app.focused is app.table
    lit = app.query_one("#executions-pane").styles.border_top[1]
    assert lit != app.query_one("#left").styles.border_top[1]
    await pilot.press("3")
    assert app.focused is app.detail.log_widget
    await pilot.press("1")
    assert app.focused is app.ns_tree
    await pilot.press("question_mark")
    await until_drawn(pilot, lambda: isinstance(app.screen, HelpScreen))
    await pilot.press("escape")
    await until_drawn(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_executions_are_paged_and_load_more_at_the_end(flows: Path, db: Path) -> None:
    engine = await Engine.open(db, flows_dir=flows)
    await engine.start(control=False)
    try:
        for count in range(5):
            await engine.wait(await engine.trigger("acme", "typed", {"count": count}))
    finally:
        await engine.stop()
    app = TiercelApp(flows, db, control=False)
    app.page_size = 3
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
        await select_flow(app, pilot, "acme", "typed")
        await until_drawn(pilot, lambda: len(app.table.rows_by_id) == 3)
        assert str(app.query_one("#executions-pane").border_title).endswith("3+")
        await pilot.press("2", "down", "down")
        await until_drawn(pilot, lambda: len(app.table.rows_by_id) == 5)
        starts = [s.start for s in app.table.rows_by_id.values()]
        assert starts == sorted(starts, reverse=True)


async def test_database_owned_elsewhere_exits_with_code_2(flows: Path, db: Path) -> None:
    owner = await Store.open(db)
    try:
        app = TiercelApp(flows, db, control=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
        assert app.return_code == 2
        assert app.startup_error and "tiercel.db" in app.startup_error
    finally:
        await owner.close()


async def test_the_engine_stops_with_the_app(flows: Path, db: Path) -> None:
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None)
        await pilot.press("q")
    store = await Store.open(db)  # the lock is free again
    await store.close()
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None)
    store = await Store.open(db)  # closing the app any other way stops the engine too
    await store.close()


def test_ui_refuses_a_missing_flows_folder(tmp_path: Path) -> None:
    assert main(["ui", "--flows", str(tmp_path / "nowhere")]) == 2


async def run_campaign(app: TiercelApp, pilot: Pilot[None]) -> None:
    await select_flow(app, pilot, "acme.marketing.analytics", "campaign_fanout")
    await pilot.press("r")
    await until_drawn(pilot, lambda: isinstance(app.screen, RunFormScreen))
    await pilot.press("enter")
    await until_drawn(pilot, lambda: only_state(app) == "SUCCESS")
    await until_drawn(
        pilot, lambda: any("Campaign team notified" in line for line in app.detail.log_widget.lines)
    )


@pytest.mark.slow
async def test_log_level_timestamps_and_search(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await run_campaign(app, pilot)
    detail, log = app.detail, app.detail.log_widget
    execution_id = detail.execution_id
    assert execution_id is not None
    warn = LogEntry(execution_id, "acme", "x", datetime.now(UTC), LogLevel.WARN, "disk nearly full")
    detail.add_entries([warn])
    await until_drawn(pilot, lambda: any("disk nearly full" in line for line in log.lines))
    total = len(log.lines)
    assert all(line[:8].count(":") == 2 for line in log.lines)
    await pilot.press("3", "l", "l", "l")  # TRACE -> DEBUG -> INFO -> WARN
    assert detail.min_level is LogLevel.WARN
    assert [line.split(" ", 1)[1] for line in log.lines] == ["WARN  - disk nearly full"]
    assert "≥WARN" in detail.border_subtitle
    await pilot.press("l", "l")  # ERROR, then back to TRACE
    assert detail.min_level is LogLevel.TRACE and len(log.lines) == total
    await pilot.press("t")
    assert log.lines[0].startswith(("INFO", "DEBUG", "TRACE", "WARN", "ERROR"))
    await pilot.press("t")
    assert log.lines[0][:8].count(":") == 2
    await pilot.press("slash")
    search = detail.query_one("#log-search", Input)
    assert app.focused is search
    await pilot.press("S", "o", "c", "i", "a", "l", "t")  # typing is not taken for the pane's keys
    assert detail.min_level is LogLevel.TRACE and detail.stamps
    await pilot.press("backspace")
    await until_drawn(pilot, lambda: detail.search == "Social")
    assert len(log.lines) == total  # every line stays; the matches are highlighted
    matches = detail.matching_lines()
    assert matches and len(matches) < total
    assert all("social" in log.lines[i].lower() for i in matches)
    first = matches[0] - int(log.scroll_y)
    marked = [seg.text for seg in log.render_line(first) if seg.style and seg.style.bgcolor]
    assert any(text.lower() == "social" for text in marked), marked
    await pilot.press("enter")
    assert app.focused is log and search.display and detail.search == "Social"
    await pilot.press("n")
    assert detail.match_line == matches[0]
    await pilot.press("n")
    assert detail.match_line == (matches[1] if len(matches) > 1 else matches[0])
    await pilot.press("N")
    assert detail.match_line == matches[0]
    await pilot.press("N")  # wraps around to the last match
    assert detail.match_line == matches[-1]
    await pilot.press("f")  # only the matching lines
    assert detail.only_matches and len(log.lines) == len(matches)
    assert all("social" in line.lower() for line in log.lines)
    assert "(only)" in detail.border_subtitle
    await pilot.press("f")
    assert len(log.lines) == total
    await pilot.press("slash", "escape")
    assert detail.search == "" and not search.display and len(log.lines) == total
    assert detail.check_action("next_match", ()) is None  # greyed out without a search


async def test_log_follows_the_selected_task_run(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await run_campaign(app, pilot)
    detail, log = app.detail, app.detail.log_widget
    total = len(log.lines)
    tree = detail.query_one(TaskRunTree)
    tree.focus()
    nodes = [tree.get_node_at_line(n) for n in range(tree.last_line + 1)]
    score = next(n for n in nodes if n is not None and "score [search]" in str(n.label))
    tree.move_cursor(score)
    await pilot.press("enter")
    await until_drawn(pilot, lambda: detail.task_filter is not None)
    assert log.lines and all("score" in line and "search" in line for line in log.lines)
    assert "task score \\[search]" in detail.border_subtitle
    await pilot.press("a")
    assert detail.task_filter is None and len(log.lines) == total
    loop = next(n for n in nodes if n is not None and "each_channel" in str(n.label))
    tree.move_cursor(loop)
    await pilot.press("enter")
    await until_drawn(pilot, lambda: detail.task_filter == loop.data)
    scored = [line for line in log.lines if "Scored" in line]
    assert len(scored) == 4 and len(log.lines) == 4


async def test_timeline_shows_nested_task_runs_and_toggles_with_v(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    await run_campaign(app, pilot)
    detail = app.detail
    await pilot.press("3", "v")
    assert detail.showing_timeline and detail.timeline.display
    assert detail.timeline.region.width >= 50 and app.focused is detail.log_widget
    execution = detail.execution
    assert execution is not None
    rows = timeline_text(execution, 80).plain.splitlines()
    assert len(rows) == 1 + len(execution.task_runs)
    assert rows[1].startswith("✔ each_channel") and rows[2].startswith("  ✔ fetch [email]")
    assert all(len(row) == 80 for row in rows[1:])
    bars = {row.split()[1]: row.index("█") for row in rows[1:] if not row.startswith(" ")}
    assert bars["each_channel"] <= bars["wrap_up"]
    shown = detail.timeline.render().plain
    assert "score [display]" in shown and "✔ notify" in shown
    await pilot.press("v")
    assert not detail.showing_timeline and detail.query_one(TaskRunTree).display


@pytest.mark.slow
async def test_timeline_grows_while_running(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await select_flow(app, pilot, "acme.platform.ops", "sleepy")
    await pilot.press("r")
    await until_drawn(pilot, lambda: app.detail.execution is not None and app.detail.execution.task_runs)
    await pilot.press("3", "v")
    timeline = app.detail.timeline
    await until_drawn(pilot, lambda: "▶ nap" in timeline.render().plain, what="the running bar")
    first = timeline.render().plain.splitlines()[1].split()[-1]
    await until_drawn(
        pilot, lambda: timeline.render().plain.splitlines()[1].split()[-1] != first, what="a longer bar"
    )
    await app.engine.kill(app.detail.execution.id)  # type: ignore[union-attr]
    try:
        await until_drawn(pilot, lambda: "■ nap" in timeline.render().plain, what="the killed bar")
    except AssertionError as error:
        raise AssertionError(f"{error}; the timeline shows:\n{timeline.render().plain}") from None


async def test_live_lines_held_while_history_loads_are_not_doubled(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    detail = app.detail
    detail.begin("some-execution")
    moment = datetime(2026, 1, 2, 3, 4, 5, 123456, UTC)
    live = LogEntry("some-execution", "acme", "x", moment, LogLevel.INFO, "once")
    later = dataclasses.replace(live, message="after")
    detail.add_entries([live, later])
    stored = dataclasses.replace(live, timestamp=live.timestamp.replace(microsecond=123000))
    detail.finish_loading(None, [stored])
    detail.add_entries([live])  # its event arrives after the history that already held it
    await pilot.pause()
    assert [line.split(" ", 1)[1] for line in detail.log_widget.lines] == ["INFO  - once", "INFO  - after"]


async def test_a_stored_snapshot_read_during_live_updates_does_not_undo_them(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    detail = app.detail
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    run = TaskRun("run", "some-execution", "acme", "x", "nap", State.new(StateType.RUNNING, moment))
    stored = Execution("some-execution", "acme", "x", 1, State.new(StateType.RUNNING, moment), (run,))
    killed = run.to(StateType.KILLED, moment + timedelta(seconds=1))
    live = dataclasses.replace(
        stored, state=stored.state.to(StateType.KILLED, killed.state.end_date), task_runs=(killed,)
    )
    detail.begin("some-execution")
    detail.update_execution(live)  # its event came while the store was being read
    detail.finish_loading(stored, [])
    await pilot.pause()
    assert detail.execution is live
    assert "■ nap" in detail.timeline.render().plain
    detail.finish_loading(live, [])  # a read at least as new is shown
    assert detail.execution is live


@pytest.mark.slow
async def test_screenshots_script_saves_the_eleven_svgs(tmp_path: Path) -> None:
    saved = await take(tmp_path / "shots")
    assert sorted(path.name for path in saved) == [
        "execution.svg",
        "expression_console.svg",
        "history.svg",
        "kill_confirm.svg",
        "main.svg",
        "narrow_80x24.svg",
        "resources_history.svg",
        "resources_timeline.svg",
        "run_form.svg",
        "task_graph.svg",
        "triggers.svg",
    ]
    assert all(path.read_text().startswith("<svg") for path in saved)
    assert "Kill" in (tmp_path / "shots" / "kill_confirm.svg").read_text()
    assert "DONE" in (tmp_path / "shots" / "triggers.svg").read_text()
    assert "History" in (tmp_path / "shots" / "history.svg").read_text()
    assert "search_index" in (tmp_path / "shots" / "task_graph.svg").read_text()
    assert "Unable&#160;to&#160;find" in (tmp_path / "shots" / "expression_console.svg").read_text()
    assert "peak" in (tmp_path / "shots" / "resources_timeline.svg").read_text()
    assert "cpu&#160;p50" in (tmp_path / "shots" / "resources_history.svg").read_text()


def viewer_text(app: TiercelApp) -> str:
    screen = app.screen
    assert isinstance(screen, ViewerScreen)
    return screen.text


async def test_outputs_of_the_execution_and_of_a_task_run(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await select_flow(app, pilot, "acme.finance.reports", "monthly_report")
    await pilot.press("r", "enter")
    await until_drawn(pilot, lambda: only_state(app) == "SUCCESS" and app.detail.execution is not None)
    await until_drawn(pilot, lambda: app.detail.execution is not None and app.detail.execution.outputs)
    await pilot.press("3", "o")
    await until_drawn(pilot, lambda: isinstance(app.screen, ViewerScreen))
    assert '"title": "Revenue EMEA October 2026"' in viewer_text(app)
    assert app.screen.lexer == "json"
    await pilot.press("escape")
    await until_drawn(pilot, lambda: not isinstance(app.screen, ViewerScreen))
    tree = app.detail.query_one(TaskRunTree)
    tree.focus()
    summary = next(n for n in tree.root.children if "summary" in str(n.label))
    tree.move_cursor(summary)
    await pilot.press("o")
    await until_drawn(pilot, lambda: isinstance(app.screen, ViewerScreen))
    assert "Outputs of task summary" in app.screen.title_text
    assert '"values"' in viewer_text(app) and '"amount": "125000.5 EUR"' in viewer_text(app)
    await pilot.press("escape")
    await until_drawn(pilot, lambda: not isinstance(app.screen, ViewerScreen))


async def test_metrics_of_the_execution_and_of_a_task_run(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await select_flow(app, pilot, "acme.data.pipelines", "orders_etl")
    await pilot.press("r", "enter")
    await until_drawn(pilot, lambda: only_state(app) == "SUCCESS" and app.detail.execution is not None)
    await pilot.press("3", "m")
    await until_drawn(pilot, lambda: isinstance(app.screen, ViewerScreen))
    assert "Metrics of execution" in app.screen.title_text
    lines = viewer_text(app).splitlines()
    assert lines[0].split() == ["TASK", "NAME", "TYPE", "VALUE", "TAGS"]
    reported = [line.split()[:4] for line in lines[1:] if not line.split()[1].startswith("process.")]
    assert reported[:2] == [
        ["extract", "rows", "counter", "5"],
        ["transform", "revenue", "counter", "9660.65"],
    ]
    # What the script's program used comes with what it reported.
    assert ["extract", "process.cpu.time", "timer"] in [line.split()[:3] for line in lines[1:]]
    await pilot.press("escape")
    await until_drawn(pilot, lambda: not isinstance(app.screen, ViewerScreen))
    tree = app.detail.query_one(TaskRunTree)
    tree.focus()
    transform = next(n for n in tree.root.children if "transform" in str(n.label))
    tree.move_cursor(transform)
    await pilot.press("m")
    await until_drawn(pilot, lambda: isinstance(app.screen, ViewerScreen))
    assert "Metrics of task transform" in app.screen.title_text
    names = [line.split()[1] for line in viewer_text(app).splitlines()[1:]]
    assert [name for name in names if not name.startswith("process.")] == ["revenue", "aggregation"]
    await pilot.press("escape")
    report = next(n for n in tree.root.children if "report" in str(n.label))
    tree.move_cursor(report)
    await pilot.press("m")
    await until_drawn(pilot, lambda: isinstance(app.screen, ViewerScreen))
    assert viewer_text(app) == "No metrics reported."


async def test_source_of_a_flow_and_of_a_file_in_error(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await select_flow(app, pilot, "acme", "typed")
    await pilot.press("1", "y")
    await until_drawn(pilot, lambda: isinstance(app.screen, ViewerScreen))
    assert viewer_text(app) == TYPED and app.screen.lexer == "yaml"
    await pilot.press("escape")
    await until_drawn(pilot, lambda: not isinstance(app.screen, ViewerScreen))
    tree = app.ns_tree
    error_node = next(n for n in tree.root.children if n.data == NodeRef("errors")).children[0]
    tree.move_cursor(error_node)
    await pilot.pause()
    await pilot.press("y")
    await until_drawn(pilot, lambda: isinstance(app.screen, ViewerScreen))
    screen = app.screen
    assert isinstance(screen, ViewerScreen)
    assert screen.text == BROKEN and screen.notes
    assert "broken.yml" in str(screen.query_one("#viewer-notes", Static).render())
    await pilot.press("escape")
    await until_drawn(pilot, lambda: not isinstance(app.screen, ViewerScreen))


async def test_filter_executions_by_state_label_and_text(flows: Path, db: Path) -> None:
    engine = await Engine.open(db, flows_dir=flows)
    await engine.start(control=False)
    try:
        await engine.wait(await engine.trigger("acme", "failing"))
        await engine.wait(await engine.trigger("acme", "typed", {"count": 1}, labels=[Label("team", "red")]))
        await engine.wait(await engine.trigger("acme", "typed", {"count": 2}))
    finally:
        await engine.stop()
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
        assert app.ns_tree.select_ref(NodeRef("namespace", "acme"))
        await until_drawn(pilot, lambda: len(app.table.rows_by_id) == 3)
        await pilot.press("2", "slash")
        field = app.query_one("#executions-filter", Input)
        await until_drawn(pilot, lambda: app.focused is field)
        await pilot.press(*"state:failed")
        await until_drawn(pilot, lambda: [s.flow_id for s in app.table.rows_by_id.values()] == ["failing"])
        field.value = "label:team=red"
        await until_drawn(
            pilot, lambda: [s.labels.get("team") for s in app.table.rows_by_id.values()] == ["red"]
        )
        field.value = "TYP"
        await until_drawn(pilot, lambda: len(app.table.rows_by_id) == 2)
        await pilot.press("enter")
        await until_drawn(pilot, lambda: app.focused is app.table and field.display)
        await pilot.press("slash")
        await until_drawn(pilot, lambda: app.focused is field)
        await pilot.press("escape")
        await until_drawn(pilot, lambda: len(app.table.rows_by_id) == 3)
        await until_drawn(pilot, lambda: app.focused is app.table and not field.display and field.value == "")


@pytest.mark.slow
async def test_resume_with_on_resume_inputs_shows_errors_in_the_form(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    await select_flow(app, pilot, "acme", "approval")
    await pilot.press("r")
    await until_drawn(pilot, lambda: only_state(app) == "PAUSED")
    await pilot.press("u")
    await until_drawn(pilot, lambda: isinstance(app.screen, ResumeFormScreen))
    form = app.screen
    assert form.query_one("#input-count", Input).value == "3"
    form.query_one("#input-approved", Switch).focus()
    await pilot.press("enter")  # the switch is not set yet: approved is missing
    error = form.query_one("#error-approved", Static)
    await until_drawn(pilot, lambda: bool(str(error.render())))
    assert app.screen is form and only_state(app) == "PAUSED"
    await pilot.press("space", "enter")
    await until_drawn(pilot, lambda: only_state(app) == "SUCCESS")
    await until_drawn(
        pilot, lambda: any("approved=true" in line.lower() for line in app.detail.log_widget.lines)
    )


@pytest.mark.slow
async def test_the_tree_and_the_palette_parse_only_flows_with_triggers_after_a_restart(
    flows: Path, db: Path
) -> None:
    engine = await Engine.open(db, flows_dir=flows)
    await engine.start(control=False)
    await engine.stop()  # every flow is now stored with its outline
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
        table = app.engine.flows
        triggered = set(table.with_triggers())
        assert triggered and len(triggered) < len(table)
        await pilot.press("ctrl+p")
        await pilot.pause(0.5)
        await pilot.press("escape")
        # The flow the dashboard starts on is parsed (its keys depend on it), and no other.
        start = app.selected_ref
        assert start is not None and start.kind == "flow"
        parsed = {uid for uid in table if table.is_parsed(uid)}
        assert parsed <= triggered | {(start.namespace, start.flow_id)}
        assert any("⏱" in label for label in labels(app))  # badges still come from the parsed ones
        unparsed = set(table) - triggered - {(start.namespace, start.flow_id)}
        assert unparsed and not any(table.is_parsed(uid) for uid in unparsed)


async def test_the_dashboard_opens_on_the_folder_and_store_of_tiercel_ui_when_given_none(
    flows: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `textual run --dev tiercel.app.app:TiercelApp` makes it, with no arguments: the flows
    folder and store `tiercel ui` takes in the current folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TIERCEL_DB", raising=False)
    app = TiercelApp(control=False)
    assert app.flows_dir == Path("flows") and app.db == Path(".tiercel") / "tiercel.db"
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
    assert (tmp_path / ".tiercel" / "tiercel.db").is_file()


async def test_an_execution_that_loads_while_the_panes_go_leaves_them_alone(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    """Closing, the app removes its panes while a load may still be under way: it ends quietly."""
    app, _ = running
    assert app.engine is not None
    execution_id = await app.engine.trigger("acme", "hello_world")
    await app.engine.wait(execution_id)
    await app.ns_tree.remove()  # as the app's shutdown removes it
    loading = app.show_execution(execution_id)
    await loading.wait()
    assert loading.state is WorkerState.SUCCESS
