"""Retries with `behavior: CREATE_NEW_EXECUTION`: the failed execution ends RETRIED and a new one
runs the flow again, until the retry's attempts or duration are used up.

Kestra: ExecutorService (a failed task with such a retry marks the task run and the execution
RETRIED and schedules a RESTART_FAILED_FLOW delay; the delay replays the execution), its test flows
retry-new-execution-task-attempts.yml and retry-new-execution-flow-duration.yml, and
AbstractRunnerRetryTest's assertion that they end RETRIED, RETRIED, FAILED.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from tests.engine.helpers import flow, run, running_engine
from tests.waiting import until
from tiercel.engine.engine import Engine
from tiercel.engine.model import Execution, StateType as S


async def chain(engine: Engine, flow_id: str) -> list[Execution]:
    """Every execution of the flow, oldest first, once none is unfinished."""

    async def ended() -> list[Execution]:
        rows = await engine.store.list_executions(flow_id=flow_id)
        found = [await engine.store.get_execution(row.id) for row in reversed(rows)]
        return [execution for execution in found if execution is not None]

    async def all_ended() -> bool:
        executions = await ended()
        return (
            bool(executions)
            and all(e.state.current.is_terminated for e in executions)
            and (executions[-1].state.current is not S.RETRIED)
        )

    await until(all_ended, timeout=30)
    return await ended()


async def test_a_task_retry_creates_new_executions_until_its_attempts_are_used(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            retry:
              behavior: CREATE_NEW_EXECUTION
              type: constant
              maxAttempt: 3
              interval: PT0.1S
        """,
        flow_id="attempts",
    )
    async with running_engine(tmp_path, source) as engine:
        first = await run(engine, "ns", "attempts")
        executions = await chain(engine, "attempts")
    assert first.state.current is S.RETRIED
    assert [e.state.current for e in executions] == [S.RETRIED, S.RETRIED, S.FAILED]
    assert [e.attempt_number for e in executions] == [1, 2, 3]
    assert {e.original_id or e.id for e in executions} == {first.id}
    assert executions[0].task_runs[0].state.current is S.RETRIED
    assert executions[-1].task_runs[0].state.current is S.FAILED
    # The next attempt starts only after the retry's interval.
    for previous, following in itertools.pairwise(executions):
        started = following.state.first_date(S.RUNNING)
        assert started is not None and previous.state.end_date is not None
        assert started >= previous.state.end_date
    assert executions[0].to_json()["metadata"]["attemptNumber"] == 1


async def test_a_flow_retry_counts_its_duration_from_the_first_attempt(tmp_path: Path) -> None:
    """retry-new-execution-flow-duration.yml: the flow-level retry, bounded by maxDuration from the
    first attempt's creation; an interval of a third of it gives two retries."""
    source = flow(
        """
        retry:
          behavior: CREATE_NEW_EXECUTION
          type: constant
          interval: PT0.5S
          maxDuration: PT1.2S
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
        """,
        flow_id="duration",
    )
    async with running_engine(tmp_path, source) as engine:
        await run(engine, "ns", "duration")
        executions = await chain(engine, "duration")
    assert [e.state.current for e in executions] == [S.RETRIED, S.RETRIED, S.FAILED]
    created = executions[0].state.start_date
    assert all(e.original_created == created for e in executions[1:])


async def test_a_pending_attempt_survives_an_engine_restart(tmp_path: Path) -> None:
    """The next attempt is stored with the RETRIED execution: an engine stopped meanwhile starts it."""
    source = flow(
        """
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            retry:
              behavior: CREATE_NEW_EXECUTION
              type: constant
              maxAttempt: 2
              interval: PT1S
        """,
        flow_id="restart",
    )
    async with running_engine(tmp_path, source) as engine:
        await run(engine, "ns", "restart")
        rows = await engine.store.list_executions(flow_id="restart")
        assert len(rows) == 2  # the RETRIED one and its next attempt, waiting for its date
    async with running_engine(tmp_path, source) as engine:
        executions = await chain(engine, "restart")
    assert [e.state.current for e in executions] == [S.RETRIED, S.FAILED]


async def test_the_default_behavior_retries_in_the_same_execution(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            retry: {type: constant, maxAttempt: 2, interval: PT0.05S}
        """,
        flow_id="same",
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await asyncio.wait_for(run(engine, "ns", "same"), 20)
        rows = await engine.store.list_executions(flow_id="same")
    assert execution.state.current is S.FAILED and len(rows) == 1
    assert len(execution.task_runs[0].attempts) == 2
