"""Every dialog and full-screen view shows a footer of its own keys, not the main screen's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Footer

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.screens.backfill_form import BackfillFormScreen
from tiercel.app.screens.confirm import ConfirmScreen
from tiercel.app.screens.dag import DagScreen
from tiercel.app.screens.history import HistoryScreen
from tiercel.app.screens.revisions import RevisionsScreen
from tiercel.app.screens.run_form import RunFormScreen
from tiercel.app.screens.triggers import TriggersScreen
from tiercel.app.screens.viewer import ViewerScreen
from tiercel.app.widgets.namespaces import NodeRef

LOG = "io.kestra.plugin.core.log.Log"
FLOWS = {
    "sleepy": """
id: sleepy
namespace: acme
tasks:
  - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT60S}
""",
    "asking": f"""
id: asking
namespace: acme
inputs:
  - {{id: who, type: STRING, defaults: ops}}
tasks:
  - {{id: say, type: {LOG}, message: "{{{{ inputs.who }}}}"}}
triggers:
  - {{id: nightly, type: io.kestra.plugin.core.trigger.Schedule, cron: "0 2 * * *"}}
""",
    "dagged": f"""
id: dagged
namespace: acme
tasks:
  - id: graph
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {{id: a, type: {LOG}, message: a}}
      - task: {{id: b, type: {LOG}, message: b}}
        dependsOn: [a]
""",
}


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[TiercelApp, Pilot[None]]]:
    folder = tmp_path / "flows" / "acme"
    folder.mkdir(parents=True)
    for name, text in FLOWS.items():
        (folder / f"{name}.yml").write_text(text)
    app = TiercelApp(tmp_path / "flows", tmp_path / "db" / "tiercel.db", control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == len(FLOWS))
        yield app, pilot


async def select_flow(app: TiercelApp, pilot: Pilot[None], flow_id: str) -> None:
    """Select a flow and focus the tree, whose keys open the flow's views."""
    assert app.ns_tree.select_ref(NodeRef("flow", "acme", flow_id))
    await until_drawn(pilot, lambda: app.selected_flow is not None and app.selected_flow.id == flow_id)
    await pilot.press("1")


def footer_text(screen: Screen[Any]) -> list[str]:
    """The keys the screen's own footer shows, as drawn ("y Yes")."""
    footers = screen.query(Footer)
    assert len(footers) == 1, f"{type(screen).__name__} has no footer of its own"
    return [" ".join(str(key.render()).split()) for key in footers.first().query("FooterKey")]


async def shows_keys(app: TiercelApp, pilot: Pilot[None], kind: type[Screen[Any]], *keys: str) -> list[str]:
    """Wait for a screen of `kind` whose footer lists `keys`; return everything its footer lists."""
    await until_drawn(pilot, lambda: isinstance(app.screen, kind), what=kind.__name__)
    await until_drawn(
        pilot, lambda: set(keys) <= set(footer_text(app.screen)), what=f"the keys of {kind.__name__}"
    )
    shown = footer_text(app.screen)
    assert not any(key.endswith(("Source", "Revisions", "Triggers")) for key in shown)  # the tree's
    return shown


async def close(app: TiercelApp, pilot: Pilot[None], key: str = "escape") -> None:
    screen = app.screen
    await pilot.press(key)
    await until_drawn(pilot, lambda: app.screen is not screen)


async def test_the_kill_confirmation_lists_yes_and_no(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await select_flow(app, pilot, "sleepy")
    await pilot.press("r")
    rows = app.table.rows_by_id
    await until_drawn(pilot, lambda: len(rows) == 1 and next(iter(rows.values())).state == "RUNNING")
    await pilot.press("2", "K")
    shown = await shows_keys(app, pilot, ConfirmScreen, "y Yes", "n No")
    assert "y Source" not in shown  # the executions pane's y, behind the dialog
    await pilot.press("y")
    await until_drawn(pilot, lambda: next(iter(rows.values())).state == "KILLED")


async def test_forms_list_submit_and_cancel(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await select_flow(app, pilot, "asking")
    await pilot.press("r")
    await shows_keys(app, pilot, RunFormScreen, "^s Submit", "esc Cancel")
    await close(app, pilot)
    await pilot.press("1", "T")
    await shows_keys(app, pilot, TriggersScreen, "space On/off", "b Backfill", "esc Close")
    await pilot.press("b")
    await shows_keys(app, pilot, BackfillFormScreen, "^s Submit", "esc Cancel")
    await close(app, pilot)
    assert isinstance(app.screen, TriggersScreen)
    await close(app, pilot)


async def test_flow_views_list_their_own_keys(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await select_flow(app, pilot, "asking")
    await pilot.press("y")
    await shows_keys(app, pilot, ViewerScreen, "esc Close")
    await close(app, pilot)
    await pilot.press("v")
    await shows_keys(app, pilot, RevisionsScreen, "esc Close", "m Mark as base")
    await close(app, pilot)
    await pilot.press("H")
    await shows_keys(app, pilot, HistoryScreen, "r Refresh", "esc Close")
    await close(app, pilot, "q")
    await select_flow(app, pilot, "dagged")
    await pilot.press("D")
    await shows_keys(app, pilot, DagScreen, "esc Close")
    await close(app, pilot, "q")
