"""The database reaches its size limit while executions run: they fail visibly, the engine stays up."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from tests.waiting import HANG, until
from tiercel.engine.engine import Engine
from tiercel.engine.events import EngineError, Event, ExecutionChanged, LogsAppended
from tiercel.engine.executor.loop import MAX_SAVE_FAILURES, SAVE_RETRY_SECONDS
from tiercel.engine.model import Execution, StateType
from tiercel.engine.store import Store

pytestmark = pytest.mark.reliability

RUNNING = 4

# The first task keeps the executions running while the limit is set; the second returns 50 kB, which
# needs new pages in the database.
FLOW = """\
id: bulky
namespace: rel.disk
tasks:
  - id: wait
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sleep 1
  - id: bulk
    type: io.kestra.plugin.core.debug.Return
    format: "{{ 'x' * 50000 }}"
  - id: done
    type: io.kestra.plugin.core.log.Log
    message: done
"""


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql).fetchall())


async def stored(store: Store, execution_id: str) -> Execution:
    execution = await store.get_execution(execution_id)
    assert execution is not None
    return execution


async def test_executions_fail_with_a_storage_error_and_later_ones_succeed(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "bulky.yml").write_text(FLOW)
    db = tmp_path / "db" / "tiercel.db"
    store = await Store.open(db)
    engine = Engine(store, flows_dir=flows)
    await engine.start(control=False, triggers=False)
    events = engine.events.subscribe()
    try:
        ids = [await engine.trigger("rel.disk", "bulky") for _ in range(RUNNING)]

        async def all_waiting() -> bool:
            runs = [(await stored(store, i)).task_runs for i in ids]
            return all(r and r[0].state.current is StateType.RUNNING for r in runs)

        await until(all_waiting, HANG, "the first task of every execution")
        await store.flush()
        pages = int(query(db, "PRAGMA page_count")[0][0])
        assert await store.set_max_pages(pages) == pages  # the disk is now full
        full_at = time.perf_counter()

        # Every running execution ends FAILED after a bounded number of save attempts, and the
        # dashboard hears of it: an EngineError, the FAILED execution and the error line.
        seen: list[Event] = []

        async def all_failed_announced() -> bool:
            seen.extend(engine.events.drain(events))
            failed = {
                e.execution.id
                for e in seen
                if isinstance(e, ExecutionChanged) and e.execution.state.current is StateType.FAILED
            }
            return set(ids) <= failed

        # A store that retried its saves for ever would reach the timeout.
        await until(all_failed_announced, HANG, "the executions' failure")
        waited = time.perf_counter() - full_at
        print(
            f"\ndisk full: {RUNNING} executions FAILED {waited:.1f} s after the database filled "
            f"(policy: {MAX_SAVE_FAILURES} failed saves, {SAVE_RETRY_SECONDS:g} s apart)"
        )
        for execution_id in ids:
            errors = [e for e in seen if isinstance(e, EngineError) and e.execution_id == execution_id]
            assert any("full" in e.message and "failed" in e.message for e in errors), errors
            lines = [
                entry.message
                for e in seen
                if isinstance(e, LogsAppended)
                for entry in e.entries
                if entry.execution_id == execution_id
            ]
            assert any("full" in line for line in lines), lines
            shown = await engine.execution(execution_id)
            assert shown is not None and shown.state.current is StateType.FAILED
        assert engine.live_execution_ids() == []
        assert engine.loop.running  # the engine is up

        # Space returns: the failures reach the database and new executions succeed.
        await store.set_max_pages(None)

        async def failures_stored() -> bool:
            found = [await stored(store, i) for i in ids]
            return all(e.state.current is StateType.FAILED for e in found)

        await until(failures_stored, HANG, "the stored failures")
        for execution_id in ids:
            messages = [entry.message for _, entry in await engine.logs(execution_id)]
            assert any("Storage error" in m and "full" in m for m in messages), messages
            execution = await stored(store, execution_id)
            assert all(run.state.current.is_terminated for run in execution.task_runs)
        later = [await engine.trigger("rel.disk", "bulky") for _ in range(3)]
        for execution_id in later:
            ended = await asyncio.wait_for(engine.wait(execution_id), 30)
            assert ended.state.current is StateType.SUCCESS
    finally:
        engine.events.unsubscribe(events)
        await engine.stop()
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    states = dict(query(db, "SELECT state, count(*) FROM executions GROUP BY state"))
    print(f"after space returned: {states}, integrity_check ok")
    assert states == {"FAILED": RUNNING, "SUCCESS": 3}
