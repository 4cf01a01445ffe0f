"""The `task_cache` table: what a task's cache keeps (engine.worker.cache reads and fills it)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..model import iso, parse_iso, utcnow
from .codec import dumps, loads
from .queries import Queries
from .table import Table

_SQL = Queries("task_cache")


# What an entry without a ttl expires at: kept until cleared.
NEVER = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CachedOutputs:
    """A run's state (SUCCESS or WARNING) and outputs, kept for later runs of the same key until
    `expires`."""

    execution_id: str
    outputs: Mapping[str, Any]
    created: datetime
    expires: datetime = NEVER
    state: str = "SUCCESS"


class TaskCacheTable(Table):
    """The `task_cache` table."""

    async def cached_outputs(self, namespace: str, flow_id: str, key: str) -> CachedOutputs | None:
        """The live entry of a flow's cache under `key`, if any."""
        rows = await self._db.fetchall(_SQL["select_cache"], (namespace, flow_id, key, iso(utcnow())))
        if not rows:
            return None
        execution_id, state, outputs, created, expires = rows[0]
        return CachedOutputs(
            str(execution_id), loads(outputs), parse_iso(created), parse_iso(expires), str(state)
        )

    async def cache_outputs(
        self, namespace: str, flow_id: str, key: str, task_id: str, entry: CachedOutputs
    ) -> None:
        """Keep (or replace) an entry; the flow's expired entries go in the same transaction."""
        row = (
            namespace,
            flow_id,
            key,
            task_id,
            entry.execution_id,
            entry.state,
            dumps(dict(entry.outputs)),
            iso(entry.created),
            iso(entry.expires),
        )
        purge, upsert = _SQL["purge_expired_cache"], _SQL["upsert_cache"]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(purge, (namespace, flow_id, iso(entry.created)))
            conn.execute(upsert, row)

        await self._db.write(write)

    async def clear_task_cache(self, namespace: str, flow_id: str, task_id: str | None = None) -> int:
        """Forget a flow's cache (of one task only, when given); how many entries went."""
        sql, params = _SQL["clear_cache"], (namespace, flow_id, task_id, task_id)

        def write(conn: sqlite3.Connection) -> int:
            return int(conn.execute(sql, params).rowcount)

        return await self._db.write(write)
