"""Executions that must end, whatever their flows do, and Kestra details that are easy to miss."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.engine.helpers import (
    flow,
    logs_of,
    messages,
    one_run,
    run,
    run_flow,
    running_engine,
    runs_of,
    states,
)
from tiercel.engine.model import StateType

S = StateType


async def test_a_broken_execution_fails_alone_and_others_still_run(tmp_path: Path) -> None:
    bad = flow(
        """
        tasks:
          - {id: pause, type: io.kestra.plugin.core.flow.Pause, pauseDuration: PT0.1S, behavior: bogus}
        """,
        flow_id="bad",
    )
    good = flow(
        "tasks:\n  - {id: ok, type: io.kestra.plugin.core.debug.Return, format: fine}\n", flow_id="good"
    )
    async with running_engine(tmp_path, bad, good) as engine:
        first = await engine.trigger("ns", "bad")
        second = await engine.trigger("ns", "good")
        ended_bad = await asyncio.wait_for(engine.wait(first), 10)
        ended_good = await asyncio.wait_for(engine.wait(second), 10)
        lines = messages(await logs_of(engine, first))
    assert ended_bad.state.current is S.FAILED
    assert any("bogus" in line.lower() for line in lines)
    assert ended_good.state.current is S.SUCCESS


async def test_a_failing_branch_waits_for_a_paused_sibling(tmp_path: Path) -> None:
    execution, _ = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: both
                type: io.kestra.plugin.core.flow.Parallel
                tasks:
                  - {id: pause, type: io.kestra.plugin.core.flow.Pause, delay: PT0.3S}
                  - {id: boom, type: io.kestra.plugin.core.execution.Fail}
            """
        ),
    )
    assert execution.state.current is S.FAILED
    assert all(run_.state.current.is_terminated for run_ in execution.task_runs)


async def test_waiting_for_a_pause_also_waits_for_running_tasks(tmp_path: Path) -> None:
    async with running_engine(
        tmp_path,
        flow(
            """
            tasks:
              - id: both
                type: io.kestra.plugin.core.flow.Parallel
                tasks:
                  - {id: pause, type: io.kestra.plugin.core.flow.Pause}
                  - {id: slow, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.5S}
            """
        ),
    ) as engine:
        started = time.monotonic()
        execution = await run(engine, "ns", "f")
        waited = time.monotonic() - started
        await engine.kill(execution.id)
    assert execution.state.current is S.PAUSED
    assert states(execution)["slow"] is S.SUCCESS
    assert waited >= 0.5


async def test_a_zero_interval_wait_for_still_ends(tmp_path: Path) -> None:
    execution, _ = await asyncio.wait_for(
        run_flow(
            tmp_path,
            flow(
                """
                tasks:
                  - id: loop
                    type: io.kestra.plugin.core.flow.WaitFor
                    condition: "{{ false }}"
                    checkFrequency: {interval: PT0S, maxIterations: 20}
                    tasks:
                      - {id: skipped, type: io.kestra.plugin.core.log.Log, message: x, runIf: "false"}
                """
            ),
        ),
        20,
    )
    assert execution.state.current is S.SUCCESS
    assert (one_run(execution, "loop").outputs or {})["iterationCount"] == 20


async def test_a_subflow_task_is_retried_with_a_new_child(tmp_path: Path) -> None:
    parent = flow(
        """
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: child
            retry: {type: constant, interval: PT0.1S, maxAttempt: 3}
        """,
        flow_id="parent",
    )
    child = flow("tasks:\n  - {id: boom, type: io.kestra.plugin.core.execution.Fail}\n", flow_id="child")
    async with running_engine(tmp_path, parent, child) as engine:
        execution = await run(engine, "ns", "parent")
        children = [row for row in await engine.store.list_executions(flow_id="child")]
    assert execution.state.current is S.FAILED
    assert len(one_run(execution, "call").attempts) == 3
    assert len(children) == 3


