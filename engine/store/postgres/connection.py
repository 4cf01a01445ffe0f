"""psycopg connections that run the store's statements as an `sqlite3` connection would.

The store's parts write through a function of a connection (`conn.execute(sql, params)`,
`executemany`, a cursor's `rowcount`, `fetchone`, `fetchall`) and read through `execute_fetchall`;
these wrappers give psycopg's connections that shape, each statement first put in PostgreSQL's
dialect (`dialect.statement`). Parameters are bound on the client side (psycopg's ClientCursor):
the statements were written for SQLite, where a NULL parameter needs no type (`? IS NULL`), and a
literal NULL needs none in PostgreSQL either. Python booleans are stored as 0 and 1, as SQLite does.
PostgreSQL's text holds no NUL character, which SQLite's does: a NUL in a value (a script's binary
output in a log line) is stored as U+FFFD, so that its line, and the lines written with it, are kept.

Connections time out and probe an idle server (`_CONNECTION_DEFAULTS`, unless the URL says
otherwise), so that a server gone silent fails a call instead of hanging it.
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


# libpq settings a store's connections get unless its URL sets them.
_CONNECTION_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}


def conninfo(url: str) -> str:
    """The URL with the defaults it does not set."""
    try:
        given = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:  # libpq's message repeats the text, password and all
        raise psycopg.ProgrammingError("not a valid PostgreSQL URL (check its %-escapes)") from None
    missing = {key: value for key, value in _CONNECTION_DEFAULTS.items() if key not in given}
    return psycopg.conninfo.make_conninfo(url, **missing)


def _clean(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _bound(found: Any, params: Sequence[Any]) -> list[Any]:
    return [_clean(value) for value in found.params(params)]


class SyncConnection:
    """A blocking psycopg connection in the shape of an `sqlite3.Connection` (the writer's)."""

    def __init__(self, conn: Any) -> None:
        self.raw = conn

    @classmethod
    def connect(cls, url: str, *, application_name: str) -> SyncConnection:
        conn = psycopg.connect(
            conninfo(url),
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,
            application_name=application_name,
        )
        _configure(conn)
        return cls(conn)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        found = statement(sql)
        return self.raw.execute(found.text, _bound(found, params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        found = statement(sql)
        cursor = self.raw.cursor()
        cursor.executemany(found.text, [_bound(found, row) for row in rows])
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
            conninfo(url),
            autocommit=True,
            cursor_factory=psycopg.AsyncClientCursor,
            application_name=application_name,
        )
        _configure(conn)
        return cls(conn)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        found = statement(sql)
        return await self.raw.execute(found.text, _bound(found, params))

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        cursor = await self.execute(sql, params)
        return list(await cursor.fetchall()) if cursor.description is not None else []

    async def close(self) -> None:
        await self.raw.close()
