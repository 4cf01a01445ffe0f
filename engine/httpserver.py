"""A small HTTP/1.1 server: h11 parses the protocol, this module keeps the limits and the fairness.

The webhook route needs one handler behind a port that a hostile client cannot wear down, so what
matters here is exact limits rather than features: a capped request head and body, timeouts for a
silent connection, a slow head and a slow body, keep-alive, and a share of connections per client
address. A client at its share (or a server at its total) makes room by closing one of its
connections that has no whole request yet: idle or slow connections cost a client nothing to hold,
so they must not crowd out requests. The one silent longest goes first (nothing of a next request
received, not even in the socket's buffer), else the one whose request head has been longest on its
way (a real client sends its head at once). Only when every connection is busy with a request is a
newcomer refused with 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import struct
import termios
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import h11

from .httpmessages import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    BadRequest,
    Handler,
    Request,
    Response,
    error_response,
    next_event,
    parse_head,
    short,
)

# A new or kept-alive connection must start a request within IDLE_SECONDS; once its first byte
# arrives, the whole head must follow within HEAD_SECONDS (slow-header attacks) and the body within
# BODY_SECONDS.
IDLE_SECONDS = 5.0
HEAD_SECONDS = 5.0
BODY_SECONDS = 30.0
# A client must take an answer within this time (one that never reads would hold its connection).
SEND_SECONDS = 30.0
# Open connections in all and per client address. Past either cap, a connection without a whole
# request yet is closed to make room; a newcomer is refused (503) only when there is none.
MAX_CONNECTIONS = 512
MAX_PER_CLIENT = 64
# Streams (server-sent events) a client may hold open at once: a stream stays busy as long as it
# lasts, so without a share of their own they could take every connection a client has (429 past it).
MAX_STREAMS_PER_CLIENT = 16
# How long a connection refused with an error still reads (and drops) the rest of its request, and
# how long one refused at the door (503) does: shorter, as it is not counted among the open ones.
LINGER_SECONDS = 2.0
REFUSED_LINGER_SECONDS = 0.5
# How often a request being handled checks whether its client closed the connection.
GONE_CHECK_SECONDS = 0.5
READ_BYTES = 64 * 1024
BACKLOG = 1024


@dataclass(eq=False)
class _Connection:
    """An open connection and what is known of its activity."""

    host: str = ""
    writer: asyncio.StreamWriter | None = None
    # Set while waiting for the head of a next request; `heard` once some of it was read.
    waiting_since: float | None = None
    heard: bool = False
    # Bytes the transport delivered and bytes handed to the parser: unequal while some are buffered.
    received: int = 0
    consumed: int = 0
    closed_for_room: bool = False
    # The method of the request being answered: the answer to a HEAD request has no body.
    method: bytes = b""


class _CountingProtocol(asyncio.StreamReaderProtocol):
    """The stream protocol, counting what arrives the moment it arrives (before any task runs)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        connection: _Connection,
    ) -> None:
        super().__init__(reader, serve)
        self._connection = connection

    def data_received(self, data: bytes) -> None:
        self._connection.received += len(data)
        super().data_received(data)