async def test_if_decides_once_and_records_the_result(tmp_path: Path) -> None:
    execution, _ = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: check
                type: io.kestra.plugin.core.flow.If
                condition: "{{ kv('flag', errorOnMissing=false) is null }}"
                then:
                  - {id: set, type: io.kestra.plugin.core.kv.Set, key: flag, value: "on"}
                  - {id: then2, type: io.kestra.plugin.core.log.Log, message: still then}
                else:
                  - {id: else1, type: io.kestra.plugin.core.log.Log, message: else}
            """
        ),
    )
    assert {run_.task_id for run_ in execution.task_runs} == {"check", "set", "then2"}
    assert (one_run(execution, "check").outputs or {})["evaluationResult"] is True


async def test_flow_outputs_are_rendered_when_the_execution_fails(tmp_path: Path) -> None:
    execution, _ = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - {id: answer, type: io.kestra.plugin.core.debug.Return, format: "42"}
              - {id: boom, type: io.kestra.plugin.core.execution.Fail}
            outputs:
              - {id: answer, type: STRING, value: "{{ outputs.answer.value }}"}
            """
        ),
    )
    assert execution.state.current is S.FAILED
    assert execution.outputs == {"answer": "42"}


async def test_subflow_labels_and_trigger_follow_kestra(tmp_path: Path) -> None:
    parent = flow(
        """
        labels: {team: parent-team, owner: ada}
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: child
            inheritLabels: true
        """,
        flow_id="parent",
    )
    child = flow(
        """
        labels: {team: child-team}
        tasks:
          - {id: who, type: io.kestra.plugin.core.debug.Return, format: "{{ trigger.taskId }}"}
        """,
        flow_id="child",
    )
    async with running_engine(tmp_path, parent, child) as engine:
        execution = await run(engine, "ns", "parent")
        child_id = (one_run(execution, "call").outputs or {})["executionId"]
        stored = await engine.store.get_execution(child_id)
    assert stored is not None
    labels = stored.labels_map()
    assert labels["team"] == "child-team" and labels["owner"] == "ada"
    assert labels["system.correlationId"] == execution.id
    assert (one_run(stored, "who").outputs or {})["value"] == "call"


async def test_labels_task_accepts_json_text_and_loops_see_iteration(tmp_path: Path) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: labels
                type: io.kestra.plugin.core.execution.Labels
                labels: '{"stage": "prod"}'
              - id: each
                type: io.kestra.plugin.core.flow.ForEach
                values: ["a"]
                tasks:
                  - id: show
                    type: io.kestra.plugin.core.log.Log
                    message: "value={{ taskrun.value }} iteration={{ taskrun.iteration }}"
            """
        ),
    )
    assert execution.labels_map()["stage"] == "prod"
    # A ForEach holds neither a value nor outputs, so it is not one of `parents` (Kestra's
    # Execution.parents); the loop's value and iteration are the task run's own.
    assert "value=a iteration=0" in messages(logs)
    assert len(runs_of(execution, "show")) == 1


async def test_outputs_read_inside_a_step_are_current(tmp_path: Path) -> None:
    # Each If starts in the same executor step as its siblings; each must see the outputs of the
    # Return that ran before it for the same value, and the last round of a WaitFor wins.
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: each
                type: io.kestra.plugin.core.flow.ForEach
                values: ["a", "b", "c"]
                concurrencyLimit: 0
                tasks:
                  - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "v-{{ taskrun.value }}"}
                  - id: check
                    type: io.kestra.plugin.core.flow.If
                    condition: "{{ outputs.ret[taskrun.value].value == 'v-' ~ taskrun.value }}"
                    then:
                      - id: seen
                        type: io.kestra.plugin.core.log.Log
                        message: "{{ outputs.check[parent.taskrun.value].evaluationResult }}"
              - id: loop
                type: io.kestra.plugin.core.flow.WaitFor
                condition: "{{ outputs.count.value == '3' }}"
                checkFrequency: {interval: PT0.01S}
                tasks:
                  - id: count
                    type: io.kestra.plugin.core.debug.Return
                    format: "{{ outputs.loop.iterationCount }}"
              - {id: last, type: io.kestra.plugin.core.log.Log, message: "last={{ outputs.count.value }}"}
            """
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    assert messages(logs).count("true") == 3
    assert "last=3" in messages(logs)
