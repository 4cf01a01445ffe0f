"""The four databases of the jdbc family: how a JDBC URL opens a Python driver's connection, how a
statement is run, how a running one is stopped, and how each column's values are converted.

Connections are opened in autocommit mode; the tasks begin and end their transactions in SQL. The
drivers are imported when a task first connects, so that loading the family costs nothing.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tiercel.engine.plugin import TaskFailure

from .cells import Convert, at_zone, in_zone, parsed_json
from .statements import code_only

Connect = Callable[[str, str | None, str | None], Any]


@dataclass(frozen=True)
class Dialect:
    """One database: its Kestra package name, the URL scheme it takes and its driver's ways."""

    name: str
    scheme: str
    placeholder: str
    connect: Connect
    converters: Callable[[Sequence[Any], tzinfo], list[Convert | None]]
    interrupt: Callable[[Any], None]
    begin: str = "BEGIN"
    # A statement's cursor (DuckDB's connection is its own cursor: another would be another session).
    cursor: Callable[[Any], Any] = lambda connection: connection.cursor()
    # Whether [...] quotes an identifier (SQLite), rather than making an array or a list.
    brackets: bool = False
    # Whether a statement's columns are a result set rather than a count of changed rows.
    returns_rows: Callable[[str, Sequence[Any]], bool] = lambda statement, description: True

    def check_url(self, url: str) -> str:
        if not url.strip():
            raise TaskFailure("Rendered value of `url` is blank.")
        if not url.startswith(self.scheme):
            raise TaskFailure(f"URL scheme is invalid. URL should start with `{self.scheme}`")
        return url


def shown_url(url: str) -> str:
    """A JDBC URL fit for a message: without its parameters and credentials (a password may be there)."""
    head = url.split("?", 1)[0]
    scheme, _, rest = head.partition("//")
    return f"{scheme}//{rest.rpartition('@')[2]}" if rest else head


def _server_url(url: str, scheme: str) -> tuple[str, int | None, str, dict[str, str]]:
    """host, port, database and query parameters of `jdbc:<db>://host:port/database?k=v`."""
    parts = urlsplit(url[len("jdbc:") :])
    if parts.scheme != scheme.removeprefix("jdbc:"):
        raise TaskFailure(f"URL scheme is invalid. URL should start with `{scheme}`")
    try:
        port = parts.port
    except ValueError:
        raise TaskFailure(f"`url` {shown_url(url)}: the port is not a number") from None
    return parts.hostname or "localhost", port, unquote(parts.path.lstrip("/")), dict(parse_qsl(parts.query))


# -- SQLite ----------------------------------------------------------------------------------------


class _Declared:
    """A cell of a column declared DATE, DATETIME, TIMESTAMP or TIME, kept raw until converted."""

    __slots__ = ("kind", "raw")

    def __init__(self, kind: str, raw: bytes) -> None:
        self.kind, self.raw = kind, raw


def _declared(kind: str) -> Callable[[bytes], _Declared]:
    return lambda raw: _Declared(kind, raw)


_SQLITE_TYPES = ("DATE", "DATETIME", "TIMESTAMP", "TIME")


