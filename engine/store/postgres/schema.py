"""Schema versions of a PostgreSQL store: `schema.sql` is version 1, `migrations/NNNN_<name>.sql`
version NNNN.

The version is kept in the table `tiercel_schema`; pending versions are applied in order, each in a
transaction of its own that also records it, under a transaction advisory lock so that two engines
starting at once migrate one after the other.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from psycopg import sql

from ..errors import StoreError
from .connection import SyncConnection

_HERE = Path(__file__).resolve().parent
SCHEMA_FILE = _HERE / "schema.sql"
MIGRATIONS_DIR = _HERE / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d+)_[A-Za-z0-9_.-]*\.sql$")
_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS tiercel_schema (version INTEGER NOT NULL)"
_READ_VERSION = "SELECT coalesce(max(version), 0) FROM tiercel_schema"
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('tiercel migrate ' || current_schema(), 0))"


@functools.cache
def migrations() -> tuple[tuple[int, str], ...]:
    """Every schema version with the SQL that brings the previous version to it, in order.

    Raises:
        StoreError: The schema files are missing, or the migrations do not number 2, 3, ...
    """
    if not SCHEMA_FILE.is_file():
        raise StoreError(
            f"the store's schema file {SCHEMA_FILE} is missing: "
            "this installation of tiercel is incomplete; reinstall it"
        )
    found: list[tuple[int, Path]] = [(1, SCHEMA_FILE)]
    if MIGRATIONS_DIR.is_dir():
        for file in MIGRATIONS_DIR.iterdir():
            match = _MIGRATION_NAME.match(file.name)
            if match:
                found.append((int(match.group(1)), file))
    found.sort()
    if [version for version, _ in found] != list(range(1, len(found) + 1)):
        raise StoreError("PostgreSQL schema migrations must be numbered 2, 3, ... without gaps")
    return tuple((version, file.read_text(encoding="utf-8")) for version, file in found)


def latest_version() -> int:
    return migrations()[-1][0]


def ensure_schema(conn: SyncConnection) -> None:
    """Create the schema the URL's search_path names first, when it does not exist yet (else the
    store would land in the next one that does, `public` as a rule)."""
    path = str(conn.raw.execute("SHOW search_path").fetchone()[0])
    first = path.split(",")[0].strip()
    if first.startswith('"') and first.endswith('"'):
        first = first[1:-1].replace('""', '"')
    if first == "$user":
        return  # PostgreSQL's default path: the user's schema if there is one, else `public`
    if not first:
        raise StoreError(f"no schema to create the store in (search_path is {path!r})")
    if conn.raw.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [first]).fetchone():
        return
    conn.raw.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(first)))


def migrate(conn: SyncConnection) -> int:
    """Bring the store to the latest schema version; return it."""
    steps = migrations()
    latest = steps[-1][0]
    for version, script in steps:
        conn.run("BEGIN")
        try:
            conn.run(_MIGRATION_LOCK)
            conn.run(_VERSION_TABLE)
            current = int(conn.raw.execute(_READ_VERSION).fetchone()[0])
            if current > latest:
                raise StoreError(
                    f"the store has schema version {current}, newer than this Tiercel's {latest}: "
                    "use a newer Tiercel"
                )
            if current < version:
                conn.run(script)
                conn.raw.execute("INSERT INTO tiercel_schema (version) VALUES (%s)", [version])
            conn.run("COMMIT")
        except BaseException:
            conn.run("ROLLBACK")
            raise
    return latest


async def stored_version(conn: Any) -> int:
    """The schema version of the store a reader connection sees (0: none)."""
    cursor = await conn.raw.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name = 'tiercel_schema'"
    )
    if not (await cursor.fetchone())[0]:
        return 0
    cursor = await conn.raw.execute(_READ_VERSION)
    return int((await cursor.fetchone())[0])
