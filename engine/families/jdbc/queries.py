"""The `Query` and `Queries` tasks of every database: Kestra's properties read, the database's files
prepared (SQLite and DuckDB run on a file of the task's folder), the statements run on their own thread
and the outputs built.

`Query` runs one statement (autocommit, or one transaction with its `afterSQL`); `Queries` runs several,
in one transaction unless `transaction: false`, with one output per statement that returned rows.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tiercel.engine.plugin import (
    LogLevel,
    TaskContext,
    TaskFailure,
    TriggerContext,
    collect_output_files,
    write_input_files,
)

from .dialects import DUCKDB, MYSQL, SQLITE, Dialect
from .running import FETCH_TYPES, Fetching, Run, database_error, in_thread, run_statements
from .statements import split_statements

_MEMORY = ("", ":memory:")
# A task run's, or a trigger's poll (the jdbc Trigger runs its query as Query does).
Context = TaskContext | TriggerContext


def _task(context: Context, what: str) -> TaskContext:
    """The task run a file property needs (a trigger has no task files)."""
    if isinstance(context, TaskContext):
        return context
    raise TaskFailure(f"`{what}` is a task's property, not a trigger's")


@dataclass
class Database:
    """Where a task connects: its URL, and for the embedded databases the file it ends up on."""

    url: str
    file: Path | None = None
    output_files: dict[str, str] = field(default_factory=dict)


def _fetch_type(context: Context) -> str:
    for legacy, kind in (("fetch", "FETCH"), ("fetchOne", "FETCH_ONE"), ("store", "STORE")):
        if context.flag(legacy, False):
            return kind
    trigger = isinstance(context, TriggerContext)
    value = str(context.prop("fetchType", "FETCH" if trigger else "NONE")).strip().upper()
    if value not in FETCH_TYPES:
        raise TaskFailure(f"`fetchType` {value}: must be one of {', '.join(FETCH_TYPES)}")
    if trigger and value == "NONE":
        raise TaskFailure(
            "fetchType NONE is not valid for triggers: the trigger would never fire. "
            "Use FETCH, FETCH_ONE, or STORE."
        )
    return value


def _zone(context: Context) -> tzinfo:
    name = context.prop("timeZoneId")
    if name is None:
        return UTC
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise TaskFailure(f"`timeZoneId` {name}: not a known time zone") from None


def _fetch_size(context: Context) -> int:
    value = context.prop("fetchSize", 10000)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TaskFailure(f"`fetchSize` must be a whole number, got `{value}`") from None


def _parameters(context: Context) -> Mapping[str, Any] | None:
    """The named parameters; none given (or an empty map) sends the SQL as it is, as Kestra does."""
    value = context.prop("parameters")
    if value is not None and not isinstance(value, Mapping):
        raise TaskFailure("`parameters` must be a map of names to values")
    return value or None


def _declare_output_files(context: Context, folder: Path) -> dict[str, str]:
    """`outputFiles`: names made known to the SQL as `{{ outputFiles.<name> }}` (paths in the folder)."""
    names = context.prop("outputFiles") or []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list):
        raise TaskFailure("`outputFiles` must be a list of file names")
    return {str(name): str(folder / str(name)) for name in names}


def _embedded(context: Context, dialect: Dialect, folder: Path) -> Database:
    """The file an SQLite or DuckDB task works on, with the stored files it was given put in place."""
    url = dialect.check_url(str(context.prop("url", f"{dialect.scheme}:")))
    path = url.removeprefix(f"{dialect.scheme}:")
    database = Database(url, output_files=_declare_output_files(context, folder))
    if dialect is SQLITE:
        stored = context.prop("sqliteFile")
        if stored is not None or context.flag("outputDbFile", False):
            name = f"{uuid.uuid4().hex}.sqlite" if path.strip().lower() in _MEMORY else Path(path).name
            database.file = folder / name
            if stored is not None:
                write_input_files(_task(context, "sqliteFile"), folder, {name: str(stored)})
        elif path and not path.startswith("file:") and (folder / path).exists():
            database.file = folder / path  # a file of a WorkingDirectory's shared folder
        elif path.strip().lower() not in _MEMORY:
            database.file = Path(path)
    else:
        if context.prop("inputFiles") is not None:
            write_input_files(_task(context, "inputFiles"), folder, context.prop("inputFiles"))
        stored = context.prop("databaseUri")
        if stored is not None:
            name = uuid.uuid4().hex
            write_input_files(_task(context, "databaseUri"), folder, {name: str(stored)})
            database.file = folder / name
        elif path.strip().lower() in _MEMORY:
            database.file = folder / f"{uuid.uuid4().hex}.db"  # Kestra's default: a file of the task's own
        elif Path(path).is_absolute():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            database.file = Path(path)
    if database.file is not None:
        database.url = f"{dialect.scheme}:{database.file}"
    context.variables["workingDir"] = str(folder)
    context.variables["outputFiles"] = database.output_files
    if database.file is not None:
        context.variables["dbFilePath"] = str(database.file)
    return database


def _prepare(context: Context, dialect: Dialect, folder: Path) -> Database:
    if dialect in (SQLITE, DUCKDB):
        return _embedded(context, dialect, folder)
    url = dialect.check_url(str(context.prop("url", "")))
    if dialect is MYSQL:
        stored = context.prop("inputFile")
        target = folder / "inputFile"
        if stored is not None:
            write_input_files(_task(context, "inputFile"), folder, {"inputFile": str(stored)})
            url += ("&" if "?" in url else "?") + "allowLoadLocalInfile=true"
        context.variables["inputFile"] = str(target)
    return Database(url, output_files=_declare_output_files(context, folder))


def _connect(context: Context, dialect: Dialect, database: Database, folder: Path) -> Any:
    username, password = context.prop("username"), context.prop("password")
    connection = dialect.connect(
        database.url,
        None if username is None else str(username),
        None if password is None else str(password),
    )
    if dialect is DUCKDB:
        escaped = str(folder).replace("'", "''")
        connection.execute(f"SET file_search_path='{escaped}'")  # relative paths read the task's files
    return connection


async def _run(context: Context, dialect: Dialect, many: bool) -> dict[str, Any]:
    """Prepare, connect, run, and store what the outputs name: the task's outputs."""
    shared = context.working_dir
    folder = shared or Path(tempfile.mkdtemp(prefix=f"tiercel-{dialect.name}-"))
    try:
        database = _prepare(context, dialect, folder)
        fetching = Fetching(
            _fetch_type(context), _fetch_size(context), _zone(context), _parameters(context), folder
        )
        statements, transaction = _statements(context, dialect, many)
        connection = await in_thread(lambda: _connect(context, dialect, database, folder), lambda: None, 0)

        def work() -> Run:
            try:
                # Queries says so of each result set it leaves out; Query does not.
                log = (lambda text: context.log(LogLevel.INFO, text)) if many else (lambda text: None)
                return run_statements(dialect, connection, statements, fetching, transaction, log)
            except TaskFailure:
                raise
            except Exception as error:
                raise database_error(dialect, error) from None
            finally:
                connection.close()

        run = await in_thread(work, lambda: dialect.interrupt(connection), context.kill_grace)
        tags = {
            "fetch": str(fetching.fetch_type in ("FETCH", "FETCH_ONE")).lower(),
            "store": str(fetching.fetch_type == "STORE").lower(),
        }
        context.metric("counter", "fetch.size", run.fetched, tags)
        # Storing copies the files (millions of rows, at times): off the loop.
        outputs = await asyncio.to_thread(_outputs, context, run, many)
        return {**outputs, **_files(context, dialect, database, folder)}
    finally:
        if shared is None:
            shutil.rmtree(folder, ignore_errors=True)


