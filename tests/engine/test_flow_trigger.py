"""The Flow trigger: real executions of upstream flows start downstream flows through a real engine."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.engine.helpers import run, running_engine
from tests.postgres import engine_store
from tiercel.engine.engine import Engine
from tiercel.engine.events import EngineError
from tiercel.engine.model import Execution, StateType
from tiercel.engine.parser import FlowParseError, parse_flow
from tiercel.engine.store import Store
from tiercel.engine.triggers.flow import window_bounds

S = StateType
FLOW = "io.kestra.plugin.core.trigger.Flow"

EXTRACT = """
id: extract
namespace: acme.etl
labels:
  team: data
inputs:
  - {id: fail, type: BOOLEAN, defaults: false}
tasks:
  - {id: date, type: io.kestra.plugin.core.debug.Return, format: "2025-01-02"}
  - {id: maybe_fail, type: io.kestra.plugin.core.execution.Fail, condition: "{{ inputs.fail }}"}
outputs:
  - {id: day, type: STRING, value: "{{ outputs.date.value }}"}
"""
TRANSFORM = f"""
id: transform
namespace: acme.etl
inputs:
  - {{id: day, type: STRING, defaults: none}}
tasks:
  - id: show
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{{{ trigger.executionId }}}}|{{{{ trigger.namespace }}}}|{{{{ trigger.flowId }}}}|{{{{
      trigger.state }}}}|{{{{ trigger.outputs.day }}}}|{{{{ inputs.day }}}}|{{{{
      trigger.executionLabels.team }}}}|{{{{ trigger.flowRevision }}}}
triggers:
  - id: after_extract
    type: {FLOW}
    inputs:
      day: "{{{{ trigger.outputs.day }}}}"
    preconditions:
      id: extract_ok
      flows:
        - namespace: acme.etl
          flowId: extract
          states: [SUCCESS]
"""


def watcher(flow_id: str, trigger: str) -> str:
    """A flow in namespace `ops` with one Flow trigger (its YAML body after `type`)."""
    return f"""
id: {flow_id}
namespace: ops
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.flowId }}}} {{{{ trigger.state }}}}"
triggers:
  - id: watch
    type: {FLOW}
{trigger}
"""


def joined(time_window: str = "") -> str:
    return f"""
id: joined
namespace: acme.etl
tasks:
  - id: both
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.outputs.a }}}}+{{{{ trigger.outputs.b }}}}"
triggers:
  - id: both_done
    type: {FLOW}
    preconditions:
      id: a_and_b
      flows:
        - {{namespace: acme.etl, flowId: up_a, states: [SUCCESS]}}
        - {{namespace: acme.etl, flowId: up_b, states: [SUCCESS]}}
{time_window}
"""


def upstream(flow_id: str, letter: str) -> str:
    return f"""
id: {flow_id}
namespace: acme.etl
tasks:
  - {{id: t, type: io.kestra.plugin.core.debug.Return, format: {letter}}}
outputs:
  - {{id: {letter}, type: STRING, value: "{{{{ outputs.t.value }}}}"}}
