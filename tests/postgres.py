"""A real PostgreSQL server for tests: a database per test process, a schema per store.

The server is the one on 127.0.0.1:5432 (trust authentication), or the one TIERCEL_TEST_PG names
(a libpq URL to a database the tests may create databases from). Each test process creates its own
database on first use and drops it when it ends; each store gets a fresh schema in it, dropped
after its test or with the database, so nothing assumes an empty server and nothing is left
behind. TIERCEL_TEST_STORE=postgres runs the engine's tests on PostgreSQL stores instead of
SQLite files (`engine_store`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import psycopg
import pytest

if TYPE_CHECKING:
    from tiercel.engine.store.postgres.files import PostgresFiles

ADMIN_URL = os.environ.get("TIERCEL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_database: str | None = None


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)


def _drop_database(name: str) -> None:
    try:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        pass


def postgres_database() -> str:
    """The URL of this process's test database, created on first use (the test is skipped with
    a clear reason when no server answers)."""
    global _database
    base = ADMIN_URL.rsplit("/", 1)[0]
    if _database is None:
        name = f"tiercel_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        try:
            with _admin() as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            pytest.skip(f"no PostgreSQL server at {ADMIN_URL}: {exc}")
        _database = name
        atexit.register(_drop_database, name)
    return f"{base}/{_database}"


def new_schema_url() -> tuple[str, str]:
    """A fresh schema in the test database: (the store URL that uses it, the schema's name)."""
    url = postgres_database()
    schema = f"s_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{url}?options={quote(f'-csearch_path={schema}')}", schema


def engine_store(folder: Path) -> Path | str:
    """The store an engine test runs on: `folder`/tiercel.db, or with TIERCEL_TEST_STORE=postgres
    a schema of the test database named after the folder (dropped with the database when the test
    process ends)."""
    if os.environ.get("TIERCEL_TEST_STORE", "sqlite") != "postgres":
        return folder / "tiercel.db"
    # One schema per folder, so that an engine started again on the folder finds its store (the
    # store makes the schema on its first open).
    schema = "f_" + hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:20]
    return f"{postgres_database()}?options={quote(f'-csearch_path={schema}')}"


def drop_schema(schema: str) -> None:
    with psycopg.connect(postgres_database(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def shared_files(url: str) -> Iterator[PostgresFiles]:
    """The files of the PostgreSQL store at `url` (created first), as its machines share them."""
    from tiercel.engine.store import Store
    from tiercel.engine.store.postgres.files import PostgresFiles

    async def create() -> None:
        await (await Store.open(url)).close()

    asyncio.run(create())
    files = PostgresFiles(url, "tiercel tests")
    try:
        yield files
    finally:
        files.close()
