"""Kestra's jdbc plugins for SQLite, DuckDB, PostgreSQL and MySQL (`io.kestra.plugin.jdbc.<db>`).

`Query` and `Queries` run SQL with Kestra's fetch types (NONE, FETCH_ONE, FETCH, STORE as an Ion file
of the internal storage), named `parameters`, `afterSQL` and transactions; SQLite and DuckDB work on a
file of the task's folder (`sqliteFile`, `databaseUri`, `inputFiles`, `outputFiles`, `outputDbFile`);
PostgreSQL adds `CopyIn` and `CopyOut`. The drivers: sqlite3, duckdb, psycopg 3 and PyMySQL.
"""

from __future__ import annotations

from typing import Any

from tiercel.engine.plugin import Kind, Registry, TaskType, TriggerType

from .copy import COPY_PROPERTIES, copy_in, copy_out
from .dialects import DIALECTS, DUCKDB, MYSQL, POSTGRES, SQLITE, Dialect
from .queries import queries_handler, query_handler, trigger_poll

PACKAGE = "io.kestra.plugin.jdbc"
_COMMON = frozenset(
    {
        "url",
        "username",
        "password",
        "timeZoneId",
        "connectionPooling",
        "connectionPoolSize",
        "sql",
        "afterSQL",
        "store",
        "fetchOne",
        "fetch",
        "fetchType",
        "fetchSize",
        "parameters",
        "outputFiles",
    }
)
# The jdbc Trigger's properties (Kestra's AbstractJdbcTrigger), besides `interval` and the common ones.
_TRIGGER = frozenset(
    {
        "url", "username", "password", "timeZoneId", "connectionPooling", "connectionPoolSize", "sql",
        "afterSQL", "store", "fetchOne", "fetch", "fetchType", "fetchSize", "parameters",
    }
)  # fmt: skip
_OWN_TRIGGER = {POSTGRES: frozenset({"ssl", "sslMode", "sslRootCert", "sslCert", "sslKey", "sslKeyPassword"})}
_OWN = {
    SQLITE: {"sqliteFile", "outputDbFile"},
    DUCKDB: {"inputFiles", "databaseUri", "outputDbFile", "communityExtensions", "databaseFile"},
    POSTGRES: {"ssl", "sslMode", "sslRootCert", "sslCert", "sslKey", "sslKeyPassword"},
    MYSQL: {"inputFile"},
}


# The driver each database's tasks import when they run (sqlite3 is the standard library's).
_DRIVERS = {SQLITE: (), DUCKDB: ("duckdb",), POSTGRES: ("psycopg",), MYSQL: ("pymysql",)}


def _type(
    name: str, properties: frozenset[str], required: frozenset[str], dialect: Dialect, handler: Any
) -> TaskType:
    return TaskType(
        f"{PACKAGE}.{dialect.name}.{name}",
        Kind.RUNNABLE,
        properties,
        required,
        handler=handler,
        requires=_DRIVERS[dialect],
        extra="jdbc",
    )


def register(registry: Registry) -> None:
    """The `tiercel.tasks` entry point of the jdbc family."""
    for dialect in DIALECTS:
        # The embedded databases have a default URL (a database of the task's own); servers need one.
        required = frozenset({"sql"} if dialect in (SQLITE, DUCKDB) else {"sql", "url"})
        own = _COMMON | _OWN[dialect]
        registry.add(_type("Query", own, required, dialect, query_handler(dialect)))
        registry.add(_type("Queries", own | {"transaction"}, required, dialect, queries_handler(dialect)))
        registry.add_trigger(
            TriggerType(
                f"{PACKAGE}.{dialect.name}.Trigger",
                _TRIGGER | _OWN_TRIGGER.get(dialect, frozenset()),
                required,
                poll=trigger_poll(dialect),
                # NONE would never fire: Kestra refuses it when the flow is validated.
                choices={"fetchType": ("FETCH", "FETCH_ONE", "STORE")},
                requires=_DRIVERS[dialect],
                extra="jdbc",
            )
        )
    registry.add(
        _type("CopyIn", COPY_PROPERTIES | {"from"}, frozenset({"url", "from", "table"}), POSTGRES, copy_in)
    )
    registry.add(_type("CopyOut", COPY_PROPERTIES | {"sql"}, frozenset({"url"}), POSTGRES, copy_out))