"""


async def settle(engine: Engine) -> None:
    """Let every execution end and every state change be evaluated by the Flow triggers."""
    for _ in range(50):
        await engine.flow_triggers.settled()
        ids = engine.live_execution_ids()
        if not ids:
            await engine.flow_triggers.settled()
            if not engine.live_execution_ids():
                return
        for execution_id in ids:
            await asyncio.wait_for(engine.wait(execution_id), 20)
    raise AssertionError("executions kept starting")


async def executions_of(engine: Engine, flow_id: str) -> list[Execution]:
    rows = await engine.store.list_executions(flow_id=flow_id)
    found = [await engine.store.get_execution(row.id) for row in reversed(rows)]
    return [execution for execution in found if execution is not None]


async def run_and_settle(engine: Engine, flow_id: str, **inputs: object) -> Execution:
    execution = await run(engine, "acme.etl", flow_id, inputs)
    await settle(engine)
    return execution


# ---------------------------------------------------------------------------------------------
# Firing on another flow's end
# ---------------------------------------------------------------------------------------------


async def test_downstream_runs_when_upstream_succeeds_with_trigger_variables(tmp_path: Path) -> None:
    async with running_engine(tmp_path, EXTRACT, TRANSFORM) as engine:
        extract = await run_and_settle(engine, "extract")
        assert extract.state.current is S.SUCCESS
        [transform] = await executions_of(engine, "transform")
        assert transform.state.current is S.SUCCESS
        assert transform.inputs == {"day": "2025-01-02"}
        expected = f"{extract.id}|acme.etl|extract|SUCCESS|2025-01-02|2025-01-02|data|1"
        assert transform.task_runs[0].outputs == {"value": expected}
        assert transform.trigger is not None
        assert transform.trigger["id"] == "after_extract" and transform.trigger["type"] == FLOW
        assert transform.trigger["variables"]["executionId"] == extract.id


async def test_downstream_does_not_run_when_upstream_fails_and_states_say_success(tmp_path: Path) -> None:
    async with running_engine(tmp_path, EXTRACT, TRANSFORM) as engine:
        failed = await run_and_settle(engine, "extract", fail=True)
        assert failed.state.current is S.FAILED
        assert await executions_of(engine, "transform") == []
        await run_and_settle(engine, "extract")
        assert len(await executions_of(engine, "transform")) == 1


async def test_states_default_to_terminal_states_and_can_be_narrowed(tmp_path: Path) -> None:
    any_end = watcher(
        "any_end",
        "    conditions:\n      - {type: io.kestra.plugin.core.condition.ExecutionFlow, "
        "namespace: acme.etl, flowId: extract}",
    )
    only_success = watcher(
        "only_success",
        "    states: [SUCCESS]\n    conditions:\n      - {type: "
        "io.kestra.plugin.core.condition.ExecutionFlow, namespace: acme.etl, flowId: extract}",
    )
    async with running_engine(tmp_path, EXTRACT, any_end, only_success) as engine:
        await run_and_settle(engine, "extract", fail=True)
        assert [
            e.trigger and e.trigger["variables"]["state"] for e in await executions_of(engine, "any_end")
        ] == ["FAILED"]
        assert await executions_of(engine, "only_success") == []
        await run_and_settle(engine, "extract")
        assert len(await executions_of(engine, "any_end")) == 2
        assert len(await executions_of(engine, "only_success")) == 1


CONDITION = "io.kestra.plugin.core.condition."
IN_ACME = f"      - {{type: {CONDITION}ExecutionNamespace, namespace: acme, prefix: true}}"
WATCHERS = {
    "on_failed": f"    conditions:\n      - {{type: {CONDITION}ExecutionStatus, in: [FAILED]}}",
    "in_acme": f"    conditions:\n{IN_ACME}",
    "in_other": f"    conditions:\n      - {{type: {CONDITION}ExecutionNamespace, namespace: other}}",
    "team_data": f"    conditions:\n      - {{type: {CONDITION}ExecutionLabels, labels: {{team: data}}}}",
    "day_output": f"    conditions:\n      - type: {CONDITION}ExecutionOutputs\n"
    "        expression: \"{{ trigger.outputs.day == '2025-01-02' }}\"",
    "not_failed": f"    conditions:\n{IN_ACME}\n      - type: {CONDITION}Not\n        conditions:\n"
    f"          - {{type: {CONDITION}ExecutionStatus, in: [FAILED]}}",
    "either": f"    conditions:\n      - type: {CONDITION}Or\n        conditions:\n"
    f"          - {{type: {CONDITION}ExecutionFlow, namespace: x, flowId: y}}\n"
    f"          - {{type: {CONDITION}ExecutionFlow, namespace: acme.etl, flowId: extract}}",
    "expression": f"    conditions:\n      - type: {CONDITION}Expression\n"
    "        expression: \"{{ trigger.flowId == 'extract' and trigger.state == 'SUCCESS' }}\"",
}


async def test_conditions_select_which_flows_fire(tmp_path: Path) -> None:
    flows = [watcher(flow_id, body) for flow_id, body in WATCHERS.items()]
    async with running_engine(tmp_path, EXTRACT, *flows) as engine:

        async def fired() -> set[str]:
            return {flow_id for flow_id in WATCHERS if await executions_of(engine, flow_id)}

        await run_and_settle(engine, "extract")
        assert await fired() == {"in_acme", "team_data", "day_output", "not_failed", "either", "expression"}
        for flow_id in WATCHERS:  # each fired once at most: watchers in `ops` do not trigger each other
            assert len(await executions_of(engine, flow_id)) <= 1
        await run_and_settle(engine, "extract", fail=True)
        counts = {flow_id: len(await executions_of(engine, flow_id)) for flow_id in WATCHERS}
        assert counts == {
            "on_failed": 1,
            "in_acme": 2,
            "in_other": 0,
            "team_data": 2,
            "day_output": 2,  # flow outputs are rendered whatever the end state
            "not_failed": 1,
            "either": 2,
            "expression": 1,
        }


async def test_where_filters_match_failures_anywhere_under_a_namespace(tmp_path: Path) -> None:
    alert = watcher(
        "alert",
        """    preconditions:
      id: failures
      where:
        - id: acme_failed
          operand: AND
          filters:
            - {field: STATE, type: IN, values: [FAILED, WARNING]}
            - {field: NAMESPACE, type: STARTS_WITH, value: acme}
            - {field: EXPRESSION, type: IS_TRUE, value: "{{ trigger.executionLabels.team == 'data' }}"}""",
    )
    async with running_engine(tmp_path, EXTRACT, alert) as engine:
        await run_and_settle(engine, "extract")
        assert await executions_of(engine, "alert") == []
        failed = await run_and_settle(engine, "extract", fail=True)
        [fired] = await executions_of(engine, "alert")
        assert fired.trigger is not None and fired.trigger["variables"]["executionId"] == failed.id


async def test_a_flow_never_triggers_itself(tmp_path: Path) -> None:
    loop = """
