"""Run flows through a real Engine on a real SQLite file (or PostgreSQL store), for engine tests."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tiercel.engine.engine import Engine
from tiercel.engine.model import Execution, Label, LogEntry, StateType, TaskRun
from tiercel.engine.store import Store

from ..postgres import engine_store


@asynccontextmanager
async def running_engine(folder: Path, *flows: str) -> AsyncIterator[Engine]:
    """An engine on `folder`/flows with the given flow sources written as files."""
    flows_dir = folder / "flows"
    flows_dir.mkdir(parents=True, exist_ok=True)
    for index, source in enumerate(flows):
        (flows_dir / f"flow_{index}.yml").write_text(textwrap.dedent(source))
    store = await Store.open(engine_store(folder))
    engine = Engine(store, flows_dir=flows_dir)
    await engine.start(control=False)
    try:
        yield engine
    finally:
        await engine.stop()


async def run(
    engine: Engine,
    namespace: str,
    flow_id: str,
    inputs: Mapping[str, Any] | None = None,
    labels: list[Label] | None = None,
    timeout: float = 20,
) -> Execution:
    execution_id = await engine.trigger(namespace, flow_id, inputs or {}, labels or [])
    return await asyncio.wait_for(engine.wait(execution_id, until_paused=True), timeout)


async def logs_of(engine: Engine, execution_id: str) -> list[LogEntry]:
    await engine.flush_logs()
    await engine.store.flush()
    return [entry for _, entry in await engine.store.logs(execution_id)]


async def run_flow(
    tmp_path: Path, source: str, inputs: Mapping[str, Any] | None = None, *others: str
) -> tuple[Execution, list[LogEntry]]:
    """Run one flow (plus other flows it calls) to its end; return the execution and its logs."""
    async with running_engine(tmp_path, source, *others) as engine:
        first = yaml.safe_load(textwrap.dedent(source))
        execution = await run(engine, first["namespace"], first["id"], inputs)
        return execution, await logs_of(engine, execution.id)


def states(execution: Execution) -> dict[str, StateType]:
    """The state of the last task run of each task id."""
    return {run.task_id: run.state.current for run in execution.task_runs}


def messages(logs: list[LogEntry]) -> list[str]:
    return [entry.message for entry in logs]


def runs_of(execution: Execution, task_id: str) -> list[TaskRun]:
    """Every task run of one task id, in creation order."""
    return [run for run in execution.task_runs if run.task_id == task_id]


def one_run(execution: Execution, task_id: str, value: str | None = None) -> TaskRun:
    """The single task run of a task id (and loop value, when given)."""
    found = [run for run in runs_of(execution, task_id) if value is None or run.value == value]
    assert len(found) == 1, f"{len(found)} task runs of `{task_id}` (value {value!r})"
    return found[0]


def running_window(run: TaskRun) -> tuple[datetime, datetime]:
    """When a task run first went RUNNING and when it ended, from its state history."""
    start = run.state.first_date(StateType.RUNNING)
    end = run.state.end_date
    assert start is not None and end is not None, f"`{run.task_id}` never ran to an end"
    return start, end


def flow(body: str, flow_id: str = "f", namespace: str = "ns") -> str:
    """A flow source: the id and namespace, then `body` (tasks, errors ...)."""
    return f"id: {flow_id}\nnamespace: {namespace}\n" + textwrap.dedent(body)
