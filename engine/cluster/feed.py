"""The executions' state changes of a cluster's servers, for those who show them (the dashboard).

Each server notifies the ids of the executions it changed (with their states) on the cluster's
`executions` channel, a batch at most every `BATCH_SECONDS`. A follower reads each execution it does
not run itself from the store and publishes it on its engine's bus as an `ExecutionChanged` marked
`elsewhere`: its panes show it, its flow triggers leave it alone (they fire where it runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING

from ..events import ExecutionChanged
from .connection import ClusterConnection, Listener, said

if TYPE_CHECKING:
    from ..engine import Engine

_log = logging.getLogger(__name__)
BATCH_SECONDS = 0.2
MAX_PAYLOAD_BYTES = 7900


class ExecutionFeed:
    """Announces the state changes of this server's executions; with `follow`, shows the others'."""

    def __init__(self, engine: Engine, url: str, connection: ClusterConnection, *, follow: bool) -> None:
        self.engine = engine
        self.connection = connection
        self.follow = follow
        self.listener = Listener(url, "feed", ["executions"]) if follow else None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._announce(), name="tiercel-feed-out")]
        if self.listener is not None:
            self._tasks.append(asyncio.create_task(self._show(), name="tiercel-feed-in"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.listener is not None:
            await self.listener.close()

    async def _announce(self) -> None:
        events = self.engine.events.subscribe()
        try:
            while True:
                changed: dict[str, str] = {}
                event = await events.get()
                while True:
                    if isinstance(event, ExecutionChanged) and not event.elsewhere:
                        changed[event.execution.id] = event.execution.state.current.value
                    if events.empty():
                        break
                    event = events.get_nowait()
                if changed:
                    await self._notify(changed)
                await asyncio.sleep(BATCH_SECONDS)
        finally:
            self.engine.events.unsubscribe(events)

    async def _notify(self, changed: dict[str, str]) -> None:
        batch: list[list[str]] = []
        size = 2
        for execution_id, state in changed.items():
            size += len(execution_id) + len(state) + 8
            batch.append([execution_id, state])
            if size > MAX_PAYLOAD_BYTES - 100:
                await self._send(batch)
                batch, size = [], 2
        if batch:
            await self._send(batch)

    async def _send(self, batch: list[list[str]]) -> None:
        try:
            await self.connection.notify("executions", json.dumps(batch))
        except Exception as exc:  # a follower misses a change; nothing else depends on it
            _log.warning("cannot announce executions' changes: %s", said(exc))

    async def _show(self) -> None:
        assert self.listener is not None
        while True:
            ids: dict[str, None] = {}
            for payload in await self.listener.wait(60.0):
                with contextlib.suppress(ValueError, TypeError):
                    ids |= {str(pair[0]): None for pair in json.loads(payload)}
            for execution_id in ids:
                if self.engine.is_live(execution_id):
                    continue
                try:
                    execution = await self.engine.store.get_execution(execution_id)
                except Exception as exc:  # the next change shows it again
                    _log.warning("cannot read execution %s: %s", execution_id, said(exc))
                    continue
                if execution is not None:
                    self.engine.events.publish(ExecutionChanged(execution, elsewhere=True))