id: loop
namespace: acme.etl
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: once}
triggers:
  - {id: again, type: io.kestra.plugin.core.trigger.Flow}
"""
    async with running_engine(tmp_path, loop, EXTRACT) as engine:
        await run_and_settle(engine, "loop")
        assert len(await executions_of(engine, "loop")) == 1
        await run_and_settle(engine, "extract")  # another flow's end does fire it
        assert len(await executions_of(engine, "loop")) == 2


async def test_a_bad_trigger_expression_is_reported_and_other_triggers_still_fire(tmp_path: Path) -> None:
    broken = watcher("broken", '    inputs:\n      x: "{{ trigger.outputs.missing.deeper }}"')
    fine = watcher("fine", "")
    async with running_engine(tmp_path, EXTRACT, broken, fine) as engine:
        events = engine.events.subscribe()
        await run_and_settle(engine, "extract")
        errors = [event.message for event in engine.events.drain(events) if isinstance(event, EngineError)]
        assert any(
            "Flow trigger `watch` of ops.broken" in message and "missing" in message for message in errors
        )
        assert await executions_of(engine, "broken") == []
        assert len(await executions_of(engine, "fine")) == 1


NEEDS_INPUT = f"""
id: needs_input
namespace: ops
inputs:
  - {{id: region, type: STRING}}
  - {{id: size, type: INT, required: false}}
tasks:
  - {{id: log, type: io.kestra.plugin.core.log.Log, message: "{{{{ inputs.region }}}}"}}
triggers:
  - id: watch
    type: {FLOW}
    inputs:
      size: "{{{{ trigger.outputs.size ?? 'not a number' }}}}"
    conditions:
      - {{type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: acme.etl, flowId: extract}}
