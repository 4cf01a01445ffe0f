"""The servers of a cluster: each runs the executions it owns, and takes over those of servers gone.

A server registers in `servers` and heartbeats there. The executions it writes are its own (its
writer session names it: migration 0003_servers.sql), and the jobs it sends out and their results
name it, so that each executor hears of its own task runs only. A server silent for longer than the
timeout is declared gone by another (its row deleted); from then on the store refuses its writes
of executions (the fence), and the executions it left unfinished, with their jobs and results, go
to the server that adopts them, which carries on with them as after a crash. A server that finds
its own row gone at a heartbeat has lost its executions: it must stop.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Any

import psycopg

from .connection import ClusterConnection

# As the partial indexes of unfinished executions spell it (the planner matches the text).
_TERMINAL = "'SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED', 'RETRIED'"

REGISTER = "INSERT INTO servers (id, host, pid) VALUES (%s, %s, %s)"
HEARTBEAT = "UPDATE servers SET heartbeat = now() WHERE id = %s RETURNING id"
LEAVE = "DELETE FROM servers WHERE id = %s"
DEAD = (
    "DELETE FROM servers WHERE id <> %s AND heartbeat < now() - make_interval(secs => %s) "
    "RETURNING id, host, pid"
)
# The unfinished executions no live server owns (their server is gone, or they were left by an
# engine that held the store alone) become this server's, with their jobs and results.
ADOPT = (
    "WITH taken AS (UPDATE executions SET owner = %(me)s "
    f"WHERE state NOT IN ({_TERMINAL}) "
    "AND (owner IS NULL OR owner <> ALL(SELECT id FROM servers)) RETURNING id), "
    "jobs AS (UPDATE worker_jobs SET server_id = %(me)s WHERE execution_id IN (SELECT id FROM taken)), "
    "results AS (UPDATE worker_results SET server_id = %(me)s WHERE execution_id IN (SELECT id FROM taken)) "
    "SELECT id FROM taken"
)
# The live server that runs an unfinished execution, if one does.
LIVE_OWNER = (
    "SELECT e.owner FROM executions AS e JOIN servers AS s ON s.id = e.owner "
    f"WHERE e.id = %s AND e.state NOT IN ({_TERMINAL})"
)
SERVERS = (
    "SELECT id, host, pid, started, extract(epoch FROM now() - heartbeat), "
    "(SELECT count(*) FROM executions AS e WHERE e.owner = s.id "
    f"AND e.state NOT IN ({_TERMINAL})) FROM servers AS s ORDER BY started, id"
)


def new_server_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class ServerMembership:
    """This server's row in `servers`, and the adoption of the executions of servers gone."""

    def __init__(self, url: str, server_id: str, *, timeout: float) -> None:
        self.id = server_id
        self.timeout = timeout
        self.connection = ClusterConnection(url, "server")

    async def join(self) -> None:
        await self.connection.open()
        await self.connection.fetch(REGISTER, [self.id, socket.gethostname(), os.getpid()])

    async def beat(self) -> bool:
        """Heartbeat; False when this server was declared gone (its executions went to others)."""
        return bool(await self.connection.fetch(HEARTBEAT, [self.id]))

    async def declare_dead(self) -> list[tuple[str, str, int]]:
        """Delete the rows of servers silent for longer than the timeout; (id, host, pid) of each."""
        rows = await self.connection.fetch(DEAD, [self.id, self.timeout])
        return [(str(a), str(b), int(c)) for a, b, c in rows]

    async def adopt(self) -> list[str]:
        """Make the unfinished executions no live server owns this one's; their ids.

        One transaction. Should the connection be lost as it commits, the transaction's fate is asked
        of the server when it is back: the ids of an adoption that did commit are not lost.
        """
        pending: tuple[int, list[str]] | None = None

        async def work(conn: psycopg.AsyncConnection[Any]) -> list[str]:
            nonlocal pending
            if pending is not None:
                txid, ids = pending
                pending = None
                cursor = await conn.execute("SELECT txid_status(%s)", [txid])
                row = await cursor.fetchone()
                if row is not None and row[0] == "committed":
                    return ids
            async with conn.transaction():
                cursor = await conn.execute("SELECT txid_current()")
                row = await cursor.fetchone()
                txid = int(row[0]) if row else 0
                cursor = await conn.execute(ADOPT, {"me": self.id})
                ids = [str(found[0]) for found in await cursor.fetchall()]
                pending = (txid, ids)
            pending = None
            return ids

        return await self.connection.run(work)

    async def leave(self) -> None:
        """Give the row up (the executions left unfinished go to the other servers at once)."""
        try:
            await self.connection.fetch(LEAVE, [self.id])
        finally:
            await self.connection.close()
