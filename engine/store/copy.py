"""A store's history copied into another store: SQLite into PostgreSQL, or back.

Both stores hold the same tables with the same columns (each backend has its own schema), so the
copy is table by table, in an order that keeps foreign keys whole, a page of rows at a time in the
order of each table's key (so that a million log lines never sit in memory at once), and each page
written in one group commit. Row ids (`seq` of executions and task runs, `id` of log lines) are kept,
so that pages and cursors read the same after the copy; a PostgreSQL target then moves its
sequences past them. The files of executions (the internal storage of the store) are copied too.
The records of running processes are not: they belong to the machine and the engine that ran them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..internal_storage import URI_PREFIX, StorageError, open_storage
from ..internal_storage.uris import join_uri, parse_uri
from .errors import StoreError
from .facade import Store

#: Rows read and written at a time.
PAGE_ROWS = 2_000


@dataclass(frozen=True, slots=True)
class CopiedTable:
    """A table to copy: its columns, and the key its rows are paged by (unique, in that order)."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    identity: str | None = None  # the column a PostgreSQL sequence numbers


def _table(name: str, columns: str, key: str, identity: str | None = None) -> CopiedTable:
    return CopiedTable(name, tuple(columns.split()), tuple(key.split()), identity)


# In the order they are copied: a table after the tables its rows refer to.
TABLES = (
    _table(
        "flows",
        "namespace flow_id revision path updated deleted source_hash trigger_types checked_with",
        "namespace flow_id",
    ),
    _table("flow_revisions", "namespace flow_id revision source created", "namespace flow_id revision"),
    _table("flow_errors", "path message updated", "path"),
    _table(
        "executions",
        "seq id namespace flow_id flow_revision state start_date end_date parent_id trigger_type labels json",
        "seq",
        identity="seq",
    ),
    _table("task_runs", "seq id execution_id task_id parent_id value state json", "seq", identity="seq"),
    _table(
        "logs",
        "id execution_id namespace flow_id task_id task_run_id attempt level timestamp message",
        "id",
        identity="id",
    ),
    _table(
        "metrics",
        "id execution_id namespace flow_id task_id task_run_id type name value timestamp tags",
        "id",
        identity="id",
    ),
    _table("kv", "namespace key value expires_at updated", "namespace key"),
    _table(
        "task_cache",
        "namespace flow_id cache_key task_id execution_id state outputs created expires_at",
        "namespace flow_id cache_key",
    ),
    _table(
        "triggers",
        "namespace flow_id trigger_id enabled last_date next_date backfill schedule updated",
        "namespace flow_id trigger_id",
    ),
    _table(
        "trigger_fires", "namespace flow_id trigger_id date execution_id", "namespace flow_id trigger_id date"
    ),
    _table(
        "flow_trigger_windows",
        "namespace flow_id trigger_id condition_id start_date end_date results outputs updated",
        "namespace flow_id trigger_id condition_id",
    ),
)


def _page_query(table: CopiedTable, after: bool) -> str:
    columns = ", ".join(table.columns)
    key = ", ".join(table.key)
    where = f" WHERE ({key}) > ({', '.join('?' * len(table.key))})" if after else ""
    return f"SELECT {columns} FROM {table.name}{where} ORDER BY {key} LIMIT ?"


def _insert(table: CopiedTable) -> str:
    marks = ", ".join("?" * len(table.columns))
    return f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks})"


async def _is_empty(store: Store) -> bool:
    for table in TABLES:
        if await store._db.fetchall(f"SELECT 1 FROM {table.name} LIMIT 1"):
            return False
    return True


async def copy_store(
    source: Store, target: Store, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Copy every table of `source` into `target`, which must hold no data; the rows copied by table.

    Args:
        progress: Called with a table's name and the rows copied so far, after each page.

    Raises:
        StoreError: `target` already holds data (nothing is copied then), or a read or a write failed
            (what was copied so far stays: copy again into an emptied store).
    """
    if not await _is_empty(target):
        raise StoreError("the target store already holds data: copy into a new, empty store")
    copied: dict[str, int] = {}
    for table in TABLES:
        count, last = 0, None
        insert = _insert(table)
        while True:
            params: list[Any] = [*(last or ()), PAGE_ROWS]
            rows = await source._db.fetchall(_page_query(table, last is not None), params)
            if not rows:
                break
            await target._db.write(_rows_write(insert, rows))
            count += len(rows)
            index = [table.columns.index(column) for column in table.key]
            last = tuple(rows[-1][position] for position in index)
            if progress is not None:
                progress(table.name, count)
            if len(rows) < PAGE_ROWS:
                break
        copied[table.name] = count
        if table.identity is not None and count:
            await target._db.write(_move_sequence(target, table))
    return copied


def copy_files(source: Store, target: Store) -> int:
    """Copy the files of the source's executions (its internal storage: the folder beside it on this
    machine, or the files its database shares) into the target's; the number of files copied.

    Raises:
        StoreError: A file could not be read or written.
    """
    here = open_storage(source.path, source.shared_files)
    there = open_storage(target.path, target.shared_files)
    if here.shared is None and there.shared is None and here.root == there.root:
        return 0  # one folder for both (TIERCEL_STORAGE): nothing to copy
    try:
        uris = here.list(URI_PREFIX)
        for uri in uris:
            *folder, name = parse_uri(uri)
            there.put_file(join_uri(folder), name, here.path(uri))
    except StorageError as error:
        raise StoreError(f"cannot copy the files of executions: {error}") from None
    return len(uris)


def _rows_write(sql: str, rows: Sequence[Sequence[Any]]) -> Callable[[Any], None]:
    def write(conn: Any) -> None:
        conn.executemany(sql, [tuple(row) for row in rows])

    return write


def _move_sequence(target: Store, table: CopiedTable) -> Callable[[Any], None]:
    """On PostgreSQL, the table's identity sequence set past the rows copied with their ids."""

    def write(conn: Any) -> None:
        if getattr(target._db, "url", None) is None:
            return  # SQLite numbers rows from the largest id already there
        conn.run(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{table.identity}'), "
            f"(SELECT max({table.identity}) FROM {table.name}))"
        )

    return write
