"""What every NATS task shares: Kestra's connection properties and the messages of `from`.

The tasks read their rendered properties into one plain mapping (`settings`) so that the consume
logic can be called the same way by the tasks and by the triggers. The client library, nats-py, is
imported where a connection is opened, never when the family loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tiercel.engine.plugin import TaskContext, TaskFailure, ion_records

if TYPE_CHECKING:
    from nats.aio.client import Client

CONNECTION = frozenset({"url", "username", "password", "token", "creds"})
# Connecting (TCP, then the server's INFO/PONG) must answer within this many seconds.
CONNECT_TIMEOUT = 5.0


def text(settings: Mapping[str, Any], name: str, required: bool = True) -> str | None:
    value = settings.get(name)
    if value is None or str(value).strip() == "":
        if required:
            raise TaskFailure(f"`{name}` is required")
        return None
    return str(value)


def address(url: str) -> str:
    """host:port of a NATS URL, without the credentials it may hold."""
    try:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        return f"{parts.hostname}:{parts.port or 4222}"
    except ValueError:
        return url


def failure(url: str, error: BaseException) -> TaskFailure:
    """A client error as a task failure naming the server."""
    detail = str(error).strip() or type(error).__name__
    if not detail.startswith("nats:"):
        detail = f"{type(error).__name__}: {detail}"
    return TaskFailure(f"NATS at {address(url)}: {detail}")


@asynccontextmanager
async def connected(settings: Mapping[str, Any]) -> AsyncIterator[Client]:
    """A connection made with Kestra's properties: `url` (nats://host:port, or nats://token@host:port),
    `username` with `password`, `token`, or `creds` (a credentials file's content); closed on leaving.

    A server that cannot be reached fails at once (no reconnection loop), naming its address."""
    import nats
    from nats.aio.client import RawCredentials

    url = text(settings, "url")
    assert url is not None
    seen: list[BaseException] = []

    async def remember(error: Exception) -> None:  # nats-py's own callback would print a traceback
        seen.append(error)

    options: dict[str, Any] = {}
    username, password = settings.get("username"), settings.get("password")
    if username is not None and password is not None:
        options.update(user=str(username), password=str(password))
    if settings.get("token") is not None:
        options["token"] = str(settings["token"])
    if settings.get("creds") is not None:
        options["user_credentials"] = RawCredentials(str(settings["creds"]))
    try:
        client = await asyncio.wait_for(
            nats.connect(
                servers=[url],
                allow_reconnect=False,
                # nats-py tries a server again before giving up on it (0 would mean forever).
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                connect_timeout=int(CONNECT_TIMEOUT),
                error_cb=remember,
                **options,
            ),
            CONNECT_TIMEOUT * 2,
        )
    except TimeoutError:
        raise TaskFailure(
            f"NATS at {address(url)}: no NATS server answered within {CONNECT_TIMEOUT:g}s"
        ) from None
    except Exception as error:
        raise failure(url, seen[-1] if seen and "NoServers" in type(error).__name__ else error) from None
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):  # best effort: the work is done, or failed already
            await asyncio.wait_for(client.close(), CONNECT_TIMEOUT)


# -- the messages of `from` ----------------------------------------------------------------------------


def messages_of(context: TaskContext, value: Any) -> Iterator[Mapping[str, Any]]:
    """Kestra's `Data.From`: one message (a map), a list of them, or the kestra:// URI of an Ion file
    with one message per line (each rendered, as Kestra renders them)."""
    if isinstance(value, Mapping):
        yield value
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise TaskFailure(f"`from[{index}]` must be a message (a map with `data`, `headers`)")
            yield item
        return
    if not isinstance(value, str) or not value.startswith("kestra://"):
        raise TaskFailure(
            "`from` must be a message, a list of messages or the kestra:// URI of an Ion file, "
            f"not `{str(value)[:200]}`"
        )
    with context.stored_file(value).open("rb") as handle:
        for number, item in ion_records(handle):
            if not isinstance(item, Mapping):
                raise TaskFailure(f"`from` line {number} is not a message (a map with `data`, `headers`)")
            yield context.render(item)


def payload(message: Mapping[str, Any]) -> bytes:
    """A message's `data`: text as UTF-8, anything else as compact JSON (as Kestra's Request sends it)."""
    data = message.get("data")
    if data is None:
        return b""
    if isinstance(data, str):
        return data.encode("utf-8")
    return json.dumps(data, separators=(",", ":"), default=str).encode("utf-8")


class RepeatedHeaders:
    """Header lines nats-py writes one by one: `items()` may repeat a name, so a header with several
    values (a list in Kestra's `headers`) is sent as several lines, as Kestra's client sends it."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)


def headers(message: Mapping[str, Any]) -> RepeatedHeaders | None:
    given = message.get("headers")
    if given is None:
        return None
    if not isinstance(given, Mapping):
        raise TaskFailure("a message's `headers` must map header names to a value or a list of values")
    pairs: list[tuple[str, str]] = []
    for name, value in given.items():
        values = value if isinstance(value, list) else [value]
        pairs.extend((str(name), "" if item is None else str(item)) for item in values)
    return RepeatedHeaders(pairs) if pairs else None
