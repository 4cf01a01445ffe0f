"""Restarts around the subflow executions of ForEachItem and Subflow: a restart of the parent with
`restartBehavior` RETRY_FAILED (the default) or NEW_EXECUTION, an engine restarted while a task run
waits for its children, and `iterations` as the children end; after Kestra's ForEachItemCaseTest,
RestartCaseTest and ExecutableUtils."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from tests.engine.helpers import flow, logs_of, messages, one_run, running_engine, states
from tests.engine.test_engine_commands import execution_when
from tests.engine.test_for_each_item import children_of, outputs, parent_flow, start, task_ids
from tiercel.engine.engine import Engine
from tiercel.engine.ion import loads
from tiercel.engine.model import Execution, StateType

S = StateType
NS = "io.kestra.tests"
# Six batches of 20 lines, as restartForEachItem splits Kestra's 102-line file.
LINES = "".join(f"{value:>20}\n" for value in range(102))
# Fails the odd batches until the KV `go` says yes; the task run's attempts show the restart.
RESTART_CHILD = flow(
    """
    inputs:
      - {id: items, type: STRING}
      - {id: iteration, type: INT}
    tasks:
      - id: fail
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ inputs.iteration % 2 == 1 and kv('go', errorOnMissing=false) != 'yes' }}"
      - {id: return, type: io.kestra.plugin.core.debug.Return, format: "{{ inputs.iteration }}"}
    outputs:
      - {id: value, type: STRING, value: "{{ outputs.return.value }}"}
    """,
    flow_id="restart-child",
    namespace=NS,
)


def restart_flow(extra: str = "") -> str:
    return parent_flow(
        "restart-for-each-item",
        f"""    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{{{ inputs.file }}}}"
    batch: {{rows: 20}}
    namespace: io.kestra.tests
    flowId: restart-child
    inputs:
      items: "{{{{ taskrun.items }}}}"
      iteration: "{{{{ taskrun.iteration }}}}"
{extra}""",
    )


async def failed_then_restarted(
    tmp_path: Path, source: str
) -> tuple[Execution, list[Execution], Execution, list[Execution], list[str], Engine]:
    """Run the ForEachItem (half its batches fail), let them pass, restart it; both ends, the
    children after each, the merged outputs' lines and the engine (stopped)."""
    async with running_engine(tmp_path, source, RESTART_CHILD) as engine:
        parent_id = await start(engine, "restart-for-each-item", tmp_path, LINES)
        failed = await asyncio.wait_for(engine.wait(parent_id), 60)
        before = await children_of(engine, parent_id)
        await engine.store.kv_set(NS, "go", "yes")
        await engine.restart(parent_id)
        ended = await asyncio.wait_for(engine.wait(parent_id), 60)
        after = await children_of(engine, parent_id)
        merged = outputs(ended, "each_merge") or {}
        lines = engine.storage.read_text(merged["subflowOutputs"]).splitlines() if merged else []
    return failed, before, ended, after, lines, engine


