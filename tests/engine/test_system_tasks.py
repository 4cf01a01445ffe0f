"""execution.Count, execution.PurgeExecutions, log.PurgeLogs, execution.Resume and trigger.Toggle,
run as flows through a real engine on a real SQLite store."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from tiercel.engine.model import StateType

from .helpers import flow, logs_of, one_run, run, running_engine

pytestmark = pytest.mark.asyncio

HELLO = flow(
    """
    tasks:
      - id: hello
        type: io.kestra.plugin.core.debug.Return
        format: hello
    """,
    flow_id="hello",
    namespace="company.team",
)
OTHER = flow(
    """
    tasks:
      - id: hello
        type: io.kestra.plugin.core.debug.Return
        format: other
    """,
    flow_id="other",
    namespace="company.team.sub",
)
PAUSE = flow(
    """
    tasks:
      - id: pause
        type: io.kestra.plugin.core.flow.Pause
        onResume:
          - id: approved
            type: BOOLEAN
      - id: last
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.pause.onResume.approved }}"
    """,
    flow_id="pause",
    namespace="io.kestra.tests",
)


async def test_count_keeps_the_flows_whose_count_matches_the_expression(tmp_path: Path) -> None:
    """Kestra's Count example (a flow with no execution in the last day): `flows` are counted with
    0 when they have none, `namespaces` give one line each, and `total` sums the kept lines."""
    counter = flow(
        """
        tasks:
          - id: zero
            type: io.kestra.plugin.core.execution.Count
            expression: "{{ count == 0 }}"
            flows:
              - namespace: company.team
                flowId: hello
              - namespace: company.team
                flowId: never
            startDate: "{{ now() | dateAdd(-1, 'DAYS') }}"
          - id: some
            type: io.kestra.core.tasks.executions.Counts
            expression: "{{ count >= 2 }}"
            flows:
              - namespace: company.team
                flowId: hello
            namespaces: [company.team.sub]
            states: [SUCCESS]
            startDate: "{{ now() | dateAdd(-1, 'DAYS') }}"
            endDate: "{{ now() | dateAdd(1, 'DAYS') }}"
        """,
        flow_id="counter",
        namespace="company.team",
    )
    async with running_engine(tmp_path, HELLO, OTHER, counter) as engine:
        for _ in range(2):
            await run(engine, "company.team", "hello")
        for _ in range(3):
            await run(engine, "company.team.sub", "other")
        execution = await run(engine, "company.team", "counter")
    assert execution.state.current is StateType.SUCCESS
    zero = one_run(execution, "zero").outputs
    assert zero == {"results": [{"namespace": "company.team", "flowId": "never", "count": 0}], "total": 0}
    some = one_run(execution, "some").outputs
    assert some is not None
    assert some["results"] == [
        {"namespace": "company.team", "flowId": "hello", "count": 2},
        {"namespace": "company.team", "count": 2},
        {"namespace": "company.team.sub", "count": 3},
    ]
    assert some["total"] == 7


async def test_count_needs_flows_or_namespaces(tmp_path: Path) -> None:
    """Count.run: "You must provide a list of flows or namespaces." when neither is given."""
    counter = flow(
        """
        tasks:
          - id: count
            type: io.kestra.plugin.core.execution.Count
            expression: "{{ count == 0 }}"
            startDate: "2024-01-01T00:00:00Z"
        """
    )
    async with running_engine(tmp_path, counter) as engine:
        execution = await run(engine, "ns", "f")
        lines = [entry.message for entry in await logs_of(engine, execution.id)]
    assert execution.state.current is StateType.FAILED
    assert "You must provide a list of flows or namespaces." in lines


async def test_purge_executions_deletes_ended_executions_their_logs_and_files(tmp_path: Path) -> None:
    """PurgeExecutionsTest.run, through flows: the ended execution of the flow goes with its logs,
    metrics and files; the purging execution, still running, stays; an execution of another flow stays."""
    noisy = flow(
        """
        tasks:
          - id: say
            type: io.kestra.plugin.core.log.Log
            message: a line to purge
          - id: write
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - echo hello > out.txt
              - 'echo ''::{"metrics": [{"name": "files", "type": "counter", "value": 1}]}::'''
            outputFiles: ["out.txt"]
        """,
        flow_id="noisy",
        namespace="company.team",
    )
    purge = flow(
        """
        tasks:
          - id: purge
            type: io.kestra.core.tasks.storages.Purge
            namespace: company.team
            flowId: noisy
            endDate: "{{ now() | dateAdd(1, 'MINUTES') }}"
            states: [SUCCESS]
        """,
        flow_id="purge",
        namespace="system",
    )
    async with running_engine(tmp_path, noisy, HELLO, purge) as engine:
        old = await run(engine, "company.team", "noisy")
        kept = await run(engine, "company.team", "hello")
        uri = one_run(old, "write").outputs["outputFiles"]["out.txt"]  # type: ignore[index]
        assert engine.storage.exists(uri)
        assert await logs_of(engine, old.id)
        stored = [entry.name for entry in await engine.metrics(old.id)]
        # What the task reported, then what its program used.
        assert stored[0] == "files" and set(stored[1:]) <= {"process.cpu.time", "process.memory.peak"}
        execution = await run(engine, "system", "purge")
        assert execution.state.current is StateType.SUCCESS
        outputs = one_run(execution, "purge").outputs
        assert outputs is not None
        assert outputs["executionsCount"] == 1
        assert outputs["taskOutputsCount"] == 1
        assert outputs["logsCount"] >= 1
        assert outputs["storagesCount"] >= 2  # the file and the folders above it
        assert outputs["metricsCount"] == len(stored)
        assert await engine.metrics(old.id) == []
        assert await engine.execution(old.id) is None
        assert await logs_of(engine, old.id) == []
        assert not engine.storage.exists(uri)
        assert await engine.execution(kept.id) is not None
        assert (await engine.execution(execution.id)) is not None


async def test_purge_executions_namespace_prefix_states_and_dates(tmp_path: Path) -> None:
    """ExecutionService.purge: without `flowId` the namespace is a prefix (company.team takes
    company.team.sub); `states` and `endDate` filter; `purgeExecution: false` keeps the executions."""
    purge = flow(
        """
        tasks:
          - id: failed_only
            type: io.kestra.plugin.core.execution.PurgeExecutions
            namespace: company.team
            endDate: "{{ now() | dateAdd(1, 'MINUTES') }}"
            states: [FAILED]
          - id: too_old
            type: io.kestra.plugin.core.execution.PurgeExecutions
            namespace: company.team
            endDate: "2020-01-01T00:00:00Z"
          - id: logs_only
            type: io.kestra.plugin.core.storage.Purge
            namespace: company.team
            endDate: "{{ now() | dateAdd(1, 'MINUTES') }}"
            purgeExecution: false
          - id: all
            type: io.kestra.plugin.core.execution.PurgeExecutions
            namespace: company.team
            endDate: "{{ now() | dateAdd(1, 'MINUTES') }}"
        """,
        flow_id="purge",
        namespace="system",
    )
    async with running_engine(tmp_path, HELLO, OTHER, purge) as engine:
        first = await run(engine, "company.team", "hello")
        second = await run(engine, "company.team.sub", "other")
        execution = await run(engine, "system", "purge")
        assert execution.state.current is StateType.SUCCESS
        counts = {
            task: one_run(execution, task).outputs for task in ("failed_only", "too_old", "logs_only", "all")
        }
        assert counts["failed_only"]["executionsCount"] == 0  # type: ignore[index]
        assert counts["too_old"]["executionsCount"] == 0  # type: ignore[index]
        assert counts["logs_only"]["executionsCount"] == 0  # type: ignore[index]
        assert counts["all"]["executionsCount"] == 2  # type: ignore[index]
        assert await engine.execution(first.id) is None
        assert await engine.execution(second.id) is None


async def test_purge_logs_by_flow_and_level(tmp_path: Path) -> None:
    """PurgeLogsTest.run and the documented example that keeps ERROR logs: the levels given go,
    the others and other flows' lines stay; `count` is the number of lines deleted."""
    chatty = flow(
        """
        tasks:
          - id: info
            type: io.kestra.plugin.core.log.Log
            message: an info line
          - id: error
            type: io.kestra.plugin.core.log.Log
            message: an error line
            level: ERROR
        """,
        flow_id="chatty",
        namespace="company.team",
    )
    purge = flow(
        """
        tasks:
          - id: mine
            type: io.kestra.plugin.core.log.Log
            message: kept, another flow
          - id: purge
            type: io.kestra.plugin.core.log.PurgeLogs
            namespace: company.team
            flowId: chatty
            endDate: "{{ now() | dateAdd(1, 'MINUTES') }}"
            logLevels: [TRACE, DEBUG, INFO, WARN]
        """,
        flow_id="purge",
        namespace="system",
    )
    async with running_engine(tmp_path, chatty, purge) as engine:
        first = await run(engine, "company.team", "chatty")
        second = await run(engine, "company.team", "chatty")
        execution = await run(engine, "system", "purge")
        assert execution.state.current is StateType.SUCCESS
        outputs = one_run(execution, "purge").outputs
        assert outputs == {"count": 2, "executionLogsCount": 2, "nonExecutionLogsCount": 0}
        for done in (first, second):
            assert [entry.message for entry in await logs_of(engine, done.id)] == ["an error line"]
        assert "kept, another flow" in [entry.message for entry in await logs_of(engine, execution.id)]


