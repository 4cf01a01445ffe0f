"""The store's SQL files: every named statement parses and runs against the latest schema."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import tiercel.engine.store.queries as queries_module
from tiercel.engine.store import Store, StoreError
from tiercel.engine.store.executions import page_statements
from tiercel.engine.store.queries import SQL_DIR, parse_queries, queries
from tiercel.engine.store.schema import SCHEMA_FILE, migrations

GROUPS = sorted(path.stem for path in SQL_DIR.glob("*.sql"))


def test_every_group_the_store_reads_has_its_file() -> None:
    files = [
        "connection",
        "executions",
        "flows",
        "housekeeping",
        "kv",
        "logs",
        "metrics",
        "processes",
        "task_cache",
        "triggers",
    ]
    assert files == GROUPS


def parameter_count(sql: str) -> int:
    """How many parameters a statement binds: one per `?`, or the highest `?N`."""
    numbered = [int(number) for number in re.findall(r"\?(\d+)", sql)]
    return max(numbered) if numbered else sql.count("?")


@pytest.mark.parametrize("group", [group for group in GROUPS if group != "connection"])
async def test_every_statement_compiles_against_the_latest_schema(tmp_path: Path, group: str) -> None:
    path = tmp_path / "t.db"
    async with await Store.open(path):
        pass
    conn = sqlite3.connect(path)
    try:
        named = queries(group)
        assert named
        for name, sql in named.items():
            # EXPLAIN prepares the statement (tables, columns, syntax) without running it.
            runnable = sql.replace("{parts}", queries("executions")["select_executions_part"])
            runnable = runnable.replace("{where}", "")
            conn.execute(f"EXPLAIN {runnable}", [None] * parameter_count(runnable))
            assert not sql.rstrip().endswith(";"), name
    finally:
        conn.close()


def test_unfinished_conditions_match_the_partial_index() -> None:
    # SQLite uses the executions_unfinished index only for a WHERE clause identical to the index's.
    schema = SCHEMA_FILE.read_text(encoding="utf-8")
    index = re.search(r"CREATE INDEX executions_unfinished ON executions \(seq\)\s+WHERE (.+);", schema)
    assert index is not None
    clause = index.group(1)
    uses = [
        sql
        for group in ("executions", "triggers")
        for sql in queries(group).values()
        if "NOT IN ('SUCCESS'" in sql
    ]
    assert len(uses) == 4
    for sql in uses:
        for found in re.findall(r"state NOT IN \([^)]*\)", sql):
            assert found == clause


def test_a_query_plan_for_unfinished_executions_uses_the_partial_index(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "plan.db")
    try:
        conn.executescript(SCHEMA_FILE.read_text(encoding="utf-8"))
        plan = conn.execute("EXPLAIN QUERY PLAN " + queries("executions")["select_unfinished"]).fetchall()
    finally:
        conn.close()
    assert any("executions_unfinished" in str(row[-1]) for row in plan), plan


def test_parse_queries_names_each_statement_up_to_its_semicolon() -> None:
    text = "-- about the file\n\n-- name: one\nSELECT 1\nFROM t;\n-- a note\n-- name: two\nSELECT 2;\n"
    assert parse_queries(text, "x.sql") == {"one": "SELECT 1\nFROM t", "two": "SELECT 2"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("-- name: one\nSELECT 1;\n-- name: one\nSELECT 2;\n", "defined twice"),
        ("-- name: one\nSELECT 1\n-- name: two\nSELECT 2;\n", "'one' does not end"),
        ("-- name: one\nSELECT 1\n", "'one' does not end"),
    ],
)
def test_malformed_query_files_are_refused(text: str, error: str) -> None:
    with pytest.raises(StoreError, match=error):
        parse_queries(text, "x.sql")


async def test_a_store_without_its_query_files_refuses_to_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries_module, "SQL_DIR", tmp_path / "missing")
    queries.cache_clear()
    try:
        with pytest.raises(StoreError, match="incomplete; reinstall"):
            await Store.open(tmp_path / "t.db")
    finally:
        monkeypatch.undo()
        queries.cache_clear()


def latest_schema(conn: sqlite3.Connection) -> None:
    """The schema as a store opened today has it: schema.sql and every migration after it."""
    for _, script in migrations():
        conn.executescript(script)


def plan(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[str]:
    return [str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


@pytest.mark.parametrize(
    ("flow_id", "states", "before", "index"),
    [
        # The namespace's page is read from its index alone (migration 0007): no table page.
        (None, None, None, "COVERING INDEX executions_namespace (namespace=?)"),
        (None, None, 500, "COVERING INDEX executions_namespace (namespace=? AND seq<?)"),
        ("daily", None, None, "INDEX executions_flow (namespace=? AND flow_id=?)"),
        ("daily", None, 500, "INDEX executions_flow (namespace=? AND flow_id=? AND seq<?)"),
        (None, ["FAILED"], None, "INDEX executions_state (state=?)"),
        (None, ["FAILED", "RUNNING"], 500, "INDEX executions_state (state=? AND seq<?)"),
    ],
)
def test_a_namespace_page_reads_indexes_in_order_and_sorts_nothing(
    tmp_path: Path, flow_id: str | None, states: list[str] | None, before: int | None, index: str
) -> None:
    # Each sub-select reads an index in `seq` order and SQLite merges them: no sort of all the rows
    # that match (a "USE TEMP B-TREE FOR ORDER BY"), however many executions the namespaces hold.
    conn = sqlite3.connect(tmp_path / "plan.db")
    try:
        latest_schema(conn)
        below = ["acme.finance", "acme.finance.daily", "acme.ops"]
        ((sql, params),) = page_statements("acme", below, flow_id, states, before, 100)
        steps = plan(conn, sql, params)
        reads = [step for step in steps if "executions" in step]
        assert len(reads) == (len(states) if states else 1 + len(below)), steps
        assert all(step == f"SEARCH executions USING {index}" for step in reads), steps
        assert not any("TEMP B-TREE" in step for step in steps), steps
        if states is None:
            assert "MERGE (UNION ALL)" in steps
        found = plan(conn, queries("executions")["select_namespaces_below"], ("acme.", "acme/"))
        assert [step for step in found if "executions" in step] == [
            "SEARCH executions USING COVERING INDEX executions_namespace (namespace>? AND namespace<?)",
            "SEARCH e USING COVERING INDEX executions_namespace (namespace>? AND namespace<?)",
        ]
    finally:
        conn.close()


def test_last_states_seek_each_flow_and_sort_nothing(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "plan.db")
    try:
        latest_schema(conn)
        steps = plan(conn, queries("executions")["select_last_states"], ())
    finally:
        conn.close()
    assert not any("TEMP B-TREE" in step for step in steps), steps
    # The first pair is the first entry of the index (LIMIT 1); every other read is a seek.
    assert [step for step in steps if step.startswith("SCAN executions")] == [
        "SCAN executions USING COVERING INDEX executions_flow"
    ]
    assert "SEARCH e USING INDEX executions_flow (namespace=? AND flow_id=?)" in steps
