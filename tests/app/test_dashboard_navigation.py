"""Getting around the dashboard: where it starts, zoom and narrow layouts, keys that say why they do
nothing, the history and Dag keys, copying an id, going to an execution by id, a Subflow's child and
back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot

from tests.app.test_modal_footers import FLOWS as VIEWED_FLOWS
from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.preferences import load_preferences, preferences_path
from tiercel.app.screens.dag import DagScreen
from tiercel.app.screens.history import HistoryScreen
from tiercel.app.widgets.namespaces import NodeRef
from tiercel.app.widgets.task_runs import TaskRunTree

LOG = "io.kestra.plugin.core.log.Log"
FLOWS = {
    "alpha": f"""
id: alpha
namespace: acme
tasks:
  - {{id: say, type: {LOG}, message: alpha}}
""",
    "child": f"""
id: child
namespace: acme.team
tasks:
  - {{id: hello, type: {LOG}, message: from the child}}
""",
    "parent": """
id: parent
namespace: acme.team
tasks:
  - {id: call, type: io.kestra.plugin.core.flow.Subflow, namespace: acme.team, flowId: child, wait: true}
""",
    "dagged": VIEWED_FLOWS["dagged"],
}


def write_flows(folder: Path) -> Path:
    for name, text in FLOWS.items():
        namespace = text.split("namespace: ", 1)[1].split()[0]
        path = folder / namespace.replace(".", "/") / f"{name}.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


async def started(app: TiercelApp, pilot: Pilot[None]) -> None:
    await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == len(FLOWS))
    await until_drawn(pilot, lambda: app.executions_pane.loads > 0, what="the first executions")


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[TiercelApp, Pilot[None]]]:
    app = TiercelApp(write_flows(tmp_path / "flows"), tmp_path / "db" / "tiercel.db", control=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        yield app, pilot


async def select(app: TiercelApp, pilot: Pilot[None], ref: NodeRef) -> None:
    assert app.ns_tree.select_ref(ref)
    await until_drawn(pilot, lambda: app.executions_pane.scope == ref)
    await pilot.pause()


async def run(app: TiercelApp, pilot: Pilot[None], namespace: str, flow_id: str) -> str:
    """Run a flow by its key and wait for it to end; its execution id."""
    await select(app, pilot, NodeRef("flow", namespace, flow_id))
    await pilot.press("r")
    await until_drawn(
        pilot,
        lambda: (
            app.detail.execution is not None
            and app.detail.execution.flow_id == flow_id
            and app.detail.execution.state.current.is_terminated
        ),
        what=f"the end of {flow_id}",
    )
    assert app.detail.execution is not None
    return app.detail.execution.id


def notices(app: TiercelApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def test_it_starts_on_a_flow_and_next_time_on_the_last_one_used(tmp_path: Path) -> None:
    flows, db = write_flows(tmp_path / "flows"), tmp_path / "db" / "tiercel.db"
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        first = app.selected_ref
        assert first is not None and first.kind == "flow"  # never an empty screen
        assert app.executions_pane.scope == first
        await select(app, pilot, NodeRef("flow", "acme.team", "child"))
        # Written as the user moves, not only on quitting: a killed dashboard keeps it too.
        assert load_preferences(preferences_path()).last_flow(flows) == ("acme.team", "child")
        await pilot.press("ctrl+q")
    saved = load_preferences(preferences_path())
    assert saved.last_flow(flows) == ("acme.team", "child")
    assert saved.theme == app.theme

    again = TiercelApp(flows, db, control=False)
    async with again.run_test(size=(120, 40)) as pilot:
        await started(again, pilot)
        assert again.selected_ref == NodeRef("flow", "acme.team", "child")

    # A flow that is gone, or a state file that is not ours: the first flow again, no error.
    preferences_path().write_text(json.dumps({"theme": 7, "last_flows": {str(flows.resolve()): [1]}}))
    third = TiercelApp(flows, db, control=False)
    async with third.run_test(size=(120, 40)) as pilot:
        await started(third, pilot)
        assert third.selected_ref == first


async def test_z_zooms_the_focused_pane_and_back(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await pilot.press("2", "z")
    assert app.screen.maximized is app.query_one("#executions-pane")
    assert not app.query_one("#left").display or app.query_one("#left").region.width == 0
    await pilot.press("z")
    assert app.screen.maximized is None
    await pilot.press("3", "z")
    assert app.screen.maximized is app.detail
    await pilot.press("z")
    assert app.screen.maximized is None and app.query_one("#left").region.width > 0


async def test_a_narrow_terminal_gives_the_detail_pane_the_tree_columns(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    left = app.query_one("#left")
    wide = left.region.width
    await pilot.resize_terminal(80, 24)
    await until_drawn(pilot, lambda: app.screen.has_class("-narrow"))
    await pilot.pause()
    assert 0 < left.region.width < wide
    await pilot.press("3")
    await until_drawn(pilot, lambda: left.region.width == 0, what="the tree hidden")
    assert app.detail.region.width == 80
    await pilot.press("1")
    await until_drawn(pilot, lambda: left.region.width > 0, what="the tree back")
    await pilot.resize_terminal(120, 40)
    await until_drawn(pilot, lambda: not app.screen.has_class("-narrow"))


async def test_a_key_that_does_not_apply_says_why(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await select(app, pilot, NodeRef("flow", "acme", "alpha"))
    assert app.table.row_count == 0
    await pilot.press("R")
    await until_drawn(pilot, lambda: any("FAILED or KILLED" in text for text in notices(app)))
    await pilot.press("D")
    await until_drawn(pilot, lambda: any("no Dag task" in text for text in notices(app)))
    await select(app, pilot, NodeRef("namespace", "acme"))  # not a flow: nothing to run
    await pilot.press("r")
    await until_drawn(pilot, lambda: any("Select a flow first" in text for text in notices(app)))


async def test_history_and_dag_keys_open_their_views(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await select(app, pilot, NodeRef("namespace", "acme"))
    await pilot.press("H")
    await until_drawn(pilot, lambda: isinstance(app.screen, HistoryScreen))
    assert isinstance(app.screen, HistoryScreen) and app.screen.target == "acme"
    await pilot.press("escape")
    execution_id = await run(app, pilot, "acme", "dagged")
    await pilot.press("D")
    await until_drawn(pilot, lambda: isinstance(app.screen, DagScreen))
    assert isinstance(app.screen, DagScreen) and app.screen.execution is not None
    assert app.screen.execution.id == execution_id  # coloured by the execution shown


async def test_c_copies_the_full_execution_id(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    execution_id = await run(app, pilot, "acme", "alpha")
    assert execution_id in str(app.detail.border_title)  # the whole id, not its first characters
    await pilot.press("c")
    assert app.clipboard == execution_id


async def test_the_palette_goes_to_an_execution_by_the_start_of_its_id(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    wanted = await run(app, pilot, "acme", "alpha")
    await run(app, pilot, "acme.team", "child")
    # A fresh dashboard has not seen it live: the id is looked up in the store.
    app.executions_pane.seen.clear()
    await pilot.press("ctrl+p")
    await until_drawn(pilot, lambda: isinstance(app.screen, CommandPalette))
    await pilot.press(*wanted[:6])
    hits = app.screen.query_one(CommandList)
    await until_drawn(pilot, lambda: hits.option_count > 0)
    await pilot.pause(0.3)
    assert any(wanted in str(hits.get_option_at_index(i).prompt) for i in range(hits.option_count))
    await pilot.press("enter")
    await until_drawn(pilot, lambda: app.detail.execution_id == wanted, what="the execution asked for")
    assert app.selected_ref == NodeRef("flow", "acme", "alpha")
    assert app.table.selected_id == wanted


async def test_enter_on_a_subflow_opens_its_child_and_backspace_comes_back(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    parent = await run(app, pilot, "acme.team", "parent")
    tree = app.detail.query_one(TaskRunTree)
    tree.focus()
    await pilot.pause()
    line = next(
        line
        for line in range(tree.last_line + 1)
        if " call" in str(tree.get_node_at_line(line).label)  # type: ignore[union-attr]
    )
    tree.move_cursor_to_line(line)
    await pilot.press("enter")
    await until_drawn(
        pilot,
        lambda: app.detail.execution is not None and app.detail.execution.flow_id == "child",
        what="the child execution",
    )
    assert app.selected_ref == NodeRef("flow", "acme.team", "child")
    await pilot.press("backspace")
    await until_drawn(pilot, lambda: app.detail.execution_id == parent, what="the parent again")
    assert app.selected_ref == NodeRef("flow", "acme.team", "parent")
