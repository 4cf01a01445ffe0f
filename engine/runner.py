"""Runs runnable task runs as asyncio tasks: timeouts, kill, logs, and a result for the executor."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.context import build_context
from engine.durations import parse_duration
from engine.executor import WorkerResult
from engine.expressions import ExpressionError, Renderer
from engine.model import Execution, Flow, LogEntry, LogLevel, StateType, TaskRun, utcnow
from engine.tasks.base import TaskContext, TaskFailure
from engine.tasks.registry import Registry

if TYPE_CHECKING:
    from engine.store import Store


class Runner:
    """Starts one asyncio task per attempt and reports each end through `on_result`."""

    def __init__(
        self,
        registry: Registry,
        renderer: Renderer,
        *,
        on_result: Callable[[str, WorkerResult], None],
        on_log: Callable[[LogEntry], None],
        context_extra: Callable[[Execution], dict[str, Any]] | None = None,
        store: Store | None = None,
    ) -> None:
        self.registry = registry
        self.renderer = renderer
        self.on_result = on_result
        self.on_log = on_log
        self.context_extra = context_extra
        self.store = store
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    @property
    def busy(self) -> int:
        return len(self._running)

    def start(self, flow: Flow, execution: Execution, run: TaskRun) -> None:
        task = asyncio.get_running_loop().create_task(self._run(flow, execution, run))
        self._running[run.id] = task
        task.add_done_callback(lambda _: self._running.pop(run.id, None))

    def cancel(self, run_id: str) -> None:
        task = self._running.get(run_id)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        """Cancel every attempt without reporting: the next engine decides what they become."""
        self._stopping = True
        for task in list(self._running.values()):
            task.cancel()
        for task in list(self._running.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, flow: Flow, execution: Execution, run: TaskRun) -> None:
        spec = flow.tasks_by_id[run.task_id]
        attempt = len(run.attempts) - 1

        def emit(level: LogLevel, message: str) -> None:
            self.on_log(
                LogEntry(
                    execution_id=execution.id,
                    namespace=execution.namespace,
                    flow_id=execution.flow_id,
                    timestamp=utcnow(),
                    level=level,
                    message=message,
                    task_id=run.task_id,
                    task_run_id=run.id,
                    attempt=attempt,
                )
            )

        extra = self.context_extra(execution) if self.context_extra else None
        variables = build_context(flow, execution, spec, run, extra=extra)
        context = TaskContext(
            flow=flow,
            execution=execution,
            task=spec,
            run=run,
            render_value=lambda value: self.renderer.render_value(value, variables),
            is_truthy=lambda value: (
                value if isinstance(value, bool) else self.renderer.is_truthy(str(value), variables)
            ),
            emit=emit,
            store=self.store,
        )
        handler = self.registry.lookup(spec.type)
        outputs = None
        state = StateType.SUCCESS
        try:
            if handler is None or handler.handler is None:
                raise TaskFailure(f"No handler for task type `{spec.type}`")
            timeout = self._timeout(context)
            async with asyncio.timeout(timeout.total_seconds() if timeout else None):
                outputs = await handler.handler(context)
            if context.warning:
                state = StateType.WARNING
        except TimeoutError:
            emit(LogLevel.ERROR, f"Timeout: the task ran longer than its timeout of {spec.timeout}")
            state = StateType.FAILED
        except asyncio.CancelledError:
            if self._stopping:
                return
            emit(LogLevel.WARN, "Killed")
            state = StateType.KILLED
        except (TaskFailure, ExpressionError) as error:
            emit(LogLevel.ERROR, str(error))
            state = StateType.FAILED
        except Exception as error:  # a bug in a handler must fail the task, not the engine
            emit(LogLevel.ERROR, f"{type(error).__name__}: {error}")
            state = StateType.FAILED
        self.on_result(execution.id, WorkerResult(run.id, state, outputs, tuple(context.labels)))

    @staticmethod
    def _timeout(context: TaskContext) -> Any:
        if not context.task.timeout:
            return None
        text = str(context.render(context.task.timeout))
        try:
            return parse_duration(text)
        except ValueError as error:
            raise TaskFailure(f"`timeout`: {error}") from None
