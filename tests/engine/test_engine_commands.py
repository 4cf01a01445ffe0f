"""Engine commands (kill, resume, restart, trigger), recovery after a stop, persistence and events."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.engine.helpers import flow, logs_of, one_run, run, running_engine, states
from tests.engine.test_flowable_tasks import max_overlap
from tests.waiting import HANG, until
from tiercel.engine.engine import Engine
from tiercel.engine.errors import EngineCommandError
from tiercel.engine.events import Event, ExecutionChanged, LogsAppended, TaskRunChanged
from tiercel.engine.inputs import InputError
from tiercel.engine.model import Execution, LogEntry, LogLevel, StateType
from tiercel.engine.store import Store

S = StateType


async def execution_when(
    engine: Engine, execution_id: str, predicate: Callable[[Execution], bool]
) -> Execution:
    """The engine's view of an execution once `predicate` holds."""

    async def matching() -> Execution | None:
        execution = await engine.execution(execution_id)
        return execution if execution is not None and predicate(execution) else None

    return await until(matching, what=f"the awaited state of {execution_id}", interval=0.005)


def task_running(task_id: str) -> Callable[[Execution], bool]:
    return lambda execution: any(
        r.task_id == task_id and r.state.current is S.RUNNING for r in execution.task_runs
    )


LONG_SLEEP = flow(
    """
    tasks:
      - {id: before, type: io.kestra.plugin.core.log.Log, message: before}
      - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT1H}
      - {id: after, type: io.kestra.plugin.core.log.Log, message: never}
    """
)


# ---------------------------------------------------------------------------------------------
# kill
# ---------------------------------------------------------------------------------------------


async def test_kill_stops_a_long_sleep_quickly(tmp_path: Path) -> None:
    async with running_engine(tmp_path, LONG_SLEEP) as engine:
        execution_id = await engine.trigger("ns", "f")
        await execution_when(engine, execution_id, task_running("nap"))
        await engine.kill(execution_id)
        # The hour-long sleep ends at once: only a kill that does not reach it waits out the timeout.
        execution = await asyncio.wait_for(engine.wait(execution_id), HANG)
        stored = await engine.store.get_execution(execution_id)
    assert execution.state.current is S.KILLED
    assert states(execution) == {"before": S.SUCCESS, "nap": S.KILLED}
    assert all(r.state.current.is_terminated for r in execution.task_runs)
    assert [h.state for h in execution.state.histories][-2:] == [S.KILLING, S.KILLED]
    nap = one_run(execution, "nap")
    assert nap.attempts[-1].state.current is S.KILLED
    assert stored is not None and stored.to_json() == execution.to_json()


async def test_kill_stops_every_branch_of_a_parallel(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: par
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - {id: n1, type: io.kestra.plugin.core.flow.Sleep, duration: PT30S}
              - {id: n2, type: io.kestra.plugin.core.flow.Sleep, duration: PT30S}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: never}
        errors:
          - {id: handler, type: io.kestra.plugin.core.log.Log, message: never}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution_id = await engine.trigger("ns", "f")
        await execution_when(engine, execution_id, lambda e: task_running("n1")(e) and task_running("n2")(e))
        await engine.kill(execution_id)
        execution = await asyncio.wait_for(engine.wait(execution_id), 5)
    assert execution.state.current is S.KILLED
    assert states(execution) == {"par": S.KILLED, "n1": S.KILLED, "n2": S.KILLED}


async def test_kill_a_paused_execution(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: pause, type: io.kestra.plugin.core.flow.Pause}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: never}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        paused = await run(engine, "ns", "f")
        assert paused.state.current is S.PAUSED
        await engine.kill(paused.id)
        execution = await asyncio.wait_for(engine.wait(paused.id), 5)
        stored = await engine.store.get_execution(paused.id)
    assert execution.state.current is S.KILLED
    assert states(execution) == {"pause": S.KILLED}
    assert stored is not None and stored.state.current is S.KILLED


