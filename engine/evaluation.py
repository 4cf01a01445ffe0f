"""An expression rendered against a stored execution: Kestra's expression debugger (its `eval`
endpoint), behind the dashboard's expression console, `tiercel eval` and the REST API.

The expression sees what a task of the execution saw: the flow, the execution (its inputs, labels,
trigger, outputs so far), the engine's functions (kv(), read(), namespace ...), and with a task run
its `taskrun`, `task` and `parents`. `secret()` is refused, as in Kestra: a console must not be a way
to read secrets. The data goes through the engine's masking before the render (a filter could turn a
secret past recognition), and the answer after it. When the render fails,
the answer names the error and, when it can be told, where in the expression it is.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import EngineCommandError
from .expressions import ExpressionError, Renderer
from .expressions.variables import build_context
from .model import Execution, Flow, LogEntry
from .secrets import Masker

# The messages that name the part of the expression at fault, and how to find that part in it.
_NAMED = (
    re.compile(r"^Unable to find `(?P<name>[^`]+)` used in"),
    re.compile(r"Unknown (?:filter|test|function) '(?P<name>[^']+)'"),
    re.compile(r"no (?:filter|test|function) named '(?P<name>[^']+)'"),
)
_LINE = re.compile(r"\(line (?P<line>\d+)\)")
# The variables that hold data (masked before a render), and the functions that read some.
_DATA = frozenset({"inputs", "outputs", "trigger", "vars", "labels", "parent", "parents", "taskrun", "envs"})
_READERS = ("kv", "read", "errorLogs")


class _Executions(Protocol):
    async def get_execution(self, execution_id: str) -> Execution | None: ...


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What an expression rendered to, or why it failed; `line` and `column` (from 1) say where the
    error is when known (a column of None: somewhere on that line)."""

    result: str | None = None
    error: str | None = None
    line: int | None = None
    column: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Kestra's EvalResult (result, error, stackTrace), with the position Tiercel adds."""
        found: dict[str, Any] = {"result": self.result, "error": self.error, "stackTrace": None}
        if self.line is not None:
            found["position"] = {"line": self.line, "column": self.column}
        return found

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Evaluation:
        position = data.get("position") or {}
        return Evaluation(
            result=data.get("result"),
            error=data.get("error"),
            line=position.get("line"),
            column=position.get("column"),
        )


class ExpressionConsole:
    """Renders expressions against the executions of one store."""

    def __init__(
        self,
        executions: _Executions,
        flow_revision: Callable[[str, str, int], Awaitable[Flow | None]],
        renderer: Renderer,
        functions: Callable[[Execution, list[LogEntry]], dict[str, Any]],
        masker: Masker,
    ) -> None:
        self.executions = executions
        self.flow_revision = flow_revision
        self.renderer = renderer
        self.functions = functions
        self.masker = masker

    async def evaluate(
        self,
        execution_id: str,
        task_run_id: str | None,
        expression: str,
        variables: Mapping[str, Any] | None = None,
    ) -> Evaluation:
        """`expression` rendered for the execution (for one of its task runs, when given), with
        `variables` added to what a task would see (a flow test's `states` and `logs`).

        Raises:
            EngineCommandError: No such execution or task run, or its flow revision is gone.
        """
        execution = await self.executions.get_execution(execution_id)
        if execution is None:
            raise EngineCommandError(f"no execution `{execution_id}`")
        flow = await self.flow_revision(execution.namespace, execution.flow_id, execution.flow_revision)
        if flow is None:
            name = f"{execution.namespace}.{execution.flow_id}"
            raise EngineCommandError(f"revision {execution.flow_revision} of {name} is not stored")
        run = next((run for run in execution.task_runs if run.id == task_run_id), None)
        if task_run_id and run is None:
            raise EngineCommandError(f"execution `{execution.id}` has no task run `{task_run_id}`")
        task = flow.tasks_by_id.get(run.task_id) if run is not None else None
        extra = self.functions(execution, [])
        extra.pop("inputs", None)  # the clear values of SECRET inputs: the stored, masked ones stay
        extra["secret"] = _no_secret
        for name in _READERS:
            if callable(reader := extra.get(name)):
                extra[name] = self._masked(reader)
        context = build_context(flow, execution, task, run, extra=extra) | dict(variables or {})
        # Masked before rendering: a filter could change a secret past recognition (`| reverse`).
        for key in _DATA & context.keys():
            context[key] = self.masker.mask_value(context[key])
        try:
            await self.renderer.prefetch(expression, context)
            rendered = self.renderer.render(expression, context)
        except ExpressionError as error:
            message = self.masker.mask(str(error))
            line, column = error_position(expression, str(error))
            return Evaluation(error=message, line=line, column=column)
        return Evaluation(result=self.masker.mask(rendered))

    def _masked(self, reader: Callable[..., Any]) -> Callable[..., Any]:
        def masked(*args: Any, **kwargs: Any) -> Any:
            return self.masker.mask_value(reader(*args, **kwargs))

        return masked


def _no_secret(*_: Any, **__: Any) -> str:
    raise ExpressionError("secret() is not available here: an expression console never shows a secret")


def error_position(expression: str, message: str) -> tuple[int | None, int | None]:
    """Where in `expression` the error `message` points: the name it says is missing or unknown,
    inside an expression's braces; else the line it names; else nowhere."""
    for pattern in _NAMED:
        found = pattern.search(message)
        if found is None:
            continue
        name = found["name"]
        for wanted in dict.fromkeys((name, name.split(".", 1)[0])):  # the whole path, else its root
            for block in re.finditer(r"\{\{.*?\}\}|\{%.*?%\}", expression, re.S):
                at = re.search(rf"(?<!\w){re.escape(wanted)}(?!\w)", block[0])
                if at is not None:
                    return _line_and_column(expression, block.start() + at.start())
    line = _LINE.search(message)
    return (int(line["line"]), None) if line else (None, None)


def _line_and_column(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


__all__: Sequence[str] = ("Evaluation", "ExpressionConsole", "error_position")
