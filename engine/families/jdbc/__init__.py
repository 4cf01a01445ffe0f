"""Kestra's jdbc plugins for SQLite, DuckDB, PostgreSQL and MySQL (`io.kestra.plugin.jdbc.<db>`).

`Query` and `Queries` run SQL with Kestra's fetch types (NONE, FETCH_ONE, FETCH, STORE as an Ion file
of the internal storage), named `parameters`, `afterSQL` and transactions; SQLite and DuckDB work on a
file of the task's folder (`sqliteFile`, `databaseUri`, `inputFiles`, `outputFiles`, `outputDbFile`);
PostgreSQL adds `CopyIn` and `CopyOut`. The drivers: sqlite3, duckdb, psycopg 3 and PyMySQL.
"""

from __future__ import annotations

from tiercel.engine.plugin import Kind, Registry, TaskType

from .copy import COPY_PROPERTIES, copy_in, copy_out
from .dialects import DIALECTS, DUCKDB, MYSQL, POSTGRES, SQLITE, Dialect
from .queries import queries_handler, query_handler

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
_OWN = {
    SQLITE: {"sqliteFile", "outputDbFile"},
    DUCKDB: {"inputFiles", "databaseUri", "outputDbFile", "communityExtensions", "databaseFile"},
    POSTGRES: {"ssl", "sslMode", "sslRootCert", "sslCert", "sslKey", "sslKeyPassword"},
    MYSQL: {"inputFile"},
}


def _types(dialect: Dialect) -> list[TaskType]:
    # The embedded databases have a default URL (a database of the task's own); servers need one.
    required = frozenset({"sql"} if dialect in (SQLITE, DUCKDB) else {"sql", "url"})
    own = _COMMON | _OWN[dialect]
    prefix = f"{PACKAGE}.{dialect.name}"
    return [
        TaskType(f"{prefix}.Query", Kind.RUNNABLE, own, required, handler=query_handler(dialect)),
        TaskType(
            f"{prefix}.Queries",
            Kind.RUNNABLE,
            own | {"transaction"},
            required,
            handler=queries_handler(dialect),
        ),
    ]


def register(registry: Registry) -> None:
    """The `tiercel.tasks` entry point of the jdbc family."""
    for dialect in DIALECTS:
        for task_type in _types(dialect):
            registry.add(task_type)
    copy_required = frozenset({"url"})
    registry.add(
        TaskType(
            f"{PACKAGE}.postgresql.CopyIn",
            Kind.RUNNABLE,
            COPY_PROPERTIES | {"from"},
            copy_required | {"from", "table"},
            handler=copy_in,
        )
    )
    registry.add(
        TaskType(
            f"{PACKAGE}.postgresql.CopyOut",
            Kind.RUNNABLE,
            COPY_PROPERTIES | {"sql"},
            copy_required,
            handler=copy_out,
        )
    )
