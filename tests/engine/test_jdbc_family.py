"""The jdbc family (io.kestra.plugin.jdbc.{sqlite,duckdb,postgresql,mysql}) against real databases:
SQLite and DuckDB files, and the PostgreSQL and MariaDB servers on 127.0.0.1. Kestra's documented
examples run through a real engine; each test works on tables of its own and drops them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from tiercel.engine.engine import Engine
from tiercel.engine.families.jdbc.statements import bind_parameters, split_statements
from tiercel.engine.model import Execution, StateType
from tiercel.engine.plugin import ion_loads
from tiercel.engine.tasks.registry import registry

from ..waiting import until
from .helpers import logs_of, messages, one_run, run, running_engine

PG = "jdbc:postgresql://127.0.0.1:5432/test"
MYSQL = "jdbc:mysql://127.0.0.1:3306/test"


@pytest.fixture
def table() -> Iterator[str]:
    """A table name of this test's own, dropped afterwards from both servers."""
    name = f"jd_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect("host=127.0.0.1 dbname=test user=postgres", autocommit=True) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {name}")
    connection = pymysql.connect(host="127.0.0.1", user="root", password="", database="test")
    with connection:
        connection.cursor().execute(f"DROP TABLE IF EXISTS {name}")


def outputs(execution: Execution, task_id: str) -> dict[str, Any]:
    return dict(one_run(execution, task_id).outputs or {})


def ion_rows(engine: Engine, uri: str) -> list[Any]:
    return [ion_loads(line) for line in engine.storage.read_bytes(uri).decode().splitlines()]


async def test_the_family_comes_through_its_entry_point() -> None:
    for name in ("sqlite.Query", "duckdb.Queries", "postgresql.CopyIn", "mysql.Query"):
        assert registry().source(f"io.kestra.plugin.jdbc.{name}").startswith("tiercel ")
    assert not registry().failures


def test_statements_split_at_their_semicolons_only() -> None:
    sql = """
        CREATE TABLE t (a TEXT); -- a comment; with a semicolon
        INSERT INTO t VALUES ('a;b'), ("c;d");  /* block; comment */
        CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 'x'; DELETE FROM t; END;
        DO $body$ BEGIN PERFORM 1; END $body$;
        BEGIN TRANSACTION; SELECT CASE WHEN 1 THEN ';' END; COMMIT;
        -- only a comment
    """
    statements = split_statements(sql)
    assert [statement.split()[0] for statement in statements] == [
        "CREATE", "--", "/*", "DO", "BEGIN", "SELECT", "COMMIT",
    ]  # fmt: skip
    assert statements[2].endswith("DELETE FROM t; END")
    assert statements[3] == "DO $body$ BEGIN PERFORM 1; END $body$"


def test_named_parameters_become_placeholders_outside_quotes_and_casts() -> None:
    sql, values = bind_parameters(
        "SELECT :a, ':a', x::int, 12:30 WHERE y LIKE '%z' AND z = :b", {"a": 1}, "%s"
    )
    assert sql == "SELECT %s, ':a', x::int, 12:30 WHERE y LIKE '%%z' AND z = %s"
    assert values == [1, None]  # a name not given binds null, as Kestra binds it


