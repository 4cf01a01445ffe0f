"""Flows as parsed: tasks, inputs, outputs, triggers, retries, SLAs, plugin defaults."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

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
class SlaSpec:
    """A flow's SLA (Kestra's `sla`): MAX_DURATION with a `duration`, or EXECUTION_ASSERTION with an
    `assertion`; `behavior` FAIL, CANCEL or NONE; `labels` added to a violating execution."""

    id: str
    type: str
    behavior: str
    labels: tuple[Label, ...] = ()
    duration: timedelta | None = None
    assertion: str | None = None


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
    # The sibling tasks this one waits for (a Dag's node, or any task list: Tiercel's extension).
    depends_on: tuple[str, ...] = ()
    # Conditions (as written, Kestra's condition mappings) that must all hold for the task to run.
    conditions: tuple[Mapping[str, Any], ...] = ()
    # Errors (codes or message text) that fail the task even under allowFailure, not retried.
    fatal_errors: tuple[str, ...] = ()
    # The task's own labels (metadata; a type with a `labels` property keeps them in props).
    labels: tuple[Label, ...] = ()
    cache: TaskCacheSpec | None = None

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
class TaskCacheSpec:
    """A task's cache: the outputs (and state) of a run that ended SUCCESS or WARNING are reused by
    later runs with the same key, for `ttl` (for ever when None). The key is the task's rendered
    properties: all of them (Kestra's `taskCache`, and the article's `cache` without `inputs`), or
    those `inputs` lists."""

    ttl: timedelta | None = None
    properties: tuple[str, ...] | None = None


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
class NamespacePermission:
    """Who may do what in a namespace (and the namespaces below it): a user or a group, and READ,
    EXECUTE or OWNER."""

    principal: str  # "user" or "group"
    name: str
    permission: str


@dataclass(frozen=True, slots=True)
class NamespaceSpec:
    """A namespace declared in a `_namespace.yaml` file (written by hand, or by the CreateNamespace
    and UpdateNamespace tasks): what its flows (and its children's) inherit."""

    id: str
    description: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    plugin_defaults: tuple[PluginDefault, ...] = ()
    path: str | None = None
    permissions: tuple[NamespacePermission, ...] = ()


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
    sla: tuple[SlaSpec, ...] = ()
    # What the flow asks for that this engine accepts but does not do, as `file:line:col: message`.
    warnings: tuple[str, ...] = ()
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

    @cached_property
    def has_fatal_errors(self) -> bool:
        """Whether a task names a `fatalError` (only then can a flowable end fatal)."""
        return any(task.fatal_errors for task in self.tasks_by_id.values())

    def with_revision(self, revision: int) -> Flow:
        return dataclasses.replace(self, revision=revision)
