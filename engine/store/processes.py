"""The task programs running now, so that the next engine can kill those a crash left behind."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..model import iso, utcnow
from ..processes.record import ProcessRecord
from .queries import Queries
from .table import Table
from .writer import statement, statements

_SQL = Queries("processes")


class ProcessTable(Table):
    """The `processes` table."""

    async def record_process(self, task_run_id: str, attempt: int, process: ProcessRecord) -> None:
        """Record a task program that has just started; returns once the record is durable."""
        params = (
            task_run_id,
            attempt,
            process.pid,
            process.pgid,
            process.start_ticks,
            process.token,
            os.getpid(),
            iso(utcnow()),
        )
        await self._db.write(statement(_SQL["insert_process"], params))

    def forget_process_nowait(self, process: ProcessRecord) -> None:
        """Queue the removal of a program's record (every process of it is gone) and return at once.

        Raises:
            StoreError: The store is closed or read-only.
        """
        write = statement(_SQL["delete_process"], (process.pid, process.start_ticks))
        self._db.submit_nowait(write, "a process record")

    async def recorded_processes(self) -> list[ProcessRecord]:
        """Every program recorded and not forgotten: at start, those a previous engine left."""
        rows = await self._db.fetchall(_SQL["select_processes"])
        return [ProcessRecord(int(a), int(b), int(c), str(d)) for a, b, c, d in rows]

    async def forget_processes(self, processes: Sequence[ProcessRecord]) -> None:
        """Remove the records of programs known to be gone."""
        if processes:
            rows = [(process.pid, process.start_ticks) for process in processes]
            await self._db.write(statements(_SQL["delete_process"], rows))
