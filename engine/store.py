"""The SQLite store: flows and their revisions, executions, task runs, logs and the KV store.

One `Store` owns one database file. Writes go through a single writer connection, used only by
one writer task fed by an asyncio queue: the task takes every request queued so far and commits
them together in one `BEGIN IMMEDIATE` transaction (a group commit), each request inside its own
savepoint so that one failing request does not take the others down. A request's awaitable resolves
only after that commit, so a caller knows its write is durable. Reads go through a small pool of
separate connections (WAL lets them run beside the writer).

One engine owns a database at a time: `Store.open` takes an exclusive `flock` on `<db>.lock` and
writes its pid there. The database, its -wal and -shm files and the lock are opened without
following links and must belong to the user and be writable by nobody else (see `private_files`).
`Store.open(..., readonly=True)` takes no lock and opens the file read-only, for headless commands
that look at a database an engine is using.

The schema lives in `schema.sql` (version 1); later versions are files in `migrations/` named
`NNNN_<name>.sql` (`0002_add_something.sql` is version 2). The version is kept in
`PRAGMA user_version`, and pending migrations are applied in order when the store opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import aiosqlite

from .model import Execution, ExecutionSummary, LogEntry, LogLevel, TaskRun, iso, parse_iso, utcnow
from .private_files import UnsafeFileError, check_private_path, open_private, same_file
from .worker.process import ProcessRecord

__all__ = [
    "FlowRow",
    "FlowSave",
    "Store",
    "StoreError",
    "StoreLockedError",
    "migrations",
    "source_hash",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")

_HERE = Path(__file__).resolve().parent
_SCHEMA_FILE = _HERE / "schema.sql"
_MIGRATIONS_DIR = _HERE / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d+)_[A-Za-z0-9_.-]*\.sql$")

#: Requests committed together at most, in one group commit.
_MAX_BATCH = 512
#: The largest page count SQLite accepts (its default limit).
_UNLIMITED_PAGES = 4294967294

_TERMINAL_STATES = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED")
# Must stay identical to the WHERE clause of the executions_unfinished index in schema.sql.
_UNFINISHED = "state NOT IN ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED', 'RETRIED')"

_LEVEL_BY_RANK = {level.rank: level for level in LogLevel}

#: Log lines read per query when a whole log is walked (`Store.iter_logs`).
LOG_BATCH = 5_000


class StoreError(Exception):
    """A store operation failed (SQLite error, full disk, read-only store, bad argument)."""


class StoreLockedError(StoreError):
    """The database is owned by another Tiercel process.

    Attributes:
        pid: The pid written in the lock file by the owner, when it could be read.
    """

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


@dataclass(frozen=True, slots=True)
class FlowRow:
    """The latest revision of a flow."""

    namespace: str
    flow_id: str
    revision: int
    path: str | None
    updated: datetime
    deleted: bool
    source_hash: str | None = None
    # The revision's outline: its trigger types, and what it was checked with (None: not known).
    trigger_types: tuple[str, ...] | None = None
    checked_with: str | None = None


def source_hash(source: str) -> str:
    """The content hash kept with a flow's current revision (SHA-256 of its UTF-8 text)."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def _trigger_types_json(types: Collection[str] | None) -> str | None:
    return None if types is None else json.dumps(sorted(types))


@dataclass(frozen=True, slots=True)
class FlowSave:
    """A flow source to store as its next revision, with its file and its outline (see `save_flow`)."""

    namespace: str
    flow_id: str
    source: str
    path: str | None = None
    trigger_types: Collection[str] | None = None
    checked_with: str | None = None


_FLOWS_PER_WRITE = 1_000


def _save_flow(conn: sqlite3.Connection, save: FlowSave, now: str | None) -> tuple[int, bool]:
    """Store one flow's source as its next revision unless identical to the latest: (revision, created)."""
    namespace, flow_id, source, path = save.namespace, save.flow_id, save.source, save.path
    digest = source_hash(source)
    types, checked = _trigger_types_json(save.trigger_types), save.checked_with
    row = conn.execute(_SELECT_LATEST_FLOW, (namespace, flow_id)).fetchone()
    if row is None:
        conn.execute(_INSERT_FLOW, (namespace, flow_id, 1, path, now, digest, types, checked))
        conn.execute(_INSERT_FLOW_REVISION, (namespace, flow_id, 1, source, now))
        return (1, True)
    revision, deleted, old_path, old_source, old_digest, old_types, old_checked = row
    if not deleted and old_source == source:
        outline = types is not None and (types, checked) != (old_types, old_checked)
        if (path is not None and path != old_path) or old_digest != digest or outline:
            conn.execute(_UPDATE_FLOW_PATH, (path, now, digest, types, checked, namespace, flow_id))
        return (int(revision), False)
    revision = int(revision) + 1
    conn.execute(_INSERT_FLOW_REVISION, (namespace, flow_id, revision, source, now))
    conn.execute(_UPDATE_FLOW_REVISION, (revision, path, now, digest, types, checked, namespace, flow_id))
    return (revision, True)


# ---------------------------------------------------------------------------------------------
# SQL
# ---------------------------------------------------------------------------------------------

_PRAGMAS_WRITER = (
    "PRAGMA foreign_keys = ON",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA temp_store = MEMORY",
)

_SELECT_LATEST_FLOW = """
SELECT f.revision, f.deleted, f.path, r.source, f.source_hash, f.trigger_types, f.checked_with
FROM flows AS f JOIN flow_revisions AS r
    ON r.namespace = f.namespace AND r.flow_id = f.flow_id AND r.revision = f.revision
WHERE f.namespace = ? AND f.flow_id = ?
"""
_INSERT_FLOW = """
INSERT INTO flows
    (namespace, flow_id, revision, path, updated, deleted, source_hash, trigger_types, checked_with)
VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)
"""
_UPDATE_FLOW_REVISION = """
UPDATE flows SET revision = ?, path = coalesce(?, path), updated = ?, deleted = 0, source_hash = ?,
    trigger_types = ?, checked_with = ?
WHERE namespace = ? AND flow_id = ?
"""
_UPDATE_FLOW_PATH = """
UPDATE flows SET path = coalesce(?, path), updated = ?, source_hash = ?,
    trigger_types = coalesce(?, trigger_types), checked_with = coalesce(?, checked_with)
WHERE namespace = ? AND flow_id = ?
"""
_UPDATE_FLOW_OUTLINE = """
UPDATE flows SET trigger_types = ?, checked_with = ? WHERE namespace = ? AND flow_id = ? AND revision = ?
"""
_INSERT_FLOW_REVISION = """
INSERT INTO flow_revisions (namespace, flow_id, revision, source, created) VALUES (?, ?, ?, ?, ?)
"""
_DELETE_FLOW = """
UPDATE flows SET deleted = 1, updated = ? WHERE namespace = ? AND flow_id = ? AND deleted = 0
"""
_SELECT_FLOW_SOURCE_LATEST = """
SELECT r.revision, r.source
FROM flows AS f JOIN flow_revisions AS r
    ON r.namespace = f.namespace AND r.flow_id = f.flow_id AND r.revision = f.revision
WHERE f.namespace = ? AND f.flow_id = ? AND f.deleted = 0
"""
_SELECT_FLOW_SOURCE = """
SELECT revision, source FROM flow_revisions WHERE namespace = ? AND flow_id = ? AND revision = ?
"""
_SELECT_FLOW_REVISIONS = """
SELECT revision, source, created FROM flow_revisions WHERE namespace = ? AND flow_id = ? ORDER BY revision
"""
_SELECT_FLOWS = """
SELECT namespace, flow_id, revision, path, updated, deleted, source_hash, trigger_types, checked_with
FROM flows
WHERE deleted = 0 OR ? ORDER BY namespace, flow_id
"""
_UPSERT_FLOW_ERROR = """
INSERT INTO flow_errors (path, message, updated) VALUES (?, ?, ?)
ON CONFLICT (path) DO UPDATE SET message = excluded.message, updated = excluded.updated
"""
_DELETE_FLOW_ERROR = "DELETE FROM flow_errors WHERE path = ?"
_SELECT_FLOW_ERRORS = "SELECT path, message FROM flow_errors ORDER BY path"

