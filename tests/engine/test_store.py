"""The store, on real SQLite database files, and (where a test is not about SQLite) on a real
PostgreSQL server as well."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import tiercel.engine.store.schema as schema_module
from tiercel.engine.model import (
    Attempt,
    Execution,
    ExecutionSummary,
    Label,
    LogEntry,
    LogLevel,
    State,
    StateType,
    TaskRun,
    new_id,
)
from tiercel.engine.store import Store, StoreError, StoreLockedError, migrations
from tiercel.engine.store.executions import task_run_params
from tiercel.engine.store.queries import queries

from ..postgres import drop_schema, new_schema_url

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_execution(
    namespace: str = "acme.finance",
    flow_id: str = "daily",
    *,
    state: StateType = StateType.RUNNING,
    execution_id: str | None = None,
    labels: tuple[Label, ...] = (),
    trigger: dict[str, Any] | None = None,
) -> Execution:
    execution = Execution(
        id=execution_id or new_id(),
        namespace=namespace,
        flow_id=flow_id,
        flow_revision=3,
        state=State.new(StateType.CREATED, at(0)),
        labels=labels,
        trigger=trigger,
    )
    if state is not StateType.CREATED:
        execution = execution.to(state, at(1))
    return execution


def make_run(
    execution: Execution, task_id: str, *, parent: TaskRun | None = None, value: str | None = None
) -> TaskRun:
    return TaskRun(
        id=new_id(),
        execution_id=execution.id,
        namespace=execution.namespace,
        flow_id=execution.flow_id,
        task_id=task_id,
        state=State.new(StateType.CREATED, at(2)),
        parent_task_run_id=parent.id if parent else None,
        value=value,
    )


def log(
    execution: Execution, message: str, level: LogLevel = LogLevel.INFO, task_id: str | None = None
) -> LogEntry:
    return LogEntry(
        execution_id=execution.id,
        namespace=execution.namespace,
        flow_id=execution.flow_id,
        timestamp=at(5),
        level=level,
        message=message,
        task_id=task_id,
        task_run_id=None,
        attempt=1 if task_id else None,
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        target: str | Path = tmp_path / "db" / "tiercel.db"
        schema = None
    else:
        target, schema = new_schema_url()
    opened = await Store.open(target)
    try:
        yield opened
    finally:
        await opened.close()
        if schema is not None:
            drop_schema(schema)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "db" / "tiercel.db")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def fresh_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Migration tests start from schema version 1 alone, whatever migrations the engine ships."""
    (tmp_path / "no-migrations").mkdir()
    monkeypatch.setattr(schema_module, "MIGRATIONS_DIR", tmp_path / "no-migrations")
    migrations.cache_clear()
    yield
    migrations.cache_clear()


def raw_count(path: Path | Store, sql: str, params: tuple[Any, ...] = ()) -> int:
    """A count read past the store's API: from its file, or from its database on another connection."""
    if isinstance(path, Store):
        return int(path._db.fetchall_now(sql, params)[0][0])
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(sql, params).fetchone()[0])
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Executions
# ---------------------------------------------------------------------------------------------


async def test_execution_round_trip_keeps_task_runs_attempts_histories_outputs_labels(store: Store) -> None:
    execution = make_execution(
        labels=(Label("team", "finance"), Label("env", "prod")),
        trigger={"id": "nightly", "type": "io.kestra.plugin.core.trigger.Schedule", "variables": {"n": 1}},
    )
    execution = dataclasses.replace(execution, inputs={"day": "2024-05-01", "n": 3}, variables={"k": [1, 2]})
    each = make_run(execution, "each")
    each = each.to(StateType.RUNNING, at(3))
    child_a = make_run(execution, "work", parent=each, value="a").with_new_attempt(at(3))
    child_a = child_a.to(StateType.FAILED, at(4)).with_new_attempt(at(5)).to(StateType.SUCCESS, at(6))
    child_a = dataclasses.replace(child_a, outputs={"rows": 12, "files": ["x.csv"], "nested": {"ok": True}})
    child_b = make_run(execution, "work", parent=each, value="b")
    execution = execution.with_task_runs([each, child_a, child_b]).to(StateType.SUCCESS, at(7))
    execution = dataclasses.replace(execution, outputs={"total": 12})

    await store.save_execution(execution, execution.task_runs)
    loaded = await store.get_execution(execution.id)

    assert loaded is not None
    assert loaded.to_json() == execution.to_json()
    assert [run.id for run in loaded.task_runs] == [each.id, child_a.id, child_b.id]
    assert len(loaded.task_runs[1].attempts) == 2
    assert loaded.task_runs[1].state.current is StateType.SUCCESS


async def test_unknown_execution_is_none(store: Store) -> None:
    assert await store.get_execution("nope") is None


