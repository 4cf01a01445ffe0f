"""The log pipeline: task log lines are masked, buffered, announced and written in batches.

Lines from running tasks (and from the engine about them) are masked first: a secret value never
reaches the store or the screen in clear. They are buffered and flushed every LOG_FLUSH_SECONDS with
one `executemany`; the event bus gets them at the flush, the store right after. A task that logs
faster than the store writes waits (`drain`) once LOG_BUFFER_LINES lines or LOG_BUFFER_CHARS
characters are buffered, so that a task printing gigabytes cannot grow the engine's memory.

The ERROR lines of each live execution are also kept for the errorLogs() expression function.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

from .events import EngineError, EventBus, LogsAppended
from .model import Execution, LogEntry, LogLevel, TaskRun, utcnow
from .secrets import Masker

LOG_FLUSH_SECONDS = 0.05
LOG_BUFFER_LINES = 10_000
LOG_BUFFER_CHARS = 8 * 1024 * 1024


class LogStore(Protocol):
    """The store as the log pipeline writes and reads it."""

    async def append_logs(self, logs: Sequence[LogEntry]) -> None: ...

    async def logs(
        self,
        execution_id: str,
        *,
        level: str | None = None,
        task_id: str | None = None,
        after: int = 0,
        before: int | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[tuple[int, LogEntry]]: ...


def log_entry(
    execution: Execution, run: TaskRun | None, message: str, level: LogLevel = LogLevel.ERROR
) -> LogEntry:
    """A line the engine logs about an execution (or one of its task runs' last attempt)."""
    return LogEntry(
        execution_id=execution.id,
        namespace=execution.namespace,
        flow_id=execution.flow_id,
        timestamp=utcnow(),
        level=level,
        message=message,
        task_id=run.task_id if run else None,
        task_run_id=run.id if run else None,
        attempt=len(run.attempts) - 1 if run and run.attempts else None,
    )


class LogPipeline:
    """Masks, buffers, announces and stores log lines; keeps the live executions' errors."""

    def __init__(
        self, store: LogStore, events: EventBus, masker: Masker, is_live: Callable[[str], bool]
    ) -> None:
        self.store = store
        self.events = events
        self.masker = masker
        self.is_live = is_live
        self._buffer: list[LogEntry] = []
        self._chars = 0
        self._lock = asyncio.Lock()
        self._errors: dict[str, list[LogEntry]] = {}
        self._task: asyncio.Task[None] | None = None

    def append(self, entry: LogEntry) -> None:
        """Take one line for the next flush (masked, and kept when it is an error)."""
        # Once per line a task prints: a line without secrets that is not an error costs two tests.
        if self.masker:
            entry = self.masked(entry)
        if entry.level is LogLevel.ERROR:
            self.remember_error(entry)
        self._buffer.append(entry)
        self._chars += len(entry.message)

    def masked(self, entry: LogEntry) -> LogEntry:
        """Secret values never reach the store or the screen in clear."""
        if not self.masker:
            return entry
        message = self.masker.mask(entry.message)
        return entry if message == entry.message else dataclasses.replace(entry, message=message)

    def remember_error(self, entry: LogEntry) -> None:
        """Keep an ERROR line of a live execution for errorLogs() (lines stored with a step too)."""
        if entry.level is LogLevel.ERROR and self.is_live(entry.execution_id):
            self._errors.setdefault(entry.execution_id, []).append(entry)

    def keep_errors(self, execution_id: str, entries: Sequence[LogEntry]) -> None:
        """Keep these ERROR lines of an execution for errorLogs(), in place of any kept before (a
        worker of a cluster reads them from the store for the task it runs)."""
        self._errors[execution_id] = [entry for entry in entries if entry.level is LogLevel.ERROR]

    def errors_of(self, execution_id: str) -> Sequence[LogEntry]:
        return self._errors.get(execution_id, ())

    def forget(self, execution_id: str) -> None:
        """The execution ended: its errors are no longer asked for."""
        self._errors.pop(execution_id, None)

    async def drain(self) -> None:
        """Back-pressure for tasks that log a lot: wait for the store when the buffer is large."""
        if len(self._buffer) >= LOG_BUFFER_LINES or self._chars >= LOG_BUFFER_CHARS:
            await self.flush()

    async def flush(self) -> None:
        """Announce and store every buffered line; returns once they are stored (or failed to be)."""
        # One flush at a time: a reader that flushes first (see `read`) then also waits for
        # lines another flush has announced but not yet stored.
        async with self._lock:
            if not self._buffer:
                return
            entries, self._buffer = self._buffer, []
            self._chars = 0
            self.events.publish(LogsAppended(tuple(entries)))
            try:
                await self.store.append_logs(entries)
            except Exception as error:
                self.events.publish(EngineError(f"Could not save {len(entries)} log lines: {error}"))

    async def read(
        self,
        execution_id: str,
        *,
        level: str | None = None,
        task_id: str | None = None,
        after: int = 0,
        before: int | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[tuple[int, LogEntry]]:
        """A page of an execution's stored log lines as (row id, entry); see `Store.logs`.

        It flushes first, so the page holds every line the bus has already carried.
        """
        await self.flush()
        return await self.store.logs(
            execution_id, level=level, task_id=task_id, after=after, before=before, limit=limit, newest=newest
        )

    def start(self) -> None:
        """Flush every LOG_FLUSH_SECONDS from now on."""
        self._task = asyncio.create_task(self._flush_forever(), name="tiercel-logs")

    async def stop(self) -> None:
        """Stop the periodic flush (the lines still buffered stay for a last `flush`)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(LOG_FLUSH_SECONDS)
            await self.flush()
