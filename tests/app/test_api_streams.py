"""The API's streams in one process: a follower that leaves stops its stream, and its subscription to
the engine's events goes with it (nothing keeps queuing events for a client that is gone)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest

from tests.engine.helpers import flow, running_engine
from tests.waiting import until
from tiercel.app.api import api_app
from tiercel.app.api.asgi import asgi_handler
from tiercel.engine import WebhookServer
from tiercel.engine.httpserver import MAX_STREAMS_PER_CLIENT

SLEEPY = flow(
    """
    tasks:
      - id: nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT60S
    """,
    flow_id="sleepy",
)


@pytest.mark.asyncio
async def test_a_follower_that_leaves_is_forgotten(tmp_path: Path) -> None:
    async with running_engine(tmp_path, SLEEPY) as engine:
        server = WebhookServer(engine, "127.0.0.1", 0, fallback=asgi_handler(api_app(engine)))
        await server.start()
        try:
            execution_id = await engine.trigger("ns", "sleepy", {}, [])
            before = len(engine.events._queues)
            async with httpx.AsyncClient(base_url=f"{server.url}/api/v1") as client:
                for path in (f"/executions/{execution_id}/follow", f"/logs/{execution_id}/follow"):
                    async with client.stream("GET", path) as answer:
                        lines = answer.aiter_lines()
                        assert await asyncio.wait_for(anext(lines), 5) == "id: progress"
                        assert len(engine.events._queues) == before + 1
                    await until(lambda: len(engine.events._queues) == before, what="the follower forgotten")
            await engine.kill(execution_id)
        finally:
            await server.stop()


@pytest.mark.asyncio
async def test_a_follow_past_the_clients_share_is_refused_and_forgotten(tmp_path: Path) -> None:
    async with running_engine(tmp_path, SLEEPY) as engine:
        server = WebhookServer(engine, "127.0.0.1", 0, fallback=asgi_handler(api_app(engine)))
        await server.start()
        try:
            execution_id = await engine.trigger("ns", "sleepy", {}, [])
            before = len(engine.events._queues)
            path = f"/executions/{execution_id}/follow"
            limits = httpx.Limits(max_connections=100)
            async with httpx.AsyncClient(base_url=f"{server.url}/api/v1", limits=limits) as client:
                async with contextlib.AsyncExitStack() as streams:
                    for _ in range(MAX_STREAMS_PER_CLIENT):
                        answer = await streams.enter_async_context(client.stream("GET", path))
                        assert await asyncio.wait_for(anext(answer.aiter_lines()), 5) == "id: progress"
                    refused = await client.get(path)
                    assert refused.status_code == 429
                    await until(lambda: len(engine.events._queues) == before + MAX_STREAMS_PER_CLIENT)
                await until(lambda: len(engine.events._queues) == before, what="every follower forgotten")
            await engine.kill(execution_id)
        finally:
            await server.stop()