async def test_changed_task_runs_are_upserted_not_duplicated(store: Store) -> None:
    execution = make_execution()
    first = make_run(execution, "first")
    execution = execution.with_task_run(first)
    await store.save_execution(execution, [first])

    running = first.with_new_attempt(at(3))
    execution = execution.with_task_run(running)
    await store.save_execution(execution, [running])
    done = running.to(StateType.SUCCESS, at(4))
    execution = execution.with_task_run(done)
    await store.save_execution(execution, [done])

    loaded = await store.get_execution(execution.id)
    assert loaded is not None
    assert len(loaded.task_runs) == 1
    assert loaded.task_runs[0].state.current is StateType.SUCCESS
    assert [h.state for h in loaded.task_runs[0].state.histories] == [
        StateType.CREATED,
        StateType.RUNNING,
        StateType.SUCCESS,
    ]
    assert raw_count(store, "SELECT count(*) FROM task_runs") == 1
    assert raw_count(store, "SELECT count(*) FROM executions") == 1


async def test_task_runs_keep_creation_order_across_saves(store: Store) -> None:
    execution = make_execution()
    runs = [make_run(execution, f"t{i}") for i in range(6)]
    execution = execution.with_task_runs(runs[:2])
    await store.save_execution(execution, runs[:2])
    # Later runs passed with a changed earlier one: new ones keep the order given (creation order).
    moved = runs[1].to(StateType.RUNNING, at(8))
    execution = execution.with_task_runs([moved, *runs[2:]])
    await store.save_execution(execution, [runs[2], moved, runs[3], runs[4], runs[5]])
    # Updating an early run does not move it.
    updated = runs[0].to(StateType.RUNNING, at(9))
    execution = execution.with_task_run(updated)
    await store.save_execution(execution, [updated])

    loaded = await store.get_execution(execution.id)
    assert loaded is not None
    assert [run.task_id for run in loaded.task_runs] == [f"t{i}" for i in range(6)]


async def test_removed_task_runs_are_deleted(store: Store) -> None:
    execution = make_execution()
    keep, drop = make_run(execution, "keep"), make_run(execution, "drop")
    execution = execution.with_task_runs([keep, drop])
    await store.save_execution(execution, [keep, drop])
    execution = dataclasses.replace(execution, task_runs=(keep,))
    await store.save_execution(execution, removed=[drop.id])

    loaded = await store.get_execution(execution.id)
    assert loaded is not None
    assert [run.id for run in loaded.task_runs] == [keep.id]


async def test_save_execution_writes_logs_in_the_same_transaction(store: Store) -> None:
    execution = make_execution()
    before = store.transactions
    await store.save_execution(execution, (), [log(execution, "one"), log(execution, "two")])
    assert store.transactions == before + 1
    assert [entry.message for _, entry in await store.logs(execution.id)] == ["one", "two"]


async def test_group_commit_of_concurrent_saves(store: Store) -> None:
    executions = [make_execution(flow_id=f"f{i}") for i in range(100)]
    with_runs = []
    for execution in executions:
        run = make_run(execution, "only")
        with_runs.append((execution.with_task_run(run), run))
    before = store.transactions

    await asyncio.gather(*(store.save_execution(e, [r], [log(e, "hi")]) for e, r in with_runs))

    commits = store.transactions - before
    assert 1 <= commits < 100
    # Durable: another connection sees every row without waiting for the store.
    assert raw_count(store, "SELECT count(*) FROM executions") == 100
    assert raw_count(store, "SELECT count(*) FROM task_runs") == 100
    assert raw_count(store, "SELECT count(*) FROM logs") == 100


async def test_a_write_is_visible_to_other_connections_when_it_returns(store: Store) -> None:
    execution = make_execution()
    await store.save_execution(execution)
    assert raw_count(store, "SELECT count(*) FROM executions WHERE id = ?", (execution.id,)) == 1


async def test_one_failing_request_does_not_fail_the_batch(store: Store) -> None:
    await store.kv_set("ns", "taken", 1)
    executions = [make_execution() for _ in range(5)]
    results = await asyncio.gather(
        *(store.save_execution(e) for e in executions[:2]),
        store.kv_set("ns", "taken", 2, overwrite=False),
        *(store.save_execution(e) for e in executions[2:]),
        return_exceptions=True,
    )
    assert isinstance(results[2], StoreError)
    assert [r for i, r in enumerate(results) if i != 2] == [None] * 5
    assert await store.count_executions() == 5
    assert await store.kv_get("ns", "taken") == (True, 1)