SQLITE_QUERIES = """
id: sqlite_query_using_file
namespace: company.team
tasks:
  - id: init_db
    type: io.kestra.plugin.jdbc.sqlite.Queries
    url: jdbc:sqlite:myfile.db
    outputDbFile: true
    sql: |
      CREATE TABLE IF NOT EXISTS pgsql_types (
        play_time TEXT,
        concert_id INTEGER,
        timestamp_type TEXT,
        day DATE, moment DATETIME, price NUMERIC, ratio REAL, blob_type BLOB
      );
      INSERT INTO pgsql_types VALUES ('2024-01', 1, '2024-01-01T12:00:00', '2024-02-03',
        '2024-01-01 12:00:00', 12.5, 0.25, x'0102');
  - id: select
    type: io.kestra.plugin.jdbc.sqlite.Queries
    url: jdbc:sqlite:myfile.db
    sqliteFile: "{{ outputs.init_db.databaseUri }}"
    outputDbFile: true
    sql: SELECT * FROM pgsql_types
    fetchType: FETCH
  - id: use_fetched_data
    type: io.kestra.plugin.jdbc.sqlite.Queries
    url: jdbc:sqlite:myfile.db
    sqliteFile: "{{ outputs.select.databaseUri }}"
    sql: |
        CREATE TABLE IF NOT EXISTS pl_store_distribute (
          year_month TEXT,
          store_code INTEGER,
          update_date TEXT
        );
        {% for row in outputs.select.outputs[0].rows %}
            INSERT INTO pl_store_distribute (year_month, store_code, update_date)
            VALUES ('{{row.play_time}}', {{row.concert_id}}, '{{row.timestamp_type}}');
        {% endfor %}
        SELECT * FROM pl_store_distribute;
    fetchType: FETCH_ONE
    outputDbFile: true
  - id: store
    type: io.kestra.plugin.jdbc.sqlite.Query
    sqliteFile: "{{ outputs.select.databaseUri }}"
    sql: SELECT * FROM pgsql_types WHERE concert_id = :id
    parameters:
      id: 1
    fetchType: STORE
"""


async def test_sqlite_queries_as_kestra_documents_them(tmp_path: Path) -> None:
    async with running_engine(tmp_path, SQLITE_QUERIES) as engine:
        execution = await run(engine, "company.team", "sqlite_query_using_file")
        assert execution.state.current is StateType.SUCCESS
        assert outputs(execution, "init_db")["outputs"] == []  # no statement returned rows
        selected = outputs(execution, "select")["outputs"]
        assert selected == [
            {
                "row": None,
                "rows": [
                    {
                        "play_time": "2024-01",
                        "concert_id": 1,
                        "timestamp_type": "2024-01-01T12:00:00",
                        "day": "2024-02-03",
                        "moment": "2024-01-01T12:00:00Z",
                        "price": 12.5,
                        "ratio": 0.25,
                        "blob_type": "AQI=",
                    }
                ],
                "size": 1,
            }
        ]
        used = outputs(execution, "use_fetched_data")
        assert used["outputs"] == [
            {
                "row": {"year_month": "2024-01", "store_code": 1, "update_date": "2024-01-01T12:00:00"},
                "size": 1,
            }
        ]
        assert used["databaseUri"].endswith("/myfile.db")
        stored = outputs(execution, "store")
        assert stored["size"] == 1 and stored["row"] is None
        text = engine.storage.read_bytes(stored["uri"]).decode()
        assert text == (
            '{play_time:"2024-01",concert_id:1,timestamp_type:"2024-01-01T12:00:00",day:2024-02-03,'
            "moment:2024-01-01T12:00:00.000Z,price:12.5e0,ratio:0.25e0,blob_type:{{AQI=}}}\n"
        )
        metrics = await engine.store.metrics(execution.id)
        assert any(entry.name == "fetch.size" and entry.value == 1 for entry in metrics)


DUCKDB = """
id: duckdb_files
namespace: company.team
tasks:
  - id: query
    type: io.kestra.plugin.jdbc.duckdb.Query
    inputFiles:
      data/orders.csv: |
        id,amount,placed
        1,12.50,2024-01-01 12:00:00
        2,7.25,2024-01-02 08:30:00
    sql: SELECT id, amount, placed FROM read_csv_auto('data/orders.csv') ORDER BY id
    fetchType: FETCH
    timeZoneId: Europe/Paris
    outputDbFile: true
  - id: reuse
    type: io.kestra.plugin.jdbc.duckdb.Queries
    databaseUri: "{{ outputs.query.databaseUri }}"
    outputFiles:
      - answer.csv
    sql: |
      CREATE TABLE answers AS SELECT 42 AS answer, '{"k": [1]}'::JSON AS doc;
      COPY answers (answer) TO '{{ outputFiles["answer.csv"] }}' (HEADER);
      SELECT * FROM answers;
    fetchType: STORE
"""