async def test_kill_a_parent_kills_its_waiting_subflow(tmp_path: Path) -> None:
    child = flow(
        """
        tasks:
          - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT30S}
        """,
        flow_id="child",
    )
    parent = flow(
        """
        tasks:
          - {id: call, type: io.kestra.plugin.core.flow.Subflow, namespace: ns, flowId: child}
        """
    )
    async with running_engine(tmp_path, parent, child) as engine:
        execution_id = await engine.trigger("ns", "f")
        await execution_when(engine, execution_id, task_running("call"))
        children = await until(
            lambda: [i for i in engine.live_execution_ids() if i != execution_id], what="the child execution"
        )
        assert len(children) == 1
        await execution_when(engine, children[0], task_running("nap"))
        await engine.kill(execution_id)
        execution = await asyncio.wait_for(engine.wait(execution_id), 5)
        child_execution = await asyncio.wait_for(engine.wait(children[0]), 5)
    assert execution.state.current is S.KILLED
    assert child_execution.state.current is S.KILLED


async def test_kill_of_a_finished_execution_is_refused(tmp_path: Path) -> None:
    source = flow("tasks:\n  - {id: ok, type: io.kestra.plugin.core.log.Log, message: ok}\n")
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        with pytest.raises(EngineCommandError):
            await engine.kill(execution.id)
        with pytest.raises(EngineCommandError):
            await engine.kill("no-such-execution")
        with pytest.raises(EngineCommandError):
            await engine.resume(execution.id)
        after = await engine.store.get_execution(execution.id)
    assert after is not None and after.state.current is S.SUCCESS


# ---------------------------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------------------------


async def test_resume_without_on_resume_inputs_goes_on(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: pause, type: io.kestra.plugin.core.flow.Pause}
          - {id: after, type: io.kestra.plugin.core.debug.Return, format: done}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        paused = await run(engine, "ns", "f")
        await engine.resume(paused.id)
        execution = await asyncio.wait_for(engine.wait(paused.id), 5)
    assert execution.state.current is S.SUCCESS
    assert states(execution) == {"pause": S.SUCCESS, "after": S.SUCCESS}
    history = [h.state for h in execution.state.histories]
    assert history.index(S.PAUSED) < len(history) - 1
    assert history[history.index(S.PAUSED) + 1] is S.RUNNING


# ---------------------------------------------------------------------------------------------
# restart
# ---------------------------------------------------------------------------------------------


async def test_restart_of_a_failed_execution_reruns_the_failed_task_in_place(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: first, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.attemptsCount }}"}
          - id: check
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{ kv('go', errorOnMissing=false) != 'yes' }}"
          - {id: last, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.attemptsCount }}"}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        failed = await run(engine, "ns", "f")
        assert failed.state.current is S.FAILED
        assert states(failed) == {"first": S.SUCCESS, "check": S.FAILED}
        first_before = one_run(failed, "first")
        check_before = one_run(failed, "check")
        await engine.store.kv_set("ns", "go", "yes")
        await engine.restart(failed.id)
        execution = await asyncio.wait_for(engine.wait(failed.id), 5)
        stored = await engine.store.get_execution(failed.id)
    assert execution.id == failed.id
    assert execution.state.current is S.SUCCESS
    assert S.RESTARTED in [h.state for h in execution.state.histories]
    assert states(execution) == {"first": S.SUCCESS, "check": S.SUCCESS, "last": S.SUCCESS}
    # The successful task is kept as it was; the failed one gets a new attempt in the same task run.
    assert one_run(execution, "first") == first_before
    check = one_run(execution, "check")
    assert check.id == check_before.id
    assert [a.state.current for a in check.attempts] == [S.FAILED, S.SUCCESS]
    assert stored is not None and stored.to_json() == execution.to_json()


