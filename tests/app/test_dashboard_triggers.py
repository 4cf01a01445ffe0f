"""Pilot tests of the triggers view, backfills from the dashboard and the executions columns at 80x24."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from tests.app.test_dashboard import db, flows, select_flow
from tests.app.test_dashboard_features import palette, static_text
from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.screens.backfill_form import BackfillFormScreen
from tiercel.app.screens.confirm import ConfirmScreen
from tiercel.app.screens.triggers import TriggersScreen
from tiercel.app.widgets.states import fmt_start
from tiercel.engine.store import Store
from tiercel.engine.triggers.schedule import TriggerState

__all__ = ["db", "flows"]  # fixtures shared with test_dashboard

HOURLY = """
id: hourly
namespace: acme
inputs:
  - {id: who, type: STRING, defaults: ops}
tasks:
  - {id: say, type: io.kestra.plugin.core.log.Log, message: "{{ inputs.who }} at {{ trigger.date }}"}
triggers:
  - {id: every_hour, type: io.kestra.plugin.core.trigger.Schedule, cron: "0 * * * *"}
"""
# Each slot's execution runs a minute and a backfill waits for it: a backfill that stays under way.
NAP = """
id: nap
namespace: acme
tasks:
  - {id: sleep, type: io.kestra.plugin.core.flow.Sleep, duration: PT60S}
triggers:
  - {id: naps, type: io.kestra.plugin.core.trigger.Schedule, cron: "0 * * * *"}
