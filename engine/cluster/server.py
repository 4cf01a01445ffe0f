"""A server of a cluster around its engine: its row, the executions it adopts, the scheduler when it
holds the scheduler's lock, and the commands it passes to the others (servers.py, lease.py, relay.py).

Starting, it registers and adopts the executions no live server owns, which its engine's crash
recovery carries on with; then it heartbeats, and every second declares silent servers gone and
adopts what they left. Found declared gone itself, it sets `lost`: its owner must stop it. Stopping,
it stops the engine (every state reached is stored), then gives its row up, so that another server
adopts what it left unfinished at once. A kill or resume of an execution another server runs, and a
trigger command while another runs the scheduler, are carried out there. Its executions' changes
are announced to whoever shows them (feed.py); its flows' concurrency limits count the executions
of every server (slots.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import EngineCommandError
from ..events import ExecutionChanged
from ..model import Label
from ..wiring import TaskCommands
from . import HEARTBEAT_SECONDS
from .connection import said
from .feed import ExecutionFeed
from .lease import SchedulerLease
from .relay import SCHEDULER, CommandRelay
from .servers import LIVE_OWNER, ServerMembership
from .slots import SharedSlots

if TYPE_CHECKING:
    from ..engine import Engine
    from .dispatch import SharedWorkerQueue

_log = logging.getLogger(__name__)


class ClusterServer:
    """Runs `engine` (built on `shared_worker_pool(server_id=...)`) as one server of its cluster."""

    def __init__(
        self,
        engine: Engine,
        url: str,
        server_id: str,
        *,
        timeout: float,
        guest: bool = False,
        follow: bool = False,
    ) -> None:
        self.engine = engine
        self.id = server_id
        # A guest (a one-off command on a machine with no server) runs the executions it starts and
        # passes its commands on, but adopts nothing, fires no trigger and declares no one gone.
        self.guest = guest
        # Five beats to a timeout at least: a busy machine does not make a live server look gone.
        self.heartbeat = min(HEARTBEAT_SECONDS, timeout / 5)
        self.sweep = min(1.0, timeout / 4)
        self.membership = ServerMembership(url, server_id, timeout=timeout)
        self.lease = SchedulerLease(url, engine.scheduler, f"tiercel server {server_id} scheduler")
        connection = self.membership.connection
        self.relay = CommandRelay(url, server_id, connection, self._perform, lambda: self.lease.holding)
        # With `follow` (the dashboard), the executions of the other servers show here too.
        self.feed = ExecutionFeed(engine, url, connection, follow=follow)
        self.slots = SharedSlots(url, connection, engine.loop)  # flows' concurrency limits, cluster-wide
        self.lost = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def queue(self) -> SharedWorkerQueue:
        from .dispatch import SharedWorkerQueue

        assert isinstance(self.engine.workers, SharedWorkerQueue), "the engine needs shared_worker_pool"
        return self.engine.workers

    async def start(self, *, control: bool = True, watch: bool = True) -> None:
        self.engine.loop.others_run = True  # `wait` follows the executions of other servers too
        await self.membership.join()
        self.relay.start()
        self.engine.executions.elsewhere = self._execution_elsewhere
        self.engine.scheduler.elsewhere = self._scheduler_elsewhere
        self.engine.loop.slots = self.slots
        self.slots.start()
        if self.guest:
            await self.engine.start(control=False, triggers=False, recover=())
            self._tasks = [asyncio.create_task(self._beat(), name="tiercel-guest-heartbeat")]
            return
        # Results are read only once recovery has asked which attempts workers hold: no pause here.
        adopted = await self.membership.adopt()
        if adopted:
            _log.warning("carrying on with %d executions no live server owned", len(adopted))
        await self.engine.start(control=control, watch=watch, schedule=False, recover=adopted)
        self.lease.start()
        self.feed.start()
        self._tasks = [
            asyncio.create_task(self._beat(), name="tiercel-server-heartbeat"),
            asyncio.create_task(self._sweep(), name="tiercel-server-sweep"),
            asyncio.create_task(self._follow_scheduled(), name="tiercel-server-scheduled"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.lease.stop()
        await self.feed.stop()
        await self.engine.stop()
        await self.slots.stop()
        await self.relay.stop()
        if not self.lost.is_set():
            with contextlib.suppress(Exception):  # a server that cannot say so is declared gone later
                await self.membership.leave()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                if not await self.membership.beat():
                    _log.error(
                        "this server was declared gone (silent too long): its executions went to others"
                    )
                    self.lost.set()
                    return
            except Exception as exc:  # the loop must go on; a lost connection is retried inside
                _log.error("cannot heartbeat: %s", said(exc))

    async def _sweep(self) -> None:
        """Declare silent servers gone and adopt what they left, a few times per timeout."""
        while True:
            await asyncio.sleep(self.sweep)
            try:
                for server_id, host, pid in await self.membership.declare_dead():
                    _log.warning("server %s (pid %s on %s) stopped heartbeating: its executions come here",
                                 server_id, pid, host)  # fmt: skip
                await self._adopt()
            except Exception as exc:  # the loop must go on; a lost connection is retried inside
                _log.error("cannot look for servers gone: %s", said(exc))

    async def _follow_scheduled(self) -> None:
        """The scheduler here hears of the ends of the executions it runs; those another server runs
        (it fired them before the scheduler moved here) are read from the store, so that a schedule
        that does not overlap fires again once they end."""
        engine = self.engine
        while True:
            await asyncio.sleep(self.sweep)
            if not self.lease.holding:
                continue
            for execution_id in engine.scheduler.followed():
                if engine.is_live(execution_id):
                    continue
                try:
                    execution = await engine.store.get_execution(execution_id)
                except Exception as exc:  # read again at the next round
                    _log.warning("cannot read execution %s: %s", execution_id, said(exc))
                    continue
                if execution is not None and execution.state.current.is_terminated:
                    engine.events.publish(ExecutionChanged(execution, elsewhere=True))

    async def _adopt(self) -> None:
        async with self.queue.adopting:
            adopted = await self.membership.adopt()
            if adopted:
                await self.engine.executions.recovery.recover(adopted)
        if adopted:
            _log.warning("carrying on with %d executions of servers gone", len(adopted))

    async def _execution_elsewhere(self, command: str, execution_id: str, args: dict[str, Any]) -> bool:
        rows = await self.membership.connection.fetch(LIVE_OWNER, [execution_id])
        owner = str(rows[0][0]) if rows else None
        if owner is None or owner == self.id:
            return False
        await self.relay.ask(owner, {"command": command, "execution": execution_id, **args})
        return True

    async def _scheduler_elsewhere(self, command: str, trigger: tuple[str, str, str], **args: Any) -> Any:
        """A trigger command for the server whose scheduler runs (the arguments made JSON)."""
        if isinstance(args.get("start"), datetime):
            args["start"] = args["start"].isoformat()
        if isinstance(args.get("end"), datetime):
            args["end"] = args["end"].isoformat()
        labels = args.get("labels")
        if labels is not None and not isinstance(labels, dict):
            args["labels"] = [[label.key, label.value] for label in labels]
        return await self.relay.ask(SCHEDULER, {"command": command, "trigger": list(trigger), **args})

    async def _perform(self, request: dict[str, Any]) -> Any:
        """Carry out a command another server passed here; its answer."""
        engine = self.engine
        command = request.get("command")
        if command == "kill":
            await engine.kill(str(request["execution"]))
        elif command == "resume":
            # Asked from another machine: a FILE input is a stored file (kestra://), never a path
            # read on this machine's disk.
            await TaskCommands(engine).resume(str(request["execution"]), request.get("inputs") or None)
        elif command == "enable":
            namespace, flow_id, trigger_id = (str(part) for part in request["trigger"])
            await engine.set_trigger_enabled(namespace, flow_id, trigger_id, bool(request["enabled"]))
        elif command == "backfill":
            namespace, flow_id, trigger_id = (str(part) for part in request["trigger"])
            end = datetime.fromisoformat(request["end"]) if request.get("end") else None
            start = datetime.fromisoformat(request["start"])
            labels = request.get("labels")
            return await engine.start_backfill(
                namespace, flow_id, trigger_id, start, end, request.get("inputs"),
                [Label(str(k), str(v)) for k, v in labels] if isinstance(labels, list) else labels,
            )  # fmt: skip
        elif command == "change_backfill":
            namespace, flow_id, trigger_id = (str(part) for part in request["trigger"])
            await engine.change_backfill(namespace, flow_id, trigger_id, request["action"])
        else:
            raise EngineCommandError(f"unknown command {command!r}")
        return None
