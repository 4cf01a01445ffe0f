"""Streamed answers of the HTTP server (what server-sent events need): chunks go out as they come, a
stream that ends ends the answer and the connection serves the next request, and a client that goes
away stops the stream."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncGenerator, AsyncIterator

import httpx
import pytest

from tiercel.engine.httpserver import MAX_STREAMS_PER_CLIENT, HttpServer, Request, Response

from ..waiting import until

pytestmark = pytest.mark.asyncio


class Ticker:
    """A stream of numbered lines, one each time it is released, that notes when it is closed."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.release = asyncio.Event()
        self.closed = False
        self.stream: AsyncGenerator[bytes, None] | None = None

    async def lines(self) -> AsyncIterator[bytes]:
        try:
            for n in range(self.count):
                await self.release.wait()
                self.release.clear()
                yield f"data: {n}\n\n".encode()
        finally:
            self.closed = True


async def test_chunks_arrive_as_they_come_and_the_connection_goes_on() -> None:
    ticker = Ticker(3)

    async def handler(request: Request) -> Response:
        if request.target == "/plain":
            return Response(200, {"ok": True})
        return Response(200, headers={"Cache-Control": "no-cache"}, content_type="text/event-stream",
                        stream=ticker.lines())  # fmt: skip

    server = HttpServer(handler, port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            async with client.stream("GET", "/events") as answer:
                assert answer.headers["content-type"] == "text/event-stream"
                assert answer.headers["transfer-encoding"] == "chunked"
                received = []
                reading = answer.aiter_text().__aiter__()
                for n in range(3):
                    ticker.release.set()
                    received.append(await asyncio.wait_for(anext(reading), 5))
                    assert received[-1] == f"data: {n}\n\n"  # each one before the next is released
                ticker.release.set()
                assert [text async for text in reading] == []
            assert ticker.closed
            assert (await client.get("/plain")).json() == {"ok": True}  # kept alive
    finally:
        await server.stop()


async def test_a_client_that_goes_away_stops_the_stream() -> None:
    ticker = Ticker(1000)

    async def handler(request: Request) -> Response:
        return Response(200, content_type="text/event-stream", stream=ticker.lines())

    server = HttpServer(handler, port=0)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        ticker.release.set()
        assert b"200 OK" in await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"data: 0" in await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
        writer.transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
        writer.close()
        await until(lambda: ticker.closed, what="the stream to be closed")
    finally:
        await server.stop()


async def test_a_client_holds_a_bounded_share_of_streams_and_other_requests_go_on() -> None:
    tickers: list[Ticker] = []

    async def handler(request: Request) -> Response:
        if request.target == "/plain":
            return Response(200, {"ok": True})
        ticker = Ticker(1000)
        ticker.stream = ticker.lines()
        tickers.append(ticker)
        return Response(200, content_type="text/event-stream", stream=ticker.stream)

    server = HttpServer(handler, port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, limits=httpx.Limits(max_connections=100)) as client:
            async with contextlib.AsyncExitStack() as streams:
                for _ in range(MAX_STREAMS_PER_CLIENT):
                    answer = await streams.enter_async_context(client.stream("GET", "/events"))
                    assert answer.status_code == 200
                refused = await client.get("/events")
                assert refused.status_code == 429 and "Too many open streams" in refused.json()["message"]
                refused_stream = tickers[-1].stream
                assert (
                    refused_stream is not None and refused_stream.ag_frame is None
                )  # the refused stream's producer was closed
                assert (await client.get("/plain")).json() == {"ok": True}
            await until(lambda: all(ticker.closed for ticker in tickers[:-1]))
            async with client.stream("GET", "/events") as again:  # the share is given back
                assert again.status_code == 200
    finally:
        await server.stop()