def _statements(context: Context, dialect: Dialect, many: bool) -> tuple[list[str], bool]:
    """The statements to run, and whether in one transaction (a Query's only with its afterSQL)."""
    sql = context.prop("sql")
    if sql is None or not str(sql).strip():
        raise TaskFailure("`sql` is required")
    statements = split_statements(str(sql), dialect.brackets)
    if many:
        return statements, context.flag("transaction", True)
    if len(statements) > 1:
        raise TaskFailure(
            "Query task support only a single SQL statement. Use the Queries task to run multiple statements."
        )
    after = context.prop("afterSQL")
    if after is None:
        return statements, False
    after_statements = split_statements(str(after), dialect.brackets)
    if len(after_statements) > 1:
        raise TaskFailure(
            "Query task afterSQL supports only a single SQL statement. "
            "Use the Queries task to run multiple statements."
        )
    return statements + after_statements, True


def _outputs(context: Context, run: Run, many: bool) -> dict[str, Any]:
    def store(path: Path) -> str:
        return context.put_file(path.name, path)

    if many:
        return {"outputs": [result.outputs(store) for result in run.results]}
    first = [result for result in run.results if result.statement == 0]  # not afterSQL's rows
    return first[0].outputs(store) if first else {"row": None}


def _files(context: Context, dialect: Dialect, database: Database, folder: Path) -> dict[str, Any]:
    """`outputFiles` and, asked by `outputDbFile`, the database file itself, stored."""
    stored: dict[str, Any] = {}
    if database.output_files:
        task = _task(context, "outputFiles")
        stored["outputFiles"] = collect_output_files(task, folder, list(database.output_files))
    if dialect in (SQLITE, DUCKDB) and context.flag("outputDbFile", False) and database.file is not None:
        if not database.file.is_file():
            raise TaskFailure(f"The database file {database.file.name} was not created")
        stored["databaseUri"] = context.put_file(database.file.name, database.file)
    return stored


def query_handler(dialect: Dialect) -> Any:
    async def query(context: Context) -> Mapping[str, Any]:
        return await _run(context, dialect, many=False)

    return query


def trigger_poll(dialect: Dialect) -> Any:
    """The jdbc Trigger: the query (and its afterSQL, in the same transaction) as Query runs it; an
    execution starts when it returned rows, its `trigger` variables the query's outputs."""

    async def poll(context: TriggerContext) -> Mapping[str, Any] | None:
        outputs = await _run(context, dialect, many=False)
        return outputs if outputs.get("size") else None

    return poll


def queries_handler(dialect: Dialect) -> Any:
    async def queries(context: Context) -> Mapping[str, Any]:
        return await _run(context, dialect, many=True)

    return queries
