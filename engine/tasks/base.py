"""What a runnable task handler receives and may raise."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from engine.model import Execution, Flow, Label, LogLevel, TaskRun, TaskSpec

if TYPE_CHECKING:
    from engine.store import Store


class TaskFailure(Exception):
    """The task failed; the message is logged at ERROR on its task run (and shown by errorLogs())."""


@dataclass
class TaskContext:
    """One attempt of one task run, as its handler sees it."""

    flow: Flow
    execution: Execution
    task: TaskSpec
    run: TaskRun
    render_value: Callable[[Any], Any]
    is_truthy: Callable[[Any], bool]
    emit: Callable[[LogLevel, str], None]
    store: Store | None = None
    labels: list[Label] = field(default_factory=list)
    warning: bool = False

    def render(self, value: Any) -> Any:
        """Render a property value (strings anywhere inside it) in this task run's context."""
        return self.render_value(value)

    def prop(self, name: str, default: Any = None) -> Any:
        """A property of the task, rendered."""
        value = self.task.props.get(name, default)
        return self.render_value(value) if value is not None else default

    def log(self, level: LogLevel, message: str) -> None:
        """Log a line, unless the task's `logLevel` is above `level`."""
        if self.task.log_level and level.rank < LogLevel.parse(self.task.log_level).rank:
            return
        self.emit(level, message)


class RunnableHandler(Protocol):
    def __call__(self, context: TaskContext) -> Awaitable[Mapping[str, Any] | None]: ...