async def test_unfinished_executions(store: Store) -> None:
    running = make_execution(state=StateType.RUNNING)
    run = make_run(running, "a")
    running = running.with_task_run(run)
    paused = make_execution(state=StateType.PAUSED)
    created = make_execution(state=StateType.CREATED)
    await store.save_execution(running, [run])
    await store.save_execution(paused)
    await store.save_execution(created)
    for terminal in ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"):
        done = make_execution(state=StateType(terminal))
        await store.save_execution(done, [], [])

    unfinished = await store.unfinished_executions()

    assert [e.id for e in unfinished] == [running.id, paused.id, created.id]
    assert [r.id for r in unfinished[0].task_runs] == [run.id]
    assert unfinished[0].to_json() == running.to_json()


# ---------------------------------------------------------------------------------------------
# Listing executions
# ---------------------------------------------------------------------------------------------


async def test_list_executions_filters_and_namespace_prefix(store: Store) -> None:
    specs = [
        ("acme", "a", StateType.SUCCESS),
        ("acme.finance", "a", StateType.FAILED),
        ("acme.finance.daily", "b", StateType.RUNNING),
        ("acmeco", "a", StateType.SUCCESS),
        ("acme-x", "a", StateType.SUCCESS),
        ("other", "b", StateType.SUCCESS),
    ]
    saved = []
    for namespace, flow_id, state in specs:
        execution = make_execution(
            namespace,
            flow_id,
            state=state,
            labels=(Label("env", "prod"),),
            trigger={"type": "io.kestra.plugin.core.trigger.Schedule"},
        )
        await store.save_execution(execution)
        saved.append(execution)

    def namespaces(rows: list[ExecutionSummary]) -> list[str]:
        return [row.namespace for row in rows]

    assert namespaces(await store.list_executions(namespace="acme")) == [
        "acme.finance.daily",
        "acme.finance",
        "acme",
    ]
    assert namespaces(await store.list_executions(namespace="acme.finance")) == [
        "acme.finance.daily",
        "acme.finance",
    ]
    assert namespaces(await store.list_executions(namespace="acme", flow_id="a")) == ["acme.finance", "acme"]
    assert namespaces(await store.list_executions(state="SUCCESS")) == ["other", "acme-x", "acmeco", "acme"]
    assert namespaces(await store.list_executions(state=["FAILED", "RUNNING"])) == [
        "acme.finance.daily",
        "acme.finance",
    ]
    assert await store.count_executions() == 6
    assert await store.count_executions(namespace="acme") == 3
    assert await store.count_executions(namespace="acme", state=StateType.SUCCESS) == 1
    assert await store.count_executions(flow_id="b") == 2

    row = (await store.list_executions(namespace="other"))[0]
    assert row.id == saved[-1].id
    assert row.flow_id == "b"
    assert row.flow_revision == 3
    assert row.state == "SUCCESS"
    assert row.start_date == at(0)
    assert row.end_date == at(1)
    assert row.labels == {"env": "prod"}
    assert row.parent_id is None
    assert row.trigger_type == "io.kestra.plugin.core.trigger.Schedule"
    running = (await store.list_executions(state="RUNNING"))[0]
    assert running.end_date is None


async def test_list_executions_updates_keep_their_place(store: Store) -> None:
    first, second = make_execution(flow_id="first"), make_execution(flow_id="second")
    await store.save_execution(first)
    await store.save_execution(second)
    await store.save_execution(first.to(StateType.SUCCESS, at(9)))
    rows = await store.list_executions()
    assert [row.flow_id for row in rows] == ["second", "first"]
    assert rows[1].state == "SUCCESS"


async def test_keyset_paging_over_250_executions(store: Store) -> None:
    executions = [make_execution(flow_id=f"f{i:03d}") for i in range(250)]
    await asyncio.gather(*(store.save_execution(e) for e in executions))
    expected = [e.id for e in reversed(executions)]

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        page = await store.list_executions(limit=40, before=cursor)
        if not page:
            break
        pages += 1
        seen += [row.id for row in page]
        cursor = page[-1].cursor
        # A write between pages does not shift the next page.
        if pages == 2:
            await store.save_execution(make_execution(flow_id="late"))

    assert pages == 7
    assert seen == expected
    assert len(set(seen)) == 250


async def test_keyset_paging_with_filters(store: Store) -> None:
    for i in range(30):
        await store.save_execution(make_execution("acme.a" if i % 2 else "beta", f"f{i}"))
    first = await store.list_executions(namespace="acme", limit=10)
    second = await store.list_executions(namespace="acme", limit=10, before=first[-1].cursor)
    assert len(first) == 10 and len(second) == 5
    assert {row.namespace for row in first + second} == {"acme.a"}
    assert not {row.id for row in first} & {row.id for row in second}


async def test_bad_cursor_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="cursor"):
        await store.list_executions(before="not-a-cursor")


# ---------------------------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------------------------


