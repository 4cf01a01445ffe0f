"""Schema versions: `schema.sql` is version 1, `migrations/NNNN_<name>.sql` version NNNN.

The version is kept in `PRAGMA user_version`; pending migrations are applied in order, one
transaction per version, when an engine opens the store.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from pathlib import Path

from .errors import StoreError
from .queries import queries

_HERE = Path(__file__).resolve().parent
SCHEMA_FILE = _HERE / "schema.sql"
MIGRATIONS_DIR = _HERE / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d+)_[A-Za-z0-9_.-]*\.sql$")


@functools.cache
def migrations() -> tuple[tuple[int, str], ...]:
    """Every schema version with the SQL that brings the previous version to it, in order.

    Version 1 is `schema.sql`; version N > 1 is `migrations/NNNN_<name>.sql`.

    Raises:
        StoreError: When the schema files are missing or the migrations do not number 2, 3, ... without a gap.
    """
    if not SCHEMA_FILE.is_file() or not MIGRATIONS_DIR.is_dir():
        # An install that left out the package's data files: refuse rather than run on half a schema.
        raise StoreError(
            f"the store's schema files are missing ({SCHEMA_FILE.name} and {MIGRATIONS_DIR}/): "
            "this installation of tiercel is incomplete; reinstall it"
        )
    found: list[tuple[int, Path]] = [(1, SCHEMA_FILE)]
    for file in MIGRATIONS_DIR.iterdir():
        match = _MIGRATION_NAME.match(file.name)
        if match:
            found.append((int(match.group(1)), file))
    found.sort()
    versions = [version for version, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"schema migrations must be numbered 2, 3, ... without gaps; found {versions[1:]}")
    return tuple((version, file.read_text(encoding="utf-8")) for version, file in found)


def latest_version() -> int:
    return migrations()[-1][0]


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the database to the latest schema version, one transaction per version."""
    sql = queries("connection")
    steps = migrations()
    latest = steps[-1][0]
    current = int(conn.execute(sql["user_version"]).fetchone()[0])
    if current > latest:
        raise StoreError(
            f"database {path} has schema version {current}, newer than this Tiercel knows ({latest}); "
            "upgrade Tiercel to open it"
        )
    if current == 0:
        objects = conn.execute(sql["count_schema_objects"]).fetchone()
        if objects[0]:
            raise StoreError(f"{path} is not a Tiercel database (it holds tables but no schema version)")
    for version, script in steps[current:]:
        # A script and its version number commit together (user_version cannot be a bound parameter).
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{script}\n;\nPRAGMA user_version = {version};\nCOMMIT;")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"cannot migrate {path} to schema version {version}: {exc}") from exc
    return latest