async def test_restart_runs_after_execution_tasks_again_once_the_execution_ended(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: check
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{ kv('go', errorOnMissing=false) != 'yes' }}"
          - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.2S}
        afterExecution:
          - {id: notify, type: io.kestra.plugin.core.log.Log, message: "ended {{ execution.state }}"}
          - id: alert
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{ execution.state == 'FAILED' }}"
        """
    )
    async with running_engine(tmp_path, source) as engine:
        failed = await run(engine, "ns", "f")
        assert states(failed) == {"check": S.FAILED, "notify": S.SUCCESS, "alert": S.FAILED}
        await engine.store.kv_set("ns", "go", "yes")
        await engine.restart(failed.id)
        execution = await asyncio.wait_for(engine.wait(failed.id), 5)
        logs = await logs_of(engine, failed.id)
    assert execution.state.current is S.SUCCESS
    nap_end = one_run(execution, "nap").state.end_date
    assert nap_end is not None
    # Every afterExecution attempt of the restarted run starts once the tasks are over ...
    restarted_at = execution.state.first_date(S.RESTARTED)
    assert restarted_at is not None
    for task_id in ("notify", "alert"):
        later = [a for a in one_run(execution, task_id).attempts if a.state.start_date >= restarted_at]
        assert later and all(a.state.start_date >= nap_end for a in later), task_id
    # ... and sees the new end state.
    assert "ended SUCCESS" in [e.message for e in logs if e.task_id == "notify"]


async def test_restart_of_a_successful_execution_is_refused(tmp_path: Path) -> None:
    source = flow("tasks:\n  - {id: ok, type: io.kestra.plugin.core.log.Log, message: ok}\n")
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        with pytest.raises(EngineCommandError):
            await engine.restart(execution.id)
        with pytest.raises(EngineCommandError):
            await engine.restart("no-such-execution")


async def test_restart_of_a_killed_execution(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: "{{ kv('short', errorOnMissing=false) == 'yes' ? 'PT0S' : 'PT30S' }}"
          - {id: after, type: io.kestra.plugin.core.log.Log, message: after}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution_id = await engine.trigger("ns", "f")
        await execution_when(engine, execution_id, task_running("nap"))
        await engine.kill(execution_id)
        killed = await asyncio.wait_for(engine.wait(execution_id), 5)
        assert killed.state.current is S.KILLED
        await engine.store.kv_set("ns", "short", "yes")
        await engine.restart(execution_id)
        execution = await asyncio.wait_for(engine.wait(execution_id), 5)
    assert execution.state.current is S.SUCCESS
    assert states(execution) == {"nap": S.SUCCESS, "after": S.SUCCESS}
    assert [a.state.current for a in one_run(execution, "nap").attempts] == [S.KILLED, S.SUCCESS]


# ---------------------------------------------------------------------------------------------
# recovery after a stop
# ---------------------------------------------------------------------------------------------


async def _stop_during_sleep(folder: Path, source: str) -> str:
    """Start an execution, stop the engine while `nap` sleeps; return the execution id."""
    flows_dir = folder / "flows"
    flows_dir.mkdir(exist_ok=True)
    (flows_dir / "f.yml").write_text(source)
    engine = Engine(await Store.open(folder / "tiercel.db"), flows_dir=flows_dir)
    await engine.start(control=False)
    try:
        execution_id = await engine.trigger("ns", "f")
        await execution_when(engine, execution_id, task_running("nap"))
    finally:
        await engine.stop()
    return execution_id


async def _recover(folder: Path, execution_id: str) -> tuple[Execution, list[LogEntry], Execution]:
    """Open a new engine on the same database; return the execution at its end, its logs, and the
    execution as the new engine found it."""
    store = await Store.open(folder / "tiercel.db")
    found = await store.get_execution(execution_id)
    assert found is not None
    engine = Engine(store, flows_dir=folder / "flows")
    await engine.start(control=False)
    try:
        execution = await asyncio.wait_for(engine.wait(execution_id), 5)
        logs = await logs_of(engine, execution_id)
    finally:
        await engine.stop()
    return execution, logs, found


async def test_a_new_engine_ends_an_execution_interrupted_by_a_stop(tmp_path: Path) -> None:
    # Marked not idempotent: an interrupted run of `nap` fails instead of running again.
    source = flow(
        """
        labels:
          tiercel.notIdempotent: nap
        tasks:
          - {id: before, type: io.kestra.plugin.core.log.Log, message: "before {{ flow.id }}"}
          - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT5S}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: after}
        """
    )
    execution_id = await _stop_during_sleep(tmp_path, source)
    execution, logs, found = await _recover(tmp_path, execution_id)
    # The first engine left it unfinished, with everything done so far.
    assert not found.state.current.is_terminated
    assert states(found)["before"] is S.SUCCESS
    assert states(found)["nap"] is S.RUNNING
    # The new engine ends it: the interrupted task fails, nothing after it runs.
    assert execution.state.current is S.FAILED
    assert states(execution) == {"before": S.SUCCESS, "nap": S.FAILED}
    assert one_run(execution, "before") == one_run(found, "before")
    assert all(r.state.current.is_terminated for r in execution.task_runs)
    # Nothing lost, nothing written twice.
    assert [e.message for e in logs if e.task_id == "before"] == ["before f"]
    assert any(
        e.level is LogLevel.ERROR and "engine stopped while the task was running" in e.message
        for e in logs
        if e.task_id == "nap"
    )


async def test_an_interrupted_task_with_a_retry_is_retried_by_the_new_engine(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: "{{ taskrun.attemptsCount == 0 ? 'PT5S' : 'PT0.01S' }}"
            retry: {type: constant, interval: PT0.05S, maxAttempt: 2}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: after}
        """
    )
    execution_id = await _stop_during_sleep(tmp_path, source)
    execution, _, _ = await _recover(tmp_path, execution_id)
    assert execution.state.current is S.SUCCESS
    nap = one_run(execution, "nap")
    assert [a.state.current for a in nap.attempts] == [S.FAILED, S.SUCCESS]
    assert states(execution)["after"] is S.SUCCESS