async def test_resume_another_execution_with_inputs(tmp_path: Path) -> None:
    """ResumeTest.resume (flows pause.yaml and resume-execution.yaml): a paused execution, resumed
    by its id from another flow, runs to its end with the inputs given to its Pause's onResume."""
    resumer = flow(
        """
        inputs:
          - id: executionId
            type: STRING
        tasks:
          - id: resume
            type: io.kestra.plugin.core.execution.Resume
            executionId: "{{ inputs.executionId }}"
            inputs:
              approved: true
        """,
        flow_id="resume-execution",
        namespace="io.kestra.tests",
    )
    async with running_engine(tmp_path, PAUSE, resumer) as engine:
        paused = await run(engine, "io.kestra.tests", "pause")
        assert paused.state.current is StateType.PAUSED
        resume = await run(engine, "io.kestra.tests", "resume-execution", {"executionId": paused.id})
        assert resume.state.current is StateType.SUCCESS
        done = await asyncio.wait_for(engine.wait(paused.id), 10)
    assert done.state.current is StateType.SUCCESS
    assert one_run(done, "last").outputs == {"value": "true"}


async def test_resume_fails_on_a_missing_or_running_execution(tmp_path: Path) -> None:
    """PluginUtilsService.executionFromTaskParameters and ExecutionService.resume: an unknown id, a
    `namespace` without `flowId`, and this very execution (running, not paused) all fail the task."""
    resumer = flow(
        """
        tasks:
          - id: errors
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: unknown
                type: io.kestra.plugin.core.flow.AllowFailure
                tasks:
                  - id: missing
                    type: io.kestra.plugin.core.execution.Resume
                    executionId: nope
              - id: half
                type: io.kestra.plugin.core.flow.AllowFailure
                tasks:
                  - id: namespace_only
                    type: io.kestra.plugin.core.execution.Resume
                    executionId: nope
                    namespace: ns
              - id: self
                type: io.kestra.plugin.core.flow.AllowFailure
                tasks:
                  - id: itself
                    type: io.kestra.plugin.core.execution.Resume
        """
    )
    async with running_engine(tmp_path, resumer) as engine:
        execution = await run(engine, "ns", "f")
        lines = [entry.message for entry in await logs_of(engine, execution.id)]
    assert {
        task: one_run(execution, task).state.current for task in ("missing", "namespace_only", "itself")
    } == {
        "missing": StateType.FAILED,
        "namespace_only": StateType.FAILED,
        "itself": StateType.FAILED,
    }
    assert "No execution found for execution id nope" in lines
    assert "Both `namespace` and `flowId` must be set when `executionId` is set." in lines