"""


async def test_a_missing_required_input_starts_the_execution_and_fails_it(tmp_path: Path) -> None:
    """Kestra creates the triggered execution and fails it when its inputs are invalid (Kestra's
    Flow trigger documentation: "the flow will be created and already state as FAILED"); refusing
    to start it would leave no trace of the trigger."""
    async with running_engine(tmp_path, EXTRACT, NEEDS_INPUT) as engine:
        await run_and_settle(engine, "extract")
        [failed] = await executions_of(engine, "needs_input")
        assert failed.state.current is S.FAILED
        assert [entry.state for entry in failed.state.histories] == [S.CREATED, S.FAILED]
        assert failed.task_runs == () and failed.inputs == {}
        assert failed.trigger is not None and failed.trigger["id"] == "watch"
        lines = [entry for _, entry in await engine.store.logs(failed.id)]
        assert [line.level.value for line in lines] == ["ERROR"]
        assert "region" in lines[0].message and "size" in lines[0].message, lines[0].message


def refuse_executions_of(db: Path, flow_id: str) -> None:
    """Make SQLite refuse to store executions of one flow (as a failing disk would)."""
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute(
            f"CREATE TRIGGER refuse_{flow_id} BEFORE INSERT ON executions WHEN NEW.flow_id = '{flow_id}' "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O trouble'); END"
        )


def accept_executions_of(db: Path, flow_id: str) -> None:
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute(f"DROP TRIGGER refuse_{flow_id}")


@pytest.mark.sqlite_only
async def test_a_store_failure_of_one_trigger_does_not_stop_the_next_flows(tmp_path: Path) -> None:
    async with running_engine(tmp_path, EXTRACT, watcher("a_fails", ""), watcher("b_fine", "")) as engine:
        order = [flow_id for _, flow_id in engine.flows]
        assert order.index("a_fails") < order.index("b_fine")  # the failing one is tested first
        events = engine.events.subscribe()
        refuse_executions_of(engine.store.path, "a_fails")
        await run_and_settle(engine, "extract")
        errors = [event.message for event in engine.events.drain(events) if isinstance(event, EngineError)]
        assert any("Flow trigger `watch` of ops.a_fails" in m and "disk I/O trouble" in m for m in errors)
        assert await executions_of(engine, "a_fails") == []
        assert len(await executions_of(engine, "b_fine")) == 1


async def test_a_trigger_switched_off_is_known_before_the_scheduler_starts(tmp_path: Path) -> None:
    async with running_engine(tmp_path, EXTRACT, watcher("w", "")) as engine:
        await engine.scheduler.set_enabled("ops", "w", "watch", False)
        extract = await run_and_settle(engine, "extract")
        assert await executions_of(engine, "w") == []
    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=tmp_path / "flows")
    try:
        # The start order of Engine.start: flows, then Flow triggers; the scheduler comes last.
        await engine.sync_flows()
        await engine.flow_triggers.start()
        assert not engine.scheduler.is_enabled("ops", "w", "watch")
        assert await engine.flow_triggers.evaluate(extract) == []
    finally:
        await engine.stop()


# ---------------------------------------------------------------------------------------------
# Preconditions over a time window
# ---------------------------------------------------------------------------------------------


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


START = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
SLIDING = "      timeWindow: {type: SLIDING_WINDOW, window: PT1H}"


async def test_two_upstream_flows_fire_once_both_ended_not_before(tmp_path: Path) -> None:
    flows = (upstream("up_a", "a"), upstream("up_b", "b"), joined(SLIDING))
    async with running_engine(tmp_path, *flows) as engine:
        engine.flow_triggers.clock = Clock(START)
        await run_and_settle(engine, "up_a")
        await run_and_settle(engine, "up_a")
        assert await executions_of(engine, "joined") == []
        window = await engine.store.flow_trigger_window("acme.etl", "joined", "both_done", "a_and_b")
        assert window is not None and window[2] == ["condition_1"]
        up_b = await run_and_settle(engine, "up_b")
        [fired] = await executions_of(engine, "joined")
        assert fired.task_runs[0].outputs == {"value": "a+b"}  # outputs of both upstream executions
        assert fired.trigger is not None and fired.trigger["variables"]["executionId"] == up_b.id
        # resetOnSuccess (the default): the window starts over.
        assert await engine.store.flow_trigger_window("acme.etl", "joined", "both_done", "a_and_b") is None
        await run_and_settle(engine, "up_b")
        assert len(await executions_of(engine, "joined")) == 1


async def test_a_window_that_expires_forgets_the_first_upstream(tmp_path: Path) -> None:
    flows = (upstream("up_a", "a"), upstream("up_b", "b"), joined(SLIDING))
    async with running_engine(tmp_path, *flows) as engine:
        clock = engine.flow_triggers.clock = Clock(START)
        await run_and_settle(engine, "up_a")
        clock.now = START + timedelta(hours=1, seconds=1)
        await run_and_settle(engine, "up_b")  # a's window is over: b opens a new one
        assert await executions_of(engine, "joined") == []
        clock.now = START + timedelta(hours=1, minutes=30)
        await run_and_settle(engine, "up_a")
        assert len(await executions_of(engine, "joined")) == 1


async def test_without_reset_each_further_success_fires_within_the_window(tmp_path: Path) -> None:
    window = SLIDING + "\n      resetOnSuccess: false"
    async with running_engine(
        tmp_path, upstream("up_a", "a"), upstream("up_b", "b"), joined(window)
    ) as engine:
        engine.flow_triggers.clock = Clock(START)
        await run_and_settle(engine, "up_a")
        await run_and_settle(engine, "up_b")
        await run_and_settle(engine, "up_a")
        assert len(await executions_of(engine, "joined")) == 2


async def test_the_window_survives_an_engine_restart(tmp_path: Path) -> None:
    flows = (upstream("up_a", "a"), upstream("up_b", "b"), joined(SLIDING))
    async with running_engine(tmp_path, *flows) as engine:
        engine.flow_triggers.clock = Clock(START)
        await run_and_settle(engine, "up_a")
    async with running_engine(tmp_path, *flows) as engine:
        engine.flow_triggers.clock = Clock(START + timedelta(minutes=10))
        await run_and_settle(engine, "up_b")
        [fired] = await executions_of(engine, "joined")
        assert fired.task_runs[0].outputs == {"value": "a+b"}


async def test_a_daily_deadline_only_counts_executions_before_it(tmp_path: Path) -> None:
    deadline = '      timeWindow: {type: DAILY_TIME_DEADLINE, deadline: "09:00:00", timezone: UTC}'
    async with running_engine(
        tmp_path, upstream("up_a", "a"), upstream("up_b", "b"), joined(deadline)
    ) as engine:
        clock = engine.flow_triggers.clock = Clock(datetime(2025, 6, 2, 8, 0, tzinfo=UTC))
        await run_and_settle(engine, "up_a")
        clock.now = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)  # too late today
        await run_and_settle(engine, "up_b")
        assert await executions_of(engine, "joined") == []
        clock.now = datetime(2025, 6, 3, 7, 0, tzinfo=UTC)  # a new day: yesterday's `a` is gone
        await run_and_settle(engine, "up_b")
        assert await executions_of(engine, "joined") == []
        await run_and_settle(engine, "up_a")
        assert len(await executions_of(engine, "joined")) == 1


LEGACY_LISTENER = """
id: listener
namespace: acme.etl
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: both}
triggers:
  - id: multiple_listen_flow
    type: io.kestra.core.models.triggers.types.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
      - id: multiple
        type: io.kestra.plugin.core.condition.MultipleCondition
        timeWindow:
          window: PT12H
        conditions:
          flow_a:
            type: io.kestra.plugin.core.condition.ExecutionFlow
            namespace: acme.etl
            flowId: up_a
          flow_b:
            type: io.kestra.plugin.core.condition.ExecutionFlow
            namespace: acme.etl
            flowId: up_b