async def test_duckdb_reads_its_input_files_and_writes_output_files(tmp_path: Path) -> None:
    async with running_engine(tmp_path, DUCKDB) as engine:
        execution = await run(engine, "company.team", "duckdb_files")
        assert execution.state.current is StateType.SUCCESS
        query = outputs(execution, "query")
        # a TIMESTAMP without a zone is read in the task's timeZoneId, as Kestra's converter reads it
        assert query["rows"] == [
            {"id": 1, "amount": 12.5, "placed": "2024-01-01T12:00:00+01:00"},
            {"id": 2, "amount": 7.25, "placed": "2024-01-02T08:30:00+01:00"},
        ]
        reuse = outputs(execution, "reuse")
        assert len(reuse["outputs"]) == 1  # CREATE and COPY count rows; only the SELECT is a result
        assert ion_rows(engine, reuse["outputs"][0]["uri"]) == [{"answer": 42, "doc": {"k": [1]}}]
        assert engine.storage.read_bytes(reuse["outputFiles"]["answer.csv"]) == b"answer\n42\n"


def postgres_flow(table: str) -> str:
    return f"""
id: postgres_query
namespace: company.team
tasks:
  - id: setup
    type: io.kestra.plugin.jdbc.postgresql.Queries
    url: {PG}
    username: postgres
    sql: |
      CREATE TABLE {table} (id int, name text, price numeric(10,2), ts timestamp, tsz timestamptz,
        d date, t time, span interval, doc jsonb, u uuid, tags int[], b bytea, ok bool);
      INSERT INTO {table} VALUES (1, 'a;b', 12.50, '2024-01-01 12:00:00', '2024-01-01 12:00:00+02',
        '2024-02-03', '10:11:12.5', '1 day 2 hours', '{{"k": [1, 2]}}',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{1,2}}', '\\x0102', true);
  - id: fetch
    type: io.kestra.plugin.jdbc.postgresql.Query
    url: {PG}
    username: postgres
    sql: SELECT * FROM {table} WHERE name = :name AND id::text LIKE '1%'
    parameters:
      name: a;b
    fetchType: FETCH
  - id: use_fetched_data
    type: io.kestra.plugin.jdbc.postgresql.Queries
    url: {PG}
    username: postgres
    sql: >-
      {{% for row in outputs.fetch.rows %}}
      INSERT INTO {table} (id, name) values ({{{{row.id + 1}}}}, '{{{{row.name}}}}');
      {{% endfor %}}
  - id: store
    type: io.kestra.plugin.jdbc.postgresql.Query
    url: {PG}
    username: postgres
    sql: SELECT * FROM {table} ORDER BY id
    fetchType: STORE
    fetchSize: 1
  - id: copy_out
    type: io.kestra.plugin.jdbc.postgresql.CopyOut
    url: {PG}
    username: postgres
    format: CSV
    header: true
    sql: SELECT id, name FROM {table} ORDER BY id
  - id: copy_in
    type: io.kestra.plugin.jdbc.postgresql.CopyIn
    url: {PG}
    username: postgres
    format: CSV
    header: true
    table: {table}
    columns: [id, name]
    from: "{{{{ outputs.copy_out.uri }}}}"
  - id: count
    type: io.kestra.plugin.jdbc.postgresql.Query
    url: {PG}
    username: postgres
    sql: SELECT count(*) AS n FROM {table}
    fetchType: FETCH_ONE
"""


