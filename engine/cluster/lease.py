"""The scheduler runs in one server of a cluster at a time: the one holding the scheduler's lock.

Each server tries for a session advisory lock (one key per database and schema) every second; the
one that gets it starts its scheduler and checks its session every second. The lock goes with the
session: a server killed, or cut off (the database's keepalives end a silent session within about
ten seconds), lets another take the scheduler over; the scheduler there goes on from the stored
trigger states, and a (trigger, date) pair fires once, as `trigger_fires`' key stands guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

import psycopg

from .connection import said

_log = logging.getLogger(__name__)
POLL_SECONDS = 1.0
_KEY = "SELECT hashtextextended('tiercel scheduler ' || current_database() || '.' || current_schema(), 0)"
# The application name of the session holding the lock ("tiercel server <id> scheduler"), if any.
HOLDER = (
    "SELECT a.application_name FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() "
    f"AND ((l.classid::bigint << 32) | l.objid::bigint) = ({_KEY.removeprefix('SELECT ')})"
)
# The database notices a holder whose machine or network went silent (TCP keepalives, seconds).
_KEEPALIVES = "SET tcp_keepalives_idle = 4; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3"


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class SchedulerLease:
    """Runs `scheduler` while this process holds the cluster's scheduler lock."""

    def __init__(self, url: str, scheduler: Startable, application: str) -> None:
        self.url = url
        self.scheduler = scheduler
        self.application = application
        self.holding = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tiercel-scheduler-lease")

    async def stop(self) -> None:
        """Stop the scheduler (if it runs here) and give the lock up."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._hold()
            except Exception as exc:  # a lost connection, a scheduler that failed to start: again
                _log.warning("the scheduler's lock: %s (trying again)", said(exc))
            await asyncio.sleep(POLL_SECONDS)

    async def _hold(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, application_name=self.application, connect_timeout=10
        )
        try:
            await conn.execute(_KEEPALIVES)
            key = await _one(conn, _KEY)
            while not await _one(conn, "SELECT pg_try_advisory_lock(%s)", [key]):
                await asyncio.sleep(POLL_SECONDS)
            _log.warning("the scheduler runs in this server now")
            self.holding = True
            try:
                await self.scheduler.start()
                while True:  # a lost session (the lock with it) ends the wait with an error
                    await asyncio.sleep(POLL_SECONDS)
                    await conn.execute("SELECT 1")
            finally:
                self.holding = False
                await self.scheduler.stop()
        finally:
            with contextlib.suppress(Exception):
                await conn.close()


async def _one(conn: psycopg.AsyncConnection[Any], statement: str, params: list[Any] | None = None) -> Any:
    cursor = await conn.execute(statement, params)
    row = await cursor.fetchone()
    return row[0] if row else None
