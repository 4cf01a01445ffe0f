"""A flow's concurrency limit across the servers of a cluster: the slots are kept in the store.

Before an execution of a limited flow starts (or is woken while QUEUED), its server asks the store
(`admit_execution`, migration 0005_flow_slots.sql), under the flow's lock: RUN takes a slot, QUEUE
keeps the execution queued, CANCEL and FAIL end it as on one engine. Its end, stored by whichever
server runs it, frees its slot in the same transaction and hands the slot to the head of the
queue; the server that runs that execution is told on the `slots` channel and starts it. Every few
seconds each server also asks which of its queued executions hold a slot by now, so that a notice
missed (a cut connection) delays a start, never loses it, and frees the slots still held after a
minute by executions that ended or were never stored (a first save that failed while the store was
cut off), so that no slot is lost either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..executor.concurrency import Admission, limit_of
from ..messages import StartExecution, WakeExecution
from ..model import Execution, Flow, StateType, utcnow
from .connection import ClusterConnection, Listener, said

if TYPE_CHECKING:
    from ..executor.loop import ExecutorLoop

_log = logging.getLogger(__name__)
RECHECK_SECONDS = 5.0
_WAITING = (StateType.CREATED, StateType.QUEUED)
# Slots held past this long by no unfinished execution are freed (`_free_lost`).
_LOST = (
    "SELECT s.execution_id FROM flow_slots AS s WHERE s.admitted < now() - interval '60 seconds' "
    "AND NOT EXISTS (SELECT 1 FROM executions AS e WHERE e.id = s.execution_id AND NOT e.state = ANY(%s))"
)
_ENDED = [state.value for state in StateType if state.is_terminated]


class SharedSlots:
    """The `Slots` of a server's executor loop, shared with the other servers through the store."""

    def __init__(self, url: str, connection: ClusterConnection, loop: ExecutorLoop) -> None:
        self.connection = connection
        self.loop = loop
        self.listener = Listener(url, "slots", ["slots"])
        self._answers: dict[str, Admission] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._releases: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(), name="tiercel-slots-follow"),
            asyncio.create_task(self._recheck(), name="tiercel-slots-recheck"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._releases]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.listener.close()

    # Slots -----------------------------------------------------------------------------------------

    async def prepare(self, starting: Iterable[tuple[Flow, Execution]]) -> None:
        now = utcnow()
        for flow, execution in starting:
            limit = limit_of(flow)
            if limit is None or execution.state.current not in _WAITING:
                continue
            if execution.due is not None and execution.due > now:
                continue  # a retry's new attempt takes its slot when it is due
            behavior = str((flow.concurrency or {}).get("behavior") or "QUEUE")
            behavior = behavior if behavior in ("QUEUE", "CANCEL") else "FAIL"
            try:
                rows = await self.connection.fetch(
                    "SELECT admit_execution(%s, %s, %s, %s, %s)",
                    [flow.namespace, flow.id, execution.id, limit, behavior],
                )
            except Exception as exc:  # it waits, QUEUED, and is asked for again at the next check
                _log.warning("cannot ask the store for a slot for %s: %s", execution.id, said(exc))
                continue
            self._answers[execution.id] = Admission(str(rows[0][0]))

    def admit(self, flow: Flow, execution_id: str) -> Admission:
        if limit_of(flow) is None:
            return Admission.RUN
        return self._answers.pop(execution_id, Admission.QUEUE)

    def holding(self, flow: Flow, execution_id: str) -> None:
        """The store keeps the slots: nothing to note after a restart."""

    def waiting(self, flow: Flow, execution_id: str) -> None:
        """The store keeps the queue: nothing to note after a restart."""

    def release(self, flow: Flow, execution_id: str) -> list[str]:
        """An execution ended (its end's save freed its slot already) or was never stored (it is
        freed here); the executions that get the slot are started when their servers are told."""
        self._answers.pop(execution_id, None)
        live = self.loop.live(execution_id)
        if limit_of(flow) is not None and (live is None or not live[1].state.current.is_terminated):
            task = asyncio.create_task(self._release(execution_id), name="tiercel-slots-release")
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)
        return []

    def fill(self, flow: Flow) -> list[str]:
        return []

    # following the store ---------------------------------------------------------------------------

    async def _release(self, execution_id: str) -> None:
        """Free a slot, trying again until the store answers (or the server stops: then the slot
        is freed by the check of a server, a minute on)."""
        pause = 1.0
        while True:
            try:
                await self.connection.fetch("SELECT release_flow_slot(%s)", [execution_id])
                return
            except Exception as exc:
                _log.warning("cannot free the slot of %s yet: %s", execution_id, said(exc))
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECHECK_SECONDS * 2)

    async def _follow(self) -> None:
        while True:
            for execution_id in await self.listener.wait(60.0):
                if self._queued_here(execution_id):
                    self.loop.post(StartExecution(execution_id))

    async def _recheck(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            await self._free_lost()
            queued = [
                execution_id for execution_id in self.loop.live_ids() if self._queued_here(execution_id)
            ]
            if not queued:
                continue
            try:
                rows = await self.connection.fetch(
                    "SELECT execution_id, queued FROM flow_slots WHERE execution_id = ANY(%s)", [queued]
                )
            except Exception as exc:
                _log.warning("cannot read the flows' slots: %s", said(exc))
                continue
            waiting = {str(execution_id) for execution_id, still in rows if still}
            for execution_id in queued:
                if execution_id not in waiting:  # it holds a slot now, or was never admitted
                    self.loop.post(WakeExecution(execution_id))

    async def _free_lost(self) -> None:
        try:
            for (execution_id,) in await self.connection.fetch(_LOST, [_ENDED]):
                _log.warning("freeing the slot %s held, its execution ended or never stored", execution_id)
                await self.connection.fetch("SELECT release_flow_slot(%s)", [execution_id])
        except Exception as exc:  # tried again at the next check
            _log.warning("cannot free the flows' lost slots: %s", said(exc))

    def _queued_here(self, execution_id: str) -> bool:
        live = self.loop.live(execution_id)
        return (
            live is not None and live[1].state.current is StateType.QUEUED and limit_of(live[0]) is not None
        )
