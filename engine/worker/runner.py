"""The worker: runs task runs as asyncio tasks (timeouts, kill, logs) and reports their results.

It receives `RunTaskRun` and `CancelTaskRun` messages (engine.messages) through `send`, looks the
task's handler up in the registry, and puts a `TaskRunResult` into the executor's inbox when an
attempt ends; log lines go to the log pipeline. It knows no task type by name: a handler that shares
a working folder with the task runs below it (WorkingDirectory) says so by providing
`prepare_working_folder` (see `SharesWorkingFolder`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..durations import parse_duration
from ..expressions import ExpressionError, Renderer
from ..expressions.variables import build_context, in_working_directory
from ..messages import (
    CancelTaskRun,
    ExecutorMessage,
    Failure,
    RunTaskRun,
    TaskRunResult,
    WorkerJob,
    WorkerResult,
)
from ..model import Execution, Flow, LogEntry, LogLevel, Metric, MetricEntry, StateType, TaskRun, utcnow
from ..model.metrics import COUNTER, TIMER
from ..model.resources import CPU_TIME_METRIC, PEAK_MEMORY_METRIC, ResourceUsage
from ..processes.forkserver import FORKSERVERS, ForkServers
from ..processes.record import ProcessRecord, attempt_token_prefix
from ..processes.run import PROCESS_WATCH
from ..queue import MessageSink
from ..store.errors import StoreError
from ..tasks.base import TaskContext, TaskFailure
from ..tasks.failures import EXPRESSION_ERROR, TIMEOUT, unexpected_error_code
from ..tasks.registry import Registry
from ..tasks.services import (
    ExecutionControl,
    ExecutionRecords,
    FlowSources,
    KeyValueStore,
    LogReader,
    NamespaceFiles,
    TriggerSwitches,
)
from ..tasks.types import Kind
from .cache import CacheStore, cache_key, keep, reuse

if TYPE_CHECKING:
    from ..internal_storage import Storage


_log = logging.getLogger(__name__)


class SharesWorkingFolder(Protocol):
    """A handler whose task runs below it share one folder (WorkingDirectory).

    The worker makes the folder when the first task run below needs it and has the owner's handler
    fill it (its input and namespace files); the owner's closing work (`finish`) gets it too.
    """

    def prepare_working_folder(self, context: TaskContext, folder: Path) -> None: ...


class ProcessBook(Protocol):
    """Where the task programs of running attempts are recorded (for the next engine after a crash)."""

    async def record_process(self, task_run_id: str, attempt: int, process: ProcessRecord) -> None: ...

    def forget_process_nowait(self, process: ProcessRecord) -> None: ...


class MetricBook(Protocol):
    """Where the metrics of ended attempts are stored."""

    async def append_metrics(self, metrics: Sequence[MetricEntry]) -> None: ...

    def append_metrics_nowait(self, metrics: Sequence[MetricEntry]) -> None: ...


class WorkerStore(KeyValueStore, LogReader, ExecutionRecords, ProcessBook, MetricBook, CacheStore, Protocol):
    """The store as the worker uses it: the tasks' KV, log reader and history, the process book,
    the metrics and the tasks' caches."""


class WorkerCommands(ExecutionControl, TriggerSwitches, Protocol):
    """The engine's commands the tasks may use (execution.Resume, trigger.Toggle)."""


class LogSink(Protocol):
    """Where the worker's log lines go (engine.logs.LogPipeline)."""

    def append(self, entry: LogEntry) -> None: ...

    async def drain(self) -> None: ...

    async def flush(self) -> None: ...


def _entry(execution: Execution, run: TaskRun, level: LogLevel, message: str) -> LogEntry:
    """A log line of the last attempt of a task run."""
    return LogEntry(
        execution_id=execution.id,
        namespace=execution.namespace,
        flow_id=execution.flow_id,
        timestamp=utcnow(),
        level=level,
        message=message,
        task_id=run.task_id,
        task_run_id=run.id,
        attempt=len(run.attempts) - 1,
    )


