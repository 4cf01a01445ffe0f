"""A local control channel: commands reach the engine that owns a database through a Unix socket.

The socket sits beside the database (`tiercel.db.sock`, mode 0600), so only the same user can
drive the engine. One request per connection: a JSON line in, a JSON line out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_REQUEST_BYTES = 1 << 20


def socket_path(db: Path) -> Path:
    return db.with_name(db.name + ".sock")


class ControlServer:
    """Serves requests with `handler` until stopped."""

    def __init__(self, db: Path, handler: Handler) -> None:
        self.path = socket_path(db)
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            if len(line) > MAX_REQUEST_BYTES:
                reply: dict[str, Any] = {"ok": False, "error": "request too large"}
            else:
                try:
                    request = json.loads(line)
                    reply = await self.handler(request) if isinstance(request, dict) else {}
                except json.JSONDecodeError:
                    reply = {"ok": False, "error": "the request is not JSON"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def send(db: Path, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to the engine owning `db`; raise OSError when none listens."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(socket_path(db))), timeout)
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    reply = json.loads(line) if line else {"ok": False, "error": "no answer from the engine"}
    return reply if isinstance(reply, dict) else {"ok": False, "error": "bad answer from the engine"}
