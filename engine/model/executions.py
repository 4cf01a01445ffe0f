"""Executions as run: task runs with their attempts, log lines, listing summaries."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

from .flows import Label
from .resources import ResourceUsage
from .states import State, StateType, iso, iso_text, parse_iso

# ---------------------------------------------------------------------------------------------
# Executions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    state: State
    # What the attempt's programs used, once they have all ended (tasks that run none have none).
    usage: ResourceUsage | None = None

    def to(self, state: StateType, at: datetime | None = None) -> Attempt:
        return dataclasses.replace(self, state=self.state.to(state, at))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"state": self.state.to_json()}
        if self.usage is not None:
            data["resources"] = self.usage.to_json()
        return data

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Attempt:
        resources = data.get("resources")
        usage = ResourceUsage.from_json(resources) if isinstance(resources, Mapping) else None
        return Attempt(State.from_json(data["state"]), usage)


@dataclass(frozen=True, slots=True)
class TaskRun:
    """One run of one task (per loop value); retries add attempts to the same task run."""

    id: str
    execution_id: str
    namespace: str
    flow_id: str
    task_id: str
    state: State
    parent_task_run_id: str | None = None
    value: str | None = None
    attempts: tuple[Attempt, ...] = ()
    outputs: Mapping[str, Any] | None = None
    iteration: int | None = None
    # Engine bookkeeping that Kestra keeps elsewhere: when a waiting task run is due (retry delay,
    # pause delay, WaitFor interval, Sleep) and the id of the child execution of a Subflow.
    due: datetime | None = None
    child_execution_id: str | None = None
    # The rendered values of a loop task (ForEach ...), fixed when it starts.
    loop_values: tuple[str, ...] | None = None
    # The execution whose run of the task filled the cache these outputs were taken from.
    cached_from: str | None = None
    # It failed with an error its task's `fatalError` names: no allowFailure above it lets it pass.
    fatal: bool = False

    def to(self, state: StateType, at: datetime | None = None) -> TaskRun:
        """Move to a state; the last attempt follows when it is still open."""
        attempts = self.attempts
        if attempts and not attempts[-1].state.current.is_terminated and state is not StateType.RETRYING:
            last = attempts[-1]
            if state.is_terminated or state is StateType.KILLING or state is StateType.PAUSED:
                attempts = (*attempts[:-1], last.to(state, at))
        return dataclasses.replace(self, state=self.state.to(state, at), attempts=attempts)

    @property
    def usage(self) -> ResourceUsage | None:
        """What the programs of all its attempts used; None when it ran none."""
        found = [attempt.usage for attempt in self.attempts if attempt.usage is not None]
        return sum(found[1:], found[0]) if found else None

    def with_new_attempt(self, at: datetime | None = None) -> TaskRun:
        return dataclasses.replace(
            self,
            attempts=(*self.attempts, Attempt(State.new(StateType.RUNNING, at))),
            state=self.state.to(StateType.RUNNING, at),
            due=None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "executionId": self.execution_id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "taskId": self.task_id,
            "parentTaskRunId": self.parent_task_run_id,
            "value": self.value,
            "attempts": [a.to_json() for a in self.attempts] or None,
            "outputs": dict(self.outputs) if self.outputs is not None else None,
            "state": self.state.to_json(),
            "iteration": self.iteration,
            **({"due": iso(self.due)} if self.due else {}),
            **({"childExecutionId": self.child_execution_id} if self.child_execution_id else {}),
            **({"loopValues": list(self.loop_values)} if self.loop_values is not None else {}),
            **({"cachedFrom": self.cached_from} if self.cached_from else {}),
            **({"fatal": True} if self.fatal else {}),
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> TaskRun:
        return TaskRun(
            id=data["id"],
            execution_id=data["executionId"],
            namespace=data["namespace"],
            flow_id=data["flowId"],
            task_id=data["taskId"],
            state=State.from_json(data["state"]),
            parent_task_run_id=data.get("parentTaskRunId"),
            value=data.get("value"),
            attempts=tuple(Attempt.from_json(a) for a in data.get("attempts") or ()),
            outputs=data.get("outputs"),
            iteration=data.get("iteration"),
            due=parse_iso(data["due"]) if data.get("due") else None,
            child_execution_id=data.get("childExecutionId"),
            loop_values=tuple(data["loopValues"]) if data.get("loopValues") is not None else None,
            cached_from=data.get("cachedFrom"),
            fatal=bool(data.get("fatal")),
        )


@dataclass(frozen=True)
class Execution:
    """One run of one flow revision. Task runs are kept in creation order."""

    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    state: State
    task_runs: tuple[TaskRun, ...] = ()
    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] | None = None
    labels: tuple[Label, ...] = ()
    variables: Mapping[str, Any] | None = None
    parent_id: str | None = None
    original_id: str | None = None
    trigger: Mapping[str, Any] | None = None
    # Set while the final state is known but `afterExecution` tasks still run.
    after_execution_state: StateType | None = None
    # A CREATED execution with a due date starts then (a retry that creates a new execution).
    due: datetime | None = None
    # Kestra's metadata: the attempt this execution is (replays and retries count up from 1), and
    # when the first attempt was created.
    attempt_number: int = 1
    original_created: datetime | None = None
    # The MAX_DURATION SLAs already violated (each is checked once, when its duration is over).
    sla_violations: tuple[str, ...] = ()

    @cached_property
    def task_runs_by_id(self) -> dict[str, TaskRun]:
        return {run.id: run for run in self.task_runs}

    def task_run(self, task_run_id: str) -> TaskRun:
        return self.task_runs_by_id[task_run_id]

    def with_task_run(self, run: TaskRun) -> Execution:
        """Replace (by id) or append one task run."""
        return self.with_task_runs([run])

    def with_task_runs(self, changed: list[TaskRun]) -> Execution:
        """Replace (by id) or append task runs, keeping creation order."""
        if not changed:
            return self
        by_id = {run.id: run for run in changed}
        runs = [by_id.pop(run.id, run) for run in self.task_runs]
        runs.extend(by_id.values())
        return dataclasses.replace(self, task_runs=tuple(runs))

    def to(self, state: StateType, at: datetime | None = None) -> Execution:
        return dataclasses.replace(self, state=self.state.to(state, at))

    def parents_of(self, run: TaskRun) -> list[TaskRun]:
        """The chain of parent task runs, nearest first."""
        chain: list[TaskRun] = []
        parent_id = run.parent_task_run_id
        while parent_id is not None:
            parent = self.task_runs_by_id[parent_id]
            chain.append(parent)
            parent_id = parent.parent_task_run_id
        return chain

    def labels_map(self) -> dict[str, str]:
        return {label.key: label.value for label in self.labels}

    def to_json(self, *, task_runs: bool = True) -> dict[str, Any]:
        """The execution in Kestra's JSON shape (without `taskRunList` when `task_runs` is false:
        the store keeps task runs in rows of their own)."""
        return {
            "id": self.id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "flowRevision": self.flow_revision,
            "state": self.state.to_json(),
            **({"taskRunList": [run.to_json() for run in self.task_runs] or None} if task_runs else {}),
            "inputs": dict(self.inputs) if self.inputs else None,
            "outputs": dict(self.outputs) if self.outputs is not None else None,
            "labels": [{"key": label.key, "value": label.value} for label in self.labels],
            "variables": dict(self.variables) if self.variables else None,
            "parentId": self.parent_id,
            "originalId": self.original_id or self.id,
            "trigger": dict(self.trigger) if self.trigger else None,
            **(
                {"afterExecutionState": self.after_execution_state.value}
                if self.after_execution_state
                else {}
            ),
            **({"due": iso(self.due)} if self.due else {}),
            **({"slaViolations": list(self.sla_violations)} if self.sla_violations else {}),
            "metadata": {
                "attemptNumber": self.attempt_number,
                "originalCreatedDate": iso(self.original_created or self.state.start_date),
            },
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Execution:
        metadata = data.get("metadata") or {}
        return Execution(
            id=data["id"],
            namespace=data["namespace"],
            flow_id=data["flowId"],
            flow_revision=data.get("flowRevision") or 1,
            state=State.from_json(data["state"]),
            task_runs=tuple(TaskRun.from_json(run) for run in data.get("taskRunList") or ()),
            inputs=data.get("inputs") or {},
            outputs=data.get("outputs"),
            labels=tuple(Label(item["key"], item["value"]) for item in data.get("labels") or ()),
            variables=data.get("variables"),
            parent_id=data.get("parentId"),
            original_id=data.get("originalId"),
            trigger=data.get("trigger"),
            after_execution_state=(
                StateType(data["afterExecutionState"]) if data.get("afterExecutionState") else None
            ),
            due=parse_iso(data["due"]) if data.get("due") else None,
            attempt_number=int(metadata.get("attemptNumber") or 1),
            original_created=parse_iso(c) if (c := metadata.get("originalCreatedDate")) else None,
            sla_violations=tuple(data.get("slaViolations") or ()),
        )


class LogLevel(StrEnum):
    TRACE = "TRACE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"

    @property
    def rank(self) -> int:
        return _LEVEL_RANK[self]

    @staticmethod
    def parse(text: str) -> LogLevel:
        upper = text.strip().upper()
        return LogLevel("WARN" if upper == "WARNING" else upper)


_LEVEL_RANK = {LogLevel.TRACE: 0, LogLevel.DEBUG: 1, LogLevel.INFO: 2, LogLevel.WARN: 3, LogLevel.ERROR: 4}


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log line of an execution (task_run_id is None for the execution's own lines)."""

    execution_id: str
    namespace: str
    flow_id: str
    timestamp: datetime
    level: LogLevel
    message: str
    task_id: str | None = None
    task_run_id: str | None = None
    attempt: int | None = None
    # `timestamp` as `iso` formats it, once: a line is written to the store and often to a screen.
    # Not an argument, so that `dataclasses.replace` (which may change the timestamp) formats anew.
    _stamp: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def stamp(self) -> str:
        """The timestamp in Kestra's instant format (`iso`), formatted on first use."""
        stamp = self._stamp
        if stamp is None:
            stamp = iso_text(self.timestamp)
            object.__setattr__(self, "_stamp", stamp)
        return stamp

    def with_stamp(self, stamp: str) -> LogEntry:
        """This line, its timestamp already formatted as `stamp` (read back from the store, where
        `iso` wrote it): it is not formatted again."""
        object.__setattr__(self, "_stamp", stamp)
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "executionId": self.execution_id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "taskId": self.task_id,
            "taskRunId": self.task_run_id,
            "attemptNumber": self.attempt,
            "timestamp": self.stamp,
            "level": self.level.value,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class ExecutionSummary:
    """An execution as lists show it: its indexed columns, without task runs.

    `cursor` is the paging key: pass it as `before` to `Store.list_executions` for the next page.
    """

    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    state: str
    start_date: datetime | None
    end_date: datetime | None
    labels: Mapping[str, str]
    parent_id: str | None
    trigger_type: str | None
    cursor: str
