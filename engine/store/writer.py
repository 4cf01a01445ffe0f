"""The writer: one connection on one thread, committing queued requests together (a group commit).

A write request is a function of the writer connection. `Writer.run_batch` runs the requests queued
so far in one `BEGIN IMMEDIATE` transaction, each inside its own savepoint so that one failing request
does not take the others down, and commits once. The transaction control statements (BEGIN,
SAVEPOINT, RELEASE, ROLLBACK, COMMIT) are written here: they are the writer's protocol, not queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import StoreError
from .queries import queries

WriteFn = Callable[[sqlite3.Connection], Any]
Outcome = tuple[bool, Any]  # (True, result) or (False, exception)

#: The settings of the writer connection, by name in sql/connection.sql.
_WRITER_PRAGMAS = ("foreign_keys", "temp_store_memory")
#: How durable a commit is (SQLite's `synchronous` in WAL mode), by the name TIERCEL_SQLITE_SYNC
#: gives: FULL syncs the WAL at every commit, so a stored execution survives a power loss or an OS
#: crash; NORMAL syncs only at checkpoints, so it survives the process's crash but may lose the last
#: commits to a power loss. Commits are grouped (see `Writer.run_batch`), so FULL costs one sync
#: per group, not per execution.
SYNC_SETTINGS = {"FULL": "synchronous_full", "NORMAL": "synchronous_normal"}
SYNC_VARIABLE = "TIERCEL_SQLITE_SYNC"


def sync_setting() -> str:
    """FULL, or what TIERCEL_SQLITE_SYNC names (StoreError for anything else)."""
    name = os.environ.get(SYNC_VARIABLE, "FULL").strip().upper()
    if name not in SYNC_SETTINGS:
        raise StoreError(f"{SYNC_VARIABLE}={name!r}: use FULL or NORMAL")
    return name


@dataclass(slots=True)
class WriteRequest:
    fn: WriteFn
    future: asyncio.Future[Any]


def statement(sql: str, params: Sequence[Any]) -> Callable[[sqlite3.Connection], None]:
    """A write request running one statement."""

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(sql, params)

    return write


def statements(sql: str, rows: Sequence[Sequence[Any]]) -> Callable[[sqlite3.Connection], None]:
    """A write request running one statement over many rows (`executemany`)."""

    def write(conn: sqlite3.Connection) -> None:
        conn.executemany(sql, rows)

    return write


def nothing(conn: sqlite3.Connection) -> None:
    """A write request that writes nothing: a barrier behind every request queued before it."""


class _TransactionLost(Exception):
    """SQLite rolled the whole transaction back on a request's error (a full disk, an I/O error)."""


def failure(exc: BaseException) -> Outcome:
    if isinstance(exc, sqlite3.Error):
        return (False, StoreError(str(exc)))
    return (False, exc)


def _quiet_rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class Writer:
    """The writer connection and the thread it lives on; every method runs on that thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.commits = 0

    def run_batch(self, fns: Sequence[WriteFn]) -> list[Outcome]:
        """Run the requests in one transaction, each in a savepoint; commit once."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes: list[Outcome] = []
            for fn in fns:
                conn.execute("SAVEPOINT request")
                try:
                    result = fn(conn)
                except Exception as exc:
                    if not conn.in_transaction:
                        raise _TransactionLost from exc
                    conn.execute("ROLLBACK TO request")
                    conn.execute("RELEASE request")
                    outcomes.append(failure(exc))
                else:
                    conn.execute("RELEASE request")
                    outcomes.append((True, result))
            conn.execute("COMMIT")
        except (sqlite3.Error, _TransactionLost) as exc:
            _quiet_rollback(conn)
            if len(fns) == 1:
                cause = exc.__cause__ if isinstance(exc, _TransactionLost) and exc.__cause__ else exc
                return [failure(cause)]
            # Something failed the whole batch: run each request alone so only the bad one fails.
            return [self.run_batch([fn])[0] for fn in fns]
        self.commits += 1
        return outcomes

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute(queries("connection")["optimize"])
        self.conn.close()


def open_writer(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """The writer connection, in WAL mode, with the -wal and -shm files created."""
    sql = queries("connection")
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    try:
        mode = conn.execute(sql["journal_mode_wal"]).fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot put {path} in WAL mode (journal mode is {mode})")
        for pragma in (*_WRITER_PRAGMAS, SYNC_SETTINGS[sync_setting()]):
            conn.execute(sql[pragma])
        conn.execute(busy_timeout_pragma(busy_timeout))
        # The first read opens (creates) the -wal and -shm files.
        conn.execute(sql["user_version"]).fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def busy_timeout_pragma(seconds: float) -> str:
    # A PRAGMA's value cannot be a bound parameter: the number is written into the statement.
    return f"PRAGMA busy_timeout = {int(seconds * 1000)}"


def max_page_count_pragma(pages: int) -> str:
    # As above: an integer written into the statement.
    return f"PRAGMA max_page_count = {int(pages)}"
