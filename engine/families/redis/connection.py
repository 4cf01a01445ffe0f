"""What every Redis task shares: the connection its `url` names, Kestra's serde types, and the
values a `from` property gives (durations and whole numbers are the plugin API's).

The client is `redis.asyncio`, imported when a task runs. Each task run opens one connection and
closes it when it ends (also when it is killed: the cancellation closes it on its way out); a
refused or silent server fails the task within `CONNECT_TIMEOUT`, naming the address, never the
password of the URL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tiercel.engine.plugin import (
    TaskContext,
    TaskFailure,
    ion_records,
    java_json,
    java_text,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

PACKAGE = "io.kestra.plugin.redis"
SERDE_TYPES = ("STRING", "JSON")
CONNECT_TIMEOUT = 10.0
# Lettuce's default command timeout: no Redis task here blocks on the server, so only a hung server
# reaches it.
COMMAND_TIMEOUT = 60.0


def address(url: str) -> str:
    """Where a Redis URL points, without its credentials (for messages)."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return parts.path
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    except ValueError:
        return "an unreadable URL"


@asynccontextmanager
async def connected(url: Any, name: str | None = None) -> AsyncIterator[Redis]:
    """A client on `url`, closed on the way out; the client's errors become task failures naming
    the server."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ConstantBackoff
    from redis.exceptions import RedisError, ResponseError

    if not isinstance(url, str) or not url.strip():
        raise TaskFailure("`url` is required: a Redis connection string such as redis://host:6379/0")
    where = address(url)
    try:
        client = aioredis.from_url(
            url.strip(),
            decode_responses=True,
            encoding_errors="replace",  # Lettuce's UTF-8 codec reads any bytes
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
            retry=Retry(ConstantBackoff(0.2), 1),
            client_name=name,
        )
    except ValueError as error:
        raise TaskFailure(f"`url` is not a Redis URL ({where}): {error}") from None
    try:
        async with client:
            yield client
    except ResponseError as error:
        text = str(error)
        if text.startswith("unknown command 'JSON."):
            text = f"the server lacks the RedisJSON module ({text})"
        raise TaskFailure(f"Redis at {where}: {text}") from None
    except RedisError as error:
        raise TaskFailure(f"Redis at {where}: {error}") from None
    except OSError as error:  # a socket failing outside the client's own wrapping
        raise TaskFailure(f"Redis at {where}: {error}") from None


async def guarded(command: Awaitable[Any]) -> Any:
    """Await a client command so that cancelling the caller always stops it: redis-py can swallow a
    cancellation that lands inside a command (redis/redis-py#2028), which would leave a killed task
    popping on. The command runs as a task of its own; the caller awaits it shielded, so the
    cancellation reaches the caller whatever the command does with its own."""
    running = asyncio.ensure_future(command)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        running.cancel()
        raise


def client_name(context: TaskContext) -> str:
    """The name a task run's connection shows in CLIENT LIST: whose it is."""
    return f"tiercel:{context.execution.id}:{context.task.id}"


# -- serde types ---------------------------------------------------------------------------------------------


def serde_type(value: Any) -> str:
    text = "STRING" if value is None else str(value).strip().upper()
    if text not in SERDE_TYPES:
        raise TaskFailure(f"`serdeType` {text}: must be one of {', '.join(SERDE_TYPES)}")
    return text


def serialize(serde: str, value: Any, what: str) -> str:
    """A value as Kestra's serde type stores it: STRING as Java prints it; JSON as JSON, a string
    being taken as JSON already (and refused when it is not)."""
    if serde == "STRING":
        return java_text(value)
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError as error:
            raise TaskFailure(f"{what} is not JSON, which serdeType JSON requires: {error}") from None
        return value
    return java_json(value)


def deserialize(serde: str, raw: Any, what: str) -> Any:
    """A stored value as the serde type reads it (None stays None)."""
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if serde == "STRING":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise TaskFailure(f"{what} is not JSON, which serdeType JSON requires: {error}") from None


# -- property values -----------------------------------------------------------------------------------------


def moment(name: str, value: Any) -> datetime | None:
    """A date-time with its offset (Java's ZonedDateTime), such as 2030-01-01T00:00:00Z."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value).strip().split("[")[0])
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise TaskFailure(
            f"`{name}` `{value}` is not a date-time with its offset such as 2030-01-01T00:00:00Z"
        )
    return parsed


def keys_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise TaskFailure("`keys` must be a list of keys")
    return [java_text(key) for key in value]


def ion_values(path: Path) -> Iterator[Any]:
    """The values of a Kestra Ion file, one a line, read as they come."""
    with path.open("rb") as handle:
        for _, value in ion_records(handle):
            yield value


def from_values(context: TaskContext, json_array: bool) -> Iterator[Any]:
    """The values of `from`: a list, or the kestra:// URI of an Ion file (and, when `json_array`,
    as ListPush reads it, a JSON array in a string)."""
    given = context.prop("from")
    if isinstance(given, str):
        text = given.strip()
        if json_array:
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                return iter(parsed)
        if not text.startswith("kestra://"):
            raise TaskFailure(
                "`from` must be a list of values or the kestra:// URI of an Ion file"
                + (" (or a JSON array)" if json_array else "")
                + f", not `{text[:200]}`"
            )
        return ion_values(context.stored_file(text))
    if isinstance(given, list):
        return iter(given)
    raise TaskFailure("`from` is required: a list of values or the kestra:// URI of an Ion file")