async def test_logs_filters_and_follow(store: Store) -> None:
    execution = make_execution()
    other = make_execution()
    await store.append_logs(
        [
            log(execution, "trace", LogLevel.TRACE, "a"),
            log(execution, "debug", LogLevel.DEBUG, "b"),
            log(execution, "info", LogLevel.INFO, "a"),
            log(other, "elsewhere", LogLevel.ERROR, "a"),
            log(execution, "warn", LogLevel.WARN, "b"),
            log(execution, "error", LogLevel.ERROR, None),
        ]
    )

    everything = await store.logs(execution.id)
    assert [entry.message for _, entry in everything] == ["trace", "debug", "info", "warn", "error"]
    assert everything[0][1] == log(execution, "trace", LogLevel.TRACE, "a")
    ids = [row_id for row_id, _ in everything]
    assert ids == sorted(ids)

    def messages(rows: list[tuple[int, LogEntry]]) -> list[str]:
        return [entry.message for _, entry in rows]

    assert messages(await store.logs(execution.id, level="INFO")) == ["info", "warn", "error"]
    assert messages(await store.logs(execution.id, level="warning")) == ["warn", "error"]
    assert messages(await store.logs(execution.id, task_id="b")) == ["debug", "warn"]
    assert messages(await store.logs(execution.id, task_id="a", level="DEBUG")) == ["info"]
    assert messages(await store.logs(execution.id, limit=2)) == ["trace", "debug"]
    assert messages(await store.logs(execution.id, after=ids[2])) == ["warn", "error"]

    last = ids[-1]
    assert await store.logs(execution.id, after=last) == []
    store.append_logs_nowait([log(execution, "later")])
    await store.flush()
    assert messages(await store.logs(execution.id, after=last)) == ["later"]

    with pytest.raises(ValueError, match="unknown log level"):
        await store.logs(execution.id, level="LOUD")


async def test_logs_are_paged_by_row_id_both_ways(store: Store) -> None:
    execution = make_execution()
    other = make_execution()
    await store.append_logs(
        [
            log(execution if i % 4 else other, f"line {i}", LogLevel.ERROR if i % 3 == 0 else LogLevel.INFO)
            for i in range(40)
        ]
    )
    ours = [f"line {i}" for i in range(40) if i % 4]

    def messages(rows: list[tuple[int, LogEntry]]) -> list[str]:
        return [entry.message for _, entry in rows]

    tail = await store.logs(execution.id, limit=5, newest=True)
    assert messages(tail) == ours[-5:]
    before = await store.logs(execution.id, before=tail[0][0], limit=5, newest=True)
    assert messages(before) == ours[-10:-5]
    assert messages(await store.logs(execution.id, after=before[0][0], before=tail[-1][0])) == ours[-9:-1]
    errors = [f"line {i}" for i in range(40) if i % 4 and i % 3 == 0]
    assert messages(await store.logs(execution.id, level="ERROR", limit=2, newest=True)) == errors[-2:]

    batches = [batch async for batch in store.iter_logs(execution.id, batch=7)]
    assert [len(batch) for batch in batches] == [7, 7, 7, 7, 2]
    assert [m for batch in batches for m in messages(batch)] == ours
    halves = [batch async for batch in store.iter_logs(execution.id, batch=15)]
    assert [len(batch) for batch in halves] == [15, 15]  # an exact multiple ends on an empty read
    assert [batch async for batch in store.iter_logs(execution.id, after=tail[-1][0])] == []
    every_error = [
        m async for batch in store.iter_logs(execution.id, level="ERROR", batch=2) for m in messages(batch)
    ]
    assert every_error == errors


