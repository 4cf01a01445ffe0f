"""Statements run on a database connection, their result sets fetched the way `fetchType` asks.

Everything here blocks: the tasks call `run_statements` on a thread of its own (`in_thread`), and
stop it by interrupting the connection (`Dialect.interrupt`) when the task run is killed or times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any, TypeVar

from tiercel.engine.plugin import TaskFailure, ion_dumps, ion_record_writer

from .cells import kestra_value, plain_row
from .dialects import MYSQL, POSTGRES, Dialect
from .statements import bind_parameters

FETCH_TYPES = ("NONE", "FETCH_ONE", "FETCH", "STORE")
# Cells handed on unchanged (exact types: a subclass goes through kestra_value).
_AS_THEY_ARE = frozenset({str, int, float, bool, type(None)})
T = TypeVar("T")


@dataclass(frozen=True)
class Fetching:
    """How result sets are read: the fetch type, rows per round trip, the zone instants are shown in,
    the `parameters` (None: the SQL is sent as it is) and where STORE files are written."""

    fetch_type: str
    fetch_size: int
    zone: tzinfo
    parameters: Mapping[str, Any] | None
    folder: Path


@dataclass
class Result:
    """One result set as the task's outputs give it (`uri` is a local file until stored)."""

    statement: int = 0
    row: dict[str, Any] | None = None
    rows: list[dict[str, Any]] | None = None
    file: Path | None = None
    size: int | None = None

    def outputs(self, store: Callable[[Path], str]) -> dict[str, Any]:
        values: dict[str, Any] = {"row": self.row}
        if self.rows is not None:
            values["rows"] = self.rows
        if self.file is not None:
            values["uri"] = store(self.file)
        if self.size is not None:
            values["size"] = self.size
        return values


@dataclass
class Run:
    """What a run of statements gave: one Result per result set."""

    results: list[Result] = field(default_factory=list)

    @property
    def fetched(self) -> int:
        return sum(result.size or 0 for result in self.results)


def _rows(
    dialect: Dialect, connection: Any, sql: str, values: Sequence[Any] | None, fetching: Fetching
) -> tuple[Sequence[Any] | None, Iterator[Sequence[Any]]]:
    """Run one statement: its columns (None when it returns no rows) and its rows as they come."""
    size = max(1, fetching.fetch_size)
    if dialect is POSTGRES and fetching.fetch_type == "STORE":
        cursor = connection.cursor()
        stream = cursor.stream(sql, values, size=size)
        first = next(stream, None)
        if first is None:
            return cursor.description, iter(())
        return cursor.description, _chain_first(first, stream)
    if dialect is MYSQL and fetching.fetch_type == "STORE":
        import pymysql.cursors

        cursor = connection.cursor(pymysql.cursors.SSCursor)
    else:
        cursor = dialect.cursor(connection)
    cursor.execute(sql, values) if values is not None else cursor.execute(sql)
    if cursor.description is None:
        return None, iter(())
    return cursor.description, _batches(cursor, size)


def _chain_first(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _batches(cursor: Any, size: int) -> Iterator[Sequence[Any]]:
    while batch := cursor.fetchmany(size):
        yield from batch


def _cells(
    dialect: Dialect, description: Sequence[Any], rows: Iterator[Sequence[Any]], zone: tzinfo
) -> Iterator[list[Any]]:
    """Each row's cells as Kestra's converters give them."""
    converters = dialect.converters(description, zone)
    special = [(index, convert) for index, convert in enumerate(converters) if convert is not None]
    for raw in rows:
        cells = list(raw)
        for index, convert in special:
            cells[index] = convert(cells[index])
        yield [cell if type(cell) in _AS_THEY_ARE else kestra_value(cell, zone) for cell in cells]


def _records(names: list[str], cells: Iterator[list[Any]]) -> Iterator[dict[str, Any]]:
    """Rows as Kestra's row maps: column label -> value (a repeated label keeps the last)."""
    for row in cells:
        yield dict(zip(names, row, strict=True))


def _store(names: list[str], cells: Iterator[list[Any]], folder: Path) -> Result:
    """The rows as an Ion file, one record per line."""
    handle, name = tempfile.mkstemp(suffix=".ion", dir=folder)
    count = 0
    with open(handle, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        if len(set(names)) == len(names):
            write = ion_record_writer(names)
            for row in cells:
                out.write(write(row))
                out.write("\n")
                count += 1
        else:
            for record in _records(names, cells):
                out.write(ion_dumps(record))
                out.write("\n")
                count += 1
    return Result(file=Path(name), size=count)


def _result(
    dialect: Dialect, description: Sequence[Any], rows: Iterator[Sequence[Any]], fetching: Fetching
) -> Result:
    names = [str(column[0]) for column in description]
    cells = _cells(dialect, description, rows, fetching.zone)
    if fetching.fetch_type == "STORE":
        return _store(names, cells, fetching.folder)
    if fetching.fetch_type == "FETCH_ONE":
        first = next(_records(names, cells), None)
        for _ in rows:  # the driver must be done with the result set before the next statement
            pass
        return Result(row=plain_row(first), size=0 if first is None else 1)
    if fetching.fetch_type == "FETCH":
        fetched = [row for record in _records(names, cells) if (row := plain_row(record)) is not None]
        return Result(rows=fetched, size=len(fetched))
    for _ in rows:
        pass
    return Result()


def run_statements(
    dialect: Dialect,
    connection: Any,
    statements: Sequence[str],
    fetching: Fetching,
    transaction: bool,
    log: Callable[[str], None],
) -> Run:
    """Run the statements in order (in one transaction when asked, rolled back on a failure) and
    read each result set as `fetching` says."""
    run = Run()
    if transaction:
        dialect.cursor(connection).execute(dialect.begin)
    try:
        for index, statement in enumerate(statements):
            if fetching.parameters is None:
                sql, values = statement, None
            else:
                placeholder, brackets = dialect.placeholder, dialect.brackets
                sql, bound = bind_parameters(statement, fetching.parameters, placeholder, brackets)
                values = bound
            description, rows = _rows(dialect, connection, sql, values, fetching)
            if description is None or not dialect.returns_rows(statement, description):
                for _ in rows:
                    pass
                continue
            if fetching.fetch_type == "NONE":
                log("fetchType is set to NONE, no output will be returned")
            result = _result(dialect, description, rows, fetching)
            result.statement = index
            run.results.append(result)
        if transaction:
            dialect.cursor(connection).execute("COMMIT")
    except BaseException:
        if transaction:
            with contextlib.suppress(Exception):
                dialect.cursor(connection).execute("ROLLBACK")
        raise
    return run


async def in_thread(work: Callable[[], T], interrupt: Callable[[], None], grace: float) -> T:
    """Run blocking database work on a thread of its own (a long query must not hold one of the
    loop's shared workers); when the task is cancelled, interrupt it and give it `grace` seconds to
    end before the cancellation goes on."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def target() -> None:
        try:
            value = work()
        except BaseException as error:  # handed to the awaiting task, raised there
            outcome: tuple[Any, BaseException | None] = (None, error)
        else:
            outcome = (value, None)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=target, name="tiercel-jdbc", daemon=True).start()
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(interrupt)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(future), grace)
        raise


def database_error(dialect: Dialect, error: Exception) -> TaskFailure:
    """A driver's error as a task failure naming the database."""
    text = str(error).strip() or type(error).__name__
    if dialect is MYSQL and getattr(error, "args", None) and len(error.args) == 2:
        text = f"({error.args[0]}) {error.args[1]}"
    return TaskFailure(f"{dialect.name}: {text}")