def _sqlite_moment(text: str, zone: tzinfo) -> datetime:
    """A DATETIME cell as Kestra's SQLite converter reads it: ISO text (offset or not, `T` or a space),
    a date alone, or a number (milliseconds since the epoch, as the JDBC driver stores them)."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)  # an Instant


def _sqlite_cell(zone: tzinfo) -> Convert:
    def convert(value: Any) -> Any:
        if not isinstance(value, _Declared):
            return value
        text = value.raw.decode("utf-8", "replace")
        try:
            if value.kind == "DATE":
                return date.fromisoformat(text.strip()[:10])
            if value.kind == "TIME":
                return time.fromisoformat(text.strip())
            return _sqlite_moment(text, zone)
        except ValueError:
            raise TaskFailure(f"Unsupported SQLite {value.kind.lower()} format: {text}") from None

    return convert


def _sqlite_connect(path: str, user: str | None, password: str | None) -> Any:
    # The converters apply only to connections that ask for declared types: these ones.
    for kind in _SQLITE_TYPES:
        sqlite3.register_converter(kind, _declared(kind))
    target = path.removeprefix("jdbc:sqlite:") or ":memory:"
    try:
        return sqlite3.connect(
            target,
            detect_types=sqlite3.PARSE_DECLTYPES,
            isolation_level=None,
            check_same_thread=False,
            uri=target.startswith("file:"),
        )
    except sqlite3.Error as error:
        raise TaskFailure(f"SQLite cannot open `{target}`: {error}") from None


SQLITE = Dialect(
    "sqlite",
    "jdbc:sqlite",
    "?",
    _sqlite_connect,
    lambda description, zone: [_sqlite_cell(zone)] * len(description),
    lambda connection: connection.interrupt(),
    brackets=True,
)


# -- DuckDB ----------------------------------------------------------------------------------------


def _duckdb_connect(path: str, user: str | None, password: str | None) -> Any:
    import duckdb

    target = path.removeprefix("jdbc:duckdb:") or ":memory:"
    try:
        return duckdb.connect(target)
    except duckdb.Error as error:
        raise TaskFailure(f"DuckDB cannot open `{target}`: {error}") from None


def _duckdb_converters(description: Sequence[Any], zone: tzinfo) -> list[Convert | None]:
    converters: list[Convert | None] = []
    for column in description:
        kind = str(column[1]).upper()
        if kind == "TIMESTAMP":
            converters.append(at_zone(zone))
        elif kind == "TIMESTAMP WITH TIME ZONE":
            converters.append(in_zone(UTC))
        elif kind == "JSON":
            converters.append(parsed_json)
        else:
            converters.append(None)
    return converters


# Statements DuckDB answers with a one-row `Count` column, where its JDBC driver gives no result set.
_DUCKDB_CHANGES = frozenset(
    [
        "INSERT",
        "UPDATE",
        "DELETE",
        "CREATE",
        "COPY",
        "DROP",
        "ALTER",
        "ATTACH",
        "DETACH",
        "INSTALL",
        "LOAD",
        "SET",
        "MERGE",
        "TRUNCATE",
    ]
)


def _duckdb_returns_rows(statement: str, description: Sequence[Any]) -> bool:
    if len(description) != 1 or description[0][0] != "Count":
        return True
    words = [word.upper() for word in re.findall(r"[A-Za-z_]+", code_only(statement))]
    if words and words[0] == "WITH":  # WITH ... INSERT / UPDATE / DELETE changes rows too
        return not _DUCKDB_CHANGES.intersection(words[1:])
    return not words or words[0] not in _DUCKDB_CHANGES


DUCKDB = Dialect(
    "duckdb",
    "jdbc:duckdb",
    "?",
    _duckdb_connect,
    _duckdb_converters,
    lambda connection: connection.interrupt(),
    begin="BEGIN TRANSACTION",
    cursor=lambda connection: connection,
    returns_rows=_duckdb_returns_rows,
)


# -- PostgreSQL ------------------------------------------------------------------------------------

# JDBC URL parameters that have a libpq equivalent.
_PG_PARAMETERS = {
    "user": "user",
    "password": "password",
    "sslmode": "sslmode",
    "sslrootcert": "sslrootcert",
    "sslcert": "sslcert",
    "sslkey": "sslkey",
    "ApplicationName": "application_name",
    "connectTimeout": "connect_timeout",
}


def _interval_text_loader() -> Any:
    from psycopg.adapt import Loader

    class IntervalText(Loader):
        """An interval as the server's text: a timedelta would fold its months into days."""

        def load(self, data: Any) -> str:
            return bytes(data).decode()

    return IntervalText


def _postgres_connect(url: str, user: str | None, password: str | None) -> Any:
    import psycopg

    host, port, database, query = _server_url(url, "jdbc:postgresql")
    settings: dict[str, Any] = {"host": host, "port": port or 5432, "autocommit": True}
    for key, value in query.items():
        if key in _PG_PARAMETERS:
            settings[_PG_PARAMETERS[key]] = value
        elif key == "currentSchema":
            settings["options"] = f"-csearch_path={value}"
        elif key == "ssl" and value.lower() == "true":
            settings.setdefault("sslmode", "require")
    if database:
        settings["dbname"] = database
    if user is not None:
        settings["user"] = user
    if password is not None:
        settings["password"] = password
    try:
        connection = psycopg.connect(**settings)
    except psycopg.Error as error:
        raise TaskFailure(f"PostgreSQL at {host}:{settings['port']}: {str(error).strip()}") from None
    connection.adapters.register_loader("interval", _interval_text_loader())  # its parts, months included
    return connection