async def test_close_commits_queued_logs(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = await Store.open(path)
    execution = make_execution()
    for i in range(50):
        store.append_logs_nowait([log(execution, f"line {i}")])
    await store.close()
    assert raw_count(path, "SELECT count(*) FROM logs") == 50
    with pytest.raises(StoreError, match="closed"):
        await store.append_logs([log(execution, "too late")])


# ---------------------------------------------------------------------------------------------
# Flows
# ---------------------------------------------------------------------------------------------


async def test_flow_revisions(store: Store) -> None:
    v1 = "id: hello\nnamespace: acme\ntasks: []\n"
    v2 = v1 + "description: two\n"

    assert await store.save_flow("acme", "hello", v1, path="flows/hello.yml") == (1, True)
    assert await store.save_flow("acme", "hello", v1, path="flows/hello.yml") == (1, False)
    assert await store.save_flow("acme", "hello", v2) == (2, True)
    assert await store.save_flow("acme", "hello", v2) == (2, False)

    assert await store.flow_source("acme", "hello") == (2, v2)
    assert await store.flow_source("acme", "hello", 1) == (1, v1)
    assert await store.flow_source("acme", "hello", 3) is None
    assert await store.flow_source("acme", "missing") is None
    revisions = await store.flow_revisions("acme", "hello")
    assert [(revision, source) for revision, source, _ in revisions] == [(1, v1), (2, v2)]
    assert all(created.tzinfo is not None for _, _, created in revisions)

    rows = await store.list_flows()
    assert [(r.namespace, r.flow_id, r.revision, r.path, r.deleted) for r in rows] == [
        ("acme", "hello", 2, "flows/hello.yml", False)
    ]


async def test_moved_flow_updates_its_path_without_a_revision(store: Store) -> None:
    await store.save_flow("acme", "hello", "x", path="a.yml")
    assert await store.save_flow("acme", "hello", "x", path="b.yml") == (1, False)
    assert [row.path for row in await store.list_flows()] == ["b.yml"]


async def test_deleted_flows(store: Store) -> None:
    await store.save_flow("acme", "a", "a1", path="a.yml")
    await store.save_flow("acme", "b", "b1", path="b.yml")
    await store.delete_flow("acme", "a")

    assert [row.flow_id for row in await store.list_flows()] == ["b"]
    every = await store.list_flows(include_deleted=True)
    assert [(row.flow_id, row.deleted) for row in every] == [("a", True), ("b", False)]
    assert await store.flow_source("acme", "a") is None
    assert await store.flow_source("acme", "a", 1) == (1, "a1")
    # Coming back, even unchanged, is a new revision.
    assert await store.save_flow("acme", "a", "a1") == (2, True)
    assert [row.flow_id for row in await store.list_flows()] == ["a", "b"]


async def test_flow_errors(store: Store) -> None:
    await store.save_flow_error("flows/bad.yml", "line 3: mapping values are not allowed here")
    await store.save_flow_error("flows/worse.yml", "not a flow")
    await store.save_flow_error("flows/bad.yml", "line 4: duplicate key")
    assert await store.flow_errors() == {
        "flows/bad.yml": "line 4: duplicate key",
        "flows/worse.yml": "not a flow",
    }
    await store.save_flow_error("flows/bad.yml", None)
    assert await store.flow_errors() == {"flows/worse.yml": "not a flow"}


# ---------------------------------------------------------------------------------------------
# Key-value store
# ---------------------------------------------------------------------------------------------


async def test_kv_values_keys_and_delete(store: Store) -> None:
    await store.kv_set("acme", "config", {"retries": 3, "hosts": ["a", "b"]})
    await store.kv_set("acme", "counter", 1)
    await store.kv_set("acme", "counter", 2)
    await store.kv_set("acme", "nothing", None)
    await store.kv_set("other", "config", "elsewhere")

    assert await store.kv_get("acme", "config") == (True, {"retries": 3, "hosts": ["a", "b"]})
    assert await store.kv_get("acme", "counter") == (True, 2)
    assert await store.kv_get("acme", "nothing") == (True, None)
    assert await store.kv_get("acme", "missing") == (False, None)
    assert await store.kv_keys("acme") == ["config", "counter", "nothing"]
    assert await store.kv_keys("acme", prefix="co") == ["config", "counter"]
    assert await store.kv_keys("acme", prefix="x") == []

    assert await store.kv_delete("acme", "counter") is True
    assert await store.kv_delete("acme", "counter") is False
    assert await store.kv_get("acme", "counter") == (False, None)
    assert await store.kv_get("other", "config") == (True, "elsewhere")


async def test_kv_ttl_expiry(store: Store) -> None:
    await store.kv_set("acme", "short", "soon gone", ttl=timedelta(milliseconds=100))
    await store.kv_set("acme", "long", "stays", ttl=timedelta(hours=1))
    assert await store.kv_get("acme", "short") == (True, "soon gone")
    await asyncio.sleep(0.2)
    assert await store.kv_get("acme", "short") == (False, None)
    assert await store.kv_get("acme", "long") == (True, "stays")
    assert await store.kv_keys("acme") == ["long"]
    assert await store.kv_delete("acme", "short") is False


async def test_kv_overwrite_false(store: Store) -> None:
    await store.kv_set("acme", "once", 1, overwrite=False)
    with pytest.raises(StoreError, match="already exists"):
        await store.kv_set("acme", "once", 2, overwrite=False)
    assert await store.kv_get("acme", "once") == (True, 1)

    await store.kv_set("acme", "expired", 1, ttl=timedelta(seconds=-1))
    await store.kv_set("acme", "expired", 2, overwrite=False)
    assert await store.kv_get("acme", "expired") == (True, 2)


# ---------------------------------------------------------------------------------------------
# Opening: lock, read-only mode, migrations, permissions
# ---------------------------------------------------------------------------------------------


async def test_second_open_is_refused_while_readonly_works(tmp_path: Path) -> None:
    path = tmp_path / "tiercel.db"
    owner = await Store.open(path)
    execution = make_execution()
    await owner.save_execution(execution, [], [log(execution, "hello")])
    try:
        with pytest.raises(StoreLockedError) as caught:
            await Store.open(path)
        assert (
            str(caught.value) == f"database {path} is in use by another Tiercel process (pid {os.getpid()})"
        )
        assert caught.value.pid == os.getpid()

        reader = await Store.open(path, readonly=True)
        try:
            assert (await reader.get_execution(execution.id)) is not None
            assert [entry.message for _, entry in await reader.logs(execution.id)] == ["hello"]
            # Writes of the owner show up in the reader.
            await owner.append_logs([log(execution, "more")])
            assert len(await reader.logs(execution.id)) == 2
            with pytest.raises(StoreError, match="read-only"):
                await reader.kv_set("acme", "k", 1)
        finally:
            await reader.close()
    finally:
        await owner.close()

    again = await Store.open(path)
    try:
        assert await again.count_executions() == 1
    finally:
        await again.close()


async def test_readonly_open_without_an_engine(tmp_path: Path) -> None:
    path = tmp_path / "tiercel.db"
    with pytest.raises(StoreError, match="does not exist"):
        await Store.open(path, readonly=True)
    async with await Store.open(path) as owner:
        await owner.kv_set("acme", "k", "v")
    async with await Store.open(path, readonly=True) as reader:
        assert await reader.kv_get("acme", "k") == (True, "v")
    # A read-only opener holds no lock.
    async with await Store.open(path, readonly=True) as reader, await Store.open(path) as owner:
        assert await owner.kv_get("acme", "k") == (True, "v")
        assert await reader.kv_get("acme", "k") == (True, "v")


async def test_schema_version_and_idempotent_reopen(tmp_path: Path) -> None:
    path = tmp_path / "tiercel.db"
    latest = migrations()[-1][0]
    async with await Store.open(path) as store:
        assert store.schema_version == latest
        await store.save_flow("acme", "a", "source")
    assert raw_count(path, "PRAGMA user_version") == latest
    async with await Store.open(path) as store:
        assert store.schema_version == latest
        assert await store.flow_source("acme", "a") == (1, "source")
    assert raw_count(path, "PRAGMA user_version") == latest


async def test_migration_files_apply_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_migrations: None
) -> None:
    path = tmp_path / "tiercel.db"
    async with await Store.open(path) as store:
        await store.kv_set("acme", "k", 1)
        assert store.schema_version == 1

    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0002_notes.sql").write_text("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);\n")
    (folder / "0003_note_author.sql").write_text("ALTER TABLE notes ADD COLUMN author TEXT;\n")
    (folder / "README.txt").write_text("not a migration")
    monkeypatch.setattr(schema_module, "MIGRATIONS_DIR", folder)
    migrations.cache_clear()

    async with await Store.open(path) as store:
        assert store.schema_version == 3
        assert await store.kv_get("acme", "k") == (True, 1)
    assert raw_count(path, "PRAGMA user_version") == 3
    assert raw_count(path, "SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'author'") == 1

    # A fresh database goes through every version too.
    async with await Store.open(tmp_path / "fresh.db") as store:
        assert store.schema_version == 3


