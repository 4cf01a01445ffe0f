"""The files of executions in a PostgreSQL store (`internal_storage.SharedFiles`), so that every
machine of a cluster reads the files another wrote (migration 0004_files.sql).

A file is a row of `files` and its content in chunks of `CHUNK` bytes, written in one transaction
and read in one snapshot, a chunk at a time, so that neither side holds a whole file in memory.
The internal storage calls these from any thread, the event loop's included: each call takes a
blocking connection of its own from a small set, made when first needed; a connection that fails
is dropped and the call tried once more on a new one (the server restarted, a network cut), so
that a call fails only when the server cannot be reached. Parameters are bound by the server
(unlike the store's statements): a chunk goes as bytes, not as text.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeVar

import psycopg

from ...internal_storage import StorageError
from ...internal_storage.uris import parse_uri
from .connection import conninfo

CHUNK = 1024 * 1024
# Connections kept for files at most: a file call is short, and more would only crowd the server.
_KEPT = 4

_T = TypeVar("_T")
_Connection = psycopg.Connection[Any]


def _folder_range(uri: str) -> tuple[str, str]:
    """The bounds of the URIs under the folder `uri`: '/' is followed by '0' in bytewise order."""
    base = uri.rstrip("/")
    return base + "/", base + "0"


class PostgresFiles:
    """`SharedFiles` over the store at `url` (one per store, shared by its threads)."""

    def __init__(self, url: str, application: str) -> None:
        self._url = url
        self._application = application
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    # connections ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connection(self) -> Iterator[_Connection]:
        with self._lock:
            if self._closed:
                raise StorageError("the store is closed: its files cannot be reached")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = psycopg.connect(conninfo(self._url), autocommit=True, application_name=self._application)
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        with self._lock:
            if self._closed or len(self._idle) >= _KEPT:
                conn.close()
            else:
                self._idle.append(conn)

    def _call(self, what: str, action: Callable[[_Connection], _T]) -> _T:
        """Run `action` on a connection, once more on a new one when a kept connection had died."""
        for attempt in (1, 2):
            try:
                with self._connection() as conn:
                    return action(conn)
            except psycopg.OperationalError as error:
                if attempt == 2:
                    raise StorageError(f"Cannot {what}: the store's database answered {error}") from None
                time.sleep(0.1)
            except psycopg.Error as error:  # not the connection's fault: trying again would not help
                raise StorageError(f"Cannot {what}: the store's database answered {error}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()

    # SharedFiles ---------------------------------------------------------------------------------

    def put(self, uri: str, source: BinaryIO) -> int:
        stamp = time.time_ns() // 1000 * 1000  # whole microseconds: every file system keeps them

        def write(conn: _Connection) -> int:
            with conn.transaction():
                # The row first (two writers of one file take turns on it), then its chunks anew.
                conn.execute(
                    "INSERT INTO files (uri, size, stamp) VALUES (%s, 0, %s) "
                    "ON CONFLICT (uri) DO UPDATE SET size = 0, stamp = EXCLUDED.stamp",
                    (uri, stamp),
                )
                conn.execute("DELETE FROM file_chunks WHERE uri = %s", (uri,))
                size = seq = 0
                while chunk := source.read(CHUNK):
                    conn.execute(
                        "INSERT INTO file_chunks (uri, seq, data) VALUES (%s, %s, %s)", (uri, seq, chunk)
                    )
                    size += len(chunk)
                    seq += 1
                conn.execute("UPDATE files SET size = %s WHERE uri = %s", (size, uri))
            return stamp

        source_start = source.tell()

        def attempt(conn: _Connection) -> int:
            source.seek(source_start)  # a second try reads the file from its start again
            return write(conn)

        return self._call(f"store '{uri}'", attempt)

    def stamp(self, uri: str) -> int | None:
        def read(conn: _Connection) -> int | None:
            row = conn.execute("SELECT stamp FROM files WHERE uri = %s", (uri,)).fetchone()
            return None if row is None else int(row[0])

        return self._call(f"read '{uri}'", read)

    def fetch(self, uri: str, target: BinaryIO) -> int | None:
        def read(conn: _Connection) -> int | None:
            target.seek(0)
            target.truncate()
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                row = conn.execute("SELECT stamp FROM files WHERE uri = %s", (uri,)).fetchone()
                if row is None:
                    return None
                seq = 0
                while True:
                    found = conn.execute(
                        "SELECT data FROM file_chunks WHERE uri = %s AND seq = %s", (uri, seq)
                    ).fetchone()
                    if found is None:
                        break
                    target.write(found[0])
                    seq += 1
            return int(row[0])

        return self._call(f"read '{uri}'", read)

    def files(self, uri: str) -> dict[str, int]:
        low, high = _folder_range(uri)

        def read(conn: _Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT uri, stamp FROM files WHERE uri = %s OR (uri >= %s AND uri < %s) ORDER BY uri",
                (uri, low, high),
            ).fetchall()
            return {str(found): int(stamp) for found, stamp in rows}

        return self._call(f"list '{uri}'", read)

    def delete(self, uri: str) -> int:
        low, high = _folder_range(uri)
        if not parse_uri(uri):
            raise StorageError(f"Storage URI '{uri}' refused: cannot delete the storage folder")

        def write(conn: _Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM files WHERE uri = %s OR (uri >= %s AND uri < %s)", (uri, low, high)
            )
            return max(cursor.rowcount, 0)

        return self._call(f"delete '{uri}'", write)