async def test_a_restart_retries_only_the_failed_subflow_executions(tmp_path: Path) -> None:
    """ForEachItemCaseTest.restartForEachItem (flows restart-for-each-item.yaml, restart-child.yaml):
    the restart of the parent restarts its failed subflow executions in place, as a new attempt
    (ExecutableUtils.subflowExecution with RETRY_FAILED), leaves the succeeded ones as they were,
    and the parent ends SUCCESS with its four task runs and every batch counted SUCCESS."""
    failed, before, ended, after, lines, _ = await failed_then_restarted(tmp_path, restart_flow())
    assert failed.state.current is S.FAILED
    assert task_ids(failed) == ["each", "each_split", "each_items"]
    items = outputs(failed, "each_items")
    assert items is not None
    assert items["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 3, "FAILED": 3}
    assert [child.state.current for child in before] == [S.SUCCESS, S.FAILED] * 3

    assert ended.state.current is S.SUCCESS
    assert task_ids(ended) == ["each", "each_split", "each_items", "each_merge"]
    items = outputs(ended, "each_items")
    assert items is not None and items["numberOfBatches"] == 6
    assert items["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 6}
    # The same six executions: none started anew.
    assert [child.id for child in after] == [child.id for child in before]
    assert all(child.state.current is S.SUCCESS for child in after)
    for old, new in zip(before, after, strict=True):
        if old.state.current is S.SUCCESS:
            assert new.to_json() == old.to_json()  # kept as it was
        else:
            assert S.RESTARTED in [history.state for history in new.state.histories]
            assert [a.state.current for a in one_run(new, "fail").attempts] == [S.FAILED, S.SUCCESS]
    # The merge has every batch's outputs, in batch order.
    assert [loads(line) for line in lines] == [{"value": str(iteration)} for iteration in range(6)]


async def test_new_execution_starts_new_subflow_executions(tmp_path: Path) -> None:
    """ForEachItem's `restartBehavior: NEW_EXECUTION`: the restart starts a new subflow execution
    for each batch, and the earlier ones stay as they ended."""
    source = restart_flow("    restartBehavior: NEW_EXECUTION\n")
    failed, before, ended, after, lines, _ = await failed_then_restarted(tmp_path, source)
    assert failed.state.current is S.FAILED
    assert ended.state.current is S.SUCCESS
    assert len(after) == 12
    new = [child for child in after if child.id not in {old.id for old in before}]
    assert len(new) == 6 and all(child.state.current is S.SUCCESS for child in new)
    old = {child.id: child for child in before}
    for child in after:
        if child.id in old:
            assert child.to_json() == old[child.id].to_json()
    items = outputs(ended, "each_items")
    assert items is not None and items["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 6}
    assert [loads(line) for line in lines] == [{"value": str(iteration)} for iteration in range(6)]


CHILD = flow(
    """
    tasks:
      - id: fail
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ kv('go', errorOnMissing=false) != 'yes' }}"
    outputs:
      - {id: attempts, type: STRING, value: "{{ execution.id }}"}
    """,
    flow_id="restart-child",
    namespace=NS,
)


def subflow_parent(extra: str = "") -> str:
    return flow(
        f"""
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: io.kestra.tests
            flowId: restart-child
{extra}          - {{id: after, type: io.kestra.plugin.core.log.Log, message: after}}
        """,
        flow_id="restart-parent",
        namespace=NS,
    )


async def restarted_subflow(tmp_path: Path, source: str) -> tuple[Execution, Execution, list[Execution]]:
    async with running_engine(tmp_path, source, CHILD) as engine:
        parent_id = await engine.trigger(NS, "restart-parent")
        failed = await asyncio.wait_for(engine.wait(parent_id), 60)
        await engine.store.kv_set(NS, "go", "yes")
        await engine.restart(parent_id)
        ended = await asyncio.wait_for(engine.wait(parent_id), 60)
        children = await children_of_any(engine, parent_id)
    return failed, ended, children


async def children_of_any(engine: Engine, parent_id: str) -> list[Execution]:
    found = []
    for summary in await engine.list_executions(flow_id="restart-child", limit=100):
        child = await engine.execution(summary.id)
        if child is not None and child.parent_id == parent_id:
            found.append(child)
    return found


async def test_a_restart_of_a_subflow_restarts_its_failed_child_in_place(tmp_path: Path) -> None:
    """RestartCaseTest.restartSubflow (flows restart-parent.yaml, restart-child.yaml): restarting
    the parent restarts the failed child execution (the same one, a new attempt of its failed
    task), the Subflow task run takes its new end and the parent goes on to SUCCESS."""
    failed, ended, children = await restarted_subflow(tmp_path, subflow_parent())
    child_id = one_run(failed, "call").child_execution_id
    assert failed.state.current is S.FAILED and child_id is not None
    assert ended.state.current is S.SUCCESS
    assert states(ended) == {"call": S.SUCCESS, "after": S.SUCCESS}
    call = one_run(ended, "call")
    assert call.outputs is not None and call.outputs["executionId"] == child_id
    assert call.outputs["outputs"] == {"attempts": child_id}
    assert [child.id for child in children] == [child_id]
    child = children[0]
    assert child.state.current is S.SUCCESS
    assert [a.state.current for a in one_run(child, "fail").attempts] == [S.FAILED, S.SUCCESS]


async def test_a_subflow_with_new_execution_starts_a_new_child(tmp_path: Path) -> None:
    """Subflow's `restartBehavior: NEW_EXECUTION`: the restart starts a new child execution; the
    failed one stays FAILED."""
    failed, ended, children = await restarted_subflow(
        tmp_path, subflow_parent("            restartBehavior: NEW_EXECUTION\n")
    )
    first = one_run(failed, "call").child_execution_id
    assert ended.state.current is S.SUCCESS
    second = one_run(ended, "call").child_execution_id
    assert second is not None and second != first
    assert {child.id: child.state.current for child in children} == {first: S.FAILED, second: S.SUCCESS}


SLOW_CHILD = flow(
    """
    inputs:
      - {id: items, type: STRING}
      - {id: iteration, type: INT}
    tasks:
      - id: sleep
        type: io.kestra.plugin.core.flow.Sleep
        duration: "{{ inputs.iteration == 0 ? 'PT0.01S' : 'PT2S' }}"
      - {id: return, type: io.kestra.plugin.core.debug.Return, format: "{{ inputs.iteration }}"}
    outputs:
      - {id: value, type: STRING, value: "{{ outputs.return.value }}"}
    """,
    flow_id="slow-child",
    namespace=NS,
)
SLOW_PARENT = parent_flow(
    "slow-for-each-item",
    """    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.file }}"
    batch: {rows: 1}
    namespace: io.kestra.tests
    flowId: slow-child
    inputs:
      items: "{{ taskrun.items }}"
      iteration: "{{ taskrun.iteration }}"
""",
)
THREE_LINES = "a\nb\nc\n"


def counted(state: str, count: int) -> Callable[[Execution], bool]:
    def check(execution: Execution) -> bool:
        runs = [run for run in execution.task_runs if run.task_id == "each_items"]
        iterations = (runs[0].outputs or {}).get("iterations") if runs else None
        return isinstance(iterations, dict) and iterations.get(state) == count

    return check


async def test_iterations_follow_the_subflow_executions_as_they_end(tmp_path: Path) -> None:
    """ExecutableUtils.manageIterations: while the subflow executions run, the `_items` task run's
    outputs count them by state (with `numberOfBatches`), updated as each one ends."""
    async with running_engine(tmp_path, SLOW_PARENT, SLOW_CHILD) as engine:
        parent_id = await start(engine, "slow-for-each-item", tmp_path, THREE_LINES)
        running = await execution_when(engine, parent_id, counted("SUCCESS", 1))
        ended = await asyncio.wait_for(engine.wait(parent_id), 60)
    items = one_run(running, "each_items")
    assert items.state.current is S.RUNNING
    assert items.outputs == {"iterations": {"CREATED": 0, "RUNNING": 2, "SUCCESS": 1}, "numberOfBatches": 3}
    assert len(items.attempts) == 1 and items.attempts[0].state.current is S.RUNNING
    assert ended.state.current is S.SUCCESS
    done = one_run(ended, "each_items")
    assert done.outputs is not None
    assert done.outputs["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 3}
    assert [history.state for history in done.state.histories] == [S.CREATED, S.RUNNING, S.SUCCESS]


async def test_a_new_engine_waits_again_for_the_subflow_executions(tmp_path: Path) -> None:
    """ForEachItemCaseTest.forEachItem across an engine restart: an engine stopped while `_items`
    waits for its children (one ended, two running) leaves them unfinished; the next engine on the
    same database counts the one that ended, waits for the others (interrupted, they run again)
    and ends the ForEachItem as without the restart, with no new subflow execution."""
    async with running_engine(tmp_path, SLOW_PARENT, SLOW_CHILD) as engine:
        parent_id = await start(engine, "slow-for-each-item", tmp_path, THREE_LINES)
        await execution_when(engine, parent_id, counted("SUCCESS", 1))
        first = [child.id for child in await unfinished_children(engine, parent_id)]
    assert len(first) == 2
    async with running_engine(tmp_path, SLOW_PARENT, SLOW_CHILD) as engine:
        parent = await asyncio.wait_for(engine.wait(parent_id), 60)
        children = await children_of(engine, parent_id)
        merged = outputs(parent, "each_merge")
        assert merged is not None
        lines = engine.storage.read_text(merged["subflowOutputs"]).splitlines()
        logs = await logs_of(engine, parent_id)
    assert parent.state.current is S.SUCCESS
    assert task_ids(parent) == ["each", "each_split", "each_items", "each_merge"]
    items = one_run(parent, "each_items")
    assert items.outputs is not None
    assert items.outputs["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 3}
    assert len(items.attempts) == 1 and items.attempts[0].state.current is S.SUCCESS
    assert len(children) == 3 and all(child.state.current is S.SUCCESS for child in children)
    assert set(first) <= {child.id for child in children}
    assert [loads(line) for line in lines] == [{"value": "0"}, {"value": "1"}, {"value": "2"}]
    assert "engine stopped while the task was running" not in messages(logs)


async def unfinished_children(engine: Engine, parent_id: str) -> list[Execution]:
    found = []
    for summary in await engine.list_executions(flow_id="slow-child", limit=100):
        child = await engine.execution(summary.id)
        if child is not None and child.parent_id == parent_id and not child.state.current.is_terminated:
            found.append(child)
    return found
