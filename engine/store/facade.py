"""The `Store`: one object over one database, composed of the parts that own each group of tables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from ..db_target import DbTarget, is_url
from ..internal_storage import SharedFiles
from .database import Database
from .errors import StoreError
from .executions import ExecutionTable
from .flows import FlowTable
from .housekeeping import HousekeepingTable
from .kv import KeyValueTable
from .logs import LogTable
from .metrics import MetricTable
from .processes import ProcessTable
from .task_cache import TaskCacheTable
from .triggers import TriggerTable


class Store(
    FlowTable,
    ExecutionTable,
    LogTable,
    MetricTable,
    KeyValueTable,
    TriggerTable,
    ProcessTable,
    TaskCacheTable,
    HousekeepingTable,
):
    """Tiercel's SQLite store behind one interface.

    Open it with `await Store.open(path)` and close it with `await store.close()` (or use it as an
    async context manager). Every write method returns once its write is durable; several writers
    awaiting at once share one transaction.

    Each group of tables is a part of its own (`FlowTable`, `ExecutionTable`, ...), all sharing the
    one `Database`; consumers that need one part only are typed with a protocol of that part (task
    handlers see the key-value store and the log reader, not the Store).
    """

    @staticmethod
    def needs_driver() -> None:
        """Return if the driver of a `postgresql://` store can be loaded (psycopg loads only then).

        Raises:
            StoreError: It is not installed; the message says how to install it.
        """
        try:
            from .postgres import PostgresDatabase  # noqa: F401
        except ModuleNotFoundError as exc:
            if exc.name != "psycopg":
                raise
            raise StoreError("a PostgreSQL store needs psycopg: pip install 'tiercel[postgres]'") from None

    @classmethod
    async def open(
        cls,
        path: DbTarget,
        *,
        readonly: bool = False,
        max_pages: int | None = None,
        busy_timeout: float = 5.0,
        readers: int = 2,
        member: bool = False,
        server: str | None = None,
    ) -> Store:
        """Open (creating it and its folder if needed) the database at `path`.

        Args:
            path: The database file, or a `postgresql://` URL: the store is then created in that
                database, or in the schema its `options=-csearch_path=<schema>` names. A file's
                folder is created with mode 0700, the file (and its -wal, -shm and .lock
                companions) with mode 0600.
            readonly: Open the file read-only without taking the lock, beside a running engine.
                The database must exist and be at this Tiercel's schema version.
            max_pages: A limit on the database size in pages (`PRAGMA max_page_count` on the writer
                connection); see `set_max_pages`.
            busy_timeout: Seconds a connection waits for a lock held by another connection.
            readers: How many read connections to keep.
            member: (PostgreSQL) Open as a member of a cluster (a worker), writable without
                taking the owner's lock.
            server: (PostgreSQL) Open as the cluster server of this id: the owner's lock is shared
                with the other servers, and the executions it writes become its own (its row in
                `servers` must exist before it writes one; see engine.cluster.servers).

        Returns:
            The open store.

        Raises:
            StoreLockedError: Another Tiercel process owns the database.
            StoreError: The database cannot be opened, is not a Tiercel database, or needs a
                schema version this Tiercel does not know; or (not read-only) the database, a
                companion file or the lock is a symbolic link, another user's, writable by group or
                others, or hard-linked.
        """
        if is_url(path):
            cls.needs_driver()
            from .postgres import PostgresDatabase

            return cls(
                await PostgresDatabase.open_url(
                    str(path), readonly=readonly, readers=readers, member=member, server=server
                )
            )
        db = Path(path).expanduser().absolute()
        database = await Database.open(
            db, readonly=readonly, max_pages=max_pages, busy_timeout=busy_timeout, readers=readers
        )
        return cls(database)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._db.path

    @property
    def shared_files(self) -> SharedFiles | None:
        """The files of executions kept in the database for every machine (PostgreSQL), if any."""
        return self._db.shared_files

    @property
    def readonly(self) -> bool:
        """True when opened with `readonly=True` (no lock, no writes)."""
        return self._db.readonly

    @property
    def schema_version(self) -> int:
        return self._db.schema_version

    @property
    def on_error(self) -> Callable[[BaseException], None] | None:
        """Called with the exception when a write queued by `append_logs_nowait` fails; by default
        the error is logged."""
        return self._db.on_error

    @on_error.setter
    def on_error(self, handler: Callable[[BaseException], None] | None) -> None:
        self._db.on_error = handler

    @property
    def transactions(self) -> int:
        """How many write transactions were committed since the store opened."""
        return self._db.transactions

    async def close(self) -> None:
        """Commit every queued write, close the connections and release the lock."""
        await self._db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def flush(self) -> None:
        """Wait until every write queued so far is durable."""
        await self._db.flush()

    async def set_max_pages(self, pages: int | None) -> int:
        """Limit the database size to `pages` pages (None: SQLite's maximum); return the new limit.

        SQLite never sets the limit below the current size. Writes that would grow the database
        beyond it fail with StoreError ("database or disk is full"), as on a full disk.
        """
        return await self._db.set_max_pages(pages)
