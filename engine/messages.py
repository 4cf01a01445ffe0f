"""The messages the engine's components exchange, as plain data.

The executor loop takes `ExecutorMessage`s from its inbox (engine.queue): commands (start, kill,
resume, restart), a task run's result (or its loss with its worker), a subflow's link, or a
wake-up when a timer is due. It sends
the worker `RunTaskRun` and `CancelTaskRun`. The worker answers with `TaskRunResult` (a `WorkerResult`, into
the executor's inbox) and log lines (engine.logs). What changed is announced on the event bus
(engine.events: ExecutionChanged, TaskRunChanged, LogsAppended) once it is stored.

Every message names its execution, so a queue shared by several engines (a PostgreSQL table) can
route it. A command's `applied` future is the in-process acknowledgement: the loop resolves it once
the command's effect is in the store (or the command found nothing to act on).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import Execution, Flow, Label, StateType, TaskRun
from .model.resources import ResourceUsage


@dataclass(frozen=True)
class ExecutorMessage:
    """Something for the executor to apply to one execution."""

    execution_id: str
    # Resolved by the loop once the message's effect is stored (commands wait for it).
    applied: asyncio.Future[None] | None = field(default=None, kw_only=True, compare=False)


@dataclass(frozen=True)
class StartExecution(ExecutorMessage):
    """A CREATED (or QUEUED) execution is stored: admit it under its flow's limit and start it."""


@dataclass(frozen=True)
class WakeExecution(ExecutorMessage):
    """Step the execution again: a timer is due (retry, pause, WaitFor), or a fan-out goes on."""


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an attempt failed: the kind of error (engine.tasks.failures) and its message."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """What running one attempt of a task run gave."""

    task_run_id: str
    state: StateType
    outputs: Mapping[str, Any] | None = None
    labels: tuple[Label, ...] = ()
    failure: Failure | None = None
    # The execution whose cached outputs this attempt reused instead of running (engine.worker.cache).
    cached_from: str | None = None
    # What the attempt's programs used (none for a task that runs no program).
    usage: ResourceUsage | None = None


@dataclass(frozen=True)
class TaskRunResult(ExecutorMessage):
    """One attempt of a task run ended (from the worker, or a subflow's end reported back)."""

    result: WorkerResult


@dataclass(frozen=True)
class TaskRunLost(ExecutorMessage):
    """The worker running an attempt of a task run is gone (it stopped heartbeating): the attempt
    ends as an engine crash would end it (engine.executor.recovery)."""

    task_run_id: str
    attempt: int


@dataclass(frozen=True)
class KillExecution(ExecutorMessage):
    """Kill the execution: cancel its running task runs, then end it KILLED."""


@dataclass(frozen=True)
class ResumeExecution(ExecutorMessage):
    """Resume a PAUSED execution, with the onResume inputs as the Pause task's outputs."""

    outputs: dict[str, Any] | None = None


@dataclass(frozen=True)
class RestartExecution(ExecutorMessage):
    """Restart a FAILED or KILLED execution from its failed task runs."""


@dataclass(frozen=True)
class LinkSubflow(ExecutorMessage):
    """A Subflow task run started its child execution: record the child's id on the task run."""

    task_run_id: str
    child_id: str


@dataclass(frozen=True)
class RunTaskRun:
    """For the worker: run the last attempt of a task run (or a flowable's closing work)."""

    flow: Flow
    execution: Execution
    task_run: TaskRun


@dataclass(frozen=True)
class CancelTaskRun:
    """For the worker: stop a running attempt of the execution; it reports KILLED."""

    execution_id: str
    task_run_id: str


WorkerJob = RunTaskRun | CancelTaskRun
