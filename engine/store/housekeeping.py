"""Counting and purging the history: what execution.Count, execution.PurgeExecutions and
log.PurgeLogs ask of the store (the `ExecutionRecords` protocol of engine.tasks.services)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from ..model import LogLevel, iso
from .queries import Queries
from .table import Table

_SQL = Queries("housekeeping")


def _json_list(values: Sequence[str] | None) -> str | None:
    return None if values is None else json.dumps(list(values))


class HousekeepingTable(Table):
    """Counts and deletions over the `executions`, `task_runs`, `logs` and `metrics` tables."""

    async def count_executions_by_flow(
        self,
        *,
        flows: Sequence[tuple[str, str]],
        namespaces: Sequence[str],
        states: Sequence[str] | None,
        start: datetime,
        end: datetime,
    ) -> list[tuple[str, str, int]]:
        """(namespace, flow id, count) of the executions started within [start, end] of the given
        flows or namespaces (exact), in `states` (None: any), by namespace then flow id."""
        keys = [[namespace, flow_id] for namespace, flow_id in flows]
        state_list = _json_list(states)
        params = (
            iso(start),
            iso(end),
            state_list,
            state_list,
            json.dumps(keys),
            json.dumps(list(namespaces)),
        )
        rows = await self._db.fetchall(_SQL["count_executions_by_flow"], params)
        return [(str(row[0]), str(row[1]), int(row[2])) for row in rows]

    async def ended_executions(
        self,
        *,
        namespace: str | None,
        flow_id: str | None,
        start: datetime | None,
        end: datetime,
        states: Sequence[str] | None,
    ) -> list[tuple[str, str, str]]:
        """(id, namespace, flow id) of the executions that ended at or before `end`, oldest first.

        `namespace` is exact with a `flow_id`, else it also matches the namespaces below it; `start`
        bounds their start date; `states` their current state. Unfinished executions never match.
        """
        begin = iso(start)
        state_list = _json_list(states)
        below = (namespace + ".", namespace + "/") if namespace is not None else (None, None)
        params = (
            iso(end),
            begin,
            begin,
            flow_id,
            flow_id,
            namespace,
            namespace,
            flow_id,
            *below,
            state_list,
            state_list,
        )
        rows = await self._db.fetchall(_SQL["select_ended_executions"], params)
        return [(str(row[0]), str(row[1]), str(row[2])) for row in rows]

    async def delete_executions(self, execution_ids: Sequence[str]) -> tuple[int, int]:
        """Delete executions with their task runs; return (executions, task runs with outputs) deleted."""
        count_outputs, delete = _SQL["count_task_outputs"], _SQL["delete_execution"]
        rows = [(execution_id,) for execution_id in execution_ids]

        def write(conn: sqlite3.Connection) -> tuple[int, int]:
            outputs = sum(int(conn.execute(count_outputs, row).fetchone()[0]) for row in rows)
            return conn.executemany(delete, rows).rowcount, outputs

        return await self._db.write(write)

    async def delete_execution_logs(self, execution_ids: Sequence[str]) -> int:
        """Delete every log line of these executions; return how many went."""
        return await self._delete_of_executions("delete_execution_logs", execution_ids)

    async def delete_execution_metrics(self, execution_ids: Sequence[str]) -> int:
        """Delete every metric of these executions; return how many went."""
        return await self._delete_of_executions("delete_execution_metrics", execution_ids)

    async def _delete_of_executions(self, statement: str, execution_ids: Sequence[str]) -> int:
        delete = _SQL[statement]
        rows = [(execution_id,) for execution_id in execution_ids]

        def write(conn: sqlite3.Connection) -> int:
            return conn.executemany(delete, rows).rowcount

        return await self._db.write(write)

    async def purge_logs(
        self,
        *,
        end: datetime,
        start: datetime | None = None,
        namespace: str | None = None,
        flow_id: str | None = None,
        execution_id: str | None = None,
        levels: Sequence[LogLevel] | None = None,
    ) -> int:
        """Delete the log lines written within [start, end] matching every filter given (the
        namespace exact); return how many went."""
        begin = iso(start)
        ranks = None if levels is None else json.dumps([level.rank for level in levels])
        params = (
            iso(end),
            begin,
            begin,
            namespace,
            namespace,
            flow_id,
            flow_id,
            execution_id,
            execution_id,
            ranks,
            ranks,
        )
        sql = _SQL["purge_logs"]

        def write(conn: sqlite3.Connection) -> int:
            return conn.execute(sql, params).rowcount

        return await self._db.write(write)
