"""The engine's data model: flows as parsed, executions as run.

Everything here is a frozen dataclass: the executor derives a new execution from the old one, and
the store persists what changed (compared by identity). Field names follow Kestra's so that the JSON
form (`Execution.to_json`) is what Kestra tooling reads.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any


class StateType(StrEnum):
    """Kestra's execution and task run states."""

    CREATED = "CREATED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    RESTARTED = "RESTARTED"
    KILLING = "KILLING"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILED = "FAILED"
    KILLED = "KILLED"
    CANCELLED = "CANCELLED"
    QUEUED = "QUEUED"
    RETRYING = "RETRYING"
    RETRIED = "RETRIED"
    SKIPPED = "SKIPPED"
    BREAKPOINT = "BREAKPOINT"
    RESUBMITTED = "RESUBMITTED"

    @property
    def is_terminated(self) -> bool:
        return self in _TERMINATED

    @property
    def is_running(self) -> bool:
        return self in (StateType.RUNNING, StateType.KILLING)


_TERMINATED = frozenset(
    {
        StateType.SUCCESS,
        StateType.WARNING,
        StateType.FAILED,
        StateType.KILLED,
        StateType.CANCELLED,
        StateType.SKIPPED,
        StateType.RETRIED,
    }
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """Kestra's instant format: ISO 8601 in UTC with milliseconds and a Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_id() -> str:
    """A 22-character random id, shaped like Kestra's short UUIDs (base62 of 128 random bits)."""
    number = int.from_bytes(secrets.token_bytes(16))
    digits = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        digits.append(_ID_ALPHABET[digit])
    return "".join(digits)


@dataclass(frozen=True, slots=True)
class History:
    state: StateType
    date: datetime


@dataclass(frozen=True, slots=True)
class State:
    """A current state and every state it went through, oldest first."""

    current: StateType
    histories: tuple[History, ...]

    @staticmethod
    def new(state: StateType = StateType.CREATED, at: datetime | None = None) -> State:
        return State(state, (History(state, at or utcnow()),))

    def to(self, state: StateType, at: datetime | None = None) -> State:
        return State(state, (*self.histories, History(state, at or utcnow())))

    @property
    def start_date(self) -> datetime:
        return self.histories[0].date

    @property
    def end_date(self) -> datetime | None:
        return self.histories[-1].date if self.current.is_terminated else None

    def duration(self, now: datetime | None = None) -> timedelta:
        return (self.end_date or now or utcnow()) - self.start_date

    def first_date(self, state: StateType) -> datetime | None:
        return next((h.date for h in self.histories if h.state is state), None)

    def to_json(self) -> dict[str, Any]:
        end = self.end_date
        return {
            "current": self.current.value,
            "histories": [{"state": h.state.value, "date": iso(h.date)} for h in self.histories],
            "startDate": iso(self.start_date),
            **({"endDate": iso(end), "duration": _duration_text(end - self.start_date)} if end else {}),
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> State:
        return State(
            StateType(data["current"]),
            tuple(History(StateType(h["state"]), parse_iso(h["date"])) for h in data["histories"]),
        )


def _duration_text(delta: timedelta) -> str:
    """ISO 8601 duration, as Java prints it (PT1.234S)."""
    seconds = delta.total_seconds()
    return f"PT{seconds:.3f}S".replace(".000S", "S")


# ---------------------------------------------------------------------------------------------
# Flows
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Position:
    """Where something is in its source file (1-based line and column)."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Label:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class RetrySpec:
    """A retry policy: `constant`, `exponential` or `random` (Kestra's three types)."""

    type: str
    interval: timedelta | None = None
    max_interval: timedelta | None = None
    min_interval: timedelta | None = None
    delay_factor: float | None = None
    max_attempt: int | None = None
    max_duration: timedelta | None = None
    warning_on_retry: bool = False
    behavior: str = "RETRY_FAILED_TASK"


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task as written in a flow, after plugin defaults were applied.

    `props` holds the task-specific properties as written (expressions unrendered); properties that
    hold child tasks are already parsed into TaskSpecs: a list becomes a tuple of TaskSpec, Switch's
    `cases` a dict of tuples, and Dag's `tasks` a tuple of DagNode.
    """

    id: str
    type: str
    props: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    retry: RetrySpec | None = None
    timeout: str | None = None
    disabled: bool = False
    allow_failure: bool = False
    allow_warning: bool = False
    run_if: str | None = None
    log_level: str | None = None
    position: Position | None = None

    def children(self) -> Iterator[TaskSpec]:
        """Every TaskSpec held directly in this task's properties."""
        for value in self.props.values():
            yield from _task_specs_in(value)


def _task_specs_in(value: Any) -> Iterator[TaskSpec]:
    if isinstance(value, TaskSpec):
        yield value
    elif isinstance(value, DagNode):
        yield value.task
    elif isinstance(value, tuple):
        for item in value:
            yield from _task_specs_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _task_specs_in(item)


@dataclass(frozen=True, slots=True)
class DagNode:
    task: TaskSpec
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InputSpec:
    """A flow input. `props` keeps type-specific settings (min, max, values, validator ...)."""

    id: str
    type: str
    required: bool = True
    defaults: Any = None
    description: str | None = None
    display_name: str | None = None
    props: Mapping[str, Any] = field(default_factory=dict)
    position: Position | None = None


@dataclass(frozen=True, slots=True)
class OutputSpec:
    id: str
    type: str
    value: Any
    description: str | None = None
    required: bool = True


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    id: str
    type: str
    props: Mapping[str, Any] = field(default_factory=dict)
    disabled: bool = False
    position: Position | None = None


@dataclass(frozen=True, slots=True)
class PluginDefault:
    type: str
    values: Mapping[str, Any]
    forced: bool = False


@dataclass(frozen=True, slots=True)
class NamespaceSpec:
    """A namespace declared in a `_namespace.yaml` file: what its flows (and its children's) inherit."""

    id: str
    description: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    plugin_defaults: tuple[PluginDefault, ...] = ()
    path: str | None = None


@dataclass(frozen=True)
class Flow:
    """A parsed, valid flow revision."""

    id: str
    namespace: str
    tasks: tuple[TaskSpec, ...]
    revision: int = 1
    description: str | None = None
    labels: tuple[Label, ...] = ()
    inputs: tuple[InputSpec, ...] = ()
    variables: Mapping[str, Any] = field(default_factory=dict)
    errors: tuple[TaskSpec, ...] = ()
    finally_: tuple[TaskSpec, ...] = ()
    after_execution: tuple[TaskSpec, ...] = ()
    triggers: tuple[TriggerSpec, ...] = ()
    plugin_defaults: tuple[PluginDefault, ...] = ()
    concurrency: Mapping[str, Any] | None = None
    outputs: tuple[OutputSpec, ...] = ()
    retry: RetrySpec | None = None
    disabled: bool = False
    listeners: tuple[Mapping[str, Any], ...] = ()
    source: str = ""
    path: str | None = None

    @property
    def uid(self) -> tuple[str, str]:
        return (self.namespace, self.id)

    def all_tasks(self) -> Iterator[TaskSpec]:
        """Every task of the flow, depth first, in every branch."""
        pending = [*self.tasks, *self.errors, *self.finally_, *self.after_execution][::-1]
        while pending:
            task = pending.pop()
            yield task
            pending.extend(reversed(list(task.children())))

    @cached_property
    def tasks_by_id(self) -> dict[str, TaskSpec]:
        return {task.id: task for task in self.all_tasks()}

    def with_revision(self, revision: int) -> Flow:
        return dataclasses.replace(self, revision=revision)


# ---------------------------------------------------------------------------------------------
# Executions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    state: State

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.to_json()}


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

    def to(self, state: StateType, at: datetime | None = None) -> TaskRun:
        """Move to a state; the last attempt follows when it is still open."""
        attempts = self.attempts
        if attempts and not attempts[-1].state.current.is_terminated and state is not StateType.RETRYING:
            last = attempts[-1]
            if state.is_terminated or state is StateType.KILLING or state is StateType.PAUSED:
                attempts = (*attempts[:-1], Attempt(last.state.to(state, at)))
        return dataclasses.replace(self, state=self.state.to(state, at), attempts=attempts)

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
            attempts=tuple(Attempt(State.from_json(a["state"])) for a in data.get("attempts") or ()),
            outputs=data.get("outputs"),
            iteration=data.get("iteration"),
            due=parse_iso(data["due"]) if data.get("due") else None,
            child_execution_id=data.get("childExecutionId"),
            loop_values=tuple(data["loopValues"]) if data.get("loopValues") is not None else None,
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

    def to_json(self) -> dict[str, Any]:
        """The execution in Kestra's JSON shape."""
        return {
            "id": self.id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "flowRevision": self.flow_revision,
            "state": self.state.to_json(),
            "taskRunList": [run.to_json() for run in self.task_runs] or None,
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
            "metadata": {
                "attemptNumber": self.attempt_number,
                "originalCreatedDate": iso(self.original_created or self.state.start_date),
            },
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Execution:
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
            attempt_number=int((data.get("metadata") or {}).get("attemptNumber") or 1),
            original_created=_original_created(data),
        )


def _original_created(data: Mapping[str, Any]) -> datetime | None:
    created = (data.get("metadata") or {}).get("originalCreatedDate")
    return parse_iso(created) if created else None


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

    def to_json(self) -> dict[str, Any]:
        return {
            "executionId": self.execution_id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "taskId": self.task_id,
            "taskRunId": self.task_run_id,
            "attemptNumber": self.attempt,
            "timestamp": iso(self.timestamp),
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