async def test_a_paused_execution_survives_a_restart_of_the_engine(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: pause, type: io.kestra.plugin.core.flow.Pause}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: after}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        paused = await run(engine, "ns", "f")
    assert paused.state.current is S.PAUSED
    async with running_engine(tmp_path, source) as engine:
        still = await engine.execution(paused.id)
        assert still is not None and still.state.current is S.PAUSED
        await engine.resume(paused.id)
        execution = await asyncio.wait_for(engine.wait(paused.id), 5)
    assert execution.state.current is S.SUCCESS
    assert states(execution) == {"pause": S.SUCCESS, "after": S.SUCCESS}


async def test_a_new_engine_resumes_a_pause_delay_a_pending_retry_and_a_waiting_subflow(
    tmp_path: Path,
) -> None:
    child = flow(
        """
        tasks:
          - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.2S}
        """,
        flow_id="child",
    )
    source = flow(
        """
        tasks:
          - {id: pause, type: io.kestra.plugin.core.flow.Pause, delay: PT0.3S}
          - id: flaky
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{ taskrun.attemptsCount == 0 }}"
            retry: {type: constant, interval: PT0.3S, maxAttempt: 2}
          - {id: call, type: io.kestra.plugin.core.flow.Subflow, namespace: ns, flowId: child}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: after}
        """
    )
    checkpoints = [
        lambda e: any(r.task_id == "pause" and r.state.current is S.PAUSED for r in e.task_runs),
        lambda e: any(r.task_id == "flaky" and r.state.current is S.RETRYING for r in e.task_runs),
        task_running("call"),
    ]
    execution_id = None
    for checkpoint in checkpoints:
        async with running_engine(tmp_path, source, child) as engine:
            if execution_id is None:
                execution_id = await engine.trigger("ns", "f")
            await execution_when(engine, execution_id, checkpoint)
            if checkpoint is checkpoints[-1]:
                # Stop while the child runs: it is interrupted too, then waited for again.
                call = await execution_when(
                    engine, execution_id, lambda e: one_run(e, "call").child_execution_id is not None
                )
                child_id = one_run(call, "call").child_execution_id
                assert child_id is not None
                await execution_when(engine, child_id, task_running("nap"))
    async with running_engine(tmp_path, source, child) as engine:
        assert execution_id is not None
        execution = await asyncio.wait_for(engine.wait(execution_id), 5)
        child_execution = await engine.store.get_execution(child_id)
    # The child's interrupted task ran again (the recovery policy), so the child and the parent succeed.
    assert child_execution is not None and child_execution.state.current is S.SUCCESS
    assert [a.state.current for a in one_run(child_execution, "nap").attempts] == [S.FAILED, S.SUCCESS]
    assert execution.state.current is S.SUCCESS
    assert states(execution) == {
        "pause": S.SUCCESS,
        "flaky": S.SUCCESS,
        "call": S.SUCCESS,
        "after": S.SUCCESS,
    }
    assert [a.state.current for a in one_run(execution, "flaky").attempts] == [S.FAILED, S.SUCCESS]
    assert one_run(execution, "call").outputs["executionId"] == child_id


async def test_executions_run_side_by_side(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.3S}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        ids = [await engine.trigger("ns", "f") for _ in range(5)]
        executions = await asyncio.wait_for(asyncio.gather(*(engine.wait(i) for i in ids)), HANG)
    assert len(set(ids)) == 5
    assert all(e.state.current is S.SUCCESS for e in executions)
    # One after the other, no two naps would be running at the same moment.
    assert max_overlap([one_run(e, "nap") for e in executions]) >= 2


