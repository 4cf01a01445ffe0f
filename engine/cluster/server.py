"""A server of a cluster around its engine: its row, the executions it adopts, and the scheduler
when it holds the scheduler's lock (see servers.py and lease.py).

Starting, it registers and adopts the executions no live server owns, which its engine's crash
recovery carries on with; then, every heartbeat, it beats, declares silent servers gone and adopts
what they left. Found declared gone itself, it sets `lost`: its owner must stop it. Stopping, it
stops the engine (every state reached is stored), then gives its row up, so that another server
adopts what it left unfinished at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from . import HEARTBEAT_SECONDS
from .connection import said
from .lease import SchedulerLease
from .servers import ServerMembership

if TYPE_CHECKING:
    from ..engine import Engine
    from .dispatch import SharedWorkerQueue

_log = logging.getLogger(__name__)


class ClusterServer:
    """Runs `engine` (built on `shared_worker_pool(server_id=...)`) as one server of its cluster."""

    def __init__(self, engine: Engine, url: str, server_id: str, *, timeout: float) -> None:
        self.engine = engine
        self.id = server_id
        # Five beats to a timeout at least: a busy machine does not make a live server look gone.
        self.heartbeat = min(HEARTBEAT_SECONDS, timeout / 5)
        self.membership = ServerMembership(url, server_id, timeout=timeout)
        self.lease = SchedulerLease(url, engine.scheduler, f"tiercel server {server_id} scheduler")
        self.lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def queue(self) -> SharedWorkerQueue:
        from .dispatch import SharedWorkerQueue

        assert isinstance(self.engine.workers, SharedWorkerQueue), "the engine needs shared_worker_pool"
        return self.engine.workers

    async def start(self, *, watch: bool = True) -> None:
        self.engine.loop.others_run = True  # `wait` follows the executions of other servers too
        await self.membership.join()
        # Results are read only once recovery has asked which attempts workers hold: no pause here.
        adopted = await self.membership.adopt()
        if adopted:
            _log.warning("carrying on with %d executions no live server owned", len(adopted))
        await self.engine.start(watch=watch, schedule=False, recover=adopted)
        self.lease.start()
        self._task = asyncio.create_task(self._watch(), name="tiercel-server-membership")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.lease.stop()
        await self.engine.stop()
        if not self.lost.is_set():
            with contextlib.suppress(Exception):  # a server that cannot say so is declared gone later
                await self.membership.leave()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                if not await self.membership.beat():
                    _log.error(
                        "this server was declared gone (silent too long): its executions went to others"
                    )
                    self.lost.set()
                    return
                for server_id, host, pid in await self.membership.declare_dead():
                    _log.warning("server %s (pid %s on %s) stopped heartbeating: its executions come here",
                                 server_id, pid, host)  # fmt: skip
                await self._adopt()
            except Exception as exc:  # the loop must go on; a lost connection is retried inside
                _log.error("cannot keep this server's place in the cluster: %s", said(exc))

    async def _adopt(self) -> None:
        async with self.queue.adopting:
            adopted = await self.membership.adopt()
            if adopted:
                await self.engine.executions.recovery.recover(adopted)
        if adopted:
            _log.warning("carrying on with %d executions of servers gone", len(adopted))
