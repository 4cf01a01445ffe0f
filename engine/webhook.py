"""Kestra's webhook endpoint: `/api/v1/executions/webhook/{namespace}/{flowId}/{key}` over HTTP/1.1.

A small asyncio server rather than a web framework: it serves one route, and every limit that
matters here (header size and time, body size, idle keep-alive) is easier to keep exact by hand.
Kestra's answers are kept: 404 for an unknown flow or key, 409 for a disabled flow or trigger,
204 when the trigger's conditions do not hold, 422 when its inputs cannot be rendered, and 200 with
the execution once it is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .context import build_context
from .events import EngineError
from .expressions import ExpressionError
from .inputs import InputError
from .model import Execution, Flow, Label, State, StateType, TriggerSpec, new_id, utcnow
from .secrets import SecretError
from .tasks.base import TaskFailure
from .tasks.core import labels_of
from .triggers.conditions import ConditionContext, ConditionError, conditions_hold

WEBHOOK = "io.kestra.plugin.core.trigger.Webhook"
MAX_BODY_BYTES = 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024
# A client must send its whole request head within this time (slow-header attacks), its body
# within BODY_SECONDS, and may keep an idle connection open for IDLE_SECONDS between requests.
HEAD_SECONDS = 10.0
BODY_SECONDS = 30.0
IDLE_SECONDS = 15.0
MAX_CONNECTIONS = 256
# A `wait: true` webhook answers with the execution as it is after this long, as Kestra's server does
# when its 60-minute idle timeout ends the wait; a client that goes away stops the wait at once.
WAIT_SECONDS = 3600.0
# How long a connection refused with an error still reads (and drops) the rest of its request.
LINGER_SECONDS = 2.0
# How often a waiting request checks whether its client closed the connection.
GONE_CHECK_SECONDS = 0.5
_CONTENT_LENGTH = re.compile(r"[0-9]{1,12}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}")
_PREFIXES = (("api", "v1", "executions", "webhook"), ("api", "v1", "main", "executions", "webhook"))
_METHODS = ("GET", "POST", "PUT")
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

_log = logging.getLogger(__name__)


class BadRequest(Exception):
    """The request cannot be served; `status` and the message go back to the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[-1] if values else None

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for v in self.headers.get("connection", ()) for t in v.split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


@dataclass(frozen=True)
class Response:
    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def encode(self, keep_alive: bool) -> bytes:
        payload = b"" if self.body is None else json.dumps(self.body, default=str).encode()
        reason = HTTPStatus(self.status).phrase
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        if payload:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(payload)}")
        lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
        lines.extend(f"{name}: {value}" for name, value in self.headers.items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def _error(status: int, message: str) -> Response:
    return Response(status, {"message": message})


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 reading
# ---------------------------------------------------------------------------------------------


async def read_request(reader: asyncio.StreamReader, idle: float) -> Request | None:
    """The next request on a connection, or None when the client closed it (or stayed idle)."""
    try:
        first = await asyncio.wait_for(reader.readuntil(b"\n"), idle)
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, f"Request line longer than {MAX_HEAD_BYTES} bytes") from None
    lines = [first]
    try:
        await asyncio.wait_for(_read_header_lines(reader, lines), HEAD_SECONDS)
    except TimeoutError:
        raise BadRequest(408, f"The request head did not arrive within {HEAD_SECONDS:g} s") from None
    method, target, version, headers = _parse_head(lines)
    request = Request(method, target, version, headers)
    body = await _read_body(reader, request)
    return Request(method, target, version, headers, body)


async def _read_header_lines(reader: asyncio.StreamReader, lines: list[bytes]) -> None:
    """Header lines up to the blank line that ends the head, within MAX_HEAD_BYTES in all."""
    total = len(lines[0])
    if lines[0].strip() == b"":
        return
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            raise BadRequest(
                400, "Malformed request: the connection closed inside the request head"
            ) from None
        except asyncio.LimitOverrunError:
            raise BadRequest(431, f"Request head larger than {MAX_HEAD_BYTES} bytes") from None
        total += len(line)
        if total > MAX_HEAD_BYTES:
            raise BadRequest(431, f"Request head larger than {MAX_HEAD_BYTES} bytes")
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return