async def test_toggle_enables_and_disables_a_trigger(tmp_path: Path) -> None:
    """ToggleTest.toggle (flow trigger-toggle.yaml, with the old type name): the Schedule trigger of
    the flow, disabled, is enabled by the task; `enabled: false` (the default) disables it."""
    toggled = textwrap.dedent(
        """
        id: trigger-toggle
        namespace: io.kestra.tests.trigger
        inputs:
          - id: toggle
            type: BOOLEAN
            defaults: true
        tasks:
          - id: if
            type: io.kestra.plugin.core.flow.If
            condition: "{{ inputs.toggle }}"
            then:
              - id: enable
                type: io.kestra.core.tasks.trigger.Toggle
                trigger: schedule
                enabled: true
            else:
              - id: disable
                type: io.kestra.plugin.core.trigger.Toggle
                trigger: schedule
        triggers:
          - id: schedule
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "0 0 1 1 *"
        """
    )

    async def enabled() -> bool:
        states = await engine.trigger_states()
        return next(state.enabled for state in states if state.trigger_id == "schedule")

    async with running_engine(tmp_path, toggled) as engine:
        await engine.set_trigger_enabled("io.kestra.tests.trigger", "trigger-toggle", "schedule", False)
        assert not await enabled()
        execution = await run(engine, "io.kestra.tests.trigger", "trigger-toggle")
        assert execution.state.current is StateType.SUCCESS
        assert await enabled()
        execution = await run(engine, "io.kestra.tests.trigger", "trigger-toggle", {"toggle": False})
        assert execution.state.current is StateType.SUCCESS
        assert not await enabled()


async def test_toggle_fails_on_an_unknown_flow_or_trigger(tmp_path: Path) -> None:
    """Toggle.run: "Unable to find flow ..." and "Unable to find trigger ... for the flow ..."."""
    toggles = flow(
        """
        tasks:
          - id: flows
            type: io.kestra.plugin.core.flow.AllowFailure
            tasks:
              - id: no_flow
                type: io.kestra.plugin.core.trigger.Toggle
                flowId: missing
                trigger: schedule
          - id: triggers
            type: io.kestra.plugin.core.flow.AllowFailure
            tasks:
              - id: no_trigger
                type: io.kestra.plugin.core.trigger.Toggle
                trigger: missing
        """
    )
    async with running_engine(tmp_path, toggles) as engine:
        execution = await run(engine, "ns", "f")
        lines = [entry.message for entry in await logs_of(engine, execution.id)]
    assert one_run(execution, "no_flow").state.current is StateType.FAILED
    assert one_run(execution, "no_trigger").state.current is StateType.FAILED
    assert (
        "Unable to find flow ns.missing. Make sure the flow exists and the current execution is "
        "authorized to access it." in lines
    )
    assert "Unable to find trigger missing for the flow ns.f" in lines
