"""Basic authentication of the API, as Kestra OSS has it: `Authorization: Basic base64(user:password)`
on every request, a 401 with `WWW-Authenticate: Basic realm="Kestra"` and no body otherwise.

The server listens on the loopback interface by default, where only this machine's users reach it
and the API is open. Beyond it, credentials are required: without them the API answers 403 and
says how to set them (the webhooks, `/metrics` and `/health` stay open, as in Kestra).

A web page in a browser on this machine can send requests to a loopback port too (a form posted
across sites, or a name it controls resolved to 127.0.0.1): the API has no page of its own, so a
request that a browser sends for another site (an `Origin` or `Sec-Fetch-Site` saying so) is
refused, and an open API answers only requests addressed to a loopback name.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
from dataclasses import dataclass

from tiercel.engine import (
    OWNER,
    Access,
    HttpRequest,
    HttpResponse,
    NamespaceChain,
    Permission,
    Principal,
    WebhookGate,
)

from .asgi import ASGIApp, Receive, Scope, Send
from .users import Users

# Named in the refusal; `tiercel server` reads it.
CREDENTIALS_VARIABLE = "TIERCEL_API_USER"


@dataclass(frozen=True)
class Credentials:
    """The user name and password the API accepts."""

    user: str
    password: str

    @classmethod
    def parse(cls, text: str) -> Credentials:
        """`user:password` (the password may hold colons).

        Raises:
            ValueError: No colon, or an empty user or password.
        """
        user, colon, password = text.partition(":")
        if not colon or not user or not password:
            raise ValueError("API credentials must be USER:PASSWORD, both non-empty")
        return cls(user, password)

    def accepts(self, header: str | None) -> bool:
        """Whether an Authorization header carries these credentials (compared in constant time)."""
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{self.user}:{self.password}".encode()
        return hmac.compare_digest(given, expected)


def is_loopback(host: str) -> bool:
    """Whether a listening address is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BasicAuth:
    """ASGI middleware: every request carries the credentials, or is refused. The person it comes
    from is put in the scope's state (`principal`): a user of the users file, else the owner."""

    def __init__(
        self, app: ASGIApp, credentials: Credentials | None, open_api: bool, users: Users | None = None
    ) -> None:
        self.app = app
        self.credentials = credentials
        self.users = users
        self.open_api = open_api and users is None  # loopback without credentials: nothing to check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers") or ()
        }
        refusal = _from_a_browser_page(headers, loopback_only=self.credentials is None and self.users is None)
        if refusal:
            await _answer(
                send, 403, [(b"content-type", b"application/json")], json.dumps({"message": refusal}).encode()
            )
            return
        if self.credentials is None and self.open_api:
            await self.app(scope, receive, send)
            return
        if self.users is not None:
            principal = await authenticate(self.users, self.credentials, headers.get("authorization"))
            if principal is not None:
                scope.setdefault("state", {})["principal"] = principal
                await self.app(scope, receive, send)
                return
            await _answer(send, 401, [(b"www-authenticate", b'Basic realm="Kestra"')], b"")
            return
        if self.credentials is None:
            message = (
                "The API is off: this server listens beyond the loopback interface without credentials; "
                f"start it with {CREDENTIALS_VARIABLE}=user:password"
            )
            await _answer(
                send, 403, [(b"content-type", b"application/json")], json.dumps({"message": message}).encode()
            )
            return
        if self.credentials.accepts(headers.get("authorization")):
            await self.app(scope, receive, send)
            return
        await _answer(send, 401, [(b"www-authenticate", b'Basic realm="Kestra"')], b"")


async def authenticate(users: Users, credentials: Credentials | None, header: str | None) -> Principal | None:
    """Who an Authorization header names: a user of the file, the owner for the server's own
    credentials beside it, or None."""
    principal = await users.authenticate(header)
    if principal is None and credentials is not None and credentials.accepts(header):
        principal = OWNER
    return principal


def webhook_gate(users: Users, credentials: Credentials | None, chain: NamespaceChain) -> WebhookGate:
    """A server with users lets a webhook call through only from a user who may run the flow's
    namespace (EXECUTE): 401 without their credentials, 403 saying what lacks."""

    async def gate(request: HttpRequest, namespace: str) -> HttpResponse | None:
        principal = await authenticate(users, credentials, request.header("authorization"))
        if principal is None:
            return HttpResponse(401, None, {"WWW-Authenticate": 'Basic realm="Kestra"'})
        refused = Access(chain, principal).refusal(namespace, Permission.EXECUTE)
        return HttpResponse(403, {"message": str(refused)}) if refused is not None else None

    return gate


def _host_name(authority: str) -> str:
    """The host of a `host[:port]` (an IPv6 address in brackets), lower case."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0].lower()
    return authority.rpartition(":")[0].lower() if authority.count(":") == 1 else authority.lower()


def _from_a_browser_page(headers: dict[str, str], *, loopback_only: bool) -> str | None:
    """Why a request looks sent by a web page of another site, or None."""
    if headers.get("sec-fetch-site", "").lower() == "cross-site":
        return "Cross-site requests from a browser are refused"
    host = _host_name(headers.get("host", ""))
    origin = headers.get("origin")
    if origin is not None:  # `null` too: a sandboxed page, a file
        origin_host = _host_name(origin.partition("://")[2].partition("/")[0])
        if origin_host != host:
            return f"Requests from the web page of {origin[:100]} are refused"
    if loopback_only and host and not is_loopback(host):
        return f"This API answers only requests to a loopback address, not to `{host[:100]}`"
    return None


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