_PG_TIMESTAMPTZ, _PG_INTERVAL, _PG_TIMETZ = 1184, 1186, 1266
_PG_INTERVAL_PARTS = re.compile(r"(-?\d+) (year|mon|day)s?")
_PG_CLOCK = re.compile(r"([-+]?)(\d+):(\d+):(\d+)(?:\.\d+)?")


def _pg_interval(value: Any) -> Any:
    """An interval (read as PostgreSQL's text) as Kestra's converter writes it: every part, whole
    seconds (`P0Y1M2DT3H0M0S`)."""
    if not isinstance(value, str):
        return value
    parts = {unit: int(amount) for amount, unit in _PG_INTERVAL_PARTS.findall(value)}
    clock = _PG_CLOCK.search(value)
    sign = -1 if clock and clock.group(1) == "-" else 1
    hours, minutes, seconds = (sign * int(clock.group(i)) for i in (2, 3, 4)) if clock else (0, 0, 0)
    if not parts and clock is None:
        return value  # another IntervalStyle: the text as the server wrote it
    years, months, days = parts.get("year", 0), parts.get("mon", 0), parts.get("day", 0)
    return f"P{years}Y{months}M{days}DT{hours}H{minutes}M{seconds}S"


def _pg_timetz(zone: tzinfo) -> Convert:
    """A time with a time zone as the local time it is in `zone` (Kestra's LocalTime)."""

    def convert(value: Any) -> Any:
        if isinstance(value, time) and value.tzinfo is not None:
            return datetime.combine(date(1970, 1, 1), value).astimezone(zone).time()
        return value

    return convert


def _postgres_converters(description: Sequence[Any], zone: tzinfo) -> list[Convert | None]:
    kinds: dict[int, Convert] = {_PG_TIMESTAMPTZ: in_zone(zone), _PG_INTERVAL: _pg_interval}
    kinds[_PG_TIMETZ] = _pg_timetz(zone)
    return [kinds.get(column[1]) for column in description]


POSTGRES = Dialect(
    "postgresql",
    "jdbc:postgresql",
    "%s",
    _postgres_connect,
    _postgres_converters,
    lambda connection: connection.cancel_safe(timeout=5.0),
)


# -- MySQL and MariaDB -----------------------------------------------------------------------------

_MYSQL_TIMESTAMP, _MYSQL_TIME = 7, 11


def _mysql_connect(url: str, user: str | None, password: str | None) -> Any:
    import pymysql

    host, port, database, query = _server_url(url, "jdbc:mysql")
    try:
        connection = pymysql.connect(
            host=host,
            port=port or 3306,
            user=user if user is not None else query.get("user", ""),
            password=password if password is not None else query.get("password", ""),
            database=database or None,
            autocommit=True,
            local_infile=query.get("allowLoadLocalInfile", "").lower() == "true",
            init_command="SET time_zone = '+00:00'",  # TIMESTAMP columns read as UTC instants
        )
    except pymysql.MySQLError as error:
        raise TaskFailure(f"MySQL at {host}:{port or 3306}: {error.args[-1]}") from None
    return connection


def _mysql_time(value: Any) -> Any:
    """A TIME as a local time; one outside a day (MySQL's TIME is a duration) as MySQL writes it."""
    if not isinstance(value, timedelta):
        return value
    if timedelta(0) <= value < timedelta(days=1):
        seconds = int(value.total_seconds())
        return time(seconds // 3600, seconds // 60 % 60, seconds % 60, value.microseconds)
    total = abs(int(value.total_seconds()))
    text = f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"
    return f"-{text}" if value < timedelta(0) else text


def _mysql_converters(description: Sequence[Any], zone: tzinfo) -> list[Convert | None]:
    kinds = {_MYSQL_TIMESTAMP: at_zone(UTC), _MYSQL_TIME: _mysql_time}
    return [kinds.get(column[1]) for column in description]


def _mysql_interrupt(connection: Any) -> None:
    """Stop the running statement from a second connection (KILL QUERY), as a JDBC cancel does."""
    import pymysql

    other = pymysql.connect(
        host=connection.host,
        port=connection.port,
        user=connection.user,
        password=connection.password,
        connect_timeout=5,
    )
    try:
        with other.cursor() as cursor:
            cursor.execute(f"KILL QUERY {int(connection.thread_id())}")
    finally:
        other.close()


MYSQL = Dialect("mysql", "jdbc:mysql", "%s", _mysql_connect, _mysql_converters, _mysql_interrupt)

DIALECTS = (SQLITE, DUCKDB, POSTGRES, MYSQL)
