"""Recursive subflows: refused when the flows are read, stopped at a depth limit when they run, and a
kill reaches every execution below the one killed."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine.helpers import flow, logs_of, run, running_engine
from tests.postgres import engine_store
from tests.waiting import until
from tiercel.engine.engine import Engine
from tiercel.engine.model import StateType
from tiercel.engine.store import Store

S = StateType
TIERCEL = Path(sys.executable).parent / "tiercel"

FINE = "tasks:\n  - {id: hello, type: io.kestra.plugin.core.log.Log, message: hi}\n"

SELF_CALL = flow(
    """
    tasks:
      - id: again
        type: io.kestra.plugin.core.flow.Subflow
        namespace: ns
        flowId: loop
    """,
    flow_id="loop",
)

# A chain `depth` executions deep whose deepest one pauses: the flow id is an expression, which no
# check made when the flows are read can follow.
CHAIN = flow(
    """
    inputs:
      - {id: depth, type: INT, defaults: 0}
      - {id: until, type: INT, defaults: 3}
    tasks:
      - id: deeper
        type: io.kestra.plugin.core.flow.If
        condition: "{{ inputs.depth < inputs.until }}"
        then:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: "{{ flow.id }}"
            inputs: {depth: "{{ inputs.depth + 1 }}", until: "{{ inputs.until }}"}
        else:
          - {id: wait, type: io.kestra.plugin.core.flow.Pause}
    """,
    flow_id="chain",
)


_COUNT_STATES = "SELECT state, count(*) FROM executions GROUP BY state"


def stored_states(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(_COUNT_STATES).fetchall()
    return {str(state): int(count) for state, count in rows}


async def states_in_store(folder: Path) -> dict[str, int]:
    """The executions by state in the store an engine of `folder` used (SQLite or PostgreSQL)."""
    async with await Store.open(engine_store(folder), readonly=True) as store:
        rows = await store._db.fetchall(_COUNT_STATES)
    return {str(state): int(count) for state, count in rows}


async def test_the_catalog_refuses_a_flow_that_calls_itself_as_validate_does(tmp_path: Path) -> None:
    async with running_engine(tmp_path, SELF_CALL, flow(FINE, flow_id="fine")) as engine:
        assert ("ns", "loop") not in engine.flows
        assert ("ns", "fine") in engine.flows
        (error,) = [error for errors in engine.flow_errors.values() for error in errors]
        assert "Subflow task `again` leads back to flow `ns.loop` (ns.loop -> ns.loop)" in error.message


async def test_a_cycle_through_two_files_is_refused_on_the_file_that_closes_it(tmp_path: Path) -> None:
    calls_b = flow(
        "tasks:\n  - {id: b, type: io.kestra.plugin.core.flow.Subflow, namespace: ns, flowId: b}\n",
        flow_id="a",
    )
    calls_a = flow(
        "tasks:\n  - {id: a, type: io.kestra.plugin.core.flow.Subflow, namespace: ns, flowId: a}\n",
        flow_id="b",
    )
    async with running_engine(tmp_path, calls_b, calls_a) as engine:
        assert ("ns", "a") in engine.flows and ("ns", "b") not in engine.flows
        # Once `a` stops calling `b`, the cycle is gone and `b` loads at the next sync.
        (tmp_path / "flows" / "flow_0.yml").write_text(flow(FINE, flow_id="a"))
        await engine.sync_flows()
        assert ("ns", "b") in engine.flows
        assert not engine.flow_errors


async def test_recursion_through_an_expression_stops_at_the_depth_limit(tmp_path: Path) -> None:
    store = await Store.open(engine_store(tmp_path))
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "chain.yml").write_text(CHAIN)
    engine = Engine(store, flows_dir=tmp_path / "flows", subflow_depth=3)
    await engine.start(control=False)
    try:
        root = await run(engine, "ns", "chain", {"until": 1000})
        logs = await logs_of(engine, root.id)
        executions = await engine.list_executions(limit=1000)
        deepest = next(
            row for row in executions if row.state == "FAILED" and row.parent_id and row.id != root.id
        )
        deepest_logs = [entry.message for entry in await logs_of(engine, deepest.id)]
    finally:
        await engine.stop()
    # The root and three levels below it ran; the fourth call was refused and every level failed.
    assert root.state.current is S.FAILED
    assert len(executions) == 4
    assert {row.state for row in executions} == {"FAILED"}
    assert any("subflow depth limit (3) is reached" in message for message in deepest_logs)
    assert any("ns.chain -> ns.chain -> ns.chain -> ns.chain -> ns.chain" in m for m in deepest_logs)
    assert logs  # the root says which subflow failed


@pytest.mark.slow
async def test_kill_of_a_root_reaches_a_chain_deeper_than_the_interpreter_stack(tmp_path: Path) -> None:
    depth = 1_200  # a cascade of one call per level would exceed Python's recursion limit (1,000)
    store = await Store.open(engine_store(tmp_path))
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "chain.yml").write_text(CHAIN)
    engine = Engine(store, flows_dir=tmp_path / "flows", subflow_depth=depth + 1)
    await engine.start(control=False)
    try:
        root_id = await engine.trigger("ns", "chain", {"until": depth})
        await until(
            lambda: (
                len(engine.live_execution_ids()) >= depth + 1
                and engine.loop.idle_paused(engine.loop.live(engine.live_execution_ids()[-1])[1])
            ),
            timeout=240,
            what=f"a chain of {depth + 1} executions",
            interval=0.2,
        )
        began = time.monotonic()
        await engine.kill(root_id)
        root = await asyncio.wait_for(engine.wait(root_id), 120)
        took = time.monotonic() - began
        await engine.store.flush()
    finally:
        await engine.stop()
    print(f"kill of a chain of {depth + 1} executions: {took:.1f} s")
    assert root.state.current is S.KILLED
    assert await states_in_store(tmp_path) == {"KILLED": depth + 1}


@pytest.mark.sqlite_only
async def test_tiercel_kill_with_no_engine_running_kills_the_subflow_executions(tmp_path: Path) -> None:
    db = tmp_path / "tiercel.db"
    async with running_engine(tmp_path, CHAIN) as engine:
        root_id = await engine.trigger("ns", "chain", {"until": 4})
        await until(lambda: stored_states(db).get("PAUSED", 0) >= 1, what="a stored PAUSED execution")
    # The engine stopped with five executions unfinished; the command's own engine must reach all.
    done = subprocess.run(
        [str(TIERCEL), "kill", root_id, "--db", str(db)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert stored_states(db) == {"KILLED": 5}