"""
KEY = ("acme", "hourly", "every_hour")


@pytest.fixture
async def hourly(flows: Path, db: Path) -> AsyncIterator[tuple[TiercelApp, Pilot[None]]]:
    (flows / "acme" / "hourly.yml").write_text(HOURLY)
    (flows / "acme" / "nap.yml").write_text(NAP)
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and ("acme", "hourly") in app.engine.flows)
        await until_drawn(pilot, lambda: KEY in app.trigger_states())
        yield app, pilot


def trigger(app: TiercelApp, flow_id: str = "hourly") -> TriggerState:
    return app.trigger_list("acme", flow_id)[0]


def view(app: TiercelApp) -> TriggersScreen:
    screen = app.screen
    assert isinstance(screen, TriggersScreen)
    return screen


def cell(app: TiercelApp, column: str, trigger_id: str = "every_hour") -> str:
    table = view(app).query_one(DataTable)
    return str(table.get_cell(trigger_id, column))


def local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


async def open_view(app: TiercelApp, pilot: Pilot[None], flow_id: str = "hourly") -> None:
    await select_flow(app, pilot, "acme", flow_id)
    await pilot.press("T")
    await until_drawn(pilot, lambda: isinstance(app.screen, TriggersScreen))


async def open_form(app: TiercelApp, pilot: Pilot[None], start: str, end: str = "") -> BackfillFormScreen:
    await pilot.press("b")
    await until_drawn(pilot, lambda: isinstance(app.screen, BackfillFormScreen))
    form = app.screen
    assert isinstance(form, BackfillFormScreen)
    form.query_one("#field-start", Input).value = start
    form.query_one("#field-end", Input).value = end
    return form


async def submit(pilot: Pilot[None], app: TiercelApp) -> None:
    """Enter in the start field sends the form."""
    app.screen.query_one("#field-start", Input).focus()
    await pilot.press("enter")


async def test_triggers_view_shows_the_schedule_and_toggles_it_off_and_on(
    hourly: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = hourly
    assert app.engine is not None
    await open_view(app, pilot)
    state = trigger(app)
    assert cell(app, "type") == "Schedule" and cell(app, "on") == "on"
    assert state.next_date is not None and cell(app, "next") == fmt_start(state.next_date)
    assert view(app).check_action("backfill", ()) is True
    assert view(app).check_action("pause", ()) is None  # no backfill under way
    await pilot.press("space")
    await until_drawn(pilot, lambda: cell(app, "on") == "off")
    assert app.session is not None and app.session.hosted.engine.scheduler.is_enabled(*KEY) is False
    assert KEY in app.ns_tree.disabled_triggers
    await pilot.press("space")
    await until_drawn(pilot, lambda: cell(app, "on") == "on")
    assert app.session is not None and app.session.hosted.engine.scheduler.is_enabled(*KEY) is True
    await pilot.press("escape")
    await until_drawn(pilot, lambda: not isinstance(app.screen, TriggersScreen))
    # A flow trigger does not backfill: the key is greyed out there.
    await select_flow(app, pilot, "acme.finance.reports", "archive_report")
    await pilot.press("T")
    await until_drawn(pilot, lambda: isinstance(app.screen, TriggersScreen))
    assert view(app).check_action("backfill", ()) is None
    assert view(app).check_action("on_off", ()) is True
    await pilot.press("escape")
    await select_flow(app, pilot, "acme", "hello_world")  # no triggers: T greyed out
    assert app.ns_tree.check_action("triggers", ()) is None


async def test_backfill_of_three_hourly_slots_reaches_done_with_three_executions(
    hourly: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = hourly
    await open_view(app, pilot)
    start = datetime.now().astimezone().replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    form = await open_form(app, pilot, local(start), local(start + timedelta(hours=2)))
    form.query_one("#field-labels", Input).value = "team=data"
    form.query_one("#field-input-who", Input).value = "backfiller"
    await submit(pilot, app)
    await until_drawn(pilot, lambda: isinstance(app.screen, TriggersScreen))
    await until_drawn(pilot, lambda: cell(app, "backfill").startswith("DONE 3 "))
    progress = trigger(app).backfill
    assert progress is not None and (progress.fired, progress.status, progress.fraction) == (3, "DONE", 1.0)
    assert "3 fired" in static_text(app.screen, "#trigger-about")
    await pilot.press("escape")

    def backfilled() -> list[str]:
        return [s.state for s in app.table.rows_by_id.values() if s.labels.get("system.backfill") == "true"]

    await until_drawn(pilot, lambda: backfilled() == ["SUCCESS"] * 3)
    rows = [s for s in app.table.rows_by_id.values() if s.labels.get("system.backfill") == "true"]
    assert {s.trigger for s in rows} == {"Schedule"}
    assert {s.labels.get("team") for s in rows} == {"data"}
    assert app.engine is not None
    execution = await app.engine.execution(rows[0].id)
    assert execution is not None and execution.inputs["who"] == "backfiller"


async def test_bad_backfill_dates_and_labels_show_under_their_fields(
    hourly: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = hourly
    await open_view(app, pilot)
    form = await open_form(app, pilot, "last tuesday")
    await submit(pilot, app)
    await until_drawn(pilot, lambda: form.query_one("#error-start").display)
    assert "`last tuesday` is not a date" in static_text(form, "#error-start")
    start = datetime.now().astimezone() - timedelta(days=1)
    form.query_one("#field-start", Input).value = local(start)
    form.query_one("#field-end", Input).value = local(start - timedelta(days=1))
    await submit(pilot, app)
    await until_drawn(pilot, lambda: form.query_one("#error-end").display)
    assert "is before its start" in static_text(form, "#error-end")  # the scheduler's own message
    assert not form.query_one("#error-start").display
    form.query_one("#field-end", Input).value = ""
    form.query_one("#field-labels", Input).value = "team"
    await submit(pilot, app)
    await until_drawn(pilot, lambda: form.query_one("#error-labels").display)
    assert "`team` is not a label" in static_text(form, "#error-labels")
    assert app.screen is form and trigger(app).backfill is None
    await pilot.press("escape")
    await until_drawn(pilot, lambda: isinstance(app.screen, TriggersScreen))


@pytest.mark.slow
async def test_pause_resume_and_cancel_a_long_backfill_from_the_view(
    hourly: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = hourly
    await open_view(app, pilot, "nap")
    await open_form(app, pilot, local(datetime.now().astimezone() - timedelta(days=365)))
    await submit(pilot, app)
    await until_drawn(pilot, lambda: isinstance(app.screen, TriggersScreen))
    await until_drawn(pilot, lambda: cell(app, "backfill", "naps").startswith("RUNNING"))
    assert view(app).check_action("backfill", ()) is None  # one backfill at a time
    await pilot.press("p")
    await until_drawn(pilot, lambda: cell(app, "backfill", "naps").startswith("PAUSED"))
    paused = trigger(app, "nap").backfill
    assert paused is not None and paused.status == "PAUSED" and paused.fired < 3
    assert view(app).check_action("pause", ()) is None and view(app).check_action("resume", ()) is True
    await pilot.pause(0.5)
    still = trigger(app, "nap").backfill
    assert still is not None and still.fired <= paused.fired + 1  # a slot already firing may finish
    await pilot.press("u")
    await until_drawn(pilot, lambda: cell(app, "backfill", "naps").startswith("RUNNING"))
    await pilot.press("c")
    await until_drawn(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("enter")  # No is the default
    await until_drawn(pilot, lambda: isinstance(app.screen, TriggersScreen))
    assert trigger(app, "nap").backfill is not None and trigger(app, "nap").backfill.status == "RUNNING"  # type: ignore[union-attr]
    await pilot.press("c")
    await until_drawn(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("y")
    await until_drawn(pilot, lambda: cell(app, "backfill", "naps").startswith("CANCELLED"))
    progress = trigger(app, "nap").backfill
    assert progress is not None and progress.status == "CANCELLED"
    assert view(app).check_action("cancel", ()) is None and view(app).check_action("backfill", ()) is True


@pytest.mark.slow
async def test_palette_opens_the_view_and_drives_a_backfill(hourly: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = hourly
    await select_flow(app, pilot, "acme", "hello_world")  # the backfill's executions stay off the table
    await palette(pilot, app, "colon", "triggers of acme.nap")
    await until_drawn(pilot, lambda: isinstance(app.screen, TriggersScreen))
    await pilot.press("escape")
    await until_drawn(pilot, lambda: not isinstance(app.screen, TriggersScreen))
    await palette(pilot, app, "colon", "backfill acme.nap.naps")
    await until_drawn(pilot, lambda: isinstance(app.screen, BackfillFormScreen))
    form = app.screen
    form.query_one("#field-start", Input).value = local(datetime.now().astimezone() - timedelta(days=365))
    await submit(pilot, app)
    await until_drawn(pilot, lambda: not isinstance(app.screen, BackfillFormScreen))

    def status() -> str | None:
        progress = trigger(app, "nap").backfill
        return progress.status if progress is not None else None

    assert status() == "RUNNING"
    await palette(pilot, app, "colon", "pause backfill of acme.nap.naps")
    await until_drawn(pilot, lambda: status() == "PAUSED")
    await palette(pilot, app, "colon", "resume backfill of acme.nap.naps")
    await until_drawn(pilot, lambda: status() == "RUNNING")
    await palette(pilot, app, "colon", "cancel backfill of acme.nap.naps")
    await until_drawn(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("y")
    await until_drawn(pilot, lambda: status() == "CANCELLED")


@pytest.mark.slow
async def test_executions_columns_fit_80_columns(flows: Path, db: Path) -> None:
    store = await Store.open(db)
    await store.close()
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
        await select_flow(app, pilot, "acme.platform.ops", "nightly_pipeline")
        await pilot.press("r")
        await until_drawn(pilot, lambda: len(app.table.rows_by_id) == 1)
        table = app.table
        widths = [column.get_render_width(table) for column in table.ordered_columns]
        labels = [str(column.label).strip() for column in table.ordered_columns]
        assert labels[:6] == ["id", "flow", "state", "start", "took", "trigger"]
        assert sum(widths[:6]) <= table.scrollable_content_region.width
        row = [str(value).strip() for value in table.get_row(next(iter(app.table.rows_by_id)))]
        assert row[1].startswith("nightly_p") and row[5] == "manual"
