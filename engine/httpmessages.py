"""What the HTTP server reads and answers: a request, its answer, and the checks of a request head
that h11 leaves to the server (the protocol version, the target, the body's framing and size)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import h11

MAX_BODY_BYTES = 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024
_MESSAGE_CHARS = 300


class BadRequest(Exception):
    """The request cannot be served; `status` and the message go back to the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    """One parsed request: header names are lower case, each with its values in order."""

    method: str
    target: str
    version: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The last value of a header, or None."""
        values = self.headers.get(name)
        return values[-1] if values else None

    @property
    def keep_alive(self) -> bool:
        """Whether the client lets the connection serve another request (HTTP/1.1 without `close`)."""
        tokens = {t.strip().lower() for v in self.headers.get("connection", ()) for t in v.split(",")}
        return self.version == "HTTP/1.1" and "close" not in tokens


@dataclass(frozen=True)
class Response:
    """An answer: a status, a body (JSON of any value; bytes as they are; None for none) and extra
    headers. Bytes are sent unmasked, as `content_type`.

    With `stream`, the body is what it yields instead, sent as it comes (chunked), until it ends or
    the client goes away (server-sent events).
    """

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    stream: AsyncIterator[bytes] | None = None


def error_response(status: int, message: str) -> Response:
    """A JSON error answer, `{"message": ...}`, as Kestra's API gives."""
    return Response(status, {"message": message})


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Head:
    method: str
    target: str
    version: str
    headers: dict[str, list[str]]


def next_event(protocol: h11.Connection) -> Any:
    try:
        return protocol.next_event()
    except h11.RemoteProtocolError as bad:
        raise BadRequest(bad.error_status_hint, f"Malformed request: {bad}") from None


def parse_head(event: h11.Request) -> Head:
    """Check what h11 leaves to the server: the protocol version, the target and the body framing."""
    version = event.http_version.decode("ascii", "replace")
    if version not in ("1.0", "1.1"):
        raise BadRequest(400, f"Unsupported protocol `HTTP/{version[:20]}`: use HTTP/1.1")
    target = event.target.decode("ascii")  # h11 accepts only visible ASCII in the request line
    if target.lower().startswith(("http://", "https://")):  # the absolute form a proxy may send
        split = urlsplit(target)
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
    if not target.startswith("/"):
        raise BadRequest(400, f"Malformed request target `{target[:100]}`: expected /path")
    headers: dict[str, list[str]] = {}
    for name, value in event.headers:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(400, "Malformed header: header values must be UTF-8 text") from None
        headers.setdefault(name.decode("ascii"), []).append(text)
    if "transfer-encoding" in headers and "content-length" in headers:
        raise BadRequest(400, "A request cannot have both Content-Length and Transfer-Encoding")
    lengths = headers.get("content-length")
    if lengths and int(lengths[0]) > MAX_BODY_BYTES:  # h11 has checked that it is a number
        raise BadRequest(
            413, f"Request body of {lengths[0]} bytes is larger than the limit of {MAX_BODY_BYTES}"
        )
    method = event.method.decode("ascii")
    return Head(method, target, f"HTTP/{version}", headers)


def short(message: str) -> str:
    return message if len(message) <= _MESSAGE_CHARS else message[:_MESSAGE_CHARS] + "…"


# The names the app imports them by (tiercel.engine): the HTTP server's request, answer and handler.
HttpRequest = Request
HttpResponse = Response
HttpHandler = Handler
