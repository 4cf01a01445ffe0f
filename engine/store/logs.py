"""Log lines of executions, read a page at a time or walked whole in bounded batches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from typing import Any

from ..model import LogEntry, LogLevel, parse_iso
from .errors import StoreError
from .queries import Queries
from .table import Table
from .writer import statements

_SQL = Queries("logs")

_LEVEL_BY_RANK = {level.rank: level for level in LogLevel}
# By level, and by its name (a StrEnum hashes as its value): a line written costs one lookup.
_RANK_BY_LEVEL = {level: level.rank for level in LogLevel}
_STAMP_LENGTH = len("2024-01-01T00:00:00.000Z")

#: Log lines read per query when a whole log is walked (`LogTable.iter_logs`).
LOG_BATCH = 5_000

#: The largest integer SQLite stores: above every row id it hands out in practice.
_NO_ROW_ID = (1 << 63) - 1
# A LIMIT that keeps every row (SQLite reads -1 so, PostgreSQL refuses a negative one).
_ALL_ROWS = 2**62


def log_params(entry: LogEntry) -> tuple[Any, ...]:
    return (
        entry.execution_id,
        entry.namespace,
        entry.flow_id,
        entry.task_id,
        entry.task_run_id,
        entry.attempt,
        _RANK_BY_LEVEL[entry.level],
        entry.stamp,
        entry.message,
    )


def _log_entry(row: Sequence[Any]) -> LogEntry:
    stamp = row[8]
    entry = LogEntry(
        execution_id=row[1],
        namespace=row[2],
        flow_id=row[3],
        task_id=row[4],
        task_run_id=row[5],
        attempt=row[6],
        level=_LEVEL_BY_RANK.get(row[7], LogLevel.INFO),
        # Stored by `iso` (UTC, ending in Z), which fromisoformat reads as it is: the fast path of a read.
        timestamp=datetime.fromisoformat(stamp) if stamp.endswith("Z") else parse_iso(stamp),
        message=row[9],
    )
    # What `iso` wrote is what it would write again: a line read back is not formatted anew.
    return entry.with_stamp(stamp) if len(stamp) == _STAMP_LENGTH and stamp.endswith("Z") else entry


class LogTable(Table):
    """The `logs` table."""

    async def append_logs(self, logs: Sequence[LogEntry]) -> None:
        """Append log lines (one `executemany`); returns when they are durable."""
        if not logs:
            return
        await self._db.write(statements(_SQL["insert_log"], [log_params(entry) for entry in logs]))

    def append_logs_nowait(self, logs: Sequence[LogEntry]) -> None:
        """Queue log lines for the writer and return at once; a failure goes to `on_error`.

        Raises:
            StoreError: The store is closed or read-only.
        """
        if not logs:
            return
        write = statements(_SQL["insert_log"], [log_params(entry) for entry in logs])
        self._db.submit_nowait(write, "log lines")

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
    ) -> list[tuple[int, LogEntry]]:
        """Log lines of an execution in insertion order, as (row id, entry).

        A log may hold millions of lines: read it a page at a time (`limit`, then `after` or
        `before` the row id at the page's edge), or walk it whole with `iter_logs`.

        Args:
            execution_id: The execution.
            level: The minimum level (TRACE < DEBUG < INFO < WARN < ERROR).
            task_id: Only lines of this task.
            after: Only lines after this row id (the last one seen, to follow a running execution).
            before: Only lines before this row id (the first one shown, to page back).
            limit: At most this many lines (None: every line in the range).
            newest: Take the newest `limit` lines of the range instead of the oldest; they are
                still returned oldest first.

        Raises:
            ValueError: `level` is not a log level.
        """
        rank = 0
        if level is not None:
            try:
                rank = LogLevel.parse(level).rank
            except ValueError:
                raise ValueError(
                    f"unknown log level {level!r} (use TRACE, DEBUG, INFO, WARN or ERROR)"
                ) from None
        upper = _NO_ROW_ID if before is None else before
        count = _ALL_ROWS if limit is None else max(0, limit)
        params = (execution_id, after, upper, rank, task_id, task_id, count)
        rows = await self._db.fetchall(_SQL["select_logs_newest" if newest else "select_logs"], params)
        if newest:
            rows.reverse()
        return [(int(row[0]), _log_entry(row)) for row in rows]

    async def iter_logs(
        self,
        execution_id: str,
        *,
        level: str | None = None,
        task_id: str | None = None,
        after: int = 0,
        batch: int = LOG_BATCH,
    ) -> AsyncGenerator[list[tuple[int, LogEntry]], None]:
        """An execution's log lines, oldest first, in batches of at most `batch` (row id, entry).

        Each batch is one query resuming after the last row id seen, so memory stays bounded by
        two batches whatever the log's size: the next one is read while the caller handles this one.
        Lines written while walking are included up to the end.

        Raises:
            ValueError: `level` is not a log level.
        """
        size = max(1, batch)

        def read(start: int) -> asyncio.Task[list[tuple[int, LogEntry]]]:
            return asyncio.ensure_future(
                self.logs(execution_id, level=level, task_id=task_id, after=start, limit=size)
            )

        pending = read(after)
        try:
            while True:
                rows = await pending
                if not rows:
                    return
                if len(rows) == size:
                    pending = read(rows[-1][0])
                yield rows
                if len(rows) < size:
                    return
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StoreError):
                    await pending
