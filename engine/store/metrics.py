"""Metrics of task runs: written when an attempt ends, read per execution."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..model import MetricEntry, parse_iso
from .queries import Queries
from .table import Table
from .writer import statements

_SQL = Queries("metrics")


def _params(entry: MetricEntry) -> tuple[Any, ...]:
    return (
        entry.execution_id,
        entry.namespace,
        entry.flow_id,
        entry.task_id,
        entry.task_run_id,
        entry.type,
        entry.name,
        entry.value,
        entry.to_json()["timestamp"],
        json.dumps(dict(entry.tags), sort_keys=True),
    )


def _entry(row: Sequence[Any]) -> MetricEntry:
    return MetricEntry(
        execution_id=row[0],
        namespace=row[1],
        flow_id=row[2],
        task_id=row[3],
        task_run_id=row[4],
        type=row[5],
        name=row[6],
        value=float(row[7]),
        timestamp=parse_iso(row[8]),
        tags=json.loads(row[9]),
    )


class MetricTable(Table):
    """The `metrics` table."""

    async def append_metrics(self, metrics: Sequence[MetricEntry]) -> None:
        """Store metric entries (one `executemany`); returns when they are durable."""
        if metrics:
            await self._db.write(statements(_SQL["insert_metric"], [_params(entry) for entry in metrics]))

    def append_metrics_nowait(self, metrics: Sequence[MetricEntry]) -> None:
        """Queue metric entries for the writer and return at once: they commit no later than any
        write queued after them. A failure goes to `on_error`.

        Raises:
            StoreError: The store is closed or read-only.
        """
        if metrics:
            write = statements(_SQL["insert_metric"], [_params(entry) for entry in metrics])
            self._db.submit_nowait(write, "metrics")

    async def metrics(
        self, execution_id: str, *, task_run_id: str | None = None, task_id: str | None = None
    ) -> list[MetricEntry]:
        """The metrics of an execution (of one task run, or of one task's runs), as stored."""
        params = (execution_id, task_run_id, task_run_id, task_id, task_id)
        return [_entry(row) for row in await self._db.fetchall(_SQL["select_metrics"], params)]
