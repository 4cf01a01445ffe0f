"""psycopg connections that run the store's statements as an `sqlite3` connection would.

The store's parts write through a function of a connection (`conn.execute(sql, params)`,
`executemany`, a cursor's `rowcount`, `fetchone`, `fetchall`) and read through `execute_fetchall`;
these wrappers give psycopg's connections that shape, each statement first put in PostgreSQL's
dialect (`dialect.statement`). Parameters are bound on the client side (psycopg's ClientCursor):
the statements were written for SQLite, where a NULL parameter needs no type (`? IS NULL`), and a
literal NULL needs none in PostgreSQL either. Python booleans are stored as 0 and 1, as SQLite does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import TransactionStatus

from .dialect import statement


class _BoolAsInt(Dumper):
    """Python's True and False as the integers 1 and 0, as SQLite stores them."""

    oid = psycopg.adapters.types["int4"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def _configure(conn: Any) -> None:
    conn.adapters.register_dumper(bool, _BoolAsInt)


class SyncConnection:
    """A blocking psycopg connection in the shape of an `sqlite3.Connection` (the writer's)."""

    def __init__(self, conn: Any) -> None:
        self.raw = conn

    @classmethod
    def connect(cls, url: str, *, application_name: str) -> SyncConnection:
        conn = psycopg.connect(
            url, autocommit=True, cursor_factory=psycopg.ClientCursor, application_name=application_name
        )
        _configure(conn)
        return cls(conn)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        found = statement(sql)
        return self.raw.execute(found.text, list(found.params(params)))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        found = statement(sql)
        cursor = self.raw.cursor()
        cursor.executemany(found.text, [list(found.params(row)) for row in rows])
        return cursor

    def run(self, sql: str) -> None:
        """Run SQL as it is (transaction control, schema scripts): no dialect, no parameters."""
        self.raw.execute(sql)

    @property
    def in_transaction(self) -> bool:
        return bool(self.raw.info.transaction_status != TransactionStatus.IDLE)

    def close(self) -> None:
        self.raw.close()


class AsyncConnection:
    """An async psycopg connection in the shape of an `aiosqlite.Connection` (a reader's)."""

    def __init__(self, conn: Any) -> None:
        self.raw = conn

    @classmethod
    async def connect(cls, url: str, *, application_name: str) -> AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(
            url,
            autocommit=True,
            cursor_factory=psycopg.AsyncClientCursor,
            application_name=application_name,
        )
        _configure(conn)
        return cls(conn)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        found = statement(sql)
        return await self.raw.execute(found.text, list(found.params(params)))

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        cursor = await self.execute(sql, params)
        return list(await cursor.fetchall()) if cursor.description is not None else []

    async def close(self) -> None:
        await self.raw.close()
