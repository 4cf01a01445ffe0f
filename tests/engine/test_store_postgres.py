"""What only a PostgreSQL store does: its schema made on the first open, one owner at a time through
an advisory lock, read-only stores beside the owner. On the real server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.postgres import drop_schema, new_schema_url, postgres_database
from tiercel.engine.store import Store, StoreError, StoreLockedError


@pytest.fixture
def pg_url() -> Iterator[str]:
    url, schema = new_schema_url()
    yield url
    drop_schema(schema)


async def test_the_schema_the_url_names_is_created_on_the_first_open() -> None:
    name = f"s_{uuid.uuid4().hex[:12]}"
    url = f"{postgres_database()}?options=-csearch_path%3D{name}"
    try:
        async with await Store.open(url) as store:
            assert store.schema_version == 1
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
        assert again.schema_version == 1


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
