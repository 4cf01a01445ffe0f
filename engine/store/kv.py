"""The key-value store: JSON values by namespace and key, with an optional time to live."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

from ..model import iso, utcnow
from .codec import dumps, loads
from .errors import StoreError
from .queries import Queries
from .table import Table

_SQL = Queries("kv")


class KeyValueTable(Table):
    """The `kv` table."""

    async def kv_set(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        ttl: timedelta | None = None,
        overwrite: bool = True,
    ) -> None:
        """Set a key of a namespace to a JSON value.

        Args:
            namespace: The namespace.
            key: The key.
            value: Any JSON-serialisable value.
            ttl: How long the value lives; None keeps it until deleted.
            overwrite: When False, fail if the key already holds a value that has not expired.

        Raises:
            StoreError: `overwrite` is False and the key exists.
        """
        now = utcnow()
        params = (namespace, key, dumps(value), iso(now + ttl) if ttl is not None else None, iso(now))
        purge, upsert, insert = _SQL["purge_kv"], _SQL["upsert_kv"], _SQL["insert_kv"]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(purge, (namespace, params[4]))
            if overwrite:
                conn.execute(upsert, params)
            elif conn.execute(insert, params).rowcount == 0:
                raise StoreError(f"key {key!r} already exists in namespace {namespace!r}")

        await self._db.write(write)

    async def kv_get(self, namespace: str, key: str) -> tuple[bool, Any]:
        """The value of a key as (found, value); an expired key is not found."""
        rows = await self._db.fetchall(_SQL["select_kv"], (namespace, key, iso(utcnow())))
        return (True, loads(rows[0][0])) if rows else (False, None)

    def kv_get_now(self, namespace: str, key: str) -> tuple[bool, Any]:
        """kv_get without awaiting, for the kv() expression function (rendering is synchronous).

        One indexed read on a private read-only connection: tens of microseconds, so blocking the
        event loop for it is cheaper than a thread hop.
        """
        rows = self._db.fetchall_now(_SQL["select_kv"], (namespace, key, iso(utcnow())))
        return (True, loads(rows[0][0])) if rows else (False, None)

    async def kv_delete(self, namespace: str, key: str) -> bool:
        """Delete a key; return whether it held a value that had not expired."""
        now = iso(utcnow())
        delete = _SQL["delete_kv"]

        def write(conn: sqlite3.Connection) -> bool:
            rows = conn.execute(delete, (namespace, key)).fetchall()
            return any(row[0] is None or row[0] > now for row in rows)

        return await self._db.write(write)

    async def kv_entries(self, namespace: str) -> list[tuple[str, str, str | None]]:
        """(key, last update, expiry or None) of each key of a namespace that has not expired, sorted."""
        rows = await self._db.fetchall(_SQL["select_kv_entries"], (namespace, iso(utcnow())))
        return [(str(row[0]), str(row[1]), None if row[2] is None else str(row[2])) for row in rows]

    async def kv_keys(self, namespace: str, prefix: str | None = None) -> list[str]:
        """The keys of a namespace that have not expired, sorted, optionally only those with a prefix."""
        size = len(prefix) if prefix is not None else 0
        params = (namespace, iso(utcnow()), prefix, size, prefix)
        rows = await self._db.fetchall(_SQL["select_kv_keys"], params)
        return [str(row[0]) for row in rows]
