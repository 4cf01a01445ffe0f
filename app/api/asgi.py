"""An ASGI application served by the engine's HTTP server (engine.httpserver).

The webhook port is an HTTP/1.1 server on h11 with limits a hostile client cannot wear down (capped
heads and bodies, deadlines for slow heads and bodies, a share of connections per client), which the
well-known ASGI servers leave to a proxy in front. So the REST API, a Starlette application, is
hosted there: each request, already read whole within those limits, becomes one ASGI call, and its
answer is sent whole, or chunk by chunk when the application streams it (server-sent events).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote, urlsplit

from tiercel.engine import HttpHandler as Handler, HttpRequest as Request, HttpResponse as Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Headers the HTTP server writes itself, from the answer's length and the connection's state.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "content-type"})


def asgi_handler(app: ASGIApp, *, server: tuple[str, int] = ("127.0.0.1", 8080)) -> Handler:
    """A handler of the HTTP server that answers through the ASGI application `app`."""

    async def handle(request: Request) -> Response:
        split = urlsplit(request.target)
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.version.removeprefix("HTTP/"),
            "method": request.method,
            "scheme": "http",
            "path": unquote(split.path),
            "raw_path": split.path.encode("ascii", "replace"),
            "query_string": split.query.encode("ascii", "replace"),
            "root_path": "",
            "headers": [
                (name.encode("latin-1"), value.encode("latin-1", "replace"))
                for name, values in request.headers.items()
                for value in values
            ],
            "client": None,
            "server": server,
        }
        return await _call(app, scope, request.body)

    return handle


async def _call(app: ASGIApp, scope: Scope, body: bytes) -> Response:
    """Run the application on one request; its answer once it has started to answer."""
    started: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
    finished = asyncio.Event()  # the answer is over, or its client left: `receive` says disconnect
    sent_body = False

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            if not started.done():
                started.set_result(message)
        elif message["type"] == "http.response.body":
            chunks.put_nowait(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                chunks.put_nowait(None)

    async def run() -> None:
        try:
            await app(scope, receive, send)
        finally:
            chunks.put_nowait(None)
            if not started.done():
                started.cancel()  # the application ended without an answer

    task = asyncio.ensure_future(run())
    try:
        start = await asyncio.shield(started)
        first = await chunks.get()
    except BaseException:
        finished.set()
        await _settle(task)
        current = asyncio.current_task()
        if started.cancelled() and not (current is not None and current.cancelling()):
            raise RuntimeError("the application ended without an answer") from None
        raise
    status = int(start["status"])
    headers: dict[str, str] = {}
    content_type = "application/octet-stream"
    for raw_name, raw_value in start.get("headers", ()):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "content-type":
            content_type = value
        elif name not in _FRAMING:
            headers[name] = value
    # The answer is whole when its end is already queued (the common case); else it is streamed.
    pieces = [first or b""]
    ended = first is None
    while not ended and not chunks.empty():
        piece = chunks.get_nowait()
        ended = piece is None
        if piece is not None:
            pieces.append(piece)
    body = b"".join(pieces)
    if ended:
        finished.set()
        await _settle(task)
        return Response(status, body, headers, content_type)
    return Response(status, None, headers, content_type, stream=_Stream(body, chunks, finished, task))


class _Stream:
    """The answer's chunks as the application sends them. Closing it, iterated or not (the client
    left, or the server refused the stream), tells the application of the disconnect and ends it."""

    def __init__(
        self,
        first: bytes,
        chunks: asyncio.Queue[bytes | None],
        finished: asyncio.Event,
        task: asyncio.Future[None],
    ) -> None:
        self._first: bytes | None = first
        self._chunks = chunks
        self._finished = finished
        self._task = task

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        chunk = await self._chunks.get()
        if chunk is None:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        self._finished.set()
        await _settle(self._task)


async def _settle(task: asyncio.Future[None]) -> None:
    """Let the application end by itself for a moment (it was told of the disconnect), then stop it."""
    with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
        await asyncio.wait_for(asyncio.shield(task), 1.0)
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