def _parse_head(raw: list[bytes]) -> tuple[str, str, str, dict[str, list[str]]]:
    try:
        request_line = raw[0].decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise BadRequest(400, "Malformed request line: it must be ASCII") from None
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[0] or not set(parts[0]) <= _TOKEN or not parts[1].startswith("/"):
        raise BadRequest(
            400, f"Malformed request line `{request_line[:100]}`: expected `METHOD /path HTTP/1.1`"
        )
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(400, f"Unsupported protocol `{version[:20]}`: use HTTP/1.1")
    headers: dict[str, list[str]] = {}
    for data in raw[1:]:
        try:
            line = data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise BadRequest(400, "Malformed header: header lines must be UTF-8 text") from None
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or not set(name) <= _TOKEN:
            raise BadRequest(400, f"Malformed header line `{line[:100]}`: expected `Name: value`")
        headers.setdefault(name.lower(), []).append(value.strip())
    return method, target, version, headers


async def _read_body(reader: asyncio.StreamReader, request: Request) -> bytes:
    encoding = (request.header("transfer-encoding") or "").lower()
    length_text = request.headers.get("content-length")
    if encoding:
        if encoding != "chunked":
            raise BadRequest(
                400, f"Unsupported Transfer-Encoding `{encoding}`: use chunked or Content-Length"
            )
        if length_text:
            raise BadRequest(400, "A request cannot have both Content-Length and Transfer-Encoding")
        return await _timed(_read_chunked(reader))
    if length_text is None:
        if request.method in ("POST", "PUT"):
            raise BadRequest(
                400, "Missing Content-Length header: send the body length (Content-Length: 0 for no body)"
            )
        return b""
    # Strict ASCII digits: str.isdigit() accepts `²`, and int() accepts `1_0` or ` 7`.
    if len(set(length_text)) != 1 or not _CONTENT_LENGTH.fullmatch(length_text[0]):
        raise BadRequest(400, f"Invalid Content-Length `{', '.join(length_text)[:40]}`")
    length = int(length_text[0])
    if length > MAX_BODY_BYTES:
        raise BadRequest(413, f"Request body of {length} bytes is larger than the limit of {MAX_BODY_BYTES}")
    return await _timed(reader.readexactly(length))


async def _timed(read: Any) -> bytes:
    try:
        body: bytes = await asyncio.wait_for(read, BODY_SECONDS)
    except TimeoutError:
        raise BadRequest(408, f"The request body did not arrive within {BODY_SECONDS:g} s") from None
    except asyncio.IncompleteReadError:
        raise BadRequest(
            400, "Malformed request: the connection closed before the whole body arrived"
        ) from None
    return body


