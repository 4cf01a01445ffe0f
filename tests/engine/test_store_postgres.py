"""What only a PostgreSQL store does: its schema made on the first open, one owner at a time through
an advisory lock, read-only stores beside the owner. On the real server."""

from __future__ import annotations

import os
import socket
import uuid

import psycopg
import pytest

from tests.postgres import drop_schema, new_schema_url, postgres_database
from tiercel.engine.store import Store, StoreError, StoreLockedError
from tiercel.engine.store.postgres.connection import SyncConnection
from tiercel.engine.store.postgres.schema import latest_version
from tiercel.engine.store.postgres.writer import PostgresWriter


async def test_the_schema_the_url_names_is_created_on_the_first_open() -> None:
    name = f"s_{uuid.uuid4().hex[:12]}"
    url = f"{postgres_database()}?options=-csearch_path%3D{name}"
    try:
        async with await Store.open(url) as store:
            assert store.schema_version == latest_version() >= 2
        with psycopg.connect(postgres_database()) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", [name]
            ).fetchone()
        assert tables is not None and tables[0] >= 10
    finally:
        drop_schema(name)


async def test_one_owner_at_a_time_and_readers_beside_it(pg_url: str) -> None:
    owner = await Store.open(pg_url)
    try:
        with pytest.raises(StoreLockedError, match=f"in use by tiercel pid {os.getpid()}") as refused:
            await Store.open(pg_url)
        assert refused.value.pid == os.getpid()
        async with await Store.open(pg_url, readonly=True) as reader:
            assert await reader.list_executions() == []
            with pytest.raises(StoreError, match="read-only"):
                await reader.kv_set("ns", "k", 1)
    finally:
        await owner.close()
    async with await Store.open(pg_url) as again:  # the lock went with the owner's connection
        assert again.schema_version == latest_version()


async def test_a_cluster_member_writes_beside_the_owner_without_its_lock(pg_url: str) -> None:
    async with await Store.open(pg_url) as owner, await Store.open(pg_url, member=True) as worker:
        await worker.kv_set("ns", "from", "worker")
        assert await owner.kv_get("ns", "from") == (True, "worker")
        with pytest.raises(StoreLockedError):  # the owner's lock is still the owner's
            await Store.open(pg_url)


async def test_a_read_only_store_needs_an_owner_to_have_made_it(pg_url: str) -> None:
    with pytest.raises(StoreError, match="holds no Tiercel store"):
        await Store.open(pg_url, readonly=True)


async def test_stores_in_two_schemas_of_one_database_are_apart(pg_url: str) -> None:
    other, schema = new_schema_url()
    try:
        async with await Store.open(pg_url) as first, await Store.open(other) as second:
            await first.kv_set("ns", "where", "first")
            assert await first.kv_get("ns", "where") == (True, "first")
            assert await second.kv_get("ns", "where") == (False, None)
    finally:
        drop_schema(schema)


def _cut_connections(url: str) -> int:
    """End every server connection of this process to the store's database, as a restart would."""
    with psycopg.connect(postgres_database(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            [f"tiercel pid {os.getpid()} on {socket.gethostname()}"],
        ).fetchall()
    return len(rows)


async def test_lost_connections_are_opened_again_and_the_lock_taken_again(pg_url: str) -> None:
    async with await Store.open(pg_url) as store:
        await store.kv_set("ns", "before", 1)
        assert store.kv_get_now("ns", "before") == (True, 1)
        assert _cut_connections(pg_url) >= 2  # the writer, the readers, the one for reads on the loop
        await store.kv_set("ns", "after", 2)  # the writer opens a new connection and writes
        assert await store.kv_get("ns", "before") == (True, 1)  # a reader too
        assert store.kv_get_now("ns", "after") == (True, 2)
        with pytest.raises(StoreLockedError):  # the new writer connection holds the owner's lock
            await Store.open(pg_url)


async def test_a_missing_first_schema_is_made_even_when_a_later_one_exists() -> None:
    """`search_path=team,public` without a `team` schema: the store goes in `team`, not `public`."""
    name = f"s_{uuid.uuid4().hex[:12]}"
    url = f"{postgres_database()}?options=-csearch_path%3D{name},public"
    try:
        async with await Store.open(url):
            pass
        with psycopg.connect(postgres_database()) as conn:
            found = conn.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'executions'"
            ).fetchall()
        schemas = {row[0] for row in found}
        assert name in schemas and "public" not in schemas
    finally:
        drop_schema(name)


def test_a_batch_whose_commit_was_cut_runs_again_only_if_it_did_not_commit(pg_url: str) -> None:
    """When the connection goes down during COMMIT, the writer asks the server, on its new
    connection, whether that transaction committed: a committed batch is not run again (its log
    lines would be stored twice, its trigger fires refused as already fired)."""

    def connect() -> SyncConnection:
        return SyncConnection.connect(pg_url, application_name="tiercel test")

    writer = PostgresWriter(connect(), connect)
    conn = writer.conn
    try:
        for end, expected in (("COMMIT", [(True, "stored")]), ("ROLLBACK", None)):
            conn.run("BEGIN")
            txid = int(conn.raw.execute("SELECT txid_current()").fetchone()[0])
            conn.run(end)
            writer._committing = (txid, [(True, "stored")])
            assert writer._committed_before_the_loss() == expected
            assert writer._committing is None
    finally:
        writer.close()


async def test_a_store_closed_can_be_owned_again_at_once(pg_url: str) -> None:
    """The owner's lock is given back by the close itself, not when the server ends the session."""
    for _ in range(100):
        store = await Store.open(pg_url)
        await store.close()