async def test_postgresql_queries_copy_and_types_as_kestra_gives_them(tmp_path: Path, table: str) -> None:
    async with running_engine(tmp_path, postgres_flow(table)) as engine:
        execution = await run(engine, "company.team", "postgres_query")
        assert execution.state.current is StateType.SUCCESS, messages(await logs_of(engine, execution.id))
        assert outputs(execution, "fetch")["rows"] == [
            {
                "id": 1,
                "name": "a;b",
                "price": 12.5,
                "ts": "2024-01-01T12:00:00",
                "tsz": "2024-01-01T10:00:00Z",
                "d": "2024-02-03",
                "t": "10:11:12.5",
                "span": "P0Y0M1DT2H0M0S",
                "doc": {"k": [1, 2]},
                "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "tags": [1, 2],
                "b": "AQI=",
                "ok": True,
            }
        ]
        stored = outputs(execution, "store")
        assert stored["size"] == 2
        first = engine.storage.read_bytes(stored["uri"]).decode().splitlines()[0]
        assert first == (
            '{id:1,name:"a;b",price:12.50,ts:LocalDateTime::"2024-01-01T12:00:00",tsz:2024-01-01T10:00:00.000Z,'
            'd:2024-02-03,t:LocalTime::"10:11:12.5",span:"P0Y0M1DT2H0M0S",doc:{k:[1,2]},'
            'u:"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",tags:[1,2],b:{{AQI=}},ok:true}'
        )
        assert engine.storage.read_bytes(outputs(execution, "copy_out")["uri"]) == b"id,name\n1,a;b\n2,a;b\n"
        assert outputs(execution, "copy_out")["rowCount"] == 2
        assert outputs(execution, "copy_in")["rowCount"] == 2
        assert outputs(execution, "count")["row"] == {"n": 4}


def transaction_flow(table: str, transaction: bool) -> str:
    return f"""
id: transaction_{str(transaction).lower()}
namespace: company.team
tasks:
  - id: create
    type: io.kestra.plugin.jdbc.postgresql.Query
    url: {PG}
    username: postgres
    sql: CREATE TABLE IF NOT EXISTS {table} (id int PRIMARY KEY)
  - id: insert
    type: io.kestra.plugin.jdbc.postgresql.Queries
    url: {PG}
    username: postgres
    transaction: {str(transaction).lower()}
    sql: |
      INSERT INTO {table} VALUES (1);
      INSERT INTO {table} VALUES (1);
"""


