"""The PostgreSQL connections of the cluster's components: found again after a loss, with backoff.

Each component keeps one connection for its statements (autocommit, each statement or explicit
transaction fenced so that running it again after a cut does no harm) and one that LISTENs. The
channels are named per database and schema, so that several stores can share a database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from ..db_target import describe_target

T = TypeVar("T")
_log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 30.0
_CHANNEL_BASE = "SELECT 'tiercel_' || left(md5(current_database() || '.' || current_schema()), 20)"


def said(exc: BaseException) -> str:
    """An error as a log line says it: the database's message alone, or the error's type and text."""
    return str(exc).strip() if isinstance(exc, psycopg.Error) else f"{type(exc).__name__}: {exc}"


class ClusterConnection:
    """One autocommit connection; `run` reconnects and runs a statement again after a lost connection."""

    def __init__(self, url: str, role: str, *, patient: bool = True) -> None:
        self.url = url
        # A component waits for the database to come back; a one-off command says it is not there.
        self.patient = patient
        self.application = f"tiercel {role} pid {os.getpid()} on {socket.gethostname()}"
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.channel_base = ""
        self._closed = False
        # The component's loops share the connection: one statement (or transaction) at a time.
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        await self._connect()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        delay = 0.2
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, application_name=self.application, connect_timeout=10
                )
                cursor = await conn.execute(_CHANNEL_BASE)
                row = await cursor.fetchone()
                self.channel_base = str(row[0]) if row else "tiercel"
                self._conn = conn
                return conn
            except psycopg.OperationalError as exc:
                if self._closed or not self.patient:
                    raise
                _log.warning("cannot reach %s (%s); trying again in %.1f s", describe_target(self.url),
                             str(exc).strip(), delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    def channel(self, name: str) -> str:
        return f"{self.channel_base}_{name}"

    async def run(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run `work` on the connection; after a lost connection, on a new one (so `work` must be
        safe to run twice: an upsert, or a statement fenced by what it changes)."""
        async with self._lock:
            return await self._run(work)

    async def _run(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        while True:
            conn = self._conn if self._conn is not None and not self._conn.closed else await self._connect()
            try:
                return await work(conn)
            except psycopg.OperationalError:
                if self._closed or not conn.closed:
                    raise  # not a lost connection (a statement timeout, a cancelled query)
                self._conn = None

    async def fetch(self, statement: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        async def work(conn: psycopg.AsyncConnection[Any]) -> list[Any]:
            cursor = await conn.execute(statement, params)
            return list(await cursor.fetchall()) if cursor.description is not None else []

        return await self.run(work)

    async def notify(self, name: str, payload: str = "") -> None:
        await self.fetch("SELECT pg_notify(%s, %s)", [self.channel(name), payload])

    async def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None


class Listener:
    """Waits for notifications on a component's channels; a lost connection ends a wait early (the
    component then polls, as it does on a timeout) and is opened again on the next wait."""

    def __init__(self, url: str, role: str, names: Sequence[str]) -> None:
        self.connection = ClusterConnection(url, f"{role} listener")
        self.names = names
        self._listening: psycopg.AsyncConnection[Any] | None = None

    async def _listen(self) -> psycopg.AsyncConnection[Any]:
        conn = await self.connection._connect()
        for name in self.names:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.connection.channel(name))))
        self._listening = conn
        return conn

    async def wait(self, timeout: float) -> list[str]:
        """The payloads notified within `timeout` seconds (with those already waiting), or none."""
        payloads: list[str] = []
        try:
            conn = self._listening if self._listening is not None and not self._listening.closed else None
            if conn is None:
                conn = await self._listen()
            async for notice in conn.notifies(timeout=timeout, stop_after=1):
                payloads.append(notice.payload)
            if payloads:  # take what else is already there without waiting
                async for notice in conn.notifies(timeout=0.0):
                    payloads.append(notice.payload)
        except psycopg.OperationalError:
            self._listening = None
            await asyncio.sleep(min(timeout, 1.0))
        return payloads

    async def close(self) -> None:
        await self.connection.close()
