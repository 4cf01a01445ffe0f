"""Commands between the servers of a cluster: a kill or a resume goes to the server that runs the
execution, a trigger's switch or backfill to the server that runs the scheduler.

A request is a notification on the cluster's `commands` channel naming its addressee (a server id, or
"scheduler" for whichever server holds the scheduler's lock); the addressee carries it out and
notifies the answer, or the error, on the same channel. A request no server answers within
`ANSWER_SECONDS` fails with a message saying so. Notifications carry at most 8,000 bytes: a larger
request (a resume's inputs) is refused with a message, not cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import EngineCommandError
from .connection import ClusterConnection, Listener, said

_log = logging.getLogger(__name__)
ANSWER_SECONDS = 10.0
MAX_PAYLOAD_BYTES = 7900
SCHEDULER = "scheduler"

Perform = Callable[[dict[str, Any]], Awaitable[Any]]


class CommandRelay:
    """Sends this server's requests to others and carries out the requests addressed to it."""

    def __init__(
        self,
        url: str,
        server_id: str,
        connection: ClusterConnection,
        perform: Perform,
        holds_scheduler: Callable[[], bool],
    ) -> None:
        self.id = server_id
        self.connection = connection
        self.perform = perform
        self.holds_scheduler = holds_scheduler
        self.listener = Listener(url, "server", ["commands"])
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="tiercel-command-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._running):
            task.cancel()
        await self.listener.close()

    async def ask(self, to: str, request: dict[str, Any]) -> Any:
        """Have server `to` carry out `request`; its answer, or EngineCommandError with its error."""
        request_id = secrets.token_hex(8)
        payload = json.dumps({"to": to, "from": self.id, "id": request_id, "request": request})
        if len(payload.encode()) > MAX_PAYLOAD_BYTES:
            raise EngineCommandError(
                f"the command is too large to send to the server that runs it ({len(payload)} bytes)"
            )
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            await self.connection.notify("commands", payload)
            async with asyncio.timeout(ANSWER_SECONDS):
                return await future
        except TimeoutError:
            who = "no server runs the scheduler" if to == SCHEDULER else f"server {to} did not answer"
            raise EngineCommandError(f"{who} within {ANSWER_SECONDS:g} s; try again") from None
        finally:
            self._waiting.pop(request_id, None)

    async def _listen(self) -> None:
        while True:
            for payload in await self.listener.wait(60.0):
                try:
                    message = json.loads(payload)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                if "answer_to" in message:
                    self._answered(message)
                elif message.get("to") == self.id or (
                    message.get("to") == SCHEDULER and self.holds_scheduler()
                ):
                    task = asyncio.create_task(self._carry_out(message))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)

    def _for_me(self, to: object) -> bool:
        return to == self.id or (to == SCHEDULER and self.holds_scheduler())

    def _answered(self, message: dict[str, Any]) -> None:
        future = self._waiting.get(str(message["answer_to"]))
        if future is None or future.done():
            return
        if message.get("ok"):
            future.set_result(message.get("result"))
        else:
            future.set_exception(EngineCommandError(str(message.get("error"))))

    async def _carry_out(self, message: dict[str, Any]) -> None:
        answer: dict[str, Any] = {"answer_to": message.get("id")}
        try:
            answer |= {"ok": True, "result": await self.perform(message["request"])}
        except Exception as exc:  # the asker hears of it, in the engine's words
            answer |= {"ok": False, "error": str(exc) or type(exc).__name__}
        try:
            await self.connection.notify("commands", json.dumps(answer, default=str))
        except Exception as exc:
            _log.error("cannot answer a command of server %s: %s", message.get("from"), said(exc))
