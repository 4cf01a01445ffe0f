"""Basic authentication of the API, as Kestra OSS has it: `Authorization: Basic base64(user:password)`
on every request, a 401 with `WWW-Authenticate: Basic realm="Kestra"` and no body otherwise.

The server listens on the loopback interface by default, where only this machine's users reach it
and the API is open. Beyond it, credentials are required: without them the API answers 403 and
says how to set them (the webhooks, `/metrics` and `/health` stay open, as in Kestra).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
from dataclasses import dataclass

from .asgi import ASGIApp, Receive, Scope, Send

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
    """ASGI middleware: every request carries the credentials, or is refused."""

    def __init__(self, app: ASGIApp, credentials: Credentials | None, open_api: bool) -> None:
        self.app = app
        self.credentials = credentials
        self.open_api = open_api  # loopback without credentials: nothing to check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.credentials is None and self.open_api):
            await self.app(scope, receive, send)
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
        headers = dict(scope.get("headers") or ())
        header = headers.get(b"authorization")
        if self.credentials.accepts(header.decode("latin-1") if header else None):
            await self.app(scope, receive, send)
            return
        await _answer(send, 401, [(b"www-authenticate", b'Basic realm="Kestra"')], b"")


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