async def test_broken_migration_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_migrations: None
) -> None:
    path = tmp_path / "tiercel.db"
    async with await Store.open(path):
        pass
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0002_bad.sql").write_text("CREATE TABLE half (id INTEGER);\nTHIS IS NOT SQL;\n")
    monkeypatch.setattr(schema_module, "MIGRATIONS_DIR", folder)
    migrations.cache_clear()

    with pytest.raises(StoreError, match="schema version 2"):
        await Store.open(path)
    assert raw_count(path, "PRAGMA user_version") == 1
    assert raw_count(path, "SELECT count(*) FROM sqlite_master WHERE name = 'half'") == 0
    # The failed open released the lock.
    (tmp_path / "none").mkdir()
    monkeypatch.setattr(schema_module, "MIGRATIONS_DIR", tmp_path / "none")
    migrations.cache_clear()
    async with await Store.open(path) as store:
        assert store.schema_version == 1


async def test_gap_in_migrations_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_migrations: None
) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0003_skip.sql").write_text("SELECT 1;")
    monkeypatch.setattr(schema_module, "MIGRATIONS_DIR", folder)
    with pytest.raises(StoreError, match="without gaps"):
        migrations()


async def test_newer_or_foreign_databases_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    async with await Store.open(newer):
        pass
    conn = sqlite3.connect(newer)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        await Store.open(newer)
    with pytest.raises(StoreError, match="version 99"):
        await Store.open(newer, readonly=True)

    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE something (x)")
    conn.close()
    with pytest.raises(StoreError, match="not a Tiercel database"):
        await Store.open(foreign)