async def test_resume_before_a_pause_timeout(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: pause, type: io.kestra.plugin.core.flow.Pause, timeout: PT1H}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: after}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution_id = await engine.trigger("ns", "f")
        await execution_when(engine, execution_id, lambda e: e.state.current is S.PAUSED)
        await engine.resume(execution_id)
        execution = await asyncio.wait_for(engine.wait(execution_id), HANG)
    # Ended within HANG, so resumed rather than timed out (the pause times out after an hour).
    assert execution.state.current is S.SUCCESS
    assert states(execution) == {"pause": S.SUCCESS, "after": S.SUCCESS}


# ---------------------------------------------------------------------------------------------
# persistence and events
# ---------------------------------------------------------------------------------------------


BUSY_FLOW = flow(
    """
    labels: {team: core}
    tasks:
      - {id: log, type: io.kestra.plugin.core.log.Log, message: [one, two]}
      - id: each
        type: io.kestra.plugin.core.flow.ForEach
        values: ["a", "b"]
        concurrencyLimit: 0
        tasks:
          - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
      - id: flaky
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ taskrun.attemptsCount == 0 }}"
        retry: {type: constant, interval: PT0.02S, maxAttempt: 2}
      - {id: labels, type: io.kestra.plugin.core.execution.Labels, labels: {stage: done}}
    outputs:
      - {id: out, type: STRING, value: "{{ outputs.ret['b'].value }}"}
    """
)


async def test_the_stored_execution_equals_the_final_execution(tmp_path: Path) -> None:
    async with running_engine(tmp_path, BUSY_FLOW) as engine:
        execution = await run(engine, "ns", "f")
        stored = await engine.store.get_execution(execution.id)
        listed = await engine.store.list_executions(namespace="ns")
    assert execution.state.current is S.SUCCESS
    assert stored is not None
    assert stored.to_json() == execution.to_json()
    assert stored.outputs == {"out": "b"}
    assert stored.labels_map() == {"team": "core", "stage": "done", "system.correlationId": execution.id}
    assert [row.id for row in listed] == [execution.id]
    # The JSON form uses Kestra's field names.
    data = json.loads(json.dumps(stored.to_json()))
    assert data["state"]["current"] == "SUCCESS"
    assert {"id", "namespace", "flowId", "flowRevision", "taskRunList", "labels"} <= set(data)
    assert {"id", "taskId", "parentTaskRunId", "value", "state", "attempts", "outputs"} <= set(
        data["taskRunList"][0]
    )


@pytest.mark.sqlite_only
async def test_events_arrive_and_announce_only_persisted_states(tmp_path: Path) -> None:
    db = tmp_path / "tiercel.db"
    seen_in_store: list[tuple[str, str | None]] = []
    runs_in_store: list[tuple[dict[str, object], dict[str, object] | None]] = []

    async with running_engine(tmp_path, BUSY_FLOW) as engine:
        queue = engine.events.subscribe()
        publish = engine.events.publish
        reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True)

        def checking_publish(event: Event) -> None:
            # Read what is committed at the very moment the event goes out.
            if isinstance(event, ExecutionChanged):
                row = reader.execute("SELECT state FROM executions WHERE id = ?", (event.execution.id,))
                found = row.fetchone()
                seen_in_store.append((event.execution.state.current.value, found[0] if found else None))
            elif isinstance(event, TaskRunChanged):
                row = reader.execute("SELECT json FROM task_runs WHERE id = ?", (event.task_run.id,))
                found = row.fetchone()
                runs_in_store.append((event.task_run.to_json(), json.loads(found[0]) if found else None))
            publish(event)

        engine.events.publish = checking_publish  # type: ignore[method-assign]
        try:
            execution = await run(engine, "ns", "f")
            await logs_of(engine, execution.id)
        finally:
            engine.events.publish = publish  # type: ignore[method-assign]
            reader.close()
        events = engine.events.drain(queue)

    assert execution.state.current is S.SUCCESS
    changes = [e for e in events if isinstance(e, ExecutionChanged) and e.execution.id == execution.id]
    runs = [e for e in events if isinstance(e, TaskRunChanged) and e.execution_id == execution.id]
    lines = [entry for e in events if isinstance(e, LogsAppended) for entry in e.entries]
    assert changes and changes[-1].execution.state.current is S.SUCCESS
    assert [e for e in changes if e.execution.state.current.is_terminated] == [changes[-1]]
    assert {e.task_run.task_id for e in runs} == {"log", "each", "ret", "flaky", "labels"}
    flaky_states = [e.task_run.state.current for e in runs if e.task_run.task_id == "flaky"]
    assert S.RETRYING in flaky_states and flaky_states[-1] is S.SUCCESS
    assert {"one", "two"} <= {entry.message for entry in lines if entry.execution_id == execution.id}
    # Each announced execution state was already committed when it was announced.
    assert seen_in_store
    assert all(announced == stored for announced, stored in seen_in_store), seen_in_store
    assert runs_in_store
    assert all(announced == stored for announced, stored in runs_in_store)