_UPSERT_EXECUTION = """
INSERT INTO executions
    (id, namespace, flow_id, flow_revision, state, start_date, end_date, parent_id, trigger_type,
     labels, json)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    namespace = excluded.namespace,
    flow_id = excluded.flow_id,
    flow_revision = excluded.flow_revision,
    state = excluded.state,
    start_date = excluded.start_date,
    end_date = excluded.end_date,
    parent_id = excluded.parent_id,
    trigger_type = excluded.trigger_type,
    labels = excluded.labels,
    json = excluded.json
"""
_UPSERT_TASK_RUN = """
INSERT INTO task_runs (id, execution_id, task_id, parent_id, value, state, json) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    execution_id = excluded.execution_id,
    task_id = excluded.task_id,
    parent_id = excluded.parent_id,
    value = excluded.value,
    state = excluded.state,
    json = excluded.json
"""
_DELETE_TASK_RUN = "DELETE FROM task_runs WHERE id = ? AND execution_id = ?"
_INSERT_LOG = """
INSERT INTO logs (execution_id, namespace, flow_id, task_id, task_run_id, attempt, level, timestamp, message)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# One statement, so one snapshot: the execution (kind 0) then its task runs (kind 1) in creation order.
_SELECT_EXECUTION = """
SELECT 0 AS kind, seq, json FROM executions WHERE id = ?
UNION ALL
SELECT 1 AS kind, seq, json FROM task_runs WHERE execution_id = ?
ORDER BY kind, seq
"""
_SELECT_UNFINISHED = f"""
SELECT 0 AS kind, e.seq AS seq, e.id AS execution_id, e.json AS json
FROM executions AS e WHERE e.{_UNFINISHED}
UNION ALL
SELECT 1 AS kind, t.seq AS seq, t.execution_id AS execution_id, t.json AS json
FROM task_runs AS t WHERE t.execution_id IN (SELECT id FROM executions WHERE {_UNFINISHED})
ORDER BY kind, seq
"""
_EXECUTION_ROW_COLUMNS = """
seq, id, namespace, flow_id, flow_revision, state, start_date, end_date, labels, parent_id, trigger_type
"""
# Keyset paging on the row id, which the logs_execution index (execution_id, id) walks either way.
_LOGS_WHERE = """
FROM logs
WHERE execution_id = ? AND id > ? AND id < ? AND level >= ? AND (? IS NULL OR task_id = ?)
"""
_LOG_COLUMNS = (
    "id, execution_id, namespace, flow_id, task_id, task_run_id, attempt, level, timestamp, message"
)
_SELECT_LOGS = f"SELECT {_LOG_COLUMNS} {_LOGS_WHERE} ORDER BY id LIMIT ?"
_SELECT_LOGS_NEWEST = f"SELECT {_LOG_COLUMNS} {_LOGS_WHERE} ORDER BY id DESC LIMIT ?"
#: The largest integer SQLite stores: above every row id it hands out in practice.
_NO_ROW_ID = (1 << 63) - 1

_UPSERT_KV = """
INSERT INTO kv (namespace, key, value, expires_at, updated) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (namespace, key) DO UPDATE SET
    value = excluded.value, expires_at = excluded.expires_at, updated = excluded.updated
"""
# Inserts, or replaces an expired value only; changes() == 0 means a live value is in the way.
_INSERT_KV = """
INSERT INTO kv (namespace, key, value, expires_at, updated) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (namespace, key) DO UPDATE SET
    value = excluded.value, expires_at = excluded.expires_at, updated = excluded.updated
WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= excluded.updated
"""
_PURGE_KV = "DELETE FROM kv WHERE namespace = ? AND expires_at IS NOT NULL AND expires_at <= ?"
_DELETE_KV = "DELETE FROM kv WHERE namespace = ? AND key = ? RETURNING expires_at"
_SELECT_KV = """
SELECT value FROM kv WHERE namespace = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)
"""
_SELECT_KV_KEYS = """
SELECT key FROM kv
WHERE namespace = ? AND (expires_at IS NULL OR expires_at > ?) AND (? IS NULL OR substr(key, 1, ?) = ?)
ORDER BY key
"""


# ---------------------------------------------------------------------------------------------
# Schema versions
# ---------------------------------------------------------------------------------------------


@functools.cache
def migrations() -> tuple[tuple[int, str], ...]:
    """Every schema version with the SQL that brings the previous version to it, in order.

    Version 1 is `schema.sql`; version N > 1 is `migrations/NNNN_<name>.sql`.

    Raises:
        StoreError: When the schema files are missing or the migrations do not number 2, 3, ... without a gap.
    """
    if not _SCHEMA_FILE.is_file() or not _MIGRATIONS_DIR.is_dir():
        # An install that left out the package's data files: refuse rather than run on half a schema.
        raise StoreError(
            f"the store's schema files are missing ({_SCHEMA_FILE.name} and {_MIGRATIONS_DIR}/): "
            "this installation of tiercel is incomplete; reinstall it"
        )
    found: list[tuple[int, Path]] = [(1, _SCHEMA_FILE)]
    for file in _MIGRATIONS_DIR.iterdir():
        match = _MIGRATION_NAME.match(file.name)
        if match:
            found.append((int(match.group(1)), file))
    found.sort()
    versions = [version for version, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"schema migrations must be numbered 2, 3, ... without gaps; found {versions[1:]}")
    return tuple((version, file.read_text(encoding="utf-8")) for version, file in found)


def _migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the database to the latest schema version, one transaction per version."""
    steps = migrations()
    latest = steps[-1][0]
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if current > latest:
        raise StoreError(
            f"database {path} has schema version {current}, newer than this Tiercel knows ({latest}); "
            "upgrade Tiercel to open it"
        )
    if current == 0:
        objects = conn.execute("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()
        if objects[0]:
            raise StoreError(f"{path} is not a Tiercel database (it holds tables but no schema version)")
    for version, script in steps[current:]:
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{script}\n;\nPRAGMA user_version = {version};\nCOMMIT;")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"cannot migrate {path} to schema version {version}: {exc}") from exc
    return latest


# ---------------------------------------------------------------------------------------------
# Lock file
# ---------------------------------------------------------------------------------------------


#: The files SQLite keeps beside a WAL database.
_COMPANIONS = ("-wal", "-shm")


def _lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


def _acquire_lock(db: Path) -> int:
    """Take the exclusive lock on `<db>.lock` and write our pid into it; return its descriptor.

    The lock file is opened without following a link and must be this user's and private: it is
    truncated, so a link planted there must never lead to another file.
    """
    lock_path = _lock_path(db)
    try:
        fd = open_private(lock_path, "lock file")
    except UnsafeFileError as exc:
        raise StoreError(str(exc)) from exc
    except OSError as exc:
        raise StoreError(f"cannot open lock file {lock_path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        pid = _read_pid(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            owner = f"pid {pid}" if pid is not None else "pid unknown"
            raise StoreLockedError(
                f"database {db} is in use by another Tiercel process ({owner})", pid=pid
            ) from None
        raise StoreError(f"cannot lock {lock_path}: {exc.strerror}") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _open_database_files(db: Path) -> list[tuple[int, Path]]:
    """Open (creating) the database and its -wal and -shm files as private files; return them.

    SQLite opens these files again by name and follows links: opening them first, without following
    links, means a link planted by someone else is refused before SQLite writes through it. A leftover
    -journal is checked too, as SQLite would roll it into the database.
    """
    held: list[tuple[int, Path]] = []
    try:
        held.append((open_private(db, "database"), db))
        for suffix in _COMPANIONS:
            companion = db.with_name(db.name + suffix)
            held.append((open_private(companion, f"database's {suffix} file"), companion))
        check_private_path(db.with_name(db.name + "-journal"), "database's -journal file")
    except BaseException:
        for fd, _ in held:
            os.close(fd)
        raise
    return held


def _check_database_files(held: Sequence[tuple[int, Path]]) -> None:
    """After SQLite opened the files: the database is still the file checked, its companions private.

    SQLite may replace an empty -wal of an empty database with its own, so companions are checked
    again by path rather than compared with the descriptors held.
    """
    (db_fd, db), *companions = held
    if not same_file(db_fd, db):
        raise UnsafeFileError(f"the database {db} was replaced while Tiercel opened it; try again")
    for _, companion in companions:
        check_private_path(companion, f"database's {companion.name[len(db.name) :]} file")


def _close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _release_lock(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


# ---------------------------------------------------------------------------------------------
# Rows <-> model
# ---------------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    """JSON for the values task outputs may hold beyond plain JSON."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default).encode


def _loads(text: str) -> Any:
    return json.loads(text)


def _execution_params(execution: Execution) -> tuple[Any, ...]:
    data = dataclasses.replace(execution, task_runs=()).to_json()
    data.pop("taskRunList", None)
    state = execution.state
    trigger_type = execution.trigger.get("type") if execution.trigger else None
    return (
        execution.id,
        execution.namespace,
        execution.flow_id,
        execution.flow_revision,
        state.current.value,
        iso(state.histories[0].date) if state.histories else None,
        iso(state.end_date) if state.histories else None,
        execution.parent_id,
        str(trigger_type) if trigger_type is not None else None,
        _dumps(execution.labels_map()),
        _dumps(data),
    )


def _task_run_params(execution_id: str, run: TaskRun) -> tuple[Any, ...]:
    return (
        run.id,
        execution_id,
        run.task_id,
        run.parent_task_run_id,
        run.value,
        run.state.current.value,
        _dumps(run.to_json()),
    )


def _log_params(entry: LogEntry) -> tuple[Any, ...]:
    return (
        entry.execution_id,
        entry.namespace,
        entry.flow_id,
        entry.task_id,
        entry.task_run_id,
        entry.attempt,
        LogLevel(entry.level).rank,
        iso(entry.timestamp),
        entry.message,
    )


def _log_entry(row: Sequence[Any]) -> LogEntry:
    stamp = row[8]
    # Stored by `iso` (UTC, ending in Z), which fromisoformat reads as it is: the fast path of a log read.
    timestamp = datetime.fromisoformat(stamp) if stamp.endswith("Z") else parse_iso(stamp)
    return LogEntry(
        execution_id=row[1],
        namespace=row[2],
        flow_id=row[3],
        task_id=row[4],
        task_run_id=row[5],
        attempt=row[6],
        level=_LEVEL_BY_RANK.get(row[7], LogLevel.INFO),
        timestamp=timestamp,
        message=row[9],
    )


def _ordered_changes(execution: Execution, changed: Sequence[TaskRun]) -> Sequence[TaskRun]:
    """The changed task runs in the execution's order, so new ones are stored in creation order."""
    if len(changed) < 2:
        return changed
    position = {run.id: index for index, run in enumerate(execution.task_runs)}
    end = len(position)
    return sorted(changed, key=lambda run: position.get(run.id, end))


def _execution_row(row: Sequence[Any]) -> ExecutionSummary:
    return ExecutionSummary(
        id=row[1],
        namespace=row[2],
        flow_id=row[3],
        flow_revision=int(row[4]),
        state=row[5],
        start_date=parse_iso(row[6]) if row[6] else None,
        end_date=parse_iso(row[7]) if row[7] else None,
        labels=_loads(row[8]) if row[8] else {},
        parent_id=row[9],
        trigger_type=row[10],
        cursor=str(row[0]),
    )


def _execution_filters(
    namespace: str | None, flow_id: str | None, state: str | Sequence[str] | None
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if namespace:
        # The namespace itself, or any namespace below it: "acme" matches "acme.finance", not "acmeco".
        where.append("(namespace = ? OR (namespace >= ? AND namespace < ?))")
        params += [namespace, namespace + ".", namespace + "/"]
    if flow_id is not None:
        where.append("flow_id = ?")
        params.append(flow_id)
    if state is not None:
        states = [state] if isinstance(state, str) else [str(item) for item in state]
        where.append(f"state IN ({', '.join('?' * len(states))})")
        params += states
    return where, params


# ---------------------------------------------------------------------------------------------
# The writer
# ---------------------------------------------------------------------------------------------

_WriteFn = Callable[[sqlite3.Connection], Any]
_Outcome = tuple[bool, Any]  # (True, result) or (False, exception)


@dataclass(slots=True)
class _Write:
    fn: _WriteFn
    future: asyncio.Future[Any]


def _statement(sql: str, params: Sequence[Any]) -> Callable[[sqlite3.Connection], None]:
    """A write request running one statement."""

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(sql, params)

    return write


def _statements(sql: str, rows: Sequence[Sequence[Any]]) -> Callable[[sqlite3.Connection], None]:
    """A write request running one statement over many rows (`executemany`)."""

    def write(conn: sqlite3.Connection) -> None:
        conn.executemany(sql, rows)

    return write


class _TransactionLost(Exception):
    """SQLite rolled the whole transaction back on a request's error (a full disk, an I/O error)."""


def _nothing(conn: sqlite3.Connection) -> None:
    """A write request that writes nothing: a barrier behind every request queued before it."""


def _failure(exc: BaseException) -> _Outcome:
    if isinstance(exc, sqlite3.Error):
        return (False, StoreError(str(exc)))
    return (False, exc)


def _quiet_rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class _Writer:
    """The writer connection and the thread it lives on; every method runs on that thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.commits = 0

    def run_batch(self, fns: Sequence[_WriteFn]) -> list[_Outcome]:
        """Run the requests in one transaction, each in a savepoint; commit once."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes: list[_Outcome] = []
            for fn in fns:
                conn.execute("SAVEPOINT request")
                try:
                    result = fn(conn)
                except Exception as exc:
                    if not conn.in_transaction:
                        raise _TransactionLost from exc
                    conn.execute("ROLLBACK TO request")
                    conn.execute("RELEASE request")
                    outcomes.append(_failure(exc))
                else:
                    conn.execute("RELEASE request")
                    outcomes.append((True, result))
            conn.execute("COMMIT")
        except (sqlite3.Error, _TransactionLost) as exc:
            _quiet_rollback(conn)
            if len(fns) == 1:
                cause = exc.__cause__ if isinstance(exc, _TransactionLost) and exc.__cause__ else exc
                return [_failure(cause)]
            # Something failed the whole batch: run each request alone so only the bad one fails.
            return [self.run_batch([fn])[0] for fn in fns]
        self.commits += 1
        return outcomes

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA optimize")
        self.conn.close()


def _open_writer(path: Path, busy_timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot put {path} in WAL mode (journal mode is {mode})")
        for pragma in _PRAGMAS_WRITER:
            conn.execute(pragma)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        # The first read opens (creates) the -wal and -shm files.
        conn.execute("PRAGMA user_version").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


class Store:
    """Tiercel's SQLite store behind one interface.

    Open it with `await Store.open(path)` and close it with `await store.close()` (or use it as an
    async context manager). Every write method returns once its write is durable; several writers
    awaiting at once share one transaction.

    Attributes:
        path: The database file.
        readonly: True when opened with `readonly=True` (no lock, no writes).
        on_error: Called with the exception when a write queued by `append_logs_nowait` fails;
            by default the error is logged.
    """

    path: Path
    readonly: bool
    on_error: Callable[[BaseException], None] | None

    def __init__(self, path: Path, *, readonly: bool) -> None:
        # Use `Store.open`.
        self.path = path
        self.readonly = readonly
        self.on_error = None
        self.schema_version = 0
        self._lock_fd: int | None = None
        self._database_fds: list[int] = []
        self._writer: _Writer | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue[_Write | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._closing = False
        self._closed = False
        self._sync_reader: sqlite3.Connection | None = None

    # -- opening and closing ------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        readonly: bool = False,
        max_pages: int | None = None,
        busy_timeout: float = 5.0,
        readers: int = 2,
    ) -> Store:
        """Open (creating it and its folder if needed) the database at `path`.

        Args:
            path: The database file. Its folder is created with mode 0700, the file (and its -wal,
                -shm and .lock companions) with mode 0600.
            readonly: Open the file read-only without taking the lock, beside a running engine.
                The database must exist and be at this Tiercel's schema version.
            max_pages: A limit on the database size in pages (`PRAGMA max_page_count` on the writer
                connection); see `set_max_pages`.
            busy_timeout: Seconds a connection waits for a lock held by another connection.
            readers: How many read connections to keep.

        Returns:
            The open store.

        Raises:
            StoreLockedError: Another Tiercel process owns the database.
            StoreError: The database cannot be opened, is not a Tiercel database, or needs a
                schema version this Tiercel does not know; or (not read-only) the database, a
                companion file or the lock is a symbolic link, another user's, writable by group or
                others, or hard-linked.
        """
        db = Path(path).expanduser().absolute()
        store = cls(db, readonly=readonly)
        try:
            if readonly:
                await store._open_readonly(busy_timeout)
            else:
                await store._open_writable(busy_timeout, max_pages)
            for _ in range(max(1, readers)):
                conn = await store._connect_reader(busy_timeout)
                store._all_readers.append(conn)
                store._readers.put_nowait(conn)
        except BaseException:
            await store._abort_open()
            raise
        return store

    async def _open_writable(self, busy_timeout: float, max_pages: int | None) -> None:
        db = self.path
        with _umask(0o077):
            try:
                db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder {db.parent}: {exc.strerror}") from exc
            self._lock_fd = _acquire_lock(db)
            held: list[tuple[int, Path]] = []
            opened = False
            try:
                held = _open_database_files(db)
                conn = _open_writer(db, busy_timeout)
                try:
                    _check_database_files(held)
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
                    _close_all(fd for fd, _ in held)
        # SQLite's locks on these files are POSIX locks, which belong to the process: closing any
        # descriptor of a file drops them all, and another process would then take the WAL index
        # for unused and rebuild it under the engine ("disk I/O error"). So they stay open as long
        # as the store.
        self._database_fds = [fd for fd, _ in held]
        self._writer = _Writer(conn)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiercel-store-writer")
        loop = asyncio.get_running_loop()
        try:
            self.schema_version = await loop.run_in_executor(self._thread, _migrate, conn, db)
            if max_pages is not None:
                await loop.run_in_executor(
                    self._thread, self._writer.conn.execute, f"PRAGMA max_page_count = {int(max_pages)}"
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {db}: {exc}") from exc
        self._writer_task = asyncio.create_task(self._write_loop(), name="tiercel-store-writer")

    async def _open_readonly(self, busy_timeout: float) -> None:
        if not self.path.is_file():
            raise StoreError(f"database {self.path} does not exist")
        conn = await self._connect_reader(busy_timeout)
        try:
            rows = list(await conn.execute_fetchall("PRAGMA user_version"))
        finally:
            await conn.close()
        version = int(rows[0][0])
        latest = migrations()[-1][0]
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
            await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            await conn.execute("PRAGMA query_only = 1")
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
        _close_all(self._database_fds)
        self._database_fds = []
        if self._lock_fd is not None:
            _release_lock(self._lock_fd)
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
        _close_all(self._database_fds)
        self._database_fds = []
        if self._lock_fd is not None:
            _release_lock(self._lock_fd)
            self._lock_fd = None
        self._closed = True

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def transactions(self) -> int:
        """How many write transactions were committed since the store opened."""
        return self._writer.commits if self._writer is not None else 0

    # -- the writer task -----------------------------------------------------------------------

    def _submit(self, fn: _WriteFn) -> asyncio.Future[Any]:
        if self.readonly:
            raise StoreError(f"the store {self.path} was opened read-only")
        if self._closing:
            raise StoreError(f"the store {self.path} is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Write(fn, future))
        return future

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await self._submit(fn)
        return result

    async def _write_loop(self) -> None:
        assert self._writer is not None
        loop = asyncio.get_running_loop()
        batch: list[_Write] = []
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
                    outcomes = [_failure(exc)] * len(batch)
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
        await self._write(_nothing)

    async def set_max_pages(self, pages: int | None) -> int:
        """Limit the database size to `pages` pages (None: SQLite's maximum); return the new limit.

        SQLite never sets the limit below the current size. Writes that would grow the database
        beyond it fail with StoreError ("database or disk is full"), as on a full disk.
        """
        limit = _UNLIMITED_PAGES if pages is None else int(pages)

        def apply(conn: sqlite3.Connection) -> int:
            return int(conn.execute(f"PRAGMA max_page_count = {limit}").fetchone()[0])

        return await self._write(apply)

    # -- reads ---------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._closing:
            raise StoreError(f"the store {self.path} is closed")
        conn = await self._readers.get()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        finally:
            self._readers.put_nowait(conn)

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        async with self._reader() as conn:
            return list(await conn.execute_fetchall(sql, params))

    # -- flows ---------------------------------------------------------------------------------

    async def save_flow(
        self,
        namespace: str,
        flow_id: str,
        source: str,
        *,
        path: str | None = None,
        trigger_types: Collection[str] | None = None,
        checked_with: str | None = None,
    ) -> tuple[int, bool]:
        """Store the source as the next revision unless identical to the latest; return (revision, created).

        A flow marked deleted gets a new revision even when the source is unchanged. When only the
        path changed (a moved file), the path is updated without a new revision.

        Args:
            namespace: The flow's namespace.
            flow_id: The flow's id.
            source: The YAML text.
            path: The file it came from (None keeps the known path).
            trigger_types: The types of the flow's triggers, kept as the revision's outline.
            checked_with: A fingerprint of what the source was checked with, kept with the outline.
        """

        save = FlowSave(namespace, flow_id, source, path, trigger_types, checked_with)
        return await self._write(lambda conn: _save_flow(conn, save, iso(utcnow())))

    async def save_flows(self, saves: Sequence[FlowSave]) -> list[tuple[int, bool]]:
        """`save_flow` for many flows, a transaction per thousand: (revision, created) of each, in order.

        A folder of many new flows is stored at once instead of a transaction per flow.
        """
        results: list[tuple[int, bool]] = []
        for start in range(0, len(saves), _FLOWS_PER_WRITE):
            chunk = saves[start : start + _FLOWS_PER_WRITE]

            def write(conn: sqlite3.Connection, chunk: Sequence[FlowSave] = chunk) -> list[tuple[int, bool]]:
                now = iso(utcnow())
                return [_save_flow(conn, save, now) for save in chunk]

            results += await self._write(write)
        return results

    async def save_flow_outlines(
        self, outlines: Sequence[tuple[str, str, int, Collection[str], str]]
    ) -> None:
        """Keep the outline of current revisions, in one transaction.

        Args:
            outlines: (namespace, flow id, revision, trigger types, checked with) each; a revision
                that is no longer the current one is left alone.
        """
        rows = [
            (_trigger_types_json(types), checked, namespace, flow_id, revision)
            for namespace, flow_id, revision, types, checked in outlines
        ]
        if rows:
            await self._write(_statements(_UPDATE_FLOW_OUTLINE, rows))

    async def flow_source(
        self, namespace: str, flow_id: str, revision: int | None = None
    ) -> tuple[int, str] | None:
        """The (revision, source) of a flow: the latest one, or the given revision.

        Without a revision a deleted flow is not found; a given revision is found even when the flow
        was deleted since (executions of it still need its source).
        """
        if revision is None:
            rows = await self._fetchall(_SELECT_FLOW_SOURCE_LATEST, (namespace, flow_id))
        else:
            rows = await self._fetchall(_SELECT_FLOW_SOURCE, (namespace, flow_id, revision))
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    async def flow_revisions(self, namespace: str, flow_id: str) -> list[tuple[int, str, datetime]]:
        """Every revision of a flow, oldest first, as (revision, source, created)."""
        rows = await self._fetchall(_SELECT_FLOW_REVISIONS, (namespace, flow_id))
        return [(int(row[0]), str(row[1]), parse_iso(row[2])) for row in rows]

    async def list_flows(self, *, include_deleted: bool = False) -> list[FlowRow]:
        """The latest revision of each flow not deleted (of every flow with `include_deleted`)."""
        rows = await self._fetchall(_SELECT_FLOWS, (1 if include_deleted else 0,))
        return [
            FlowRow(
                namespace=row[0],
                flow_id=row[1],
                revision=int(row[2]),
                path=row[3],
                updated=parse_iso(row[4]),
                deleted=bool(row[5]),
                source_hash=row[6],
                trigger_types=None if row[7] is None else tuple(json.loads(row[7])),
                checked_with=row[8],
            )
            for row in rows
        ]

    async def delete_flow(self, namespace: str, flow_id: str) -> None:
        """Mark a flow deleted; its revisions are kept."""
        await self._write(_statement(_DELETE_FLOW, (iso(utcnow()), namespace, flow_id)))

    async def save_flow_error(self, path: str, message: str | None) -> None:
        """Remember the last parse error of a flow file; None clears it."""
        if message is None:
            await self._write(_statement(_DELETE_FLOW_ERROR, (path,)))
        else:
            await self._write(_statement(_UPSERT_FLOW_ERROR, (path, message, iso(utcnow()))))

    async def flow_errors(self) -> dict[str, str]:
        """The parse error of every broken flow file, by path."""
        return {str(row[0]): str(row[1]) for row in await self._fetchall(_SELECT_FLOW_ERRORS)}

    # -- executions ----------------------------------------------------------------------------

    async def save_execution(
        self,
        execution: Execution,
        changed: Sequence[TaskRun] = (),
        logs: Sequence[LogEntry] = (),
        *,
        removed: Sequence[str] = (),
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Upsert the execution and its changed task runs, and append logs, in one transaction.

        The transaction is group-committed with the other queued writes; this returns when it is
        durable. New task runs are stored in the order they have in `execution.task_runs`.

        Args:
            execution: The execution as it is now (its task runs are not all written: see `changed`).
            changed: The task runs created or changed since the last save.
            logs: Log lines to append in the same transaction.
            removed: Ids of task runs the execution no longer holds (deleted).
            also: A write that belongs to the same transaction (a trigger's fire record); when it
                raises, nothing of the execution is stored and the exception propagates.

        Raises:
            StoreError: The write failed (a full disk, an I/O error); nothing of it was stored.
        """
        row = _execution_params(execution)
        runs = [_task_run_params(execution.id, run) for run in _ordered_changes(execution, changed)]
        lines = [_log_params(entry) for entry in logs]
        gone = [(run_id, execution.id) for run_id in removed]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT_EXECUTION, row)
            if gone:
                conn.executemany(_DELETE_TASK_RUN, gone)
            if runs:
                conn.executemany(_UPSERT_TASK_RUN, runs)
            if lines:
                conn.executemany(_INSERT_LOG, lines)
            if also is not None:
                also(conn)

        await self._write(write)

    async def append_logs(self, logs: Sequence[LogEntry]) -> None:
        """Append log lines (one `executemany`); returns when they are durable."""
        if not logs:
            return
        await self._write(_statements(_INSERT_LOG, [_log_params(entry) for entry in logs]))

    def append_logs_nowait(self, logs: Sequence[LogEntry]) -> None:
        """Queue log lines for the writer and return at once; a failure goes to `on_error`.

        Raises:
            StoreError: The store is closed or read-only.
        """
        if not logs:
            return
        future = self._submit(_statements(_INSERT_LOG, [_log_params(entry) for entry in logs]))
        future.add_done_callback(self._report_nowait_failure)

    def _report_nowait_failure(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            return
        if self.on_error is not None:
            self.on_error(exc)
        else:
            _log.error("could not write log lines to %s: %s", self.path, exc)

    async def get_execution(self, execution_id: str) -> Execution | None:
        """The execution with all its task runs in creation order, or None."""
        rows = await self._fetchall(_SELECT_EXECUTION, (execution_id, execution_id))
        if not rows or rows[0][0] != 0:
            return None
        data = _loads(rows[0][2])
        data["taskRunList"] = [_loads(row[2]) for row in rows[1:]]
        return Execution.from_json(data)

    async def list_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        state: str | Sequence[str] | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[ExecutionSummary]:
        """A page of executions, newest first.

        Args:
            namespace: Only this namespace and the namespaces below it ("acme" matches
                "acme.finance", not "acmeco").
            flow_id: Only executions of flows with this id.
            state: Only executions in this state (or in one of these states).
            limit: The page size.
            before: The `cursor` of the last row of the previous page (keyset pagination).

        Raises:
            StoreError: `before` is not a cursor this store returned.
        """
        where, params = _execution_filters(namespace, flow_id, state)
        if before is not None:
            try:
                params.append(int(before))
            except ValueError:
                raise StoreError(f"invalid executions cursor {before!r}") from None
            where.append("seq < ?")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_EXECUTION_ROW_COLUMNS} FROM executions {clause} ORDER BY seq DESC LIMIT ?"
        params.append(max(0, int(limit)))
        return [_execution_row(row) for row in await self._fetchall(sql, params)]

    async def count_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        state: str | Sequence[str] | None = None,
    ) -> int:
        """How many executions `list_executions` would list with the same filters, over all pages."""
        where, params = _execution_filters(namespace, flow_id, state)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._fetchall(f"SELECT count(*) FROM executions {clause}", params)
        return int(rows[0][0])

    async def unfinished_executions(self) -> list[Execution]:
        """Every execution whose state is not terminal, oldest first, with its task runs."""
        rows = await self._fetchall(_SELECT_UNFINISHED)
        executions: dict[str, dict[str, Any]] = {}
        for kind, _seq, execution_id, text in rows:
            if kind == 0:
                data = _loads(text)
                data["taskRunList"] = []
                executions[execution_id] = data
            elif execution_id in executions:
                executions[execution_id]["taskRunList"].append(_loads(text))
        return [Execution.from_json(data) for data in executions.values()]

    # -- logs ----------------------------------------------------------------------------------

    async def logs(
        self,
        execution_id: str,
        *,
        level: str | None = None,
        task_id: str | None = None,
        after: int = 0,
        before: int | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[tuple[int, LogEntry]]:
        """Log lines of an execution in insertion order, as (row id, entry).

        A log may hold millions of lines: read it a page at a time (`limit`, then `after` or
        `before` the row id at the page's edge), or walk it whole with `iter_logs`.

        Args:
            execution_id: The execution.
            level: The minimum level (TRACE < DEBUG < INFO < WARN < ERROR).
            task_id: Only lines of this task.
            after: Only lines after this row id (the last one seen, to follow a running execution).
            before: Only lines before this row id (the first one shown, to page back).
            limit: At most this many lines (None: every line in the range).
            newest: Take the newest `limit` lines of the range instead of the oldest; they are
                still returned oldest first.

        Raises:
            ValueError: `level` is not a log level.
        """
        rank = 0
        if level is not None:
            try:
                rank = LogLevel.parse(level).rank
            except ValueError:
                raise ValueError(
                    f"unknown log level {level!r} (use TRACE, DEBUG, INFO, WARN or ERROR)"
                ) from None
        upper = _NO_ROW_ID if before is None else before
        count = -1 if limit is None else max(0, limit)
        params = (execution_id, after, upper, rank, task_id, task_id, count)
        rows = await self._fetchall(_SELECT_LOGS_NEWEST if newest else _SELECT_LOGS, params)
        if newest:
            rows.reverse()
        return [(int(row[0]), _log_entry(row)) for row in rows]

    async def iter_logs(
        self,
        execution_id: str,
        *,
        level: str | None = None,
        task_id: str | None = None,
        after: int = 0,
        batch: int = LOG_BATCH,
    ) -> AsyncIterator[list[tuple[int, LogEntry]]]:
        """An execution's log lines, oldest first, in batches of at most `batch` (row id, entry).

        Each batch is one query resuming after the last row id seen, so memory stays bounded by
        two batches whatever the log's size: the next one is read while the caller handles this one.
        Lines written while walking are included up to the end.

        Raises:
            ValueError: `level` is not a log level.
        """
        size = max(1, batch)

        def read(start: int) -> asyncio.Task[list[tuple[int, LogEntry]]]:
            return asyncio.ensure_future(
                self.logs(execution_id, level=level, task_id=task_id, after=start, limit=size)
            )

        pending = read(after)
        try:
            while True:
                rows = await pending
                if not rows:
                    return
                if len(rows) == size:
                    pending = read(rows[-1][0])
                yield rows
                if len(rows) < size:
                    return
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StoreError):
                    await pending

    # -- key-value store -----------------------------------------------------------------------

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
        params = (namespace, key, _dumps(value), iso(now + ttl) if ttl is not None else None, iso(now))

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(_PURGE_KV, (namespace, params[4]))
            if overwrite:
                conn.execute(_UPSERT_KV, params)
            elif conn.execute(_INSERT_KV, params).rowcount == 0:
                raise StoreError(f"key {key!r} already exists in namespace {namespace!r}")

        await self._write(write)

    async def kv_get(self, namespace: str, key: str) -> tuple[bool, Any]:
        """The value of a key as (found, value); an expired key is not found."""
        rows = await self._fetchall(_SELECT_KV, (namespace, key, iso(utcnow())))
        return (True, _loads(rows[0][0])) if rows else (False, None)

    def kv_get_now(self, namespace: str, key: str) -> tuple[bool, Any]:
        """kv_get without awaiting, for the kv() expression function (rendering is synchronous).

        One indexed read on a private read-only connection: tens of microseconds, so blocking the
        event loop for it is cheaper than a thread hop.
        """
        if self._sync_reader is None:
            self._sync_reader = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=5
            )
        rows = self._sync_reader.execute(_SELECT_KV, (namespace, key, iso(utcnow()))).fetchall()
        return (True, _loads(rows[0][0])) if rows else (False, None)

    async def kv_delete(self, namespace: str, key: str) -> bool:
        """Delete a key; return whether it held a value that had not expired."""
        now = iso(utcnow())

        def write(conn: sqlite3.Connection) -> bool:
            rows = conn.execute(_DELETE_KV, (namespace, key)).fetchall()
            return any(row[0] is None or row[0] > now for row in rows)

        return await self._write(write)

    async def kv_keys(self, namespace: str, prefix: str | None = None) -> list[str]:
        """The keys of a namespace that have not expired, sorted, optionally only those with a prefix."""
        size = len(prefix) if prefix is not None else 0
        rows = await self._fetchall(_SELECT_KV_KEYS, (namespace, iso(utcnow()), prefix, size, prefix))
        return [str(row[0]) for row in rows]

    # -- flow trigger windows --------------------------------------------------------------------
    # A Flow trigger's preconditions: the condition keys satisfied within the current time window,
    # and the merged outputs of the executions that satisfied them. Keyed by the flow, the trigger
    # and the preconditions id; `end` is inclusive.

    async def flow_trigger_window(
        self, namespace: str, flow_id: str, trigger_id: str, condition_id: str
    ) -> tuple[datetime, datetime, list[str], dict[str, Any]] | None:
        """The stored window as (start, end, satisfied condition keys, merged outputs), or None."""
        rows = await self._fetchall(
            "SELECT start_date, end_date, results, outputs FROM flow_trigger_windows "
            "WHERE namespace = ? AND flow_id = ? AND trigger_id = ? AND condition_id = ?",
            (namespace, flow_id, trigger_id, condition_id),
        )
        if not rows:
            return None
        start, end, results, outputs = rows[0]
        return parse_iso(start), parse_iso(end), list(_loads(results)), dict(_loads(outputs))

    async def save_flow_trigger_window(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str,
        condition_id: str,
        window: tuple[datetime, datetime, Sequence[str], Mapping[str, Any]],
    ) -> None:
        """Create or replace a window (start, end, satisfied condition keys, merged outputs)."""
        await self.update_flow_trigger_windows([((namespace, flow_id, trigger_id, condition_id), window)])

    async def delete_flow_trigger_window(
        self, namespace: str, flow_id: str, trigger_id: str, condition_id: str
    ) -> None:
        await self.update_flow_trigger_windows([((namespace, flow_id, trigger_id, condition_id), None)])

    async def update_flow_trigger_windows(self, updates: Sequence[WindowUpdate]) -> None:
        """Save or delete (window None) several windows in one transaction."""
        if updates:
            await self._write(self.flow_trigger_windows_write(updates))

    @staticmethod
    def flow_trigger_windows_write(updates: Sequence[WindowUpdate]) -> Callable[[sqlite3.Connection], None]:
        """A write saving or deleting (window None) windows; meant as `save_execution(also=...)`, so
        that a fire and the reset of its windows commit together."""
        saves: list[tuple[Any, ...]] = []
        deletes: list[tuple[str, str, str, str]] = []
        for key, window in updates:
            if window is None:
                deletes.append(key)
                continue
            start, end, results, outputs = window
            saves.append(
                (
                    *key,
                    iso(start),
                    iso(end),
                    _dumps(sorted(results)),
                    _dumps(dict(outputs)),
                    iso(utcnow()),
                )
            )

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(_DELETE_WINDOW, deletes)
            conn.executemany(_SAVE_WINDOW, saves)

        return write

    async def purge_flow_trigger_windows(self, now: datetime) -> None:
        """Delete every window that ended before `now`."""
        await self._write(_statement("DELETE FROM flow_trigger_windows WHERE end_date < ?", (iso(now),)))

    # -- triggers ------------------------------------------------------------------------------

    async def trigger_rows(self) -> list[TriggerRow]:
        """The stored state of every trigger."""
        return [_trigger_row(row) for row in await self._fetchall(_SELECT_TRIGGERS)]

    async def save_trigger(self, row: TriggerRow) -> None:
        """Insert or replace one trigger's state."""
        await self._write(_statement(_UPSERT_TRIGGER, _trigger_params(row)))

    @staticmethod
    def fire_write(
        row: TriggerRow, date_key: str, execution_id: str, *, prune_before: datetime | None = None
    ) -> Callable[[sqlite3.Connection], None]:
        """A write recording that `date_key` of a trigger fired `execution_id`, and its new state.

        Meant as `save_execution(also=...)`: it raises AlreadyFiredError when that date already fired,
        so the execution is not stored either. With `prune_before`, older fire records of the same
        series (the schedule, or this backfill) are deleted, except those of unfinished executions
        and, for the schedule, those of a backfill still under way: the caller vouches that no date
        before it can be fired again.
        """
        fire = (row.namespace, row.flow_id, row.trigger_id, date_key, execution_id)
        state = _trigger_params(row)
        prune: tuple[str, tuple[Any, ...]] | None = None
        if prune_before is not None:
            where = (row.namespace, row.flow_id, row.trigger_id, iso(prune_before))
            if "#" in date_key:
                prune = (_PRUNE_BACKFILL_FIRES, (*where, date_key[date_key.index("#") :]))
            else:
                backfill = row.backfill or {}
                active = backfill.get("status") in ("RUNNING", "PAUSED")
                prune = (_PRUNE_FIRES, (*where, f"#backfill:{backfill['id']}" if active else ""))

        def write(conn: sqlite3.Connection) -> None:
            if conn.execute(_INSERT_FIRE, fire).rowcount == 0:
                where = f"{row.namespace}.{row.flow_id} trigger {row.trigger_id}"
                raise AlreadyFiredError(f"{where} already fired at {date_key}")
            conn.execute(_UPSERT_TRIGGER, state)
            if prune is not None:
                conn.execute(*prune)

        return write

    async def trigger_fires(self, namespace: str, flow_id: str, trigger_id: str) -> list[tuple[str, str]]:
        """Every (date key, execution id) a trigger fired, by date."""
        rows = await self._fetchall(_SELECT_FIRES, (namespace, flow_id, trigger_id))
        return [(str(row[0]), str(row[1])) for row in rows]

    async def running_trigger_executions(self) -> list[tuple[str, str, str, str]]:
        """(namespace, flow id, trigger id, execution id) of every unfinished execution a trigger fired."""
        rows = await self._fetchall(_SELECT_RUNNING_FIRES)
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    # -- processes -----------------------------------------------------------------------------
    # The task programs running now, so that the next engine can kill those a crash left behind.

    async def record_process(self, task_run_id: str, attempt: int, process: ProcessRecord) -> None:
        """Record a task program that has just started; returns once the record is durable."""
        params = (
            task_run_id,
            attempt,
            process.pid,
            process.pgid,
            process.start_ticks,
            process.token,
            os.getpid(),
            iso(utcnow()),
        )
        await self._write(_statement(_INSERT_PROCESS, params))

    def forget_process_nowait(self, process: ProcessRecord) -> None:
        """Queue the removal of a program's record (every process of it is gone) and return at once.

        Raises:
            StoreError: The store is closed or read-only.
        """
        future = self._submit(_statement(_DELETE_PROCESS, (process.pid, process.start_ticks)))
        future.add_done_callback(self._report_nowait_failure)

    async def recorded_processes(self) -> list[ProcessRecord]:
        """Every program recorded and not forgotten: at start, those a previous engine left."""
        rows = await self._fetchall(_SELECT_PROCESSES)
        return [ProcessRecord(int(a), int(b), int(c), str(d)) for a, b, c, d in rows]

    async def forget_processes(self, processes: Sequence[ProcessRecord]) -> None:
        """Remove the records of programs known to be gone."""
        if processes:
            await self._write(
                _statements(_DELETE_PROCESS, [(process.pid, process.start_ticks) for process in processes])
            )


_INSERT_PROCESS = """
INSERT OR REPLACE INTO processes (task_run_id, attempt, pid, pgid, start_ticks, token, engine_pid, created)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_DELETE_PROCESS = "DELETE FROM processes WHERE pid = ? AND start_ticks = ?"
_SELECT_PROCESSES = "SELECT pid, pgid, start_ticks, token FROM processes ORDER BY created"


# -- flow trigger windows ----------------------------------------------------------------------

# ((namespace, flow id, trigger id, condition id), (start, end, condition keys, outputs) or None)
WindowUpdate = tuple[
    tuple[str, str, str, str], tuple[datetime, datetime, Sequence[str], Mapping[str, Any]] | None
]
_SAVE_WINDOW = """
INSERT OR REPLACE INTO flow_trigger_windows
    (namespace, flow_id, trigger_id, condition_id, start_date, end_date, results, outputs, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_DELETE_WINDOW = """
DELETE FROM flow_trigger_windows WHERE namespace = ? AND flow_id = ? AND trigger_id = ? AND condition_id = ?
"""


# -- triggers ----------------------------------------------------------------------------------


class AlreadyFiredError(Exception):
    """A trigger date that already fired: the execution of this second fire is not stored."""


@dataclass(frozen=True, slots=True)
class TriggerRow:
    """A trigger's stored state; dates are aware UTC datetimes, backfill a JSON-able mapping."""

    namespace: str
    flow_id: str
    trigger_id: str
    enabled: bool = True
    last_date: datetime | None = None
    next_date: datetime | None = None
    backfill: Mapping[str, Any] | None = None
    schedule: str | None = None


_SELECT_TRIGGERS = """
SELECT namespace, flow_id, trigger_id, enabled, last_date, next_date, backfill, schedule FROM triggers
"""
_UPSERT_TRIGGER = """
INSERT INTO triggers
    (namespace, flow_id, trigger_id, enabled, last_date, next_date, backfill, schedule, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (namespace, flow_id, trigger_id) DO UPDATE SET enabled = excluded.enabled,
    last_date = excluded.last_date, next_date = excluded.next_date, backfill = excluded.backfill,
    schedule = excluded.schedule, updated = excluded.updated
"""
_INSERT_FIRE = """
INSERT OR IGNORE INTO trigger_fires (namespace, flow_id, trigger_id, date, execution_id)
VALUES (?, ?, ?, ?, ?)
"""
# Fire records of a schedule older than a date: plain dates, and dates of backfills other than `?`.
_PRUNE_FIRES = f"""
DELETE FROM trigger_fires
WHERE namespace = ? AND flow_id = ? AND trigger_id = ? AND date < ?
    AND (instr(date, '#') = 0 OR substr(date, instr(date, '#')) <> ?)
    AND NOT EXISTS (SELECT 1 FROM executions AS e WHERE e.id = trigger_fires.execution_id AND e.{_UNFINISHED})
"""
# Fire records of one backfill (its `#backfill:id` suffix) older than a date.
_PRUNE_BACKFILL_FIRES = f"""
DELETE FROM trigger_fires
WHERE namespace = ? AND flow_id = ? AND trigger_id = ? AND date < ?
    AND instr(date, '#') > 0 AND substr(date, instr(date, '#')) = ?
    AND NOT EXISTS (SELECT 1 FROM executions AS e WHERE e.id = trigger_fires.execution_id AND e.{_UNFINISHED})
"""
_SELECT_FIRES = """
SELECT date, execution_id FROM trigger_fires
WHERE namespace = ? AND flow_id = ? AND trigger_id = ? ORDER BY date
"""
_SELECT_RUNNING_FIRES = f"""
SELECT f.namespace, f.flow_id, f.trigger_id, f.execution_id
FROM executions AS e JOIN trigger_fires AS f ON f.execution_id = e.id
WHERE e.{_UNFINISHED}
"""


def _trigger_params(row: TriggerRow) -> tuple[Any, ...]:
    backfill = _dumps(row.backfill) if row.backfill is not None else None
    return (
        row.namespace,
        row.flow_id,
        row.trigger_id,
        1 if row.enabled else 0,
        iso(row.last_date),
        iso(row.next_date),
        backfill,
        row.schedule,
        iso(utcnow()),
    )


def _trigger_row(row: Sequence[Any]) -> TriggerRow:
    return TriggerRow(
        namespace=str(row[0]),
        flow_id=str(row[1]),
        trigger_id=str(row[2]),
        enabled=bool(row[3]),
        last_date=parse_iso(row[4]) if row[4] else None,
        next_date=parse_iso(row[5]) if row[5] else None,
        backfill=_loads(row[6]) if row[6] else None,
        schedule=row[7],
    )
