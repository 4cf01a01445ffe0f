"""What a runnable task handler receives and may raise."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..expressions import to_text
from ..internal_storage.names import StorageError
from ..model import Execution, Flow, Label, LogLevel, Metric, MetricError, Metrics, TaskRun, TaskSpec, utcnow
from .failures import TASK_FAILED

if TYPE_CHECKING:
    from pathlib import Path

    from ..expressions import Renderer
    from ..internal_storage import Storage
    from .services import (
        ExecutionControl,
        ExecutionRecords,
        FlowSources,
        KeyValueStore,
        LogReader,
        NamespaceFiles,
        TriggerSwitches,
    )


class TaskFailure(Exception):
    """The task failed; the message is logged at ERROR on its task run (and shown by errorLogs()).

    `outputs` are kept on the failed task run (a script's exit code and variables, for instance);
    `code` is the kind of error (engine.tasks.failures), TASK_FAILED unless the task says more.
    """

    def __init__(self, message: str, outputs: Mapping[str, Any] | None = None, code: str = "") -> None:
        super().__init__(message)
        self.outputs = outputs
        self.code = code or TASK_FAILED


def readable_file(
    storage: Storage, uri: str, namespace: str, trigger: Mapping[str, Any] | None = None
) -> Path:
    """The local file of a stored file an execution of `namespace` may read (see `stored_file`).

    Raises:
        TaskFailure: A malformed URI, a file it may not read, a missing file or a folder.
    """
    try:
        storage.check_readable(uri, namespace, trigger)
        path = storage.path(uri)
    except StorageError as error:
        raise TaskFailure(str(error)) from None
    if not path.is_file():
        raise TaskFailure(f"File '{uri}' does not exist in the internal storage")
    return path


def as_flag(name: str, value: Any) -> bool:
    """A rendered true/false property (`true`, `false` in any case, or a boolean).

    Raises:
        TaskFailure: When it is anything else.
    """
    if isinstance(value, bool):
        return value
    text = to_text(value).strip().lower()
    if text not in ("true", "false"):
        raise TaskFailure(f"`{name}` must be true or false, got `{text}`")
    return text == "true"


@dataclass
class TaskContext:
    """One attempt of one task run, as its handler sees it."""

    flow: Flow
    execution: Execution
    task: TaskSpec
    run: TaskRun
    renderer: Renderer
    # The expression context of this task run; tasks may add their own (workingDir, outputDir).
    variables: dict[str, Any]
    emit: Callable[[LogLevel, str], None]
    # The key-value store (the KV tasks) and the stored logs (log.Fetch); None without a database.
    kv: KeyValueStore | None = None
    log_reader: LogReader | None = None
    storage: Storage | None = None
    # Every namespace's files, for the namespace.* tasks, namespaceFiles and read() (None without a
    # flows folder, unless the store shares them).
    namespace_store: NamespaceFiles | None = None
    # The history of executions (execution.Count, the purge tasks), commands on other executions
    # (execution.Resume) and the triggers' switches (trigger.Toggle); None when not provided.
    records: ExecutionRecords | None = None
    control: ExecutionControl | None = None
    trigger_switches: TriggerSwitches | None = None
    # The flows folder's flows, read and written (the git flow tasks); None without a flows folder.
    flows: FlowSources | None = None
    # Set when a WorkingDirectory parent shares its folder with its children.
    working_dir: Path | None = None
    kill_grace: float = 5.0
    # Awaited by tasks that log a lot, so that the log store keeps up (back-pressure).
    drain: Callable[[], Awaitable[None]] | None = None
    # Writes every buffered log line to the store now (log.Fetch reads them back).
    flush_logs: Callable[[], Awaitable[None]] | None = None
    labels: list[Label] = field(default_factory=list)
    warning: bool = False
    # Counters and timers reported during this attempt, stored when it ends.
    metrics: Metrics = field(default_factory=Metrics)

    def render(self, value: Any) -> Any:
        """Render a property value (strings anywhere inside it) in this task run's context."""
        return self.renderer.render_value(value, self.variables)

    def is_truthy(self, value: Any) -> bool:
        """Kestra's truthiness of a rendered condition."""
        return value if isinstance(value, bool) else self.renderer.is_truthy(str(value), self.variables)

    def prop(self, name: str, default: Any = None) -> Any:
        """A property of the task, rendered."""
        value = self.task.props.get(name, default)
        return self.render(value) if value is not None else default

    def flag(self, name: str, default: bool) -> bool:
        """A true/false property, rendered (`true`, `false` in any case, or a boolean).

        Raises:
            TaskFailure: When it is anything else.
        """
        return as_flag(name, self.prop(name, default))

    def task_uri(self) -> str:
        """Where this task run's files go in the internal storage (kestra:///...)."""
        return self.require_storage().task_uri(
            self.execution.namespace, self.execution.flow_id, self.execution.id, self.task.id, self.run.id
        )

    def put_file(self, name: str, source: Path) -> str:
        """Store a file produced by this task run; return its kestra:// URI."""
        return self.require_storage().put_file(self.task_uri(), name, source)

    def stored_file(self, uri: str) -> Path:
        """The local file of a stored `kestra://` file this execution may read, to read in place.

        Raises:
            TaskFailure: A malformed URI, a file of an execution this one may not read, a missing
                file or a folder.
        """
        return readable_file(self.require_storage(), uri, self.execution.namespace, self.execution.trigger)

    def require_storage(self) -> Storage:
        if self.storage is None:
            raise TaskFailure("This task needs the internal storage, which this engine was started without")
        return self.storage

    def log(self, level: LogLevel, message: str) -> None:
        """Log a line, unless the task's `logLevel` is above `level`."""
        if self.task.log_level and level.rank < LogLevel.parse(self.task.log_level).rank:
            return
        self.emit(level, message)

    def metric(self, kind: str, name: str, value: float, tags: Mapping[str, Any] | None = None) -> None:
        """Report a metric: a counter's count (`counter`), or a duration in seconds (`timer`).

        Metrics of the same type, name and tags add up over the attempt.

        Raises:
            MetricError: The type, name, value or tags cannot be kept.
        """
        self.metrics.add(Metric.of(kind, name, value, tags), utcnow())

    def report_metrics(self, entries: Any) -> None:
        """Report the metrics of a script's protocol line (a list of {name, type, value, tags});
        each one that cannot be kept is logged as a warning, the others are kept."""
        if not isinstance(entries, list):
            self.log(LogLevel.WARN, f"Invalid metrics `{entries}`: expected a list")
            return
        for entry in entries:
            try:
                if not isinstance(entry, Mapping):
                    raise MetricError(f"expected a map, got `{entry}`")
                metric = Metric.of(
                    entry.get("type"), entry.get("name"), entry.get("value"), entry.get("tags")
                )
                self.metrics.add(metric, utcnow())
            except MetricError as error:
                self.log(LogLevel.WARN, f"Invalid metric: {error}")


class RunnableHandler(Protocol):
    def __call__(self, context: TaskContext) -> Awaitable[Mapping[str, Any] | None]: ...