class _AttemptProcesses:
    """Keeps the programs one attempt starts recorded in the store while they run, so that the next
    engine can kill them if this one dies, and adds up what they used."""

    def __init__(self, store: ProcessBook | None, task_run_id: str, attempt: int) -> None:
        self.store = store
        self.task_run_id = task_run_id
        self.attempt = attempt
        self.token_prefix = attempt_token_prefix(task_run_id, attempt)
        self.usage: ResourceUsage | None = None

    async def started(self, record: ProcessRecord) -> None:
        if self.store is not None:
            await self.store.record_process(self.task_run_id, self.attempt, record)

    def ended(self, record: ProcessRecord, usage: ResourceUsage | None) -> None:
        if usage is not None:
            self.usage = usage if self.usage is None else self.usage + usage
        # A store closed meanwhile leaves the row: the next engine finds the process gone.
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.forget_process_nowait(record)


class Runner:
    """The in-process worker: one asyncio task per attempt, each end reported as a `TaskRunResult`."""

    def __init__(
        self,
        registry: Registry,
        renderer: Renderer,
        *,
        results: MessageSink[ExecutorMessage],
        logs: LogSink,
        context_extra: Callable[[Execution], dict[str, Any]] | None = None,
        prefetch: Callable[[Any, Mapping[str, Any]], Awaitable[None]] | None = None,
        store: WorkerStore | None = None,
        storage: Storage | None = None,
        namespace_files: NamespaceFiles | None = None,
        commands: WorkerCommands | None = None,
        flows: FlowSources | None = None,
        kill_grace: float = 5.0,
        results_follow_metrics: bool = False,
    ) -> None:
        self.registry = registry
        self.renderer = renderer
        self.results = results
        self.logs = logs
        self.context_extra = context_extra
        # Reads what the task's properties need before they are rendered (kv() values).
        self.prefetch = prefetch
        self.store = store
        self.storage = storage
        self.namespace_files = namespace_files
        self.commands = commands
        self.flows = flows
        self.kill_grace = kill_grace
        # The results reach the store through the same write queue as the metrics (an executor in
        # this process saves the ended task run after them): the metrics are queued, not awaited.
        self.results_follow_metrics = results_follow_metrics
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        # Attempts cancelled without a report (`abandon`): someone else decides what they become.
        self._abandoned: set[asyncio.Task[None]] = set()
        # Warm interpreters that Python tasks are forked from, closed when the worker stops.
        self.forkservers = ForkServers()

    @property
    def busy(self) -> int:
        return len(self._running)

    def send(self, job: WorkerJob) -> None:
        """Take a message from the executor: run a task run, or cancel one."""
        if isinstance(job, RunTaskRun):
            self.start(job.flow, job.execution, job.task_run)
        elif isinstance(job, CancelTaskRun):
            self.cancel(job.task_run_id)

    def start(self, flow: Flow, execution: Execution, run: TaskRun) -> None:
        task = asyncio.get_running_loop().create_task(self._run(flow, execution, run))
        self._running[run.id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._running.get(run.id) is done:  # a newer attempt may have taken the slot
                del self._running[run.id]
            abandoned = done in self._abandoned
            self._abandoned.discard(done)
            if done.cancelled() and not abandoned and not self._stopping:
                # Cancelled before its first step (a kill in the same batch as its start): `_run`
                # never ran to say so.
                self.logs.append(_entry(execution, run, LogLevel.WARN, "Killed"))
                self.results.put(TaskRunResult(execution.id, WorkerResult(run.id, StateType.KILLED)))

        task.add_done_callback(forget)

    def is_running(self, run_id: str) -> bool:
        return run_id in self._running

    def cancel(self, run_id: str) -> None:
        task = self._running.get(run_id)
        if task is not None:
            task.cancel()

    async def abandon(self) -> None:
        """Cancel every attempt without reporting: someone else decides what they become."""
        tasks = list(self._running.values())
        self._abandoned.update(tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def stop(self) -> None:
        """Abandon every attempt (the next engine decides what they become) and stop."""
        self._stopping = True
        await self.abandon()
        await self.forkservers.close()

    def _context(self, flow: Flow, execution: Execution, run: TaskRun) -> TaskContext:
        """What a handler sees of one attempt of one task run."""
        spec = flow.tasks_by_id[run.task_id]

        def emit(level: LogLevel, message: str) -> None:
            self.logs.append(_entry(execution, run, level, message))

        extra = self.context_extra(execution) if self.context_extra else None
        return TaskContext(
            flow=flow,
            execution=execution,
            task=spec,
            run=run,
            renderer=self.renderer,
            variables=build_context(flow, execution, spec, run, extra=extra),
            emit=emit,
            kv=self.store,
            log_reader=self.store,
            storage=self.storage,
            namespace_store=self.namespace_files,
            records=self.store,
            control=self.commands,
            trigger_switches=self.commands,
            flows=self.flows,
            kill_grace=self.kill_grace,
            drain=self.logs.drain,
            flush_logs=self.logs.flush,
        )

    async def open(self) -> None:
        """Nothing to open: attempts start as they are sent."""

    async def held(self, attempts: Sequence[tuple[str, int]]) -> set[str]:
        """None of a stopped engine's attempts outlives it in this process (see SharedWorkerQueue)."""
        return set()

    def _folder_owner(self, flow: Flow, execution: Execution, run: TaskRun) -> tuple[TaskRun, Any] | None:
        """The nearest task run (itself or an ancestor) whose handler shares a working folder."""
        for candidate in (run, *execution.parents_of(run)):
            task_type = self.registry.lookup(flow.tasks_by_id[candidate.task_id].type)
            handler = task_type.handler if task_type is not None else None
            # An attribute check: isinstance on a runtime protocol costs more, once per ancestor.
            if hasattr(handler, "prepare_working_folder"):
                return candidate, handler
        return None

    def must_run_here(self, flow: Flow, execution: Execution, run: TaskRun) -> bool:
        """Whether the task run must run in this process, beside the executor: it works in a folder
        shared with others (WorkingDirectory), or its task commands the engine."""
        task_type = self.registry.lookup(flow.tasks_by_id[run.task_id].type)
        if task_type is not None and task_type.commands_engine:
            return True
        return self._folder_owner(flow, execution, run) is not None

    def _working_dir(self, flow: Flow, execution: Execution, run: TaskRun) -> tuple[Path, TaskRun] | None:
        """The folder shared by the nearest task run (itself or an ancestor) whose handler shares one,
        made on first use, and that task run."""
        found = self._folder_owner(flow, execution, run)
        if found is not None:
            candidate, handler = found
            owner = cast(SharesWorkingFolder, handler)
            folder = Path(tempfile.gettempdir()) / f"tiercel-wd-{candidate.id}"
            if not folder.exists():
                folder.mkdir(mode=0o700)
                owner.prepare_working_folder(self._context(flow, execution, candidate), folder)
            return folder, candidate
        return None

    async def _run(self, flow: Flow, execution: Execution, run: TaskRun) -> None:
        FORKSERVERS.set(self.forkservers)
        # This asyncio task runs in a copy of the context: the watch stays with this attempt.
        processes = _AttemptProcesses(self.store, run.id, len(run.attempts) - 1)
        PROCESS_WATCH.set(processes)
        spec = flow.tasks_by_id[run.task_id]
        _log.debug("task run %s (%s, %s) of %s starts", run.id, run.task_id, spec.type, execution.id)
        context = self._context(flow, execution, run)
        task_type = self.registry.lookup(spec.type)
        outputs = None
        state = StateType.SUCCESS
        failure: Failure | None = None
        cached_from: str | None = None
        deadline: asyncio.Timeout | None = None
        try:
            if task_type is None or task_type.handler is None:
                raise TaskFailure(f"No handler for task type `{spec.type}`")
            shared = self._working_dir(flow, execution, run)
            if shared is not None:
                context.working_dir, owner = shared
                if owner is not run:
                    in_working_directory(context.variables, owner)
            # Costly filters (jq, regular expressions, large parses) run in workers, awaited here, so
            # that the handler's renders on the event loop find their results ready.
            await self.renderer.prefetch(spec.props, context.variables)
            if self.prefetch is not None:
                await self.prefetch(spec.props, context.variables)
            key = cache_key(context, spec.cache) if spec.cache is not None and self.store else None
            hit = await reuse(self.store, context, key) if self.store is not None and key else None
            if hit is not None:
                outputs, cached_from = hit.outputs, hit.execution_id
                context.warning = hit.state == StateType.WARNING.value
            else:
                timeout = self._timeout(context)
                async with asyncio.timeout(timeout.total_seconds() if timeout else None) as deadline:
                    if task_type.kind is Kind.FLOWABLE:
                        outputs = await task_type.handler.finish(context)
                    else:
                        outputs = await task_type.handler(context)
            if context.warning:
                state = StateType.WARNING
            if hit is None and key and spec.cache and self.store is not None:
                await keep(self.store, context, key, spec.cache, state.value, outputs)
        except TimeoutError as error:
            if deadline is not None and deadline.expired():
                failure = Failure(TIMEOUT, f"Timeout: the task ran longer than its timeout of {spec.timeout}")
            else:  # a handler's own wait that timed out
                failure = Failure(TIMEOUT, f"{type(error).__name__}: {error or 'a wait timed out'}")
        except asyncio.CancelledError:
            if self._stopping or asyncio.current_task() in self._abandoned:
                return
            context.emit(LogLevel.WARN, "Killed")
            state = StateType.KILLED
        except TaskFailure as error:
            failure, outputs = Failure(error.code, str(error)), error.outputs
        except ExpressionError as error:
            failure = Failure(EXPRESSION_ERROR, str(error))
        except Exception as error:  # a bug in a handler must fail the task, not the engine
            failure = Failure(unexpected_error_code(error), f"{type(error).__name__}: {error}")
        if failure is not None:
            context.emit(LogLevel.ERROR, failure.message)
            state = StateType.FAILED
        _log.debug("task run %s (%s) of %s ended %s", run.id, run.task_id, execution.id, state.value)
        # Stored before the result is reported: once the task run has ended, its metrics can be read.
        await self._store_metrics(execution, run, context, processes.usage)
        result = WorkerResult(
            run.id, state, outputs, tuple(context.labels), failure, cached_from, processes.usage
        )
        self.results.put(TaskRunResult(execution.id, result))

    async def _store_metrics(
        self, execution: Execution, run: TaskRun, context: TaskContext, usage: ResourceUsage | None
    ) -> None:
        if usage is not None:  # the figures of the attempt's programs, as metrics like any other
            now = utcnow()
            context.metrics.add(Metric(TIMER, CPU_TIME_METRIC, usage.cpu_seconds), now)
            if usage.peak_memory is not None:
                context.metrics.add(Metric(COUNTER, PEAK_MEMORY_METRIC, usage.peak_memory), now)
        if not context.metrics or self.store is None:
            return
        entries = context.metrics.entries(
            execution_id=execution.id,
            namespace=execution.namespace,
            flow_id=execution.flow_id,
            task_id=run.task_id,
            task_run_id=run.id,
        )
        if context.task.labels:  # a task's labels tag its figures; a metric's own tag wins
            labels = {label.key: label.value for label in context.task.labels}
            entries = [dataclasses.replace(entry, tags={**labels, **entry.tags}) for entry in entries]
        try:
            if self.results_follow_metrics:
                self.store.append_metrics_nowait(entries)
            else:
                await self.store.append_metrics(entries)
        except StoreError as error:  # the attempt's result matters more than its figures
            context.emit(LogLevel.WARN, f"The task's metrics could not be stored: {error}")

    @staticmethod
    def _timeout(context: TaskContext) -> Any:
        if not context.task.timeout:
            return None
        text = str(context.render(context.task.timeout))
        try:
            return parse_duration(text)
        except ValueError as error:
            raise TaskFailure(f"`timeout`: {error}") from None