async def test_pragmas(sqlite_store: Store) -> None:
    store = sqlite_store
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert store._db._writer is not None
    writer = store._db._writer.conn
    assert writer.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: a commit survives a power loss
    assert writer.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


@pytest.mark.parametrize(("setting", "level"), [("NORMAL", 1), ("full", 2), (" Normal ", 1)])
async def test_the_durability_setting_is_taken_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, level: int
) -> None:
    monkeypatch.setenv("TIERCEL_SQLITE_SYNC", setting)
    async with await Store.open(tmp_path / "t.db") as store:
        assert store._db._writer is not None
        assert store._db._writer.conn.execute("PRAGMA synchronous").fetchone()[0] == level


async def test_an_unknown_durability_setting_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERCEL_SQLITE_SYNC", "OFF")
    with pytest.raises(StoreError, match="TIERCEL_SQLITE_SYNC='OFF': use FULL or NORMAL"):
        await Store.open(tmp_path / "t.db")
    monkeypatch.setenv("TIERCEL_SQLITE_SYNC", "FULL")
    async with await Store.open(tmp_path / "t.db"):  # the refused open left no lock behind
        pass


async def test_files_are_private_under_umask_022(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        folder = tmp_path / "state" / ".tiercel"
        path = folder / "tiercel.db"
        store = await Store.open(path)
        try:
            await store.save_execution(make_execution())

            def mode(p: Path) -> int:
                return stat.S_IMODE(p.stat().st_mode)

            assert mode(folder) == 0o700
            assert mode(tmp_path / "state") == 0o700
            assert mode(path) == 0o600
            for suffix in ("-wal", "-shm", ".lock"):
                companion = path.with_name(path.name + suffix)
                assert companion.exists(), suffix
                assert mode(companion) == 0o600, suffix
            # The umask is restored.
            assert os.umask(0o022) == 0o022
        finally:
            await store.close()
    finally:
        os.umask(previous)


# Another local user's files in a shared folder (the tests run as root, which may chown to nobody).
NOBODY = 65534
VICTIM_TEXT = "a file of the user's that Tiercel must never write\n"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def companion(db: Path, suffix: str) -> Path:
    return db.with_name(db.name + suffix)


@pytest.mark.parametrize("suffix", [".lock", "", "-wal", "-shm", "-journal"])
async def test_a_planted_symlink_is_refused_and_its_target_left_intact(tmp_path: Path, suffix: str) -> None:
    db = tmp_path / "team" / "team.db"
    db.parent.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    companion(db, suffix).symlink_to(victim)

    with pytest.raises(StoreError, match="is a symbolic link") as caught:
        await Store.open(db)
    assert str(companion(db, suffix)) in str(caught.value)
    assert "Remove it" in str(caught.value)
    assert victim.read_text() == VICTIM_TEXT
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    # Refused, not locked: removing the link is enough.
    companion(db, suffix).unlink()
    async with await Store.open(db) as store:
        await store.kv_set("acme", "k", 1)
    assert victim.read_text() == VICTIM_TEXT


@needs_root
@pytest.mark.parametrize("suffix", ["", ".lock", "-wal", "-shm"])
async def test_a_file_owned_by_another_user_is_refused(tmp_path: Path, suffix: str) -> None:
    db = tmp_path / "team.db"
    async with await Store.open(db) as store:
        await store.kv_set("acme", "k", 1)
    planted = companion(db, suffix)
    planted.touch(mode=0o600)
    os.chown(planted, NOBODY, NOBODY)

    with pytest.raises(StoreError, match=r"belongs to .*uid 65534.*not to you") as caught:
        await Store.open(db)
    assert str(planted) in str(caught.value)
    assert "--db or TIERCEL_DB" in str(caught.value)
    assert planted.stat().st_uid == NOBODY


@needs_root
async def test_a_database_precreated_world_writable_by_another_user_is_not_adopted(tmp_path: Path) -> None:
    db = tmp_path / "team.db"
    previous = os.umask(0)
    try:
        os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o666))
    finally:
        os.umask(previous)
    os.chown(db, NOBODY, NOBODY)

    with pytest.raises(StoreError, match="refusing the database"):
        await Store.open(db)
    assert db.stat().st_size == 0  # nothing written into it
    assert not companion(db, "-wal").exists()


@pytest.mark.parametrize("suffix", ["", ".lock", "-wal"])
async def test_a_file_writable_by_others_is_refused_with_the_fix(tmp_path: Path, suffix: str) -> None:
    db = tmp_path / "team.db"
    async with await Store.open(db):
        pass
    planted = companion(db, suffix)
    planted.touch()
    os.chmod(planted, 0o666)

    with pytest.raises(StoreError, match=r"writable by group and others \(mode 0666\)") as caught:
        await Store.open(db)
    assert f"chmod 600 {planted}" in str(caught.value)
    os.chmod(planted, 0o600)
    async with await Store.open(db):
        pass