@pytest.mark.parametrize("transaction", [True, False])
async def test_queries_run_in_one_transaction_unless_told_not_to(
    tmp_path: Path, table: str, transaction: bool
) -> None:
    async with running_engine(tmp_path, transaction_flow(table, transaction)) as engine:
        execution = await run(engine, "company.team", f"transaction_{str(transaction).lower()}")
        assert execution.state.current is StateType.FAILED
        log = messages(await logs_of(engine, execution.id))
        assert any("duplicate key value violates unique constraint" in line for line in log)
    with psycopg.connect("host=127.0.0.1 dbname=test user=postgres") as connection:
        (count,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone() or (None,)
    assert count == (0 if transaction else 1)


def mysql_flow(table: str) -> str:
    return f"""
id: mysql_query
namespace: company.team
inputs:
  - id: rows
    type: FILE
tasks:
  - id: setup
    type: io.kestra.plugin.jdbc.mysql.Queries
    url: {MYSQL}
    username: root
    sql: |
      CREATE TABLE {table} (id int, name text, price decimal(10,2), ts timestamp NULL, dt datetime,
        d date, t time, b blob);
      INSERT INTO {table} VALUES (1, '100%', 12.50, '2024-01-01 12:00:00', '2024-01-01 12:00:00',
        '2024-02-03', '10:11:12', x'0102');
  - id: load
    type: io.kestra.plugin.jdbc.mysql.Query
    url: {MYSQL}?allowLoadLocalInfile=true
    username: root
    inputFile: "{{{{ inputs.rows }}}}"
    sql: |
      LOAD DATA LOCAL INFILE '{{{{ inputFile }}}}' INTO TABLE {table}
      FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n' IGNORE 1 ROWS (id, name)
  - id: one
    type: io.kestra.plugin.jdbc.mysql.Query
    url: {MYSQL}
    username: root
    sql: SELECT * FROM {table} WHERE name LIKE '%\\%' AND id = :id
    parameters:
      id: 1
    fetchType: FETCH_ONE
  - id: store
    type: io.kestra.plugin.jdbc.mysql.Query
    url: {MYSQL}
    username: root
    sql: SELECT id, name FROM {table} ORDER BY id
    fetchType: STORE
"""


async def test_mysql_query_load_data_and_types_as_kestra_gives_them(tmp_path: Path, table: str) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("id,name\n2,two\n3,three\n")
    async with running_engine(tmp_path, mysql_flow(table)) as engine:
        started = await engine.trigger(
            "company.team", "mysql_query", {"rows": str(source)}, [], local_files=True
        )
        execution = await asyncio.wait_for(engine.wait(started), 20)
        log = messages(await logs_of(engine, execution.id))
        assert execution.state.current is StateType.SUCCESS, log
        assert outputs(execution, "one")["row"] == {
            "id": 1,
            "name": "100%",
            "price": 12.5,
            "ts": "2024-01-01T12:00:00Z",
            "dt": "2024-01-01T12:00:00",
            "d": "2024-02-03",
            "t": "10:11:12",
            "b": "AQI=",
        }
        assert ion_rows(engine, outputs(execution, "store")["uri"]) == [
            {"id": 1, "name": "100%"},
            {"id": 2, "name": "two"},
            {"id": 3, "name": "three"},
        ]


BAD = """
id: bad_{index}
namespace: company.team
tasks:
  - id: query
    type: io.kestra.plugin.jdbc.{task}
"""


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        (
            {"url": "jdbc:mysql://127.0.0.1:5432/test", "sql": "SELECT 1"},
            "should start with `jdbc:postgresql`",
        ),
        ({"url": PG, "username": "postgres", "sql": "SELECT 1; SELECT 2"}, "Use the Queries task"),
        ({"url": PG, "username": "postgres", "sql": "SELECT 1", "fetchType": "ALL"}, "`fetchType` ALL"),
        (
            {"url": PG, "username": "postgres", "sql": "SELEC 1"},
            "syntax error at or near",
        ),
        ({"url": "jdbc:postgresql://127.0.0.1:1/test", "sql": "SELECT 1"}, "PostgreSQL at 127.0.0.1:1"),
        ({"url": PG, "username": "postgres", "sql": "SELECT 1", "timeZoneId": "Mars/Base"}, "Mars/Base"),
    ],
)
async def test_bad_settings_fail_the_task_saying_what(
    tmp_path: Path, properties: dict[str, str], expected: str
) -> None:
    body = "".join(f"    {key}: {value!r}\n" for key, value in properties.items())
    source = BAD.format(index=0, task="postgresql.Query") + body
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "company.team", "bad_0")
        assert execution.state.current is StateType.FAILED
        assert any(expected in line for line in messages(await logs_of(engine, execution.id)))


SLEEPER = f"""
id: sleeper
namespace: company.team
tasks:
  - id: sleep
    type: io.kestra.plugin.jdbc.postgresql.Query
    url: {PG}
    username: postgres
    timeout: PT1S
    sql: SELECT pg_sleep(60), '{{{{ execution.id }}}}' AS marker
"""


async def test_a_query_past_its_timeout_is_cancelled_on_the_server(tmp_path: Path) -> None:
    def running(marker: str) -> int:
        with psycopg.connect("host=127.0.0.1 dbname=test user=postgres") as connection:
            query = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s"
            row = connection.execute(query, (f"%pg_sleep(60), '{marker}'%",)).fetchone()
            return int(row[0]) if row else 0

    async with running_engine(tmp_path, SLEEPER) as engine:
        execution = await asyncio.wait_for(run(engine, "company.team", "sleeper"), 30)
        assert execution.state.current is StateType.FAILED
        await until(lambda: running(execution.id) == 0)  # the server stopped the statement too


MISSING_DRIVER = """
id: needs_duckdb
namespace: company.team
tasks:
  - id: query
    type: io.kestra.plugin.jdbc.duckdb.Query
    sql: SELECT 1
"""


