"""The connections to one PostgreSQL database: the owner's lock, the writer and the reader pool.

The same `Database` as on SQLite (the writer task, its queue and group commit, the reader pool),
over psycopg: the writer is a blocking connection on the writer thread, the readers async
connections. A URL's `options=-csearch_path=<schema>` keeps a store in a schema of its own, so that
several stores can share a database.

One engine owns a store at a time, as on SQLite: it holds a session advisory lock keyed by the
database and schema, taken with the writer connection and given back when it closes or its
connection ends (the server notices a dead client). A read-only store takes no lock, nor does a
cluster member's (a `tiercel worker`): it writes the tables it shares with the owner (logs, metrics, KV,
process records, the worker queue) and never the executions'. The servers of a cluster share the
lock (so that an engine wanting the store alone still finds it taken), and their writer sessions
name their server in `tiercel.server`, which stamps the executions they write as theirs (migration
0003_servers.sql).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from ...db_target import describe_target as safe_url, local_path
from ..database import Database
from ..errors import StoreError, StoreLockedError
from .connection import AsyncConnection, SyncConnection
from .files import PostgresFiles
from .schema import ensure_schema, latest_version, migrate, stored_version
from .writer import PostgresWriter

# The advisory lock that marks a store's owner: one key per database and schema.
_OWNER_KEY = "SELECT hashtextextended('tiercel owner ' || current_database() || '.' || current_schema(), 0)"


class PostgresDatabase(Database):
    """One PostgreSQL store: every read and write of the store's tables goes through it.

    `path` stands in for the database file: the local files of the store (the internal storage,
    the control socket) go beside it (`db_target.local_path`).
    """

    def __init__(self, url: str, *, readonly: bool, member: bool = False, server: str | None = None) -> None:
        super().__init__(local_path(url), readonly=readonly)
        self.url = url
        self.member = member
        self.server = server
        self._application = f"tiercel pid {os.getpid()} on {socket.gethostname()}"
        self._pg_readers: list[AsyncConnection] = []
        self._pg_queue: asyncio.Queue[AsyncConnection] = asyncio.Queue()
        self._now: SyncConnection | None = None
        self.files = PostgresFiles(url, self._application)
        self.shared_files = self.files

    @classmethod
    async def open_url(
        cls, url: str, *, readonly: bool, readers: int, member: bool = False, server: str | None = None
    ) -> PostgresDatabase:
        """Open the store at `url`; see `Store.open` for the arguments."""
        db = cls(url, readonly=readonly, member=member, server=server)
        try:
            if readonly:
                await db._open_readonly_url()
            else:
                await db._open_writable_url()
            for _ in range(max(1, readers)):
                conn = await db._connect(AsyncConnection.connect)
                db._pg_readers.append(conn)
                db._pg_queue.put_nowait(conn)
        except BaseException:
            await db._abort_open()
            raise
        return db

    async def _connect(self, how: Any) -> Any:
        try:
            return await how(self.url, application_name=self._application)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {safe_url(self.url)}: {str(exc).strip()}") from exc

    async def _open_writable_url(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder {self.path.parent}: {exc.strerror}") from exc
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiercel-store-writer")
        loop = asyncio.get_running_loop()

        def connect() -> SyncConnection:
            return SyncConnection.connect(self.url, application_name=self._application)

        try:
            conn = await loop.run_in_executor(self._thread, connect)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {safe_url(self.url)}: {str(exc).strip()}") from exc
        self._writer = PostgresWriter(conn, self._connect_owner)  # type: ignore[assignment]
        try:
            await loop.run_in_executor(self._thread, ensure_schema, conn)
            await loop.run_in_executor(self._thread, self._take_owner_lock, conn)
            self.schema_version = await loop.run_in_executor(self._thread, migrate, conn)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open {safe_url(self.url)}: {str(exc).strip()}") from exc
        self._writer_task = asyncio.create_task(self._write_loop(), name="tiercel-store-writer")

    def _connect_owner(self) -> SyncConnection:
        """A new writer connection holding the owner's lock again (after a lost connection)."""
        conn = SyncConnection.connect(self.url, application_name=self._application)
        try:
            self._take_owner_lock(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _take_owner_lock(self, conn: SyncConnection) -> None:
        if self.member:
            return
        key = conn.raw.execute(_OWNER_KEY).fetchone()[0]
        if self.server is not None:
            conn.raw.execute("SELECT set_config('tiercel.server', %s, false)", [self.server])
        take = "pg_try_advisory_lock" if self.server is None else "pg_try_advisory_lock_shared"
        if conn.raw.execute(f"SELECT {take}(%s)", [key]).fetchone()[0]:
            return
        holder = conn.raw.execute(
            "SELECT a.application_name FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted "
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s LIMIT 1",
            [key],
        ).fetchone()
        who = holder[0] if holder and holder[0] else "another Tiercel process"
        pid = None
        if who.startswith("tiercel pid "):
            with contextlib.suppress(ValueError):
                pid = int(who.split()[2])
        raise StoreLockedError(f"database {safe_url(self.url)} is in use by {who}", pid)

    async def _open_readonly_url(self) -> None:
        conn = await self._connect(AsyncConnection.connect)
        try:
            version = await stored_version(conn)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open {safe_url(self.url)}: {str(exc).strip()}") from exc
        finally:
            await conn.close()
        latest = latest_version()
        if version == 0:
            raise StoreError(f"{safe_url(self.url)} holds no Tiercel store (an engine has never opened it)")
        if version != latest:
            raise StoreError(
                f"{safe_url(self.url)} has schema version {version} but this Tiercel reads version "
                f"{latest}; open it once with an engine of this version to migrate it"
            )
        self.schema_version = version

    async def _abort_open(self) -> None:
        for conn in self._pg_readers:
            with contextlib.suppress(Exception):
                await conn.close()
        self._pg_readers = []
        await super()._abort_open()

    async def close(self) -> None:
        if self._closing:
            return
        readers, self._pg_readers = self._pg_readers, []
        await super().close()
        self.files.close()
        for conn in readers:
            with contextlib.suppress(Exception):
                await conn.close()
        if self._now is not None:
            with contextlib.suppress(Exception):
                self._now.close()
            self._now = None

    async def set_max_pages(self, pages: int | None) -> int:
        raise StoreError("a size limit in pages is an SQLite setting; PostgreSQL's is the server's")

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[Any]:
        """A connection of the reader pool, for as long as the block runs."""
        if self._closing:
            raise StoreError(f"the store {safe_url(self.url)} is closed")
        conn = await self._pg_queue.get()
        try:
            if conn.raw.closed:  # lost since its last use: a new one in its place
                conn = await self._replace_reader(conn)
            yield conn
        except psycopg.Error as exc:
            raise StoreError(str(exc).strip()) from exc
        finally:
            self._pg_queue.put_nowait(conn)

    async def _replace_reader(self, old: AsyncConnection) -> AsyncConnection:
        new: AsyncConnection = await self._connect(AsyncConnection.connect)
        self._pg_readers = [new if conn is old else conn for conn in self._pg_readers]
        return new

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        # A connection lost meanwhile (the server restarted) is found so only when used: the pool
        # replaces it and the read goes on the next one, each of the pool's at most once.
        for _ in range(len(self._pg_readers)):
            try:
                async with self.reader() as conn:
                    return list(await conn.execute_fetchall(sql, params))
            except StoreError as exc:
                cause = exc.__cause__
                lost = isinstance(cause, psycopg.OperationalError) and not isinstance(
                    cause, psycopg.errors.QueryCanceled
                )
                if not lost:  # a statement timeout is not read again
                    raise
        async with self.reader() as conn:
            return list(await conn.execute_fetchall(sql, params))

    def fetchall_now(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """A read without awaiting, on a private connection opened on first use."""
        for attempt in range(2):  # a connection found lost is opened again once
            if self._now is None or self._now.raw.closed:
                try:
                    self._now = SyncConnection.connect(self.url, application_name=self._application)
                except psycopg.Error as exc:
                    raise StoreError(str(exc).strip()) from exc
            try:
                return list(self._now.execute(sql, params).fetchall())
            except psycopg.Error as exc:
                if attempt or not self._now.raw.closed:
                    raise StoreError(str(exc).strip()) from exc
        raise AssertionError("unreachable")
