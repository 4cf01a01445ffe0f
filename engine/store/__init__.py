"""The SQLite store: flows and their revisions, executions, task runs, logs, the KV store, triggers.

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

The package's parts:
    errors      StoreError, StoreLockedError, AlreadyFiredError
    lock        the lock file and the database files opened as private files
    schema      schema versions: schema.sql and migrations/*.sql
    writer      the writer connection and its group commit
    database    opening and closing, the writer task and its queue, the reader pool
    queries     named statements from sql/*.sql
    flows, executions, logs, kv, triggers, processes
                one part per group of tables, each with its sql/<group>.sql
    facade      the Store, composed of those parts
"""

from __future__ import annotations

from .errors import AlreadyFiredError, StoreError, StoreLockedError
from .facade import Store
from .flows import FlowRow, FlowSave, source_hash
from .logs import LOG_BATCH
from .schema import migrations
from .triggers import ScheduleFire, TriggerFire, TriggerRow, WindowsFire, WindowUpdate

__all__ = [
    "LOG_BATCH",
    "AlreadyFiredError",
    "FlowRow",
    "FlowSave",
    "ScheduleFire",
    "Store",
    "StoreError",
    "StoreLockedError",
    "TriggerFire",
    "TriggerRow",
    "WindowUpdate",
    "WindowsFire",
    "migrations",
    "source_hash",
]
