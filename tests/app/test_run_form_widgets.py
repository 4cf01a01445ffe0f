"""The run form's typed fields (switches, drop-downs, lists), driven by keys in the real dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import Button, Footer, Input, Select, SelectionList, Static, Switch

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.cli.common import parse_pairs
from tiercel.app.screens.backfill_form import BackfillFormScreen
from tiercel.app.screens.run_form import RunFormScreen
from tiercel.app.screens.triggers import TriggersScreen
from tiercel.app.widgets.namespaces import NodeRef

LOG = "io.kestra.plugin.core.log.Log"
CHOOSY = f"""
id: choosy
namespace: acme
inputs:
  - {{id: dry_run, type: BOOLEAN, defaults: true}}
  - {{id: region, type: SELECT, values: [EMEA, AMER, APAC], defaults: AMER}}
  - {{id: tier, type: ENUM, values: [gold, silver]}}
  - {{id: channels, type: MULTISELECT, values: [email, search, social], defaults: [email, social]}}
  - {{id: approved, type: BOOL}}
  - {{id: pick, type: SELECT, values: [red, blue], allowCustomValue: true, required: false}}
  - {{id: note, type: STRING, required: false}}
tasks:
  - {{id: say, type: {LOG}, message: "{{{{ inputs.region }}}}"}}
"""
DOTTED = f"""
id: dotted
namespace: acme
inputs:
  - {{id: deploy.dry_run, type: BOOLEAN}}
  - {{id: deploy.region, type: SELECT, values: [eu, us]}}
tasks:
  - {{id: say, type: {LOG}, message: "{{{{ inputs.deploy.region }}}}"}}
"""
SCHEDULED = f"""
id: scheduled
namespace: acme
inputs:
  - {{id: full, type: BOOLEAN, defaults: false}}
  - {{id: region, type: SELECT, values: [eu, us], defaults: eu}}
tasks:
  - {{id: say, type: {LOG}, message: "{{{{ inputs.region }}}}"}}
triggers:
  - {{id: nightly, type: io.kestra.plugin.core.trigger.Schedule, cron: "0 2 * * *"}}
"""


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[TiercelApp, Pilot[None]]]:
    folder = tmp_path / "flows" / "acme"
    folder.mkdir(parents=True)
    for name, text in (("choosy", CHOOSY), ("dotted", DOTTED), ("scheduled", SCHEDULED)):
        (folder / f"{name}.yml").write_text(text)
    app = TiercelApp(tmp_path / "flows", tmp_path / "db" / "tiercel.db", control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == 3)
        yield app, pilot


async def open_form(app: TiercelApp, pilot: Pilot[None], flow_id: str) -> RunFormScreen:
    assert app.ns_tree.select_ref(NodeRef("flow", "acme", flow_id))
    await until_drawn(pilot, lambda: app.selected_flow is not None and app.selected_flow.id == flow_id)
    await pilot.press("r")
    await until_drawn(pilot, lambda: isinstance(app.screen, RunFormScreen))
    form = app.screen
    assert isinstance(form, RunFormScreen)
    await pilot.pause()
    return form


def focused_id(app: TiercelApp) -> str | None:
    return app.focused.id if app.focused is not None else None


def state_of(form: RunFormScreen, input_id: str) -> str:
    """What the note beside a switch says it sends."""
    row = form.query_one(f"#input-{input_id}", Switch).parent
    assert row is not None
    return str(row.query_one(".switch-state", Static).render())


async def started_inputs(app: TiercelApp, pilot: Pilot[None], before: set[str]) -> dict[str, Any]:
    """The typed inputs of the execution the form started."""
    await until_drawn(pilot, lambda: not isinstance(app.screen, RunFormScreen))
    await until_drawn(pilot, lambda: bool(set(app.table.rows_by_id) - before))
    (execution_id,) = set(app.table.rows_by_id) - before
    return await settled_inputs(app, pilot, execution_id)


async def cli_inputs(app: TiercelApp, pilot: Pilot[None], flow_id: str, *pairs: str) -> dict[str, Any]:
    """The typed inputs of an execution started as `tiercel run acme FLOW --input k=v ...` starts it."""
    assert app.engine is not None
    execution_id = await app.engine.trigger("acme", flow_id, parse_pairs(pairs, "--input"))
    return await settled_inputs(app, pilot, execution_id)


async def settled_inputs(app: TiercelApp, pilot: Pilot[None], execution_id: str) -> dict[str, Any]:
    """An execution's inputs once it ended and the table shows it (so the test ends on a quiet app)."""
    assert app.engine is not None
    execution = await app.engine.wait(execution_id)
    row = app.table.rows_by_id
    await until_drawn(pilot, lambda: execution_id in row and row[execution_id].state == "SUCCESS")
    return dict(execution.inputs)


