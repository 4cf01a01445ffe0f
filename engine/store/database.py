"""The connections to one database file: the lock, the writer task and its queue, the reader pool.

Writes go through a single writer connection (see `writer`), used only by one writer task fed by an
asyncio queue: the task takes every request queued so far and commits them together. A request's
awaitable resolves only after that commit, so a caller knows its write is durable. Reads go through a
small pool of separate connections (WAL lets them run beside the writer).

`Database.open(..., readonly=True)` takes no lock and opens the file read-only, for headless commands
that look at a database an engine is using.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiosqlite

from ..internal_storage import SharedFiles
from ..private_files import UnsafeFileError
from .errors import StoreError
from .lock import acquire_lock, check_database_files, close_all, open_database_files, release_lock, umask
from .queries import queries
from .schema import latest_version, migrate
from .writer import (
    WriteFn,
    Writer,
    WriteRequest,
    busy_timeout_pragma,
    failure,
    max_page_count_pragma,
    nothing,
    open_writer,
)

_log = logging.getLogger(__name__)

T = TypeVar("T")

#: Requests committed together at most, in one group commit.
_MAX_BATCH = 512
#: The largest page count SQLite accepts (its default limit).
_UNLIMITED_PAGES = 4294967294


class Database:
    """One open database file: every read and write of the store's tables goes through it.

    Attributes:
        path: The database file.
        readonly: True when opened with `readonly=True` (no lock, no writes).
        schema_version: The schema version of the database.
        on_error: Called with the exception when a write queued by `submit_nowait` fails; by default
            the error is logged.
        shared_files: The files of executions kept in the database, for the machines that share it
            (PostgreSQL); None when the internal storage is a local folder only (SQLite).
    """

    shared_files: SharedFiles | None = None

    path: Path
    readonly: bool
    on_error: Callable[[BaseException], None] | None

    def __init__(self, path: Path, *, readonly: bool) -> None:
        # Use `Database.open`.
        self.path = path
        self.readonly = readonly
        self.on_error = None
        self.schema_version = 0
        self._lock_fd: int | None = None
        self._database_fds: list[int] = []
        self._writer: Writer | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue[WriteRequest | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._closing = False
        self._closed = False
        self._sync_reader: sqlite3.Connection | None = None

    # -- opening and closing ------------------------------------------------------------------

    @classmethod
    async def open(
        cls, path: Path, *, readonly: bool, max_pages: int | None, busy_timeout: float, readers: int
    ) -> Database:
        """Open the database at `path` (an absolute path); see `Store.open` for the arguments."""
        db = cls(path, readonly=readonly)
        try:
            if readonly:
                await db._open_readonly(busy_timeout)
            else:
                await db._open_writable(busy_timeout, max_pages)
            for _ in range(max(1, readers)):
                conn = await db._connect_reader(busy_timeout)
                db._all_readers.append(conn)
                db._readers.put_nowait(conn)
        except BaseException:
            await db._abort_open()
            raise
        return db

    async def _open_writable(self, busy_timeout: float, max_pages: int | None) -> None:
        db = self.path
        with umask(0o077):
            try:
                db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder {db.parent}: {exc.strerror}") from exc
            self._lock_fd = acquire_lock(db)
            held: list[tuple[int, Path]] = []
            opened = False
            try:
                held = open_database_files(db)
                conn = open_writer(db, busy_timeout)
                try:
                    check_database_files(held)
                except BaseException:
                    conn.close()
                    raise
                opened = True
            except UnsafeFileError as exc:
                raise StoreError(str(exc)) from exc
            except OSError as exc:
                raise StoreError(f"cannot create the database {db}: {exc.strerror}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the database {db}: {exc}") from exc
            finally:
                if not opened:
                    close_all(fd for fd, _ in held)
        # SQLite's locks on these files are POSIX locks, which belong to the process: closing any
        # descriptor of a file drops them all, and another process would then take the WAL index
        # for unused and rebuild it under the engine ("disk I/O error"). So they stay open as long
        # as the store.
        self._database_fds = [fd for fd, _ in held]
        self._writer = Writer(conn)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiercel-store-writer")
        loop = asyncio.get_running_loop()
        try:
            self.schema_version = await loop.run_in_executor(self._thread, migrate, conn, db)
            if max_pages is not None:
                await loop.run_in_executor(
                    self._thread, self._writer.conn.execute, max_page_count_pragma(max_pages)
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {db}: {exc}") from exc
        self._writer_task = asyncio.create_task(self._write_loop(), name="tiercel-store-writer")

    async def _open_readonly(self, busy_timeout: float) -> None:
        if not self.path.is_file():
            raise StoreError(f"database {self.path} does not exist")
        conn = await self._connect_reader(busy_timeout)
        try:
            rows = list(await conn.execute_fetchall(queries("connection")["user_version"]))
        finally:
            await conn.close()
        version = int(rows[0][0])
        latest = latest_version()
        if version == 0:
            raise StoreError(f"{self.path} is not a Tiercel database (or was never opened by an engine)")
        if version != latest:
            raise StoreError(
                f"database {self.path} has schema version {version} but this Tiercel reads version {latest}; "
                "open it once with an engine of this version to migrate it"
            )
        self.schema_version = version

    async def _connect_reader(self, busy_timeout: float) -> aiosqlite.Connection:
        if self.readonly:
            target, uri = f"file:{quote(str(self.path))}?mode=ro", True
        else:
            target, uri = str(self.path), False
        try:
            conn: aiosqlite.Connection = await aiosqlite.connect(
                target, uri=uri, timeout=busy_timeout, isolation_level=None, cached_statements=256
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {self.path}: {exc}") from exc
        try:
            await conn.execute(busy_timeout_pragma(busy_timeout))
            await conn.execute(queries("connection")["query_only"])
        except sqlite3.Error as exc:
            await conn.close()
            raise StoreError(f"cannot open the database {self.path}: {exc}") from exc
        return conn

    async def _abort_open(self) -> None:
        self._closing = self._closed = True
        for conn in self._all_readers:
            with contextlib.suppress(Exception):
                await conn.close()
        if self._writer_task is not None:
            self._queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await self._writer_task
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.conn.close()
        if self._thread is not None:
            self._thread.shutdown(wait=False)
        close_all(self._database_fds)
        self._database_fds = []
        if self._lock_fd is not None:
            release_lock(self._lock_fd)
            self._lock_fd = None

    async def close(self) -> None:
        """Commit every queued write, close the connections and release the lock."""
        if self._closing:
            return
        self._closing = True
        if self._writer_task is not None:
            self._queue.put_nowait(None)
            await self._writer_task
        if self._sync_reader is not None:
            self._sync_reader.close()
            self._sync_reader = None
        readers, self._all_readers = self._all_readers, []
        for conn in readers:
            with contextlib.suppress(Exception):
                await conn.close()
        if self._writer is not None and self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._writer.close)
            self._thread.shutdown(wait=False)
        close_all(self._database_fds)
        self._database_fds = []
        if self._lock_fd is not None:
            release_lock(self._lock_fd)
            self._lock_fd = None
        self._closed = True

    @property
    def transactions(self) -> int:
        """How many write transactions were committed since the database opened."""
        return self._writer.commits if self._writer is not None else 0

    # -- writes --------------------------------------------------------------------------------

    def submit(self, fn: WriteFn) -> asyncio.Future[Any]:
        """Queue a write request; the future resolves once it is committed (or failed)."""
        if self.readonly:
            raise StoreError(f"the store {self.path} was opened read-only")
        if self._closing:
            raise StoreError(f"the store {self.path} is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(WriteRequest(fn, future))
        return future

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a write request in the next group commit; return its result once durable."""
        result: T = await self.submit(fn)
        return result

    def submit_nowait(self, fn: WriteFn, what: str) -> None:
        """Queue a write request and return at once; a failure goes to `on_error` (or the log).

        Raises:
            StoreError: The store is closed or read-only.
        """
        future = self.submit(fn)

        def report(future: asyncio.Future[Any]) -> None:
            if future.cancelled():
                return
            exc = future.exception()
            if exc is None:
                return
            if self.on_error is not None:
                self.on_error(exc)
            else:
                _log.error("could not write %s to %s: %s", what, self.path, exc)

        future.add_done_callback(report)

    async def _write_loop(self) -> None:
        assert self._writer is not None
        loop = asyncio.get_running_loop()
        batch: list[WriteRequest] = []
        try:
            while True:
                first = await self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < _MAX_BATCH and not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                try:
                    outcomes = await loop.run_in_executor(
                        self._thread, self._writer.run_batch, [write.fn for write in batch]
                    )
                except Exception as exc:  # a bug in the batch runner itself: fail this batch only
                    outcomes = [failure(exc)] * len(batch)
                for write, (ok, value) in zip(batch, outcomes, strict=True):
                    if write.future.done():
                        continue
                    if ok:
                        write.future.set_result(value)
                    else:
                        write.future.set_exception(value)
                batch = []
                if stop:
                    return
        except asyncio.CancelledError:
            pending = list(batch)
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not None:
                    pending.append(item)
            for write in pending:
                if not write.future.done():
                    write.future.set_exception(StoreError(f"the store {self.path} was closed"))
            raise

    async def flush(self) -> None:
        """Wait until every write queued so far is durable."""
        if self.readonly or self._closing:
            return
        await self.write(nothing)

    async def set_max_pages(self, pages: int | None) -> int:
        """Limit the database size to `pages` pages (None: SQLite's maximum); return the new limit."""
        limit = _UNLIMITED_PAGES if pages is None else int(pages)

        def apply(conn: sqlite3.Connection) -> int:
            return int(conn.execute(max_page_count_pragma(limit)).fetchone()[0])

        return await self.write(apply)

    # -- reads ---------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[aiosqlite.Connection]:
        """A connection of the reader pool, for as long as the block runs."""
        if self._closing:
            raise StoreError(f"the store {self.path} is closed")
        conn = await self._readers.get()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        finally:
            self._readers.put_nowait(conn)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        async with self.reader() as conn:
            return list(await conn.execute_fetchall(sql, params))

    def fetchall_now(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """A read without awaiting, on a private read-only connection opened on first use.

        For one indexed read from synchronous code on the event loop (expression rendering):
        tens of microseconds, cheaper than a thread hop.
        """
        if self._sync_reader is None:
            self._sync_reader = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=5
            )
        return self._sync_reader.execute(sql, params).fetchall()
