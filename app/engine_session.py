"""The engine the dashboard runs for as long as it is open: the store, the engine, its webhook port.

`EngineSession.start` opens them in order (the port first: a busy one stops the dashboard before any
recovery runs), and `stop` closes them in reverse. The panes see the engine only through `guarded`,
the person at the dashboard's view of it (guarded.py); the app reads the engine's events from
`events`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from tiercel.engine import (
    Access,
    DbTarget,
    Engine,
    Event,
    HostedEngine,
    HttpHandler,
    Principal,
    SecretError,
    StoreError,
    WebhookGate,
    WebhookServer,
)

from .guarded import GuardedEngine


class EngineStartError(Exception):
    """The engine could not start; the message says why."""


class EngineSession:
    """A started engine, with its webhook server and the dashboard's subscription to its events."""

    def __init__(self, hosted: HostedEngine, principal: Principal) -> None:
        self.hosted = hosted
        engine = hosted.engine
        self.guarded = GuardedEngine(engine, Access(engine.catalog.namespaces.chain, principal))
        self.events: asyncio.Queue[Event] = engine.events.subscribe()
        self.webhook_server: WebhookServer | None = None

    @classmethod
    async def start(
        cls,
        db: DbTarget,
        flows_dir: Path,
        principal: Principal,
        *,
        control: bool,
        webhooks: tuple[str, int] | None,
        api: Callable[[Engine], HttpHandler] | None,
        gate: Callable[[Engine], WebhookGate] | None = None,
    ) -> EngineSession:
        """Open the store and start the engine (on PostgreSQL, one server of the store's cluster).

        Raises:
            EngineStartError: The store, the secrets, the port or the engine refused.
        """
        try:
            hosted = await HostedEngine.open(db, flows_dir, follow=True)
        except (StoreError, SecretError) as error:
            secrets = " (TIERCEL_SECRETS_FILE)" if isinstance(error, SecretError) else ""
            raise EngineStartError(f"{error}{secrets}") from None
        session = cls(hosted, principal)
        try:
            if webhooks is not None:
                engine = hosted.engine
                fallback = api(engine) if api is not None else None
                checks = gate(engine) if gate is not None else None
                session.webhook_server = WebhookServer(engine, *webhooks, fallback=fallback, gate=checks)
                await session.webhook_server.start()
            await hosted.start(control=control, watch=True)
        except (OSError, StoreError) as error:
            await session.stop(lambda: None)
            raise EngineStartError(f"the engine did not start: {error}") from None
        return session

    async def stop(self, before_store_closes: Callable[[], None]) -> None:
        """Stop serving webhooks and events, call `before_store_closes` (what still reads the store
        goes then), and stop the engine."""
        server, self.webhook_server = self.webhook_server, None
        if server is not None:
            await server.stop()
        self.hosted.engine.events.unsubscribe(self.events)
        before_store_closes()
        await self.hosted.stop()