async def _chunk_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError:
        raise BadRequest(
            400, f"Malformed chunked body: a chunk-size or trailer line is longer than {MAX_HEAD_BYTES} bytes"
        ) from None


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        line = await _chunk_line(reader)
        # `size[;extension]`: only hex digits, so no sign, `0x` prefix or `_` that int(x, 16) would take.
        size_text = line[:-2].split(b";", 1)[0].strip(b" \t")
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise BadRequest(400, "Malformed chunked body: a chunk size is not 1 to 8 hexadecimal digits")
        size = int(size_text, 16)
        if size == 0:
            trailers = 0
            while (trailer := await _chunk_line(reader)) != b"\r\n":
                trailers += len(trailer)
                if trailers > MAX_HEAD_BYTES:
                    raise BadRequest(431, f"Chunked trailers larger than {MAX_HEAD_BYTES} bytes")
            return bytes(body)
        if len(body) + size > MAX_BODY_BYTES:
            raise BadRequest(413, f"Request body larger than the limit of {MAX_BODY_BYTES} bytes")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise BadRequest(400, "Malformed chunked body: a chunk does not end with CRLF")


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class WebhookServer:
    """Serves Kestra's webhook route for the flows of an engine.

    Args:
        engine: The running engine whose flows the webhooks start.
        host: The address to listen on (loopback by default).
        port: The port; 0 picks a free one (see `port` once started).
    """

    def __init__(self, engine: Any, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_HEAD_BYTES)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()
        self._server = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            if len(self._connections) > MAX_CONNECTIONS:
                await self._send(writer, _error(503, "Too many connections"), keep_alive=False)
                return
            while True:
                try:
                    request = await read_request(reader, IDLE_SECONDS)
                except BadRequest as bad:
                    await self._send(writer, _error(bad.status, str(bad)), keep_alive=False)
                    await _linger(reader, writer)
                    return
                if request is None:
                    return
                try:
                    answered = await self._handle_while_connected(request, reader)
                except BadRequest as bad:
                    answered = _error(bad.status, str(bad))
                except Exception as error:  # one request must never stop the server
                    self._unexpected(error)
                    answered = _error(500, f"Internal error: {type(error).__name__}: {error}")
                if answered is None:
                    return  # the client went away while its request was handled
                response = answered
                keep_alive = request.keep_alive
                await self._send(writer, response, keep_alive)
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            # Stopping the server: end quietly (asyncio reports a cancelled handler as an error).
            return
        except Exception as error:  # never left to asyncio, which prints it over the dashboard
            self._unexpected(error)
            with contextlib.suppress(Exception, asyncio.CancelledError):  # stopping ends the linger
                await self._send(writer, _error(400, f"Malformed request: {error}"), keep_alive=False)
                await _linger(reader, writer)
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle_while_connected(
        self, request: Request, reader: asyncio.StreamReader
    ) -> Response | None:
        """The answer to `request`, or None when the client closes the connection before it is ready."""
        handling = asyncio.ensure_future(self.handle(request))
        try:
            while True:
                done, _ = await asyncio.wait({handling}, timeout=GONE_CHECK_SECONDS)
                if done:
                    return handling.result()
                # At EOF with nothing buffered: the client closed its side (a pipelined request
                # would sit in the buffer and is left there, unread).
                if reader.at_eof():
                    return None
        finally:
            if not handling.done():
                handling.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await handling

    def _unexpected(self, error: BaseException) -> None:
        """An error no answer foresaw: reported once on the engine's bus, never printed."""
        _log.debug("webhook request failed", exc_info=error)
        self.engine.events.publish(EngineError(f"Webhook server: {type(error).__name__}: {error}"))

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, response: Response, keep_alive: bool) -> None:
        writer.write(response.encode(keep_alive))
        await writer.drain()

    # -- the route ------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Answer one parsed request."""
        split = urlsplit(request.target)
        segments = tuple(split.path.strip("/").split("/"))
        route = next((p for p in _PREFIXES if segments[: len(p)] == p), None)
        if route is None or len(segments) != len(route) + 3:
            return _error(
                404, f"No route for `{split.path[:200]}`: use /api/v1/executions/webhook/NS/FLOW/KEY"
            )
        if request.method not in _METHODS:
            return Response(
                405, {"message": f"Method {request.method} not allowed"}, {"Allow": ", ".join(_METHODS)}
            )
        namespace, flow_id, key = (unquote(part) for part in segments[len(route) :])
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as error:
            return _error(400, f"The request body is not valid UTF-8 text (byte {error.start})")
        flow = self.engine.flows.get((namespace, flow_id))
        if flow is None:
            return _error(404, "Flow not found")
        if flow.disabled:
            return _error(409, "Cannot execute flow: flow is disabled.")
        trigger = self._matching_trigger(flow, key)
        if trigger is None:
            return _error(404, "Webhook not found")
        if trigger.disabled or not self.engine.scheduler.is_enabled(flow.namespace, flow.id, trigger.id):
            return _error(409, f"Cannot execute flow: trigger `{trigger.id}` is disabled.")
        variables = {
            "body": _body_value(text) if request.body else None,
            "headers": dict(request.headers),
            "parameters": _parameters(split.query),
        }
        answer = await self._execute(flow, trigger, variables)
        # The answer is shown to the client: secret values in outputs and error texts go out masked.
        return replace(answer, body=self.engine.masker.mask_value(answer.body))

    def _matching_trigger(self, flow: Flow, key: str) -> TriggerSpec | None:
        """The flow's webhook trigger whose rendered key equals `key` (compared in constant time)."""
        found = None
        given = key.encode()
        for trigger in flow.triggers:
            if trigger.type != WEBHOOK:
                continue
            expected = self._render_key(flow, trigger)
            if expected is not None and hmac.compare_digest(expected.encode(), given) and found is None:
                found = trigger
        return found

    def _render_key(self, flow: Flow, trigger: TriggerSpec) -> str | None:
        raw = trigger.props.get("key")
        if raw is None:
            return None
        try:
            rendered = self.engine.renderer.render(str(raw), self._flow_context(flow, None))
        except (ExpressionError, SecretError) as error:
            self._report(
                f"Webhook trigger `{trigger.id}` of {flow.namespace}.{flow.id}: invalid key: {error}"
            )
            return None
        return str(rendered).strip()

    def _flow_context(self, flow: Flow, trigger: Mapping[str, Any] | None) -> dict[str, Any]:
        stub = Execution(new_id(), flow.namespace, flow.id, flow.revision, State.new(), trigger=trigger)
        context = build_context(flow, stub)

        def secret(name: str) -> str:
            try:
                value: str = self.engine.secrets.get(str(name))
            except SecretError as error:
                raise ExpressionError(str(error)) from None
            self.engine.masker.add(value)
            return value

        context["secret"] = secret
        return context

    async def _execute(self, flow: Flow, trigger: TriggerSpec, variables: dict[str, Any]) -> Response:
        spec = {"id": trigger.id, "type": trigger.type, "variables": variables}
        context = self._flow_context(flow, spec)
        stub = Execution(new_id(), flow.namespace, flow.id, flow.revision, State.new(), trigger=spec)
        conditions = trigger.props.get("conditions") or ()
        if conditions:
            try:
                checked = ConditionContext(flow, self._render, utcnow(), stub, context)
                held = conditions_hold(conditions, checked)
            except ConditionError as error:
                self._report(f"Webhook trigger `{trigger.id}` of {flow.namespace}.{flow.id}: {error}")
                return _error(422, f"Invalid condition: {error}")
            if not held:
                return Response(204)
        try:
            inputs = self.engine.renderer.render_value(trigger.props.get("inputs") or {}, context)
            labels = _trigger_labels(self.engine.renderer.render_value(trigger.props.get("labels"), context))
            execution = self.engine.new_execution(flow, inputs, labels, trigger=spec)
        except (ExpressionError, InputError, TaskFailure) as error:
            return _error(422, f"Unable to render the webhook inputs: {error}")
        await self.engine.submit(flow, execution)
        if trigger.props.get("wait") is True:
            ended = await self._wait(execution)
            status = 500 if ended.state.current is StateType.FAILED else 200
            if trigger.props.get("returnOutputs") is True:
                return Response(status, dict(ended.outputs or {}))
            return Response(status, webhook_response(ended))
        return Response(200, webhook_response(execution))

    async def _wait(self, execution: Execution) -> Execution:
        """The ended execution, or the execution as it is once WAIT_SECONDS have passed."""
        try:
            ended: Execution = await asyncio.wait_for(self.engine.wait(execution.id), WAIT_SECONDS)
        except TimeoutError:
            current: Execution | None = await self.engine.execution(execution.id)
            return current if current is not None else execution
        return ended

    def _render(self, text: str, variables: Mapping[str, Any]) -> str:
        return str(self.engine.renderer.render(text, variables))

    def _report(self, message: str) -> None:
        _log.error(message)
        self.engine.events.publish(EngineError(message))


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read and drop what the client still sends, for a short while, before closing.

    Closing a socket with unread input makes the kernel reset the connection, and the client can
    lose the error answer it was about to read.
    """
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        deadline = asyncio.get_running_loop().time() + LINGER_SECONDS
        dropped = 0
        while dropped < MAX_BODY_BYTES:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            data = await asyncio.wait_for(reader.read(MAX_HEAD_BYTES), left)
            if not data:
                return
            dropped += len(data)


def webhook_response(execution: Execution) -> dict[str, Any]:
    """Kestra's WebhookResponse: the execution's identity, trigger, labels, outputs and state."""
    data = execution.to_json()
    return {
        "id": data["id"],
        "namespace": data["namespace"],
        "flowId": data["flowId"],
        "flowRevision": data["flowRevision"],
        "trigger": data["trigger"],
        "outputs": data["outputs"],
        "labels": data["labels"],
        "state": data["state"],
    }


def _body_value(text: str) -> Any:
    """A JSON object or array is decoded (as Kestra does); anything else stays text."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    return text


def _parameters(query: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        found.setdefault(name, []).append(value)
    return found


def _trigger_labels(value: Any) -> list[Label]:
    return labels_of(value) if value else []


__all__ = [
    "MAX_BODY_BYTES",
    "WEBHOOK",
    "BadRequest",
    "Request",
    "Response",
    "WebhookServer",
    "webhook_response",
]
