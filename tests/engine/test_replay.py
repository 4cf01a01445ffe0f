"""Replay from a chosen task run, and change status, on real executions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.engine.helpers import logs_of, run, running_engine
from tiercel.engine.errors import EngineCommandError
from tiercel.engine.model import StateType

FLOW = """
    id: pipeline
    namespace: acme.data
    inputs:
      - id: size
        type: INT
        defaults: 3
    tasks:
      - id: extract
        type: io.kestra.plugin.core.debug.Return
        format: "extracted {{ inputs.size }} at {{ execution.id }}"
      - id: steps
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: transform
            type: io.kestra.plugin.core.debug.Return
            format: "from {{ outputs.extract.value }}"
          - id: load
            type: io.kestra.plugin.core.execution.Fail
            runIf: "{{ kv('broken', errorOnMissing=false) ?? false }}"
      - id: report
        type: io.kestra.plugin.core.debug.Return
        format: "done"
    """


async def test_replay_from_a_task_run_keeps_what_ran_before_and_runs_the_rest_again(tmp_path: Path) -> None:
    async with running_engine(tmp_path, FLOW) as engine:
        await engine.store.kv_set("acme.data", "broken", True)
        first = await run(engine, "acme.data", "pipeline", {"size": 5})
        assert first.state.current is StateType.FAILED
        load = next(r for r in first.task_runs if r.task_id == "load")

        await engine.store.kv_set("acme.data", "broken", False)
        replay_id = await engine.replay(first.id, load.id)
        second = await asyncio.wait_for(engine.wait(replay_id), 20)

        assert second.state.current is StateType.SUCCESS
        assert second.original_id == first.id
        assert second.inputs == first.inputs
        by_task = {r.task_id: r for r in second.task_runs}
        # `extract` was kept as it ran: its output still names the first execution.
        assert by_task["extract"].outputs == {"value": f"extracted 5 at {first.id}"}
        assert by_task["extract"].id != next(r for r in first.task_runs if r.task_id == "extract").id
        assert by_task["transform"].outputs == {"value": f"from extracted 5 at {first.id}"}
        assert by_task["load"].state.current is StateType.SKIPPED
        assert by_task["report"].state.current is StateType.SUCCESS
        assert by_task["transform"].parent_task_run_id == by_task["steps"].id
        # The first execution is untouched.
        assert (await engine.execution(first.id)).state.current is StateType.FAILED  # type: ignore[union-attr]

        # A replay of the replay still points at the first one.
        third = await asyncio.wait_for(engine.wait(await engine.replay(second.id)), 20)
        assert third.original_id == first.id
        assert third.state.current is StateType.SUCCESS
        extract = next(r for r in third.task_runs if r.task_id == "extract")
        assert extract.outputs == {"value": f"extracted 5 at {third.id}"}  # ran again from the start


async def test_replay_and_change_status_refuse_what_they_cannot_do(tmp_path: Path) -> None:
    pause = """
        id: waits
        namespace: acme.data
        tasks:
          - id: approve
            type: io.kestra.plugin.core.flow.Pause
        """
    async with running_engine(tmp_path, FLOW, pause) as engine:
        paused = await run(engine, "acme.data", "waits")
        with pytest.raises(EngineCommandError, match="only an ended execution replays"):
            await engine.replay(paused.id)
        done = await run(engine, "acme.data", "pipeline")
        with pytest.raises(EngineCommandError, match="no task run nope"):
            await engine.replay(done.id, "nope")
        with pytest.raises(EngineCommandError, match="No execution"):
            await engine.replay("missing")
        with pytest.raises(EngineCommandError, match="only ended executions change status"):
            await engine.change_status(paused.id, StateType.SUCCESS)
        with pytest.raises(EngineCommandError, match="not RUNNING"):
            await engine.change_status(done.id, StateType.RUNNING)


async def test_change_status_sets_an_ended_execution_and_says_so_in_its_logs(tmp_path: Path) -> None:
    async with running_engine(tmp_path, FLOW) as engine:
        await engine.store.kv_set("acme.data", "broken", True)
        failed = await run(engine, "acme.data", "pipeline")
        assert failed.state.current is StateType.FAILED
        await engine.change_status(failed.id, StateType.SUCCESS)
        stored = await engine.store.get_execution(failed.id)
        assert stored is not None and stored.state.current is StateType.SUCCESS
        assert [h.state for h in stored.state.histories][-2:] == [StateType.FAILED, StateType.SUCCESS]
        messages = [entry.message for entry in await logs_of(engine, failed.id)]
        assert "Status changed by hand from FAILED to SUCCESS" in messages


async def test_two_restarts_at_once_run_the_failed_task_once(tmp_path: Path) -> None:
    async with running_engine(tmp_path, FLOW) as engine:
        await engine.store.kv_set("acme.data", "broken", True)
        failed = await run(engine, "acme.data", "pipeline")
        assert failed.state.current is StateType.FAILED
        results = await asyncio.gather(
            engine.restart(failed.id), engine.restart(failed.id), return_exceptions=True
        )
        refused = [r for r in results if isinstance(r, EngineCommandError)]
        assert len(refused) == 1 and "already restarting" in str(refused[0])
        again = await asyncio.wait_for(engine.wait(failed.id), 20)
        load = next(r for r in again.task_runs if r.task_id == "load")
        assert len(load.attempts) == 2  # the first attempt and one restart, not two