class HttpServer:
    """Serves `handler` over HTTP/1.1 on a TCP port, within the limits above.

    Args:
        handler: Answers one request; an exception becomes a 500 answer and is passed to `on_error`.
        host: The address to listen on.
        port: The port; 0 picks a free one (see `port` once started).
        mask: Applied to every answer's body before it is sent (hides secret values).
        on_error: Told of every error no answer foresaw, so it can be reported; never printed here.
    """

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        mask: Callable[[Any], Any] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self._mask = mask or (lambda value: value)
        self._on_error = on_error or (lambda error: None)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._by_host: dict[str, set[_Connection]] = {}
        self._count = 0
        self._streams: dict[str, int] = {}

    async def start(self) -> None:
        """Bind the port and start accepting connections."""

        def connected() -> asyncio.StreamReaderProtocol:
            connection = _Connection()
            reader = asyncio.StreamReader(limit=READ_BYTES)
            return _CountingProtocol(reader, functools.partial(self._serve, connection), connection)

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(connected, self.host, self.port, backlog=BACKLOG)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting, end every open connection and wait for their handlers to finish."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()
        self._server = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    # -- admission -------------------------------------------------------------------------------

    def _admit(self, connection: _Connection) -> bool:
        """Count a new connection in, closing the longest-idle one to make room when needed."""
        mine = self._by_host.get(connection.host, set())
        crowded: set[_Connection] | None = None
        if len(mine) >= MAX_PER_CLIENT:
            crowded = mine
        elif self._count >= MAX_CONNECTIONS:
            crowded = max(self._by_host.values(), key=len)  # the heaviest client gives way first
        if crowded is not None:
            victim = _first_to_go(crowded)
            if victim is None:
                return False
            self._release(victim)
            victim.closed_for_room = True
            if victim.writer is not None:
                victim.writer.close()  # its reader sees the end of the stream and its task ends
        self._by_host.setdefault(connection.host, set()).add(connection)
        self._count += 1
        return True

    def _release(self, connection: _Connection) -> None:
        mine = self._by_host.get(connection.host)
        if mine is None or connection not in mine:
            return
        mine.discard(connection)
        self._count -= 1
        if not mine:
            del self._by_host[connection.host]

    # -- one connection --------------------------------------------------------------------------

    async def _serve(
        self, connection: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        connection.host = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        connection.writer = writer
        protocol = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        try:
            if not self._admit(connection):
                message = "Too many connections busy with requests: try again shortly"
                await self._send(connection, protocol, error_response(503, message), keep_alive=False)
                await _linger(connection, reader, writer, REFUSED_LINGER_SECONDS)
                return
            await self._converse(connection, protocol, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            # Stopping the server: end quietly (asyncio reports a cancelled handler as an error).
            return
        except Exception as unexpected:  # never left to asyncio, which prints it over the dashboard
            self._on_error(unexpected)
            if protocol.our_state in (h11.IDLE, h11.SEND_RESPONSE) and not connection.closed_for_room:
                with contextlib.suppress(Exception, asyncio.CancelledError):  # stopping ends the linger
                    answer = error_response(500, f"Internal error: {type(unexpected).__name__}: {unexpected}")
                    await self._send(connection, protocol, answer, keep_alive=False)
                    await _linger(connection, reader, writer, LINGER_SECONDS)
        finally:
            self._release(connection)
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _converse(
        self,
        connection: _Connection,
        protocol: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Serve requests on one connection until it closes, stays idle or asks to close."""
        while True:
            try:
                request = await self._read_request(connection, protocol, reader)
            except BadRequest as bad:
                if connection.closed_for_room:
                    return
                refusal = error_response(bad.status, short(str(bad)))
                await self._send(connection, protocol, refusal, keep_alive=False)
                await _linger(connection, reader, writer, LINGER_SECONDS)
                return
            if request is None:
                return
            answer = await self._answer_while_connected(request, protocol, reader)
            if answer is None:
                return  # the client went away while its request was handled
            keep_alive = request.keep_alive
            if answer.stream is not None and self._streams.get(connection.host, 0) >= MAX_STREAMS_PER_CLIENT:
                await _close_stream(answer)
                message = f"Too many open streams from this client (at most {MAX_STREAMS_PER_CLIENT})"
                answer = error_response(429, message)
            if answer.stream is not None:
                self._streams[connection.host] = self._streams.get(connection.host, 0) + 1
                try:
                    if not await self._stream(connection, protocol, reader, answer, keep_alive):
                        return
                finally:
                    left = self._streams.pop(connection.host) - 1
                    if left:
                        self._streams[connection.host] = left
            else:
                await self._send(connection, protocol, answer, keep_alive)
            if not keep_alive or protocol.our_state is not h11.DONE:
                return
            protocol.start_next_cycle()

    async def _read_request(
        self, connection: _Connection, protocol: h11.Connection, reader: asyncio.StreamReader
    ) -> Request | None:
        """The next whole request, or None when the client closed the connection or stayed idle."""
        loop = asyncio.get_running_loop()
        received = len(protocol.trailing_data[0])  # a pipelined request may already be here
        idle_deadline = loop.time() + IDLE_SECONDS
        head_deadline = loop.time() + HEAD_SECONDS if received else None
        connection.waiting_since, connection.heard = loop.time(), bool(received)
        connection.method = b""
        while True:
            event = next_event(protocol)
            if isinstance(event, h11.Request):
                break
            if isinstance(event, h11.ConnectionClosed):
                return None
            if event is not h11.NEED_DATA:
                raise BadRequest(400, f"Malformed request: unexpected {type(event).__name__}")
            if head_deadline is None:
                data = await _read(connection, reader, idle_deadline)
                if data is None:
                    return None  # idle for too long: closed without an answer
                head_deadline = loop.time() + HEAD_SECONDS
                connection.heard = True
            else:
                data = await _read(connection, reader, head_deadline)
                if data is None:
                    raise BadRequest(408, f"The request head did not arrive within {HEAD_SECONDS:g} s")
            received += len(data)
            protocol.receive_data(data)
        # h11 caps an incomplete head; a complete one that arrived in a single read is checked here.
        if received - len(protocol.trailing_data[0]) > MAX_HEAD_BYTES:
            raise BadRequest(431, f"Request head larger than {MAX_HEAD_BYTES} bytes")
        connection.waiting_since = None  # a whole head: busy with a request from now on
        connection.method = event.method
        head = parse_head(event)
        if protocol.they_are_waiting_for_100_continue and connection.writer is not None:
            # `Expect: 100-continue` (curl sends it for large bodies): the head is accepted, go on.
            go_on = h11.InformationalResponse(status_code=100, headers=[])
            connection.writer.write(protocol.send(go_on) or b"")
        body = await _read_body(connection, protocol, reader, loop.time() + BODY_SECONDS)
        return Request(head.method, head.target, head.version, head.headers, body)

    async def _answer_while_connected(
        self, request: Request, protocol: h11.Connection, reader: asyncio.StreamReader
    ) -> Response | None:
        """The answer to `request`, or None when the client closes the connection before it is ready."""
        handling = asyncio.ensure_future(self._answer(request))
        try:
            while True:
                done, _ = await asyncio.wait({handling}, timeout=GONE_CHECK_SECONDS)
                if done:
                    return handling.result()
                # At the end of the stream with nothing unread: the client closed its side (a
                # pipelined request would still be buffered, and is served next).
                if reader.at_eof() and not protocol.trailing_data[0]:
                    return None
        finally:
            if not handling.done():
                handling.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await handling

    async def _answer(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except BadRequest as bad:
            return error_response(bad.status, str(bad))
        except Exception as unexpected:  # one request must never stop the server
            self._on_error(unexpected)
            return error_response(500, f"Internal error: {type(unexpected).__name__}: {unexpected}")

    async def _send(
        self, connection: _Connection, protocol: h11.Connection, response: Response, keep_alive: bool
    ) -> None:
        writer = connection.writer
        assert writer is not None  # set before anything is read or sent
        payload = b""
        if isinstance(response.body, bytes):
            payload = response.body
        elif response.body is not None:
            payload = json.dumps(self._mask(response.body), default=str).encode()
        headers = []
        if payload:
            headers.append(("Content-Type", response.content_type))
        if response.status != HTTPStatus.NO_CONTENT:
            headers.append(("Content-Length", str(len(payload))))
        headers.append(("Connection", "keep-alive" if keep_alive else "close"))
        headers.extend((name, str(self._mask(value))) for name, value in response.headers.items())
        reason = HTTPStatus(response.status).phrase.encode()
        data = protocol.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
        if payload and connection.method != b"HEAD":  # HEAD: the headers of the answer only
            data += protocol.send(h11.Data(data=payload)) or b""
        data += protocol.send(h11.EndOfMessage()) or b""
        await _write(writer, data)

    async def _stream(
        self,
        connection: _Connection,
        protocol: h11.Connection,
        reader: asyncio.StreamReader,
        response: Response,
        keep_alive: bool,
    ) -> bool:
        """Send a streamed answer chunk by chunk; False when the client went away before its end."""
        assert response.stream is not None and connection.writer is not None
        writer, chunks = connection.writer, response.stream
        headers = [("Content-Type", response.content_type)]
        headers.append(("Connection", "keep-alive" if keep_alive else "close"))
        headers.extend((name, str(self._mask(value))) for name, value in response.headers.items())
        reason = HTTPStatus(response.status).phrase.encode()
        try:
            await _write(
                writer,
                protocol.send(h11.Response(status_code=response.status, headers=headers, reason=reason)),
            )
            while True:
                chunk = await _next_chunk(chunks, protocol, reader)
                if chunk is None:
                    return False
                if isinstance(chunk, StopAsyncIteration):
                    break
                if chunk and connection.method != b"HEAD":
                    await _write(writer, protocol.send(h11.Data(data=chunk)))
            await _write(writer, protocol.send(h11.EndOfMessage()))
            return True
        finally:
            await _close_stream(response)


async def _close_stream(response: Response) -> None:
    """End a streamed answer's producer (an async generator runs its `finally`)."""
    aclose = getattr(response.stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


async def _next_chunk(
    chunks: AsyncIterator[bytes], protocol: h11.Connection, reader: asyncio.StreamReader
) -> bytes | StopAsyncIteration | None:
    """The stream's next chunk, StopAsyncIteration at its end, or None once the client has gone."""
    coming = asyncio.ensure_future(anext(chunks))
    try:
        while True:
            done, _ = await asyncio.wait({coming}, timeout=GONE_CHECK_SECONDS)
            if done:
                try:
                    return coming.result()
                except StopAsyncIteration as end:
                    return end
            if reader.at_eof() and not protocol.trailing_data[0]:
                return None
    finally:
        if not coming.done():
            coming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await coming


async def _write(writer: asyncio.StreamWriter, data: bytes | None) -> None:
    writer.write(data or b"")
    try:
        await asyncio.wait_for(writer.drain(), SEND_SECONDS)
    except TimeoutError:
        raise ConnectionError(f"the client did not read its answer within {SEND_SECONDS:g} s") from None


async def _read_body(
    connection: _Connection, protocol: h11.Connection, reader: asyncio.StreamReader, deadline: float
) -> bytes:
    """The request body, refused past MAX_BODY_BYTES; no body (and no length) is an empty one."""
    body = bytearray()
    while True:
        event = next_event(protocol)
        if isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY_BYTES:
                raise BadRequest(413, f"Request body larger than the limit of {MAX_BODY_BYTES} bytes")
        elif isinstance(event, h11.EndOfMessage):
            return bytes(body)
        elif event is h11.NEED_DATA:
            data = await _read(connection, reader, deadline)
            if data is None:
                raise BadRequest(408, f"The request body did not arrive within {BODY_SECONDS:g} s")
            protocol.receive_data(data)
        else:
            raise BadRequest(400, f"Malformed request: unexpected {type(event).__name__} in the body")


async def _read(connection: _Connection, reader: asyncio.StreamReader, deadline: float) -> bytes | None:
    """What the client sends next (b"" at its end), or None when nothing comes before `deadline`."""
    left = deadline - asyncio.get_running_loop().time()
    if left <= 0:
        return None
    try:
        data = await asyncio.wait_for(reader.read(READ_BYTES), left)
    except TimeoutError:
        return None
    connection.consumed += len(data)
    return data


def _unread(writer: asyncio.StreamWriter | None) -> bool:
    """Whether the socket holds bytes the transport has not read yet (FIONREAD)."""
    sock = writer.get_extra_info("socket") if writer is not None else None
    if sock is None:
        return False
    try:
        answer = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):
        return False
    return bool(struct.unpack("i", answer)[0])


def _first_to_go(connections: set[_Connection]) -> _Connection | None:
    """The connection to close for room: the one silent longest, else the one waiting longest.

    Silent: nothing of a next request read, buffered, or in its socket. Failing one, the connection
    whose request head has been longest in coming goes (a real client sends its head at once).
    """
    waiting = sorted(
        (c for c in connections if c.waiting_since is not None), key=lambda c: c.waiting_since or 0.0
    )
    quiet = (c for c in waiting if not c.heard and c.received == c.consumed)
    silent = (c for c in quiet if not _unread(c.writer))  # one syscall each, until one is found
    return next(silent, waiting[0] if waiting else None)


async def _linger(
    connection: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seconds: float
) -> None:
    """Read and drop what the client still sends, for a short while, before closing.

    Closing a socket with unread input makes the kernel reset the connection, and the client can
    lose the error answer it was about to read.
    """
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        deadline = asyncio.get_running_loop().time() + seconds
        dropped = 0
        while dropped < MAX_BODY_BYTES:
            data = await _read(connection, reader, deadline)
            if not data:
                return
            dropped += len(data)


__all__ = [
    "MAX_BODY_BYTES",
    "MAX_CONNECTIONS",
    "MAX_PER_CLIENT",
    "BadRequest",
    "Handler",
    "HttpServer",
    "Request",
    "Response",
    "error_response",
]
