"""The store's SQLite statements as PostgreSQL runs them (engine/store/postgres/dialect.py)."""

from __future__ import annotations

import pytest

from tiercel.engine.store import StoreError
from tiercel.engine.store.postgres.dialect import _overrides, rewrite, statement
from tiercel.engine.store.queries import SQL_DIR, queries


def test_plain_placeholders_become_psycopgs_in_order() -> None:
    found = rewrite("SELECT a FROM t WHERE b = ? AND c > ? LIMIT ?")
    assert found.text == "SELECT a FROM t WHERE b = %s AND c > %s LIMIT %s"
    assert found.params([1, 2, 3]) == [1, 2, 3]


def test_numbered_placeholders_repeat_their_parameter() -> None:
    found = rewrite("SELECT x WHERE a >= ?1 AND a < ?2 AND b > ?1")
    assert found.text == "SELECT x WHERE a >= %s AND a < %s AND b > %s"
    assert found.params(["lo", "hi"]) == ["lo", "hi", "lo"]


def test_strings_comments_and_percent_signs_are_not_placeholders() -> None:
    found = rewrite("SELECT '?', \"a?\" FROM t -- is it?\nWHERE k LIKE 'x%' AND v = ? AND w = 'it''s ?'")
    assert found.text == "SELECT '?', \"a?\" FROM t \nWHERE k LIKE 'x%%' AND v = %s AND w = 'it''s ?'"
    assert found.params(["v"]) == ["v"]


def test_sqlites_index_hint_is_dropped() -> None:
    found = rewrite("SELECT s FROM executions AS e INDEXED BY executions_flow WHERE e.a = ?")
    assert found.text == "SELECT s FROM executions AS e WHERE e.a = %s"


def test_mixed_placeholders_are_refused() -> None:
    with pytest.raises(StoreError, match="mixes"):
        rewrite("SELECT ?1, ?")


def test_each_postgresql_statement_replaces_the_sqlite_statement_of_its_name() -> None:
    overrides = _overrides()
    assert overrides, "postgres/sql/ holds the statements written otherwise"
    assert statement(queries("triggers")["insert_fire"]).text.rstrip().endswith("ON CONFLICT DO NOTHING")
    assert "INSERT OR" not in "".join(overrides.values())
    # A statement PostgreSQL runs as it is comes through with its placeholders rewritten only.
    kept = queries("kv")["select_kv"]
    assert kept not in overrides and statement(kept).text == kept.replace("?", "%s")


def test_no_sqlite_only_construct_is_left_for_postgresql() -> None:
    """Every statement PostgreSQL runs is free of what only SQLite reads (the overrides' job)."""
    sqlite_only = ("INSERT OR", "json_each", "json_extract", "instr(", "PRAGMA", "DEFERRED")
    for path in SQL_DIR.glob("*.sql"):
        if path.stem == "connection":
            continue  # SQLite's connection settings: not used on PostgreSQL
        for name, sql in queries(path.stem).items():
            text = statement(sql).text
            assert not any(word in text for word in sqlite_only), f"{path.name}: {name}"