def test_a_flow_using_a_driver_that_is_not_installed_names_the_extra(tmp_path: Path) -> None:
    # sitecustomize blocks the import (sys.modules[name] = None), as a venv without the extra lacks it
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['duckdb'] = None\n")
    (tmp_path / "flow.yml").write_text(MISSING_DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    tiercel = Path(sys.executable).parent / "tiercel"
    check = subprocess.run(
        [str(tiercel), "validate", str(tmp_path / "flow.yml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert check.returncode == 1
    assert "needs the Python module duckdb, not installed here: pip install 'tiercel[jdbc]'" in check.stdout
    (tmp_path / "sitecustomize.py").write_text("")
    check = subprocess.run(
        [str(tiercel), "validate", str(tmp_path / "flow.yml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def trigger_flow(table: str) -> str:
    return f"""
id: jdbc_trigger
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{{{ trigger.rows }}}}"
    tasks:
      - id: return
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ fromJson(taskrun.value).id }}}}"
triggers:
  - id: watch
    type: io.kestra.plugin.jdbc.postgresql.Trigger
    interval: PT0.2S
    url: {PG}
    username: postgres
    sql: "SELECT id, status FROM {table} WHERE status = 'NEW' ORDER BY id"
    afterSQL: "UPDATE {table} SET status = 'PROCESSED' WHERE status = 'NEW'"
    fetchType: FETCH
"""


async def test_the_jdbc_trigger_starts_an_execution_per_batch_of_new_rows(tmp_path: Path, table: str) -> None:
    with psycopg.connect("host=127.0.0.1 dbname=test user=postgres", autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {table} (id int, status text)")
        connection.execute(f"INSERT INTO {table} VALUES (1, 'NEW'), (2, 'NEW')")

        async def ended() -> list[Execution] | None:
            summaries = await engine.list_executions(namespace="company.team", flow_id="jdbc_trigger")
            found = [await engine.execution(summary.id) for summary in summaries]
            done = [e for e in found if e is not None and e.state.current.is_terminated]
            return done if len(done) >= expected else None

        async with running_engine(tmp_path, trigger_flow(table)) as engine:
            expected = 1
            [first] = await until(ended, what="an execution for the first rows") or []
            # afterSQL ran in the poll's transaction: the rows are marked, so no second execution for them
            connection.execute(f"INSERT INTO {table} VALUES (3, 'NEW')")
            expected = 2
            done = await until(ended, what="an execution for the new row") or []
    second = next(execution for execution in done if execution.id != first.id)
    assert first.trigger is not None and first.trigger["variables"]["size"] == 2
    assert [run.outputs for run in first.task_runs if run.task_id == "return"] == [
        {"value": "1"},
        {"value": "2"},
    ]
    assert second.trigger is not None and second.trigger["variables"]["rows"] == [{"id": 3, "status": "NEW"}]
    with psycopg.connect("host=127.0.0.1 dbname=test user=postgres") as check:
        statuses = check.execute(f"SELECT DISTINCT status FROM {table}").fetchall()
    assert statuses == [("PROCESSED",)]


def test_a_jdbc_trigger_that_could_never_fire_is_refused_when_the_flow_loads(tmp_path: Path) -> None:
    source = (
        trigger_flow("t")
        .replace("fetchType: FETCH", "fetchType: FETCH\n    nope: 1")
        .replace("    sql:", "    sqlx:")
    )
    (tmp_path / "flow.yml").write_text(source)
    tiercel = Path(sys.executable).parent / "tiercel"
    check = subprocess.run(
        [str(tiercel), "validate", str(tmp_path / "flow.yml")], capture_output=True, text=True
    )
    assert check.returncode == 1
    assert "Unknown property `nope` on Trigger `watch`" in check.stdout
    assert "Trigger `watch` has no `sql`" in check.stdout


def test_procedures_split_at_their_own_end_not_at_end_if_or_end_case() -> None:
    procedure = (
        "CREATE PROCEDURE p(x INT) BEGIN IF x > 0 THEN SELECT 1; END IF; CASE x WHEN 1 THEN SELECT 2; "
    )
    procedure += "ELSE SELECT 3; END CASE; WHILE x > 0 DO SET x = x - 1; END WHILE; END"
    assert split_statements(f"{procedure}; SELECT 4; BEGIN READ ONLY; SELECT 5") == [
        procedure, "SELECT 4", "BEGIN READ ONLY", "SELECT 5",
    ]  # fmt: skip


def test_a_parameter_may_be_cast_and_sit_in_an_array_outside_sqlite() -> None:
    assert bind_parameters("SELECT :a::int, ARRAY[:a, :b]", {"a": 1, "b": 2}, "%s") == (
        "SELECT %s::int, ARRAY[%s, %s]",
        [1, 1, 2],
    )
    # SQLite's [...] is a quoted identifier
    assert bind_parameters("SELECT [:a]", {"a": 1}, "?", brackets=True) == ("SELECT [:a]", [])


def review_flow(table: str) -> str:
    return f"""
id: review
namespace: company.team
tasks:
  - id: procedure
    type: io.kestra.plugin.jdbc.mysql.Queries
    url: {MYSQL}
    username: root
    fetchType: FETCH_ONE
    sql: |
      CREATE PROCEDURE {table}(IN x INT) BEGIN IF x > 0 THEN SELECT 'positive' AS sign; END IF; END;
      CALL {table}(1);
      DROP PROCEDURE {table};
      SELECT TIME '-01:00:00' AS negative, TIME '25:00:00' AS long_one, TIME '10:11:12' AS clock;
  - id: postgres
    type: io.kestra.plugin.jdbc.postgresql.Query
    url: {PG}
    username: postgres
    fetchType: STORE
    parameters: {{a: 41, b: 2}}
    sql: >-
      SELECT :a::int + 1 AS n, :b = ANY(ARRAY[:a, :b]) AS found,
      interval '1 month 2 days 03:04:05.9' AS span, interval '-1 days +02:00:00' AS back,
      'NaN'::numeric AS nan
  - id: duckdb
    type: io.kestra.plugin.jdbc.duckdb.Queries
    fetchType: FETCH
    sql: |
      CREATE TABLE t (a INT); -- load
      INSERT INTO t VALUES (1), (2); /* rows */ SELECT sum(a) AS total FROM t;
      WITH x AS (SELECT 5 AS v) INSERT INTO t SELECT v FROM x;
"""


async def test_what_a_review_found_holds(tmp_path: Path, table: str) -> None:
    async with running_engine(tmp_path, review_flow(table)) as engine:
        execution = await run(engine, "company.team", "review")
        assert execution.state.current is StateType.SUCCESS, messages(await logs_of(engine, execution.id))
        procedure = outputs(execution, "procedure")["outputs"]
        assert procedure[0]["row"] == {"sign": "positive"}
        assert procedure[-1]["row"] == {"negative": "-01:00:00", "long_one": "25:00:00", "clock": "10:11:12"}
        [row] = ion_rows(engine, outputs(execution, "postgres")["uri"])
        assert row["n"] == 42 and row["found"] is True
        assert row["span"] == "P0Y1M2DT3H4M5S" and row["back"] == "P0Y0M-1DT2H0M0S"  # Kestra's form
        assert row["nan"] != row["nan"]  # NaN, as a double
        assert outputs(execution, "duckdb")["outputs"] == [{"row": None, "rows": [{"total": 3}], "size": 1}]


async def test_a_bad_url_is_named_without_its_password(tmp_path: Path) -> None:
    source = BAD.format(index=0, task="postgresql.Query")
    source += (
        "    url: jdbc:postgresql://127.0.0.1:5x32/test?user=postgres&password=hunter2\n    sql: SELECT 1\n"
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "company.team", "bad_0")
        log = messages(await logs_of(engine, execution.id))
    assert execution.state.current is StateType.FAILED
    assert any("jdbc:postgresql://127.0.0.1:5x32/test: the port is not a number" in line for line in log)
    assert not any("hunter2" in line for line in log)


def test_a_jdbc_trigger_that_would_never_fire_is_refused(tmp_path: Path) -> None:
    (tmp_path / "flow.yml").write_text(trigger_flow("t").replace("fetchType: FETCH", "fetchType: NONE"))
    tiercel = Path(sys.executable).parent / "tiercel"
    check = subprocess.run(
        [str(tiercel), "validate", str(tmp_path / "flow.yml")], capture_output=True, text=True
    )
    assert check.returncode == 1
    assert "`fetchType` NONE is not one of FETCH, FETCH_ONE, STORE" in check.stdout