async def test_a_hard_linked_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "team.db"
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    os.chmod(victim, 0o600)
    os.link(victim, db)

    with pytest.raises(StoreError, match="has 2 hard links"):
        await Store.open(db)
    assert victim.read_text() == VICTIM_TEXT


# ---------------------------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------------------------


def big_execution(size: int) -> Execution:
    execution = make_execution()
    return dataclasses.replace(execution, inputs={"blob": "x" * size})


async def test_full_database_raises_and_the_writer_recovers(tmp_path: Path) -> None:
    path = tmp_path / "tiercel.db"
    async with await Store.open(path):
        pass
    pages = raw_count(path, "PRAGMA page_count")
    async with await Store.open(path, max_pages=pages + 8) as store:
        small = make_execution()
        await store.save_execution(small)

        with pytest.raises(StoreError, match="full"):
            for _ in range(20):
                await store.save_execution(big_execution(20_000))

        # Other writes in the same group commit are not lost with the failing one.
        tiny = make_execution()
        results = await asyncio.gather(
            store.save_execution(big_execution(200_000)),
            store.kv_set("acme", "k", 1),
            store.save_execution(tiny),
            return_exceptions=True,
        )
        assert isinstance(results[0], StoreError)
        assert "full" in str(results[0])
        assert list(results[1:]) == [None, None]

        errors: list[BaseException] = []
        store.on_error = errors.append
        store.append_logs_nowait([log(small, "y" * 200_000)])
        await store.flush()
        assert len(errors) == 1 and isinstance(errors[0], StoreError)

        await store.set_max_pages(None)
        huge = big_execution(200_000)
        await store.save_execution(huge)
        assert await store.get_execution(huge.id) is not None
        assert await store.get_execution(small.id) is not None
        assert await store.get_execution(tiny.id) is not None


async def test_write_errors_reach_the_caller_with_the_database_message(store: Store) -> None:
    execution = make_execution()
    orphan = TaskRun(
        id=new_id(),
        execution_id="elsewhere",
        namespace="acme",
        flow_id="f",
        task_id="t",
        state=State.new(),
        attempts=(Attempt(State.new()),),
    )
    await store.save_execution(execution)
    # A foreign key violation: a task run of an execution that is not stored.
    with pytest.raises(StoreError, match=r"(?i)foreign key"):
        await store._db.write(
            lambda conn: conn.execute(
                queries("executions")["upsert_task_run"], task_run_params("elsewhere", orphan)
            )
        )
    await store.save_execution(execution.to(StateType.SUCCESS, at(3)))
    assert (await store.list_executions())[0].state == "SUCCESS"


async def test_a_store_without_its_migrations_folder_refuses_to_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema_module, "MIGRATIONS_DIR", tmp_path / "missing")
    migrations.cache_clear()
    try:
        with pytest.raises(StoreError, match="incomplete"):
            await Store.open(tmp_path / "t.db")
    finally:
        monkeypatch.undo()
        migrations.cache_clear()


async def test_another_process_reading_the_database_does_not_break_the_store(sqlite_store: Store) -> None:
    store = sqlite_store
    # SQLite's locks are per process: if the store dropped them (by closing a descriptor of the
    # database or its -shm file), a reader in another process would rebuild the WAL index under it.
    reader = (
        "import sqlite3, sys\n"
        "for _ in range(20):\n"
        "    conn = sqlite3.connect(sys.argv[1])\n"
        "    conn.execute('SELECT count(*) FROM executions').fetchone()\n"
        "    conn.close()\n"
    )
    for n in range(5):
        execution = make_execution()
        await store.save_execution(execution, [make_run(execution, f"t{n}")])
        result = subprocess.run(
            [sys.executable, "-c", reader, str(store.path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        loaded = await store.get_execution(execution.id)
        assert loaded is not None and [run.task_id for run in loaded.task_runs] == [f"t{n}"]


async def test_a_nul_character_in_logs_and_outputs_loses_nothing(store: Store) -> None:
    """A script's binary output may hold NUL, which PostgreSQL's text cannot: the line is kept (its
    NUL shown as U+FFFD there), the other lines of its batch too, and the execution still purges."""
    execution = make_execution()
    run = dataclasses.replace(make_run(execution, "t"), outputs={"raw": "a\x00b"})
    await store.save_execution(execution, [run])
    await store.append_logs([log(execution, "before"), log(execution, "bin\x00ary"), log(execution, "after")])
    messages = [entry.message for _, entry in await store.logs(execution.id)]
    assert messages[0] == "before" and messages[2] == "after"
    assert messages[1] in ("bin\x00ary", "bin\ufffdary")
    assert await store.delete_executions([execution.id]) == (1, 1)
    assert await store.get_execution(execution.id) is None