async def test_each_input_type_gets_its_widget_preset_to_its_default(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    form = await open_form(app, pilot, "choosy")
    assert form.query_one("#input-dry_run", Switch).value is True
    assert state_of(form, "dry_run") == "true"
    assert form.query_one("#input-approved", Switch).value is False
    assert state_of(form, "approved") == "not set"  # BOOL with no default: nothing is sent yet
    region = form.query_one("#input-region", Select)
    assert region.value == "AMER"
    assert form.query_one("#input-tier", Select).is_blank()
    channels = form.query_one("#input-channels", SelectionList)
    assert channels.option_count == 3 and sorted(channels.selected) == ["email", "social"]
    # A choice that allows custom values stays text, completing from its values.
    pick = form.query_one("#input-pick", Input)
    assert pick.suggester is not None and pick.placeholder == "red, blue"
    assert form.query_one("#input-note", Input).value == ""
    assert app.focused is form.query_one("#input-dry_run", Switch)
    assert form.values() == {"region": "AMER", "channels": '["email", "social"]'}


async def test_keys_fill_the_form_and_the_run_gets_the_inputs_tiercel_run_would_pass(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    form = await open_form(app, pilot, "choosy")
    await pilot.press("space")  # dry_run off
    assert state_of(form, "dry_run") == "false"
    await pilot.press("tab", "enter")  # region opens on AMER
    await until_drawn(pilot, lambda: form.query_one("#input-region", Select).expanded)
    await pilot.press("down", "enter")
    await until_drawn(pilot, lambda: form.query_one("#input-region", Select).value == "APAC")
    await pilot.press("tab", "enter", "down", "enter")  # tier: the first value under the blank
    await until_drawn(pilot, lambda: form.query_one("#input-tier", Select).value == "gold")
    await pilot.press("tab", "down", "space")  # channels: tick search
    await pilot.press("tab", "space")  # approved on
    assert state_of(form, "approved") == "true"
    await pilot.press("tab", *"teal", "tab", *"hi")
    assert focused_id(app) == "input-note"
    assert form.values() == {
        "dry_run": "false",
        "region": "APAC",
        "tier": "gold",
        "channels": '["email", "search", "social"]',
        "approved": "true",
        "pick": "teal",
        "note": "hi",
    }
    before = set(app.table.rows_by_id)
    await pilot.press("shift+tab", "shift+tab")  # back on the switch: enter submits from it too
    assert focused_id(app) == "input-approved"
    await pilot.press("enter")
    typed = await started_inputs(app, pilot, before)
    assert typed == {
        "dry_run": False,
        "region": "APAC",
        "tier": "gold",
        "channels": ["email", "search", "social"],
        "approved": True,
        "pick": "teal",
        "note": "hi",
    }
    cli = ("dry_run=false", "region=APAC", "tier=gold", "channels=email,search,social", "approved=true")
    assert typed == await cli_inputs(app, pilot, "choosy", *cli, "pick=teal", "note=hi")


async def test_required_choices_left_unset_are_reported_missing_beside_their_fields(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    form = await open_form(app, pilot, "choosy")
    await pilot.press("ctrl+s")
    tier, approved = form.query_one("#error-tier", Static), form.query_one("#error-approved", Static)
    await until_drawn(pilot, lambda: tier.display and approved.display)
    assert "Missing required input:tier" in str(tier.render())
    assert "Missing required input:approved" in str(approved.render())
    assert app.screen is form and not app.table.rows_by_id
    # Cleared defaults are sent as cleared; untouched ones as the flow sets them.
    form.query_one("#input-tier", Select).value = "silver"
    form.query_one("#input-channels", SelectionList).deselect_all()
    form.query_one("#input-approved", Switch).focus()
    await pilot.press("space", "space")  # on, then off: false is now chosen, not left unset
    assert state_of(form, "approved") == "false"
    await pilot.press("ctrl+s")
    typed = await started_inputs(app, pilot, set())
    assert typed == {
        "dry_run": True,
        "region": "AMER",
        "tier": "silver",
        "channels": [],
        "approved": False,
        "pick": None,
        "note": None,
    }


async def test_dotted_input_ids_get_fields_and_their_messages(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    form = await open_form(app, pilot, "dotted")
    switch, region = form.query_one(Switch), form.query_one(Select)
    await pilot.press("ctrl+s")
    errors = form.errors
    await until_drawn(pilot, lambda: errors["deploy.dry_run"].display and errors["deploy.region"].display)
    assert "deploy.region" in str(errors["deploy.region"].render())
    assert app.focused is switch
    await pilot.press("space", "tab", "enter", "down", "enter")
    await until_drawn(pilot, lambda: region.value == "eu")
    await pilot.press("ctrl+s")
    assert await started_inputs(app, pilot, set()) == {"deploy": {"dry_run": True, "region": "eu"}}


async def test_a_long_form_scrolls_at_80x24_and_keeps_its_footer(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    form = await open_form(app, pilot, "choosy")
    scroll = form.query_one("#run-form", VerticalScroll)
    assert scroll.max_scroll_y > 0 and scroll.scroll_y == 0
    run = form.query_one("#run", Button)
    for _ in range(10):
        if app.focused is run:
            break
        await pilot.press("tab")
    assert app.focused is run
    await until_drawn(pilot, lambda: scroll.region.contains_region(run.region))
    assert scroll.scroll_y > 0
    assert form.query_one(Footer).region.y == 23
    await pilot.press("escape")
    await until_drawn(pilot, lambda: not isinstance(app.screen, RunFormScreen))
    assert not app.table.rows_by_id


async def test_the_backfill_form_has_the_same_typed_fields(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    assert app.ns_tree.select_ref(NodeRef("flow", "acme", "scheduled"))
    await until_drawn(pilot, lambda: app.selected_flow is not None and app.selected_flow.id == "scheduled")
    await pilot.press("1", "T")
    await until_drawn(pilot, lambda: isinstance(app.screen, TriggersScreen))
    await pilot.press("b")
    await until_drawn(pilot, lambda: isinstance(app.screen, BackfillFormScreen))
    form = app.screen
    assert isinstance(form, BackfillFormScreen)
    full, region = form.query_one("#field-input-full", Switch), form.query_one("#field-input-region", Select)
    assert full.value is False and region.value == "eu"
    assert form.inputs() == {"region": "eu"}
    full.focus()
    await pilot.press("space")
    region.value = "us"
    assert form.inputs() == {"full": "true", "region": "us"}
