"""A local control channel: commands reach the engine that owns a database through a Unix socket.

The socket sits beside the database (`tiercel.db.sock`, mode 0600), so only the same user can
drive the engine. One request per connection: a JSON line in, a JSON line out. Both sides read with
limits sized to the protocol (a request is small, a reply such as the trigger list can be large), and
every failure, on either side, becomes an answer of the form {"ok": false, "error": message}.
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
MAX_REPLY_BYTES = 16 << 20
# A client must send its request line within this time, or the connection is closed.
READ_SECONDS = 10.0


def socket_path(db: Path) -> Path:
    return db.with_name(db.name + ".sock")


def _failure(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def _mib(size: int) -> str:
    return f"{size / (1 << 20):g} MiB"


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
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST_BYTES
            )
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
            reply = await self._answer(reader)
            writer.write(_encode_reply(reply))
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the engine is stopping
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), READ_SECONDS)
        except asyncio.LimitOverrunError:
            return _failure(f"request too large: over {_mib(MAX_REQUEST_BYTES)}")
        except asyncio.IncompleteReadError as error:
            line = error.partial  # a request without the final newline is still read
        except TimeoutError:
            return _failure(f"no complete request within {READ_SECONDS:g} s")
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _failure("the request is not JSON")
        if not isinstance(request, dict):
            return _failure("the request must be a JSON object")
        try:
            reply = await self.handler(request)
        except Exception as error:  # a bad request must get an answer, never a silent close
            return _failure(f"the engine could not carry out `{request.get('command')}`: {error}")
        return reply if isinstance(reply, dict) else _failure("the engine gave no answer")


def _encode_reply(reply: dict[str, Any]) -> bytes:
    try:
        data = json.dumps(reply, default=str).encode()
    except (TypeError, ValueError) as error:
        data = json.dumps(_failure(f"the answer could not be encoded: {error}")).encode()
    if len(data) >= MAX_REPLY_BYTES:
        data = json.dumps(_failure(f"the answer is larger than {_mib(MAX_REPLY_BYTES)}")).encode()
    return data + b"\n"


async def send(db: Path, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to the engine owning `db` and return its answer.

    Raises:
        OSError: No engine listens on the socket (or it did not accept the connection in time).
    Every other failure (no answer, a too large or malformed answer) is returned as
    {"ok": False, "error": message}.
    """
    data = json.dumps(request).encode() + b"\n"
    if len(data) > MAX_REQUEST_BYTES:
        return _failure(f"request too large: over {_mib(MAX_REQUEST_BYTES)}")
    reader, writer = await asyncio.wait_for(
        asyncio.open_unix_connection(str(socket_path(db)), limit=MAX_REPLY_BYTES), timeout
    )
    try:
        writer.write(data)
        await writer.drain()
        line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout)
    except asyncio.LimitOverrunError:
        return _failure(f"the engine's answer is larger than {_mib(MAX_REPLY_BYTES)}")
    except asyncio.IncompleteReadError as error:
        line = error.partial
    except TimeoutError:
        return _failure(f"the engine on {db} did not answer within {timeout:g} s")
    except ConnectionError as error:
        return _failure(f"the engine on {db} closed the connection ({error})")
    finally:
        writer.close()
    if not line.strip():
        return _failure("no answer from the engine")
    try:
        reply = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _failure("bad answer from the engine: not JSON")
    return reply if isinstance(reply, dict) else _failure("bad answer from the engine")
