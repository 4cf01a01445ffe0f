"""The store's side of a flow's concurrency limit across servers (migration 0005_flow_slots.sql), on
a real PostgreSQL store: admission under the limit, the queue's order, a changed limit, a slot
freed by the end of its execution; and a server freeing a slot left by an execution never stored."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.cluster.harness import Cluster
from tests.cluster.test_servers import HOOK, all_ended, post_all, states
from tests.postgres import shared_files
from tests.waiting import until


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with shared_files(pg_url), psycopg.connect(pg_url, autocommit=True) as connection:
        yield connection


def admit(
    conn: psycopg.Connection[tuple[object, ...]], execution_id: str, limit: int, behavior: str = "QUEUE"
) -> str:
    row = conn.execute(
        "SELECT admit_execution('acme', 'load', %s, %s, %s)", [execution_id, limit, behavior]
    ).fetchone()
    assert row is not None
    return str(row[0])


def slots(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, bool]:
    return {
        str(e): bool(q) for e, q in conn.execute("SELECT execution_id, queued FROM flow_slots ORDER BY seq")
    }


def test_admission_keeps_to_the_limit_and_the_queue_to_its_order(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    assert [admit(conn, name, 1) for name in ("e1", "e2", "e3")] == ["RUN", "QUEUE", "QUEUE"]
    assert admit(conn, "e2", 1) == "QUEUE"  # asked again, the same answer
    assert admit(conn, "e4", 1, "CANCEL") == "CANCEL" and admit(conn, "e5", 1, "FAIL") == "FAIL"
    conn.execute("SELECT release_flow_slot('e1')")
    assert slots(conn) == {"e2": False, "e3": True}  # the head of the queue, not a newcomer


def test_a_raised_limit_lets_the_queue_on_at_once(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    assert [admit(conn, name, 1) for name in ("e1", "e2", "e3")] == ["RUN", "QUEUE", "QUEUE"]
    assert admit(conn, "e4", 3) == "QUEUE"  # behind e2 and e3, which the new limit lets run
    assert slots(conn) == {"e1": False, "e2": False, "e3": False, "e4": True}


def test_the_stored_end_of_an_execution_frees_its_slot(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    assert [admit(conn, name, 1) for name in ("e1", "e2")] == ["RUN", "QUEUE"]
    conn.execute(
        "INSERT INTO executions (id, namespace, flow_id, flow_revision, state, json) "
        "VALUES ('e1', 'acme', 'load', 1, 'SUCCESS', '{}')"
    )
    assert slots(conn) == {"e2": False}


def test_a_server_frees_a_slot_held_by_an_execution_never_stored(cluster: Cluster, tmp_path: Path) -> None:
    cluster.flow(
        "limited",
        "id: limited\nnamespace: cluster\nconcurrency:\n  limit: 1\ntasks:\n"
        "  - id: log\n    type: io.kestra.plugin.core.log.Log\n    message: ran\n" + HOOK,
    )
    server = cluster.server(worker=True)
    cluster.sql(
        "INSERT INTO flow_slots (execution_id, namespace, flow_id, queued, slot_limit, admitted) "
        "VALUES ('lost', 'cluster', 'limited', false, 1, now() - interval '2 minutes')"
    )
    [queued] = asyncio.run(post_all([cluster.webhooks_of(server)], "cluster", "limited", 1))
    asyncio.run(until(lambda: states(cluster, [queued]) == {queued: "QUEUED"}))
    assert all_ended(cluster, [queued], timeout=30) == {queued: "SUCCESS"}
    assert cluster.sql("SELECT execution_id FROM flow_slots") == []