"""


async def test_the_legacy_multiple_condition_waits_for_both_flows(tmp_path: Path) -> None:
    async with running_engine(
        tmp_path, upstream("up_a", "a"), upstream("up_b", "b"), LEGACY_LISTENER
    ) as engine:
        engine.flow_triggers.clock = Clock(START)
        await run_and_settle(engine, "up_b")
        assert await executions_of(engine, "listener") == []
        assert await engine.store.flow_trigger_window(
            "acme.etl", "listener", "multiple_listen_flow", "multiple"
        )
        await run_and_settle(engine, "up_a")
        assert len(await executions_of(engine, "listener")) == 1
        await run_and_settle(engine, "up_a")
        assert len(await executions_of(engine, "listener")) == 1


@pytest.mark.parametrize(
    ("spec", "now", "expected"),
    [
        ({}, "2025-06-02T10:17:00", ("2025-06-02T00:00:00", "2025-06-02T23:59:59.999")),
        ({"window": "PT10M"}, "2025-06-02T10:17:00", ("2025-06-02T10:10:00", "2025-06-02T10:19:59.999")),
        (
            {"window": "PT6H", "windowAdvance": "PT3H"},
            "2025-06-02T02:00:00",
            ("2025-06-01T21:00:00", "2025-06-02T02:59:59.999"),
        ),
        (
            {"type": "SLIDING_WINDOW", "window": "PT1H"},
            "2025-06-02T10:17:00",
            ("2025-06-02T10:17:00", "2025-06-02T11:17:00"),
        ),
        (
            {"type": "DAILY_TIME_WINDOW", "startTime": "06:00:00", "endTime": "09:00:00"},
            "2025-06-02T10:17:00",
            ("2025-06-02T06:00:00", "2025-06-02T09:00:00"),
        ),
        (
            {"type": "DAILY_TIME_DEADLINE", "deadline": 32400},
            "2025-06-02T10:17:00",
            ("2025-06-02T00:00:00", "2025-06-02T09:00:00"),
        ),
    ],
)
def test_window_bounds(spec: dict[str, object], now: str, expected: tuple[str, str]) -> None:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    start, end = window_bounds({"timezone": "UTC", **spec}, at(now))
    assert (start, end) == (at(expected[0]), at(expected[1]))


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def problems(trigger: str) -> list[str]:
    source = (
        "id: f\nnamespace: n\ntasks:\n  - {id: t, type: io.kestra.plugin.core.log.Log, message: m}\n"
        + trigger
    )
    with pytest.raises(FlowParseError) as caught:
        parse_flow(source)
    return [f"{error.line}: {error.message}" for error in caught.value.errors]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("    states: [DONE]", "8: Unknown state `DONE`"),
        ("    states: [CREATED]", "cannot react to CREATED"),
        ("    conditions:\n      - {type: io.kestra.plugin.core.condition.Nope}", "unknown condition type"),
        ("    preconditions:\n      flows:\n        - {flowId: x}", "needs a `namespace`"),
        ("    preconditions:\n      timeWindow: {type: WEEKLY}", "`timeWindow.type` must be one of"),
        ("    preconditions:\n      timeWindow: {type: DAILY_TIME_DEADLINE}", "needs `deadline`"),
        ("    preconditions:\n      timeWindow: {window: soon}", "not an ISO 8601 duration"),
        (
            "    preconditions:\n      where:\n        - id: w\n          filters:\n"
            "            - {field: STATE, type: EQUAL_TO}",
            "needs a `value`",
        ),
        ("    preconditions:\n      where:\n        - {id: w, filters: []}", "non-empty list of `filters`"),
        (
            "    preconditions:\n      where:\n        - id: w\n          filters:\n"
            "            - {field: NAMESPACE, type: REGEX, value: 'acme.(etl'}",
            "12: A REGEX filter's `value` is not a valid regular expression: missing ), unterminated",
        ),
        (
            "    preconditions:\n      flows: []\n      resetOnSucess: true",
            "Unknown property `resetOnSucess`",
        ),
    ],
)
def test_invalid_flow_triggers_are_reported_with_their_line(body: str, expected: str) -> None:
    found = problems(f"triggers:\n  - id: t2\n    type: {FLOW}\n{body}\n")
    assert any(expected in problem for problem in found), found


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("    type: io.kestra.plugin.core.trigger.Webhook", "has no `key`"),
        ("    type: io.kestra.plugin.core.trigger.Webhook\n    key: a/b", "cannot contain `/`"),
        ("    type: io.kestra.plugin.core.trigger.Webhook\n    key: '  '", "must not be blank"),
        (f"    type: io.kestra.plugin.core.trigger.Webhook\n    key: {'k' * 257}", "at most 256"),
        (
            "    type: io.kestra.plugin.core.trigger.Webhook\n    key: k\n    returnOutputs: true",
            "requires `wait: true`",
        ),
        (
            "    type: io.kestra.plugin.core.trigger.Webhook\n    key: k\n    secret: x",
            "Unknown property `secret`",
        ),
        (
            "    type: io.kestra.plugin.core.trigger.Webhook\n    key: k\n    conditions:\n"
            "      - {type: io.kestra.plugin.core.condition.MultipleCondition, conditions: {}}",
            "only allowed on a Flow trigger",
        ),
    ],
)
def test_invalid_webhook_triggers_are_reported(body: str, expected: str) -> None:
    found = problems(f"triggers:\n  - id: hook\n{body}\n")
    assert any(expected in problem for problem in found), found


def test_a_valid_flow_trigger_parses() -> None:
    parsed = parse_flow(TRANSFORM)
    [trigger] = parsed.triggers
    assert trigger.type == FLOW and trigger.props["preconditions"]["id"] == "extract_ok"


def test_the_legacy_type_name_is_accepted() -> None:
    source = TRANSFORM.replace(FLOW, "io.kestra.core.models.triggers.types.Flow")
    assert parse_flow(source).triggers[0].type == FLOW


@pytest.mark.sqlite_only
async def test_a_fire_that_cannot_be_stored_keeps_the_window(tmp_path: Path) -> None:
    flows = (upstream("up_a", "a"), upstream("up_b", "b"), joined(SLIDING))
    async with running_engine(tmp_path, *flows) as engine:
        engine.flow_triggers.clock = Clock(START)
        await run_and_settle(engine, "up_a")
        refuse_executions_of(engine.store.path, "joined")
        await run_and_settle(engine, "up_b")  # both met, but the downstream cannot be stored
        assert await executions_of(engine, "joined") == []
        window = await engine.store.flow_trigger_window("acme.etl", "joined", "both_done", "a_and_b")
        assert window is not None and window[2] == ["condition_1", "condition_2"]
        accept_executions_of(engine.store.path, "joined")
        await run_and_settle(engine, "up_a")
        [fired] = await executions_of(engine, "joined")
        assert fired.task_runs[0].outputs == {"value": "a+b"}
        assert await engine.store.flow_trigger_window("acme.etl", "joined", "both_done", "a_and_b") is None


TWO_SETS = f"""
id: joined
namespace: acme.etl
tasks:
  - {{id: log, type: io.kestra.plugin.core.log.Log, message: all}}
