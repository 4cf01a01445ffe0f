"""Kestra's replay: a new execution that starts over from a chosen task run of an ended one.

What ran before the chosen task run is kept as it ended (with new ids, as Kestra does); the chosen
task run and everything created after it are dropped, so they run again; the flowables around it go
back to RUNNING so that they carry on from there. Without a task run the whole flow runs again with
the same inputs. Either way the new execution points at the first one through `originalId`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from ..model import Execution, State, StateType, TaskRun, new_id, utcnow


class ReplayError(Exception):
    """The execution or the task run cannot be replayed; the message says why."""


def replayed(
    source: Execution, task_run_id: str | None, now: datetime, revision: int | None = None
) -> Execution:
    if not source.state.current.is_terminated:
        raise ReplayError(f"Execution {source.id} is {source.state.current}: only an ended execution replays")
    kept: list[TaskRun] = []
    if task_run_id is not None:
        chosen = source.task_runs_by_id.get(task_run_id)
        if chosen is None:
            raise ReplayError(f"Execution {source.id} has no task run {task_run_id}")
        ancestors = {run.id for run in source.parents_of(chosen)}
        position = source.task_runs.index(chosen)
        for run in source.task_runs[:position]:
            if run.id in ancestors:
                kept.append(_reopened(run, now))
            else:
                kept.append(run)
    execution_id = new_id()
    ids = {run.id: new_id() for run in kept}
    runs = tuple(
        dataclasses.replace(
            run,
            id=ids[run.id],
            execution_id=execution_id,
            parent_task_run_id=ids.get(run.parent_task_run_id or "", run.parent_task_run_id),
        )
        for run in kept
    )
    return Execution(
        id=execution_id,
        namespace=source.namespace,
        flow_id=source.flow_id,
        flow_revision=revision or source.flow_revision,
        state=State.new(StateType.CREATED, now),
        task_runs=runs,
        inputs=source.inputs,
        labels=source.labels,
        variables=source.variables,
        parent_id=source.parent_id,
        original_id=source.original_id or source.id,
        trigger=source.trigger,
        attempt_number=source.attempt_number + 1,
        original_created=source.original_created or source.state.start_date,
    )


def _reopened(run: TaskRun, now: datetime) -> TaskRun:
    """A flowable around the replayed task run: running again, its end and outputs forgotten."""
    state = run.state if run.state.current is StateType.RUNNING else run.state.to(StateType.RUNNING, now)
    return dataclasses.replace(run, state=state, outputs=None, due=None)


def retried(source: Execution, due: datetime) -> Execution:
    """The next attempt of an execution that ended RETRIED (a CREATE_NEW_EXECUTION retry): the
    whole flow again, as a replay from the start, created now and started at `due`."""
    return dataclasses.replace(replayed(source, None, utcnow()), due=due)
