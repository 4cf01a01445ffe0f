"""Pilot tests of the trigger column, the command palette, pane help, live reload, revisions and replay."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import Static

from tests.app.test_dashboard import db, flows, labels, only_state, running, select_flow
from tests.waiting import until_drawn
from tiercel.app.actions import editor_command
from tiercel.app.app import TiercelApp
from tiercel.app.screens.confirm import ConfirmScreen
from tiercel.app.screens.help import HelpScreen
from tiercel.app.screens.revisions import RevisionsScreen
from tiercel.app.screens.viewer import ViewerScreen
from tiercel.app.widgets.namespaces import NodeRef
from tiercel.engine.model import Execution, History, State, StateType
from tiercel.engine.store import Store

__all__ = ["db", "flows", "running"]  # fixtures shared with test_dashboard


def static_text(screen: object, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())  # type: ignore[attr-defined]


async def palette(pilot: Pilot[None], app: TiercelApp, key: str, text: str) -> None:
    """Open the command palette with `key`, type `text` and run the first hit."""
    await pilot.press(key)
    await until_drawn(pilot, lambda: isinstance(app.screen, CommandPalette))
    await pilot.press(*text)
    await until_drawn(pilot, lambda: app.screen.query_one(CommandList).option_count > 0)
    await pilot.pause(0.3)
    await pilot.press("enter")
    await until_drawn(pilot, lambda: not isinstance(app.screen, CommandPalette))


@pytest.mark.slow
async def test_trigger_column_filter_and_badges(flows: Path, db: Path) -> None:
    store = await Store.open(db)
    at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    scheduled = Execution(
        "0a1b2c3d4e5f60718293a4",
        "acme.platform.ops",
        "nightly_pipeline",
        1,
        State(StateType.SUCCESS, (History(StateType.CREATED, at), History(StateType.SUCCESS, at))),
        trigger={"id": "nightly", "type": "io.kestra.plugin.core.trigger.Schedule"},
    )
    await store.save_execution(scheduled)
    await store.close()
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
        await select_flow(app, pilot, "acme", "failing")
        await pilot.press("r")
        await until_drawn(pilot, lambda: only_state(app) == "FAILED")
        row = next(iter(app.table.rows_by_id.values()))
        assert row.trigger == "manual"
        assert "manual" in [str(cell).strip() for cell in app.table.get_row(row.id)]
        assert app.ns_tree.select_ref(NodeRef("namespace", "acme"))
        await until_drawn(pilot, lambda: len(app.table.rows_by_id) == 2)
        assert app.table.rows_by_id[scheduled.id].trigger == "Schedule"
        await pilot.press("2", "slash", *"trigger:schedule", "enter")
        await until_drawn(pilot, lambda: list(app.table.rows_by_id) == [scheduled.id])
        assert any("nightly_pipeline ⏱" in label for label in labels(app))


@pytest.mark.slow
async def test_help_lists_the_keys_of_the_focused_pane(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    for key, pane, expected in (
        ("3", "detail", "next and previous matching line"),
        ("2", "executions", "filter: state:FAILED"),
        ("1", "namespaces", "revisions of the flow"),
    ):
        await pilot.press(key, "question_mark")
        await until_drawn(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert isinstance(app.screen, HelpScreen) and app.screen.pane == pane
        assert expected in static_text(app.screen, "#help-pane")
        assert "command palette" in static_text(app.screen, "#help-global")
        assert "kill the selected execution" in static_text(app.screen, "#help-global")
        await pilot.press("escape")
        await until_drawn(pilot, lambda: not isinstance(app.screen, HelpScreen))


@pytest.mark.slow
async def test_command_palette_runs_a_flow_goes_to_a_namespace_and_kills(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    await palette(pilot, app, "colon", "go to namespace acme.finance.reports")
    assert app.selected_ref == NodeRef("namespace", "acme.finance.reports")
    assert app.focused is app.ns_tree
    await palette(pilot, app, "ctrl+p", "run flow acme.platform.ops.sleepy")
    seen = app.executions_pane.seen
    await until_drawn(
        pilot, lambda: any(s.flow_id == "sleepy" and s.state == "RUNNING" for s in seen.values())
    )
    sleepy = next(s for s in seen.values() if s.flow_id == "sleepy")
    await palette(pilot, app, "colon", f"kill execution {sleepy.id[:8]}")
    await until_drawn(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("y")
    await until_drawn(pilot, lambda: seen[sleepy.id].state == "KILLED")


async def test_a_flow_name_typed_in_the_palette_goes_to_the_flow_and_runs_nothing(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    assert app.engine is not None
    await palette(pilot, app, "ctrl+p", "sleepy")
    assert app.selected_ref == NodeRef("flow", "acme.platform.ops", "sleepy")
    assert await app.engine.list_executions() == []


async def test_edit_is_greyed_out_without_a_terminal_and_the_editor_comes_from_the_environment(
    running: tuple[TiercelApp, Pilot[None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, pilot = running
    await select_flow(app, pilot, "acme", "hello_world")
    assert app.ns_tree.check_action("run_flow", ()) is True
    assert app.ns_tree.check_action("edit_flow", ()) is None  # headless: no terminal to hand over
    monkeypatch.setenv("EDITOR", "code --wait")
    monkeypatch.setenv("VISUAL", "nano")
    assert editor_command() == ["code", "--wait"]
    monkeypatch.delenv("EDITOR")
    assert editor_command() == ["nano"]
    monkeypatch.delenv("VISUAL")
    assert editor_command() == ["vi"]


async def test_saved_flow_shows_at_once_with_its_revisions_and_old_executions_keep_theirs(
    running: tuple[TiercelApp, Pilot[None]], flows: Path
) -> None:
    app, pilot = running
    assert app.engine is not None
    await select_flow(app, pilot, "acme", "failing")
    await pilot.press("r")
    await until_drawn(pilot, lambda: only_state(app) == "FAILED")
    path = flows / "acme" / "failing.yml"
    path.write_text(path.read_text() + "description: Fails on purpose, second revision.\n")
    await app.reload_flows([path])
    await until_drawn(
        pilot, lambda: app.engine is not None and app.engine.flows[("acme", "failing")].revision == 2
    )
    await pilot.press("2", "y")  # the source of the revision the execution ran
    await until_drawn(pilot, lambda: isinstance(app.screen, ViewerScreen))
    assert isinstance(app.screen, ViewerScreen)
    assert "rev 1" in app.screen.title_text and "second revision" not in app.screen.text
    await pilot.press("escape")
    await until_drawn(pilot, lambda: not isinstance(app.screen, ViewerScreen))
    await pilot.press("1")
    assert app.selected_ref == NodeRef("flow", "acme", "failing")  # kept through the reload
    await pilot.press("v")
    await until_drawn(pilot, lambda: isinstance(app.screen, RevisionsScreen))
    assert isinstance(app.screen, RevisionsScreen)
    assert [rev for rev, _, _ in app.screen.revisions] == [1, 2]
    diff = static_text(app.screen, "#diff")
    assert "+description: Fails on purpose, second revision." in diff
    assert "--- rev 1" in diff and "+++ rev 2" in diff
    await pilot.press("escape")


async def test_a_flow_file_saved_outside_shows_in_the_tree_without_a_key(
    running: tuple[TiercelApp, Pilot[None]], flows: Path
) -> None:
    app, pilot = running
    (flows / "acme" / "fresh.yml").write_text(
        "id: fresh\nnamespace: acme.fresh\n"
        "tasks:\n  - {id: hi, type: io.kestra.plugin.core.log.Log, message: hi}\n"
    )
    (flows / "acme" / "hello_world.yml").write_text("id: hello_world\nnamespace: acme\ntasks: [\n")
    await until_drawn(pilot, lambda: any("fresh" in label for label in labels(app)))
    await until_drawn(pilot, lambda: any(label.startswith("acme/hello_world.yml") for label in labels(app)))


@pytest.mark.slow
async def test_replay_from_a_task_run_selects_the_new_execution(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    await select_flow(app, pilot, "acme", "failing")
    await pilot.press("r")
    await until_drawn(pilot, lambda: only_state(app) == "FAILED")
    first = app.table.selected_id
    assert first is not None
    await pilot.press("3", "v")  # the task tree is the default view; v twice keeps it
    await pilot.press("v")
    app.detail.query_one("#taskruns").focus()
    await pilot.pause()
    await pilot.press("P")
    await until_drawn(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    assert "from task boom" in str(app.screen.question)  # type: ignore[attr-defined]
    await pilot.press("y")
    await until_drawn(pilot, lambda: app.table.selected_id not in (None, first))
    replayed = app.table.selected_id
    assert replayed is not None and app.engine is not None
    execution = await app.engine.execution(replayed)
    assert execution is not None and execution.original_id == first
    await until_drawn(pilot, lambda: app.table.rows_by_id[replayed].state == "FAILED")
    await pilot.press("2", "P")  # from the executions pane: the whole execution
    await until_drawn(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    assert "from its start" in str(app.screen.question)  # type: ignore[attr-defined]
    await pilot.press("n")
    await until_drawn(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
    assert app.table.selected_id == replayed


@pytest.mark.slow
async def test_toggle_trigger_from_the_palette_marks_the_badge(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    key = ("acme.platform.ops", "nightly_pipeline", "nightly")
    await until_drawn(pilot, lambda: key in app.trigger_states())
    assert app.trigger_states()[key] is True
    await palette(pilot, app, "colon", "toggle trigger acme.platform.ops.nightly_pipeline.nightly")
    await until_drawn(pilot, lambda: key in app.ns_tree.disabled_triggers)
    assert app.trigger_states()[key] is False
    node = app.ns_tree._flow_nodes[key[:2]]
    badge = next(span for span in node.label.spans if "⏱" in node.label.plain[span.start : span.end])
    assert "strike" in str(badge.style)
    await palette(pilot, app, "colon", "toggle trigger acme.platform.ops.nightly_pipeline.nightly")
    await until_drawn(pilot, lambda: key not in app.ns_tree.disabled_triggers)
    assert app.trigger_states()[key] is True