async def test_wait_and_queries_show_only_persisted_states(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: pause, type: io.kestra.plugin.core.flow.Pause}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        queue = engine.events.subscribe()
        execution_id = await engine.trigger("ns", "f")
        # Watch the engine's own view; when it first shows PAUSED, the PAUSED state must
        # already have been announced (and so persisted).
        deadline = asyncio.get_running_loop().time() + 10
        while asyncio.get_running_loop().time() < deadline:
            live = await engine.execution(execution_id)
            if live is not None and live.state.current is S.PAUSED:
                break
            await asyncio.sleep(0.001)
        announced = [
            e.execution.state.current
            for e in engine.events.drain(queue)
            if isinstance(e, ExecutionChanged) and e.execution.id == execution_id
        ]
        await engine.kill(execution_id)
        await asyncio.wait_for(engine.wait(execution_id), 5)
    assert live is not None and live.state.current is S.PAUSED
    assert S.PAUSED in announced


# ---------------------------------------------------------------------------------------------
# bad commands
# ---------------------------------------------------------------------------------------------


async def test_bad_inputs_raise_input_error_with_every_message(tmp_path: Path) -> None:
    source = flow(
        """
        inputs:
          - {id: count, type: INT}
          - {id: name, type: STRING}
          - {id: when, type: DATETIME}
          - {id: optional, type: STRING, required: false}
        tasks:
          - {id: ok, type: io.kestra.plugin.core.log.Log, message: ok}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        with pytest.raises(InputError) as caught:
            await engine.trigger("ns", "f", {"count": "many", "when": "yesterday"})
        listed = await engine.store.list_executions()
        assert engine.live_execution_ids() == []
    errors = caught.value.errors
    assert len(errors) == 3
    assert "count" in errors[0] and "name" in errors[1] and "when" in errors[2]
    assert set(caught.value.fields) == {"count", "name", "when"}
    assert listed == []


async def test_unknown_flow_is_an_engine_command_error(tmp_path: Path) -> None:
    source = flow("tasks:\n  - {id: ok, type: io.kestra.plugin.core.log.Log, message: ok}\n")
    async with running_engine(tmp_path, source) as engine:
        with pytest.raises(EngineCommandError, match="nope"):
            await engine.trigger("ns", "nope")
        with pytest.raises(EngineCommandError):
            await engine.trigger("elsewhere", "f")
        assert await engine.store.list_executions() == []


async def test_a_broken_flow_file_beside_a_valid_one(tmp_path: Path) -> None:
    valid = flow("tasks:\n  - {id: ok, type: io.kestra.plugin.core.log.Log, message: ok}\n")
    broken = flow(
        """
        tasks:
          - id: good
            type: io.kestra.plugin.core.log.Log
            message: fine
          - id: bad
            type: io.kestra.plugin.core.does.NotExist
        """,
        flow_id="broken",
    )
    async with running_engine(tmp_path, valid, broken) as engine:
        execution = await run(engine, "ns", "f")
        errors = dict(engine.flow_errors)
        stored_errors = await engine.store.flow_errors()
        with pytest.raises(EngineCommandError):
            await engine.trigger("ns", "broken")
    assert execution.state.current is S.SUCCESS
    assert list(errors) == [str(tmp_path / "flows" / "flow_1.yml")]
    assert list(stored_errors) == [str(tmp_path / "flows" / "flow_1.yml")]
    problems = errors[str(tmp_path / "flows" / "flow_1.yml")]
    assert problems
    # The unknown type is on line 9 (id, namespace, blank, tasks, good x3, bad, its type).
    assert [(p.line, p.yaml_path) for p in problems] == [(9, "tasks[1].type")]
    assert "NotExist" in problems[0].message
    assert "flow_1.yml:9:" in str(problems[0])
