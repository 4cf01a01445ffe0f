"""The Schedule trigger on a real engine and SQLite file, driven by a hand-moved clock."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.engine.clock import ManualClock
from tests.waiting import until
from tiercel.engine.engine import Engine
from tiercel.engine.events import EngineError, TriggerChanged
from tiercel.engine.model import Execution, StateType
from tiercel.engine.parser import FlowParseError, parse_flow
from tiercel.engine.store import Store
from tiercel.engine.triggers.schedule import MAX_BATCH, SchedulerError

START = datetime(2025, 1, 1, tzinfo=UTC)
SCHEDULE = "io.kestra.plugin.core.trigger.Schedule"


def flow_source(
    cron: str,
    *,
    flow_id: str = "tick",
    task: str = "",
    extra: str = "",
    flow_extra: str = "",
) -> str:
    task = (
        task
        or """
  - id: r
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.date }}"
"""
    )
    props = textwrap.indent(textwrap.dedent(extra), "    ")
    return (
        f"id: {flow_id}\nnamespace: sched\n{flow_extra}tasks:{textwrap.dedent(task)}"
        f'triggers:\n  - id: cron\n    type: {SCHEDULE}\n    cron: "{cron}"\n{props}'
    )


@asynccontextmanager
async def scheduled(folder: Path, clock: ManualClock, *sources: str) -> AsyncIterator[Engine]:
    """An engine with its scheduler on `folder`; sources (if any) replace the flow files."""
    flows_dir = folder / "flows"
    flows_dir.mkdir(parents=True, exist_ok=True)
    if sources:
        for old in flows_dir.glob("*.yml"):
            old.unlink()
        for index, source in enumerate(sources):
            (flows_dir / f"flow_{index}.yml").write_text(source)
    store = await Store.open(folder / "tiercel.db")
    engine = Engine(store, flows_dir=flows_dir, clock=clock)
    await engine.start(control=False)
    try:
        yield engine
    finally:
        await engine.stop()


async def settle(engine: Engine, timeout: float = 60) -> None:
    """Every due slot fired and every execution ended."""

    async def wait() -> None:
        while True:
            await engine.scheduler.settled()
            while not engine.is_idle():
                await asyncio.sleep(0.005)
            await engine.scheduler.settled()
            if engine.is_idle():
                return

    await asyncio.wait_for(wait(), timeout)


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql, params).fetchall())


async def executions(engine: Engine, flow_id: str = "tick") -> list[Execution]:
    await engine.store.flush()
    found = []
    for (execution_id,) in rows(engine.store.path, "SELECT id FROM executions WHERE flow_id = ?", (flow_id,)):
        execution = await engine.store.get_execution(execution_id)
        assert execution is not None
        found.append(execution)
    return sorted(found, key=lambda e: str((e.trigger or {}).get("variables", {}).get("date", "")))


def dates(found: list[Execution]) -> list[str]:
    return [str((e.trigger or {})["variables"]["date"]) for e in found]


# -- the year -------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_every_five_minutes_for_a_year_with_twenty_restarts(tmp_path: Path) -> None:
    source = flow_source("*/5 * * * *", extra="allowConcurrent: true\n")
    clock = ManualClock(START)
    end = datetime(2026, 1, 1, tzinfo=UTC) - timedelta(seconds=1)
    segment = (end - START) / 21
    moment = START
    for restart in range(21):
        async with scheduled(tmp_path, clock, *([source] if restart == 0 else [])) as engine:
            stop_at = end if restart == 20 else START + segment * (restart + 1)
            while moment < stop_at:
                if restart == 20:
                    # The executions of the last days end before the next group fires: a group prunes
                    # only the fire records of ended executions, whatever the machine's load.
                    await settle(engine, timeout=120)
                moment = min(moment + timedelta(days=2), stop_at)
                clock.set(moment)
                await engine.scheduler.settled()
            if restart == 20:
                await settle(engine, timeout=120)
        if restart % 3 == 1:
            clock.advance(timedelta(hours=5))  # downtime: ALL recovers the missed slots
            moment = clock.now()
    db = tmp_path / "tiercel.db"
    # Every slot fired exactly once.
    [(stored, distinct, first, last)] = rows(
        db,
        "SELECT COUNT(*), COUNT(DISTINCT date), MIN(date), MAX(date) FROM "
        "(SELECT json_extract(json, '$.trigger.variables.date') AS date FROM executions "
        "WHERE flow_id = 'tick')",
    )
    assert (stored, distinct) == (105_120, 105_120)
    assert (first, last) == ("2025-01-01T00:00:00Z", "2025-12-31T23:55:00Z")
    # Fire records are pruned as the year goes: about the last day (and a group of fires) is left.
    [(fires, oldest, newest)] = rows(db, "SELECT COUNT(*), MIN(date), MAX(date) FROM trigger_fires")
    assert fires < 2 * 288 + MAX_BATCH
    assert oldest >= "2025-12-29T" and newest == "2025-12-31T23:55:00.000Z"
    [(unfinished,)] = rows(db, "SELECT COUNT(*) FROM executions WHERE state NOT IN ('SUCCESS', 'FAILED')")
    assert unfinished == 0


# -- recovery, time zones -------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "recovered"), [("ALL", 60), ("LAST", 1), ("NONE", 0)])
async def test_recover_missed_schedules_after_an_hour_down(
    tmp_path: Path, policy: str, recovered: int
) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    source = flow_source("* * * * *", extra=f"recoverMissedSchedules: {policy}\n")
    async with scheduled(tmp_path, clock, source) as engine:
        clock.advance(timedelta(minutes=10))
        await settle(engine)
        assert len(await executions(engine)) == 10
    clock.advance(timedelta(minutes=60))  # down from 00:10:30 to 01:10:30: 60 slots missed
    async with scheduled(tmp_path, clock) as engine:
        await settle(engine)
        assert len(await executions(engine)) == 10 + recovered
        clock.advance(timedelta(minutes=1))
        await settle(engine)
        found = await executions(engine)
    assert len(found) == 11 + recovered
    assert dates(found)[-1] == "2025-01-01T01:11:00Z"
    if policy == "LAST":
        assert dates(found)[-2] == "2025-01-01T01:10:00Z"


@pytest.mark.parametrize(
    ("start", "day", "expected"),
    [
        (datetime(2025, 3, 29, 12, tzinfo=UTC), "2025-03-30", ["2025-03-30T03:00:00+02:00"]),
        (datetime(2025, 10, 25, 12, tzinfo=UTC), "2025-10-26", ["2025-10-26T02:30:00+02:00"]),
    ],
)
async def test_paris_half_past_two_fires_once_on_daylight_saving_days(
    tmp_path: Path, start: datetime, day: str, expected: list[str]
) -> None:
    clock = ManualClock(start)
    source = flow_source("30 2 * * *", extra="timezone: Europe/Paris\n")
    async with scheduled(tmp_path, clock, source) as engine:
        for _ in range(80):  # 40 hours, half an hour at a time
            clock.advance(timedelta(minutes=30))
            await settle(engine)
        found = await executions(engine)
    assert [date for date in dates(found) if date.startswith(day)] == expected
    assert len(found) == 2


# -- conditions, disabled, stopAfter, overlap -----------------------------------------------------


async def test_conditions_skip_slots_and_shape_next_and_previous(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2025, 2, 28, 23, 0, 30, tzinfo=UTC))  # Friday
    source = flow_source(
        "0 * * * *",
        extra="""
        conditions:
          - type: io.kestra.plugin.core.condition.DayWeek
            dayOfWeek: SATURDAY
        """,
        task="""
  - id: r
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.previous }}|{{ trigger.date }}|{{ trigger.next }}"
""",
    )
    async with scheduled(tmp_path, clock, source) as engine:
        for _ in range(8):
            clock.advance(timedelta(hours=6))
            await settle(engine)
        found = await executions(engine)
        state = engine.scheduler.triggers()[0]
    assert len(found) == 24
    assert all(date.startswith("2025-03-01T") for date in dates(found))
    values = [str(e.task_runs[0].outputs["value"]) for e in found]  # type: ignore[index]
    assert values[0] == "2025-02-22T23:00:00Z|2025-03-01T00:00:00Z|2025-03-01T01:00:00Z"
    assert values[-1] == "2025-03-01T22:00:00Z|2025-03-01T23:00:00Z|2025-03-08T00:00:00Z"
    assert state.last_date == datetime(2025, 3, 1, 23, tzinfo=UTC)
    assert state.next_date == datetime(2025, 3, 3, 0, tzinfo=UTC)


async def test_legacy_schedule_conditions_are_applied(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2025, 2, 28, 0, 0, 30, tzinfo=UTC))  # Friday
    source = flow_source(
        "0 12 * * *",
        extra="""
        scheduleConditions:
          - type: io.kestra.core.models.conditions.types.WeekendCondition
        """,
    )
    async with scheduled(tmp_path, clock, source) as engine:
        for _ in range(4):
            clock.advance(timedelta(days=1))
            await settle(engine)
        found = await executions(engine)
    assert dates(found) == ["2025-03-01T12:00:00Z", "2025-03-02T12:00:00Z"]


async def test_disabled_trigger_or_flow_does_not_fire(tmp_path: Path) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    sources = (
        flow_source("* * * * *", flow_id="on"),
        flow_source("* * * * *", flow_id="off_trigger", extra="disabled: true\n"),
        flow_source("* * * * *", flow_id="off_flow", flow_extra="disabled: true\n"),
    )
    async with scheduled(tmp_path, clock, *sources) as engine:
        clock.advance(timedelta(minutes=5))
        await settle(engine)
        counts = {
            flow_id: len(await executions(engine, flow_id)) for flow_id in ("on", "off_trigger", "off_flow")
        }
        states = {state.flow_id: state for state in engine.scheduler.triggers()}
    assert counts == {"on": 5, "off_trigger": 0, "off_flow": 0}
    assert states["off_trigger"].disabled and states["off_flow"].disabled and not states["on"].disabled


async def test_stop_after_disables_the_trigger(tmp_path: Path) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    source = flow_source(
        "* * * * *",
        extra="stopAfter:\n  - FAILED\n",
        task="""
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: broken
""",
    )
    async with scheduled(tmp_path, clock, source) as engine:
        events = engine.events.subscribe()
        clock.advance(timedelta(minutes=1))
        await settle(engine)
        for _ in range(100):
            if not engine.scheduler.triggers()[0].enabled:
                break
            await asyncio.sleep(0.01)
        clock.advance(timedelta(minutes=5))
        await settle(engine)
        found = await executions(engine)
        state = engine.scheduler.triggers()[0]
        changed = [e for e in engine.events.drain(events) if isinstance(e, TriggerChanged)]
    assert [e.state.current for e in found] == [StateType.FAILED]
    assert not state.enabled
    assert changed and changed[-1].trigger_id == "cron"


async def test_no_overlap_a_due_slot_waits_for_the_running_execution(tmp_path: Path) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    source = flow_source(
        "* * * * *",
        task="""
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.3S
""",
    )
    async with scheduled(tmp_path, clock, source) as engine:
        clock.advance(timedelta(minutes=1))
        await engine.scheduler.settled()
        clock.advance(timedelta(minutes=3))  # three more slots come due while the first one sleeps
        await asyncio.sleep(0.05)
        assert len(await executions(engine)) == 1
        await settle(engine)
        found = await executions(engine)
    assert dates(found) == [f"2025-01-01T00:0{minute}:00Z" for minute in range(1, 5)]
    for before, after in itertools.pairwise(found):
        assert before.state.end_date is not None
        assert after.state.start_date >= before.state.end_date


async def test_allow_concurrent_fires_due_slots_together(tmp_path: Path) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    source = flow_source(
        "* * * * *",
        extra="allowConcurrent: true\n",
        task="""
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.5S
""",
    )
    async with scheduled(tmp_path, clock, source) as engine:
        clock.advance(timedelta(minutes=3))
        await engine.scheduler.settled()
        assert len(await executions(engine)) == 3
        assert len(engine.live_execution_ids()) == 3
        await settle(engine)


async def test_trigger_variables_and_labels_reach_the_execution(tmp_path: Path) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    source = flow_source(
        "0 * * * *",
        flow_extra="inputs:\n  - id: who\n    type: STRING\n",
        extra="""
        timezone: Europe/Paris
        inputs:
          who: cron
        labels:
          team: data
        """,
        task="""
  - id: r
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.who }} {{ trigger.date }} {{ trigger.next }} {{ trigger.previous }}"
""",
    )
    async with scheduled(tmp_path, clock, source) as engine:
        clock.advance(timedelta(hours=1))
        await settle(engine)
        [execution] = await executions(engine)
    value = execution.task_runs[0].outputs["value"]  # type: ignore[index]
    assert value == "cron 2025-01-01T02:00:00+01:00 2025-01-01T03:00:00+01:00 2025-01-01T01:00:00+01:00"
    assert execution.labels_map()["team"] == "data"
    assert execution.trigger is not None and execution.trigger["id"] == "cron"
    assert execution.trigger["type"] == SCHEDULE


# -- commands -------------------------------------------------------------------------------------


async def test_enable_disable_persists_across_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    async with scheduled(tmp_path, clock, flow_source("* * * * *")) as engine:
        clock.advance(timedelta(minutes=1))
        await settle(engine)
        await engine.scheduler.set_enabled("sched", "tick", "cron", False)
        with pytest.raises(SchedulerError, match="No trigger `nope`"):
            await engine.scheduler.set_enabled("sched", "tick", "nope", False)
    async with scheduled(tmp_path, clock) as engine:
        assert not engine.scheduler.triggers()[0].enabled
        clock.advance(timedelta(minutes=5))
        await settle(engine)
        assert len(await executions(engine)) == 1
        await engine.scheduler.set_enabled("sched", "tick", "cron", True)
        clock.advance(timedelta(minutes=1))
        await settle(engine)
        found = await executions(engine)
    # Enabled again at 00:06:30: the next slot is 00:07; the disabled ones are not caught up.
    assert dates(found) == ["2025-01-01T00:01:00Z", "2025-01-01T00:07:00Z"]


async def test_changed_cron_continues_from_the_last_fired_date(tmp_path: Path) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    async with scheduled(tmp_path, clock, flow_source("*/10 * * * *")) as engine:
        clock.advance(timedelta(minutes=10))
        await settle(engine)
    clock.advance(timedelta(minutes=5))  # 00:15:30
    async with scheduled(tmp_path, clock, flow_source("*/3 * * * *")) as engine:
        await settle(engine)
        found = await executions(engine)
    # Last fired 00:10; the new cron goes on from there: 00:12 and 00:15 are due.
    assert dates(found) == ["2025-01-01T00:10:00Z", "2025-01-01T00:12:00Z", "2025-01-01T00:15:00Z"]


async def test_backfill_pause_resume_cancel_and_progress(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2025, 2, 1, 0, 0, 30, tzinfo=UTC))
    source = flow_source(
        "0 * * * *",
        task="""
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.05S
""",
    )

    def progress(engine: Engine) -> Any:
        return engine.scheduler.triggers()[0].backfill

    day = datetime(2025, 1, 1, tzinfo=UTC)
    async with scheduled(tmp_path, clock, source) as engine:
        events = engine.events.subscribe()
        await engine.scheduler.backfill(
            "sched", "tick", "cron", day, day + timedelta(hours=23, minutes=59), labels={"why": "late data"}
        )
        with pytest.raises(SchedulerError, match="already has a backfill"):
            await engine.scheduler.backfill("sched", "tick", "cron", day)
        await until(lambda: progress(engine).fired >= 3)
        await engine.scheduler.pause_backfill("sched", "tick", "cron")
        await settle(engine)
        paused = progress(engine)
        assert paused.status == "PAUSED" and 3 <= paused.fired < 24
        assert 0 < paused.fraction < 1
        await asyncio.sleep(0.2)
        assert progress(engine).fired == paused.fired
        assert any(isinstance(e, TriggerChanged) for e in engine.events.drain(events))
    async with scheduled(tmp_path, clock) as engine:
        assert progress(engine) == paused  # the progress survived the restart
        await engine.scheduler.resume_backfill("sched", "tick", "cron")
        await settle(engine)
        done = progress(engine)
        found = await executions(engine)
        assert (done.status, done.fired, done.fraction) == ("DONE", 24, 1.0)
        assert dates(found) == [f"2025-01-01T{hour:02d}:00:00Z" for hour in range(24)]
        assert all(e.labels_map().get("system.backfill") == "true" for e in found)
        assert all(e.labels_map().get("why") == "late data" for e in found)
        with pytest.raises(SchedulerError, match="no backfill to pause"):
            await engine.scheduler.pause_backfill("sched", "tick", "cron")

        await engine.scheduler.backfill(
            "sched", "tick", "cron", day + timedelta(days=1), day + timedelta(days=2)
        )
        await until(lambda: progress(engine).fired >= 2)
        await engine.scheduler.cancel_backfill("sched", "tick", "cron")
        await settle(engine)
        cancelled = progress(engine)
        count = len(await executions(engine))
        await asyncio.sleep(0.2)
        assert len(await executions(engine)) == count
    assert cancelled.status == "CANCELLED" and 2 <= cancelled.fired < 25
    assert count == 24 + cancelled.fired


async def test_backfill_refuses_bad_ranges_and_unknown_triggers(tmp_path: Path) -> None:
    clock = ManualClock(START)
    async with scheduled(tmp_path, clock, flow_source("0 * * * *")) as engine:
        with pytest.raises(SchedulerError, match="before its start"):
            await engine.scheduler.backfill("sched", "tick", "cron", START, START - timedelta(days=1))
        with pytest.raises(SchedulerError, match="time zone"):
            await engine.scheduler.backfill("sched", "tick", "cron", datetime(2024, 1, 1))
        with pytest.raises(SchedulerError, match="No trigger"):
            await engine.scheduler.backfill("sched", "nope", "cron", START - timedelta(days=1))


async def test_flow_changes_while_running_are_followed(tmp_path: Path) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    async with scheduled(tmp_path, clock, flow_source("*/10 * * * *")) as engine:
        flow_file = tmp_path / "flows" / "flow_0.yml"
        clock.advance(timedelta(minutes=10))
        await settle(engine)
        flow_file.write_text(flow_source("*/3 * * * *"))
        await engine.sync_flows()
        clock.advance(timedelta(minutes=5))  # 00:15:30
        await settle(engine)
        assert dates(await executions(engine))[-2:] == ["2025-01-01T00:12:00Z", "2025-01-01T00:15:00Z"]

        await engine.scheduler.set_enabled("sched", "tick", "cron", False)
        flow_file.unlink()
        await engine.sync_flows()
        await engine.scheduler.settled()
        assert engine.scheduler.triggers() == []
        flow_file.write_text(flow_source("*/3 * * * *"))
        await engine.sync_flows()
        await engine.scheduler.settled()
        [state] = engine.scheduler.triggers()
    assert not state.enabled  # the state outlived the flow's absence


def test_parser_reports_bad_schedule_properties() -> None:
    source = flow_source(
        "* * * * *",
        extra="""
        stopAfter: [FAILD]
        allowConcurrent: maybe
        conditions:
          - type: io.kestra.plugin.core.condition.DayWeek
            dayOfWeek: MONDAYS
          - type: io.kestra.plugin.core.condition.ExecutionStatus
            in: [SUCCESS]
        """,
    )
    with pytest.raises(FlowParseError) as raised:
        parse_flow(source)
    text = str(raised.value)
    assert "Unknown state `FAILD` in Schedule trigger `cron`" in text
    assert "`allowConcurrent` must be `true` or `false`" in text
    assert "DayWeek: `dayOfWeek` must be one of MONDAY" in text
    assert "ExecutionStatus` tests the execution that triggered" in text


# -- failures of the store ------------------------------------------------------------------------


def refuse_writes(db: Path, table: str) -> None:
    """Make SQLite refuse every insert and update of `table` (as a failing disk would)."""
    with sqlite3.connect(db, timeout=30) as conn:
        for action in ("INSERT", "UPDATE"):
            conn.execute(
                f"CREATE TRIGGER refuse_{action.lower()}_{table} BEFORE {action} ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'disk I/O trouble'); END"
            )


def accept_writes(db: Path, table: str) -> None:
    with sqlite3.connect(db, timeout=30) as conn:
        for action in ("insert", "update"):
            conn.execute(f"DROP TRIGGER refuse_{action}_{table}")


def engine_errors(engine: Engine, queue: Any) -> list[str]:
    return [event.message for event in engine.events.drain(queue) if isinstance(event, EngineError)]


async def test_a_failing_trigger_state_write_is_reported_and_firing_goes_on(tmp_path: Path) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    async with scheduled(tmp_path, clock, flow_source("* * * * *")) as engine:
        events = engine.events.subscribe()
        refuse_writes(engine.store.path, "triggers")
        clock.advance(timedelta(minutes=2))
        await until(lambda: bool(engine_errors(engine, events)))
        assert await executions(engine) == []
        accept_writes(engine.store.path, "triggers")
        clock.advance(timedelta(minutes=1))  # past the back-off
        await settle(engine)
        assert dates(await executions(engine)) == [f"2025-01-01T00:0{minute}:00Z" for minute in (1, 2, 3)]
    # The engine stopped cleanly: a second one opens the same database and goes on.
    async with scheduled(tmp_path, clock) as engine:
        clock.advance(timedelta(minutes=1))
        await settle(engine)
        assert len(await executions(engine)) == 4


async def test_a_failing_stop_after_write_is_retried_and_the_consumer_survives(tmp_path: Path) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    source = flow_source(
        "* * * * *",
        extra="stopAfter:\n  - FAILED\n",
        task="""
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.2S
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
""",
    )
    async with scheduled(tmp_path, clock, source) as engine:
        events = engine.events.subscribe()
        clock.advance(timedelta(minutes=1))
        await engine.scheduler.settled()
        refuse_writes(engine.store.path, "triggers")  # the disable after FAILED cannot be stored
        await until(lambda: any("disk I/O trouble" in message for message in engine_errors(engine, events)))
        assert engine.scheduler.triggers()[0].enabled
        accept_writes(engine.store.path, "triggers")
        clock.advance(timedelta(seconds=10))  # past the back-off: the disable is tried again
        await until(lambda: not engine.scheduler.triggers()[0].enabled)
        clock.advance(timedelta(minutes=5))
        await settle(engine)
        assert len(await executions(engine)) == 1
    [(enabled,)] = rows(tmp_path / "tiercel.db", "SELECT enabled FROM triggers")
    assert enabled == 0


# -- a changed cron and recoverMissedSchedules ----------------------------------------------------


@pytest.mark.parametrize(("policy", "recovered"), [("ALL", 10), ("LAST", 1), ("NONE", 0)])
async def test_a_changed_cron_follows_recover_missed_schedules(
    tmp_path: Path, policy: str, recovered: int
) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    async with scheduled(tmp_path, clock, flow_source("0 0 * * *")) as engine:
        clock.advance(timedelta(days=1))
        await settle(engine)
        assert dates(await executions(engine)) == ["2025-01-02T00:00:00Z"]
    clock.set(datetime(2025, 1, 2, 10, 30, tzinfo=UTC))  # daily edited to hourly, engine down till 10:30
    hourly = flow_source("0 * * * *", extra=f"recoverMissedSchedules: {policy}\n")
    async with scheduled(tmp_path, clock, hourly) as engine:
        await settle(engine)
        assert len(await executions(engine)) == 1 + recovered
        clock.advance(timedelta(hours=1))
        await settle(engine)
        found = dates(await executions(engine))
    assert len(found) == 2 + recovered and found[-1] == "2025-01-02T11:00:00Z"
    if policy == "LAST":
        assert found[1] == "2025-01-02T10:00:00Z"


async def test_a_cron_edited_while_running_follows_recover_missed_schedules(tmp_path: Path) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    async with scheduled(tmp_path, clock, flow_source("0 0 * * *")) as engine:
        clock.set(datetime(2025, 1, 2, 10, 30, tzinfo=UTC))
        await settle(engine)
        (tmp_path / "flows" / "flow_0.yml").write_text(
            flow_source("0 * * * *", extra="recoverMissedSchedules: NONE\n")
        )
        await engine.sync_flows()
        await settle(engine)
        clock.advance(timedelta(minutes=30))
        await settle(engine)
        found = dates(await executions(engine))
    assert found == ["2025-01-02T00:00:00Z", "2025-01-02T11:00:00Z"]


# -- fire records ---------------------------------------------------------------------------------


@pytest.mark.slow
async def test_fire_records_are_pruned_but_a_date_never_fires_twice(tmp_path: Path) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    source = flow_source("*/5 * * * *", extra="allowConcurrent: true\n")
    db = tmp_path / "tiercel.db"
    async with scheduled(tmp_path, clock, source) as engine:
        for _ in range(6):
            clock.advance(timedelta(hours=12))
            await settle(engine)
        kept = rows(db, "SELECT COUNT(*), MIN(date), MAX(date) FROM trigger_fires")
    async with scheduled(tmp_path, clock) as engine:  # a restart fires nothing again
        await settle(engine)
    [(fires, oldest, last)] = kept
    assert 288 <= fires <= 288 + MAX_BATCH  # about a day of 5-minute slots, not three days
    assert oldest >= "2025-01-02T"
    [(stored, distinct)] = rows(
        db,
        "SELECT COUNT(*), COUNT(DISTINCT json_extract(json, '$.trigger.variables.date')) FROM executions",
    )
    assert stored == distinct == 3 * 288
    assert last == "2025-01-04T00:00:00.000Z"


@pytest.mark.slow
async def test_the_schedule_keeps_the_fire_records_of_a_backfill_under_way(tmp_path: Path) -> None:
    clock = ManualClock(START + timedelta(seconds=30))
    db = tmp_path / "tiercel.db"
    backfill_keys = "SELECT COUNT(*) FROM trigger_fires WHERE date LIKE '%#backfill:%'"
    nap = """
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.05S
"""
    async with scheduled(tmp_path, clock, flow_source("0 * * * *", task=nap)) as engine:
        await engine.scheduler.backfill(
            "sched", "tick", "cron", datetime(2024, 12, 1, tzinfo=UTC), datetime(2024, 12, 4, tzinfo=UTC)
        )
        await until(lambda: engine.scheduler.triggers()[0].backfill.fired >= 3)
        await engine.scheduler.pause_backfill("sched", "tick", "cron")
        await settle(engine)
        [(paused,)] = rows(db, backfill_keys)
        assert paused > 0
        clock.advance(timedelta(days=3))  # the schedule fires and prunes its own records meanwhile
        await settle(engine)
        assert rows(db, backfill_keys) == [(paused,)]
        await engine.scheduler.resume_backfill("sched", "tick", "cron")
        await settle(engine)
        assert engine.scheduler.triggers()[0].backfill.status == "DONE"
        clock.advance(timedelta(hours=1))  # the next fire drops the records of the finished backfill
        await settle(engine)
        assert rows(db, backfill_keys) == [(0,)]
    [(stored, distinct)] = rows(
        db,
        "SELECT COUNT(*), COUNT(DISTINCT json_extract(json, '$.trigger.variables.date')) FROM executions "
        "WHERE json_extract(labels, '$.\"system.backfill\"') = 'true'",
    )
    assert stored == distinct == 3 * 24 + 1


async def test_a_schedule_among_many_unparsed_flows_fires_after_a_restart(tmp_path: Path) -> None:
    plain = [
        f"id: plain_{index}\nnamespace: sched\ntasks:\n  - id: r\n"
        "    type: io.kestra.plugin.core.debug.Return\n    format: x\n"
        for index in range(30)
    ]
    clock = ManualClock(START + timedelta(seconds=30))
    async with scheduled(tmp_path, clock, flow_source("*/10 * * * *"), *plain) as engine:
        clock.advance(timedelta(minutes=10))
        await settle(engine)
    # At the restart the flow files are unchanged: only the flow with a trigger is parsed, and fires.
    async with scheduled(tmp_path, clock) as engine:
        assert len(engine.flows) == 31
        assert [uid for uid in engine.flows if engine.flows.is_parsed(uid)] == [("sched", "tick")]
        clock.advance(timedelta(minutes=20))
        await settle(engine)
        assert dates(await executions(engine)) == [
            "2025-01-01T00:10:00Z",
            "2025-01-01T00:20:00Z",
            "2025-01-01T00:30:00Z",
        ]
        assert [uid for uid in engine.flows if engine.flows.is_parsed(uid)] == [("sched", "tick")]