triggers:
  - id: all_done
    type: {FLOW}
    conditions:
      - id: first
        type: io.kestra.plugin.core.condition.MultipleCondition
        window: PT12H
        conditions:
          flow_a:
            type: io.kestra.plugin.core.condition.ExecutionFlow
            namespace: acme.etl
            flowId: up_a
    preconditions:
      id: second
      timeWindow: {{type: SLIDING_WINDOW, window: PT12H}}
      flows:
        - {{namespace: acme.etl, flowId: up_b}}
        - {{namespace: acme.etl, flowId: up_c}}
"""


async def test_a_complete_set_is_kept_until_every_set_is_complete(tmp_path: Path) -> None:
    flows = (upstream("up_a", "a"), upstream("up_b", "b"), upstream("up_c", "c"), TWO_SETS)
    async with running_engine(tmp_path, *flows) as engine:
        engine.flow_triggers.clock = Clock(START)
        await run_and_settle(engine, "up_a")  # the first set is complete, the second is not
        await run_and_settle(engine, "up_b")
        assert await executions_of(engine, "joined") == []
        assert await engine.store.flow_trigger_window("acme.etl", "joined", "all_done", "first")
        await run_and_settle(engine, "up_c")
        assert len(await executions_of(engine, "joined")) == 1
        for condition_id in ("first", "second"):  # both start over once it fired
            assert (
                await engine.store.flow_trigger_window("acme.etl", "joined", "all_done", condition_id) is None
            )
        await run_and_settle(engine, "up_c")
        assert len(await executions_of(engine, "joined")) == 1


async def test_a_flow_trigger_reacts_after_a_restart_without_parsing_unrelated_flows(tmp_path: Path) -> None:
    others = [upstream(f"other_{index}", "x") for index in range(30)]
    async with running_engine(tmp_path, EXTRACT, TRANSFORM, *others) as engine:
        await run_and_settle(engine, "extract")
    # The same files at the restart: only the flow with a Flow trigger is parsed, and it still reacts,
    # also to a flow parsed on demand; executions of other flows parse nothing more.
    async with running_engine(tmp_path, EXTRACT, TRANSFORM, *others) as engine:
        assert len(engine.flows) == 32
        assert [uid for uid in engine.flows if engine.flows.is_parsed(uid)] == [("acme.etl", "transform")]
        await run_and_settle(engine, "extract")
        await run_and_settle(engine, "other_3")
        assert len(await executions_of(engine, "transform")) == 2
        assert {uid for uid in engine.flows if engine.flows.is_parsed(uid)} == {
            ("acme.etl", "extract"),
            ("acme.etl", "transform"),
            ("acme.etl", "other_3"),
        }
