"""PostgreSQL's `CopyIn` and `CopyOut` tasks: a stored file loaded into a table, and a table or a
query written to a stored file, through PostgreSQL's COPY protocol (psycopg's `copy`), streamed in
both directions. The COPY statement is built from Kestra's properties as Kestra builds it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tiercel.engine.plugin import TaskContext, TaskFailure

from .dialects import POSTGRES
from .running import database_error, in_thread

COPY_PROPERTIES = frozenset(
    {
        "url",
        "username",
        "password",
        "ssl",
        "sslMode",
        "sslRootCert",
        "sslCert",
        "sslKey",
        "sslKeyPassword",
        "table",
        "columns",
        "format",
        "oids",
        "freeze",
        "delimiter",
        "nullString",
        "header",
        "quote",
        "escape",
        "forceQuote",
        "forceNotNull",
        "forceNull",
        "encoding",
        "socketTimeout",
    }
)
_FORMATS = ("TEXT", "CSV", "BINARY")
_CHUNK = 1 << 20


def _names(context: TaskContext, name: str) -> list[str]:
    value = context.prop(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise TaskFailure(f"`{name}` must be a list of column names")
    return [str(item) for item in value]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def copy_statement(context: TaskContext, query: str | None, direction: str) -> str:
    """`COPY <table> [(columns)] | (<query>) FROM STDIN | TO STDOUT [WITH (options)]`."""
    if query is None:
        table = context.prop("table")
        if table is None:
            raise TaskFailure("`table` is required")
        target = str(table)
        columns = _names(context, "columns")
        if columns:
            target += " (" + ", ".join(columns) + ")"
    else:
        target = f"({query})"
    options: list[str] = []
    kind = str(context.prop("format", "TEXT")).strip().upper()
    if kind not in _FORMATS:
        raise TaskFailure(f"`format` {kind}: must be one of {', '.join(_FORMATS)}")
    if kind != "TEXT":
        options.append(f"FORMAT {kind}")
    for flag, option in (("oids", "OIDS"), ("freeze", "FREEZE")):
        if context.flag(flag, False):
            options.append(option)
    for name, option in (
        ("delimiter", "DELIMITER"),
        ("nullString", "NULL"),
        ("quote", "QUOTE"),
        ("escape", "ESCAPE"),
    ):
        value = context.prop(name)
        if value is not None:
            options.append(f"{option} {_literal(str(value))}")
    if context.prop("header") is not None:
        options.append("HEADER " + ("TRUE" if context.flag("header", False) else "FALSE"))
    force_quote = _names(context, "forceQuote")
    if force_quote:
        options.append("FORCE_QUOTE " + ("*" if force_quote == ["*"] else "(" + ", ".join(force_quote) + ")"))
    for name, option in (("forceNotNull", "FORCE_NOT_NULL"), ("forceNull", "FORCE_NULL")):
        listed = _names(context, name)
        if listed:
            options.append(f"{option} (" + ", ".join(listed) + ")")
    encoding = context.prop("encoding")
    if encoding is not None:
        options.append(f"ENCODING {_literal(str(encoding))}")
    statement = f"COPY {target} {direction}"
    return statement + (" WITH (" + ", ".join(options) + ")" if options else "")


def _connect(context: TaskContext) -> Any:
    url = POSTGRES.check_url(str(context.prop("url", "")))
    username, password = context.prop("username"), context.prop("password")
    return POSTGRES.connect(
        url, None if username is None else str(username), None if password is None else str(password)
    )


async def copy_in(context: TaskContext) -> Mapping[str, Any]:
    """CopyIn: the `from` file streamed into the table; `rowCount` and the `rows` metric."""
    source = context.stored_file(str(context.prop("from", "")))
    statement = copy_statement(context, None, "FROM STDIN")
    connection = await in_thread(lambda: _connect(context), lambda: None, 0)

    def work() -> int:
        try:
            with connection.cursor() as cursor:
                with cursor.copy(statement) as copy, source.open("rb") as data:
                    while chunk := data.read(_CHUNK):
                        copy.write(chunk)
                return int(cursor.rowcount)
        except Exception as error:
            raise database_error(POSTGRES, error) from None
        finally:
            connection.close()

    rows = await in_thread(work, lambda: POSTGRES.interrupt(connection), context.kill_grace)
    context.metric("counter", "rows", rows)
    return {"rowCount": rows}


async def copy_out(context: TaskContext) -> Mapping[str, Any]:
    """CopyOut: the table, or the `sql` query, streamed into a stored file; `uri`, `rowCount`."""
    sql = context.prop("sql")
    statement = copy_statement(context, None if sql is None else str(sql).strip().rstrip(";"), "TO STDOUT")
    connection = await in_thread(lambda: _connect(context), lambda: None, 0)
    folder = Path(tempfile.mkdtemp(prefix="tiercel-copy-"))
    target = folder / "copy.csv"

    def work() -> int:
        try:
            with connection.cursor() as cursor:
                with cursor.copy(statement) as copy, target.open("wb") as out:
                    for chunk in copy:
                        out.write(chunk)
                return int(cursor.rowcount)
        except Exception as error:
            raise database_error(POSTGRES, error) from None
        finally:
            connection.close()

    try:
        rows = await in_thread(work, lambda: POSTGRES.interrupt(connection), context.kill_grace)
        context.metric("counter", "rows", rows)
        return {"uri": context.put_file(target.name, target), "rowCount": rows}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
