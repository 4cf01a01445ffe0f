"""Kestra's list and pub/sub tasks (`io.kestra.plugin.redis.list`, `.pubsub`): ListPush, ListPop and
Publish, and the consuming of a list that the list triggers share with ListPop.

ListPop takes Kestra's semantics as they are: it LPOPs `count` elements at a time and stops when the
list is empty, when `maxRecords` is reached (checked after each batch, so a batch may take it past)
or when `maxDuration` has passed; it never waits for elements to come.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tiercel.engine.plugin import TaskContext, TaskFailure, ion_dumps, seconds, settings_of, whole_number

from .connection import (
    client_name,
    connected,
    deserialize,
    from_values,
    guarded,
    serde_type,
    serialize,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

POP_SETTINGS = ("url", "key", "serdeType", "count", "maxRecords", "maxDuration")
_PUSH_BATCH = 500
_POP_BATCH = 100
# How long the realtime consumer waits before asking an empty list again (Kestra's 100 ms).
_IDLE = 0.1


@dataclass(frozen=True)
class PopSettings:
    """The rendered settings of ListPop and of the list triggers."""

    url: str
    key: str
    serde: str
    batch: int
    max_records: int | None
    max_duration: float | None

    @classmethod
    def of(cls, settings: Mapping[str, Any], bounded: bool = True) -> PopSettings:
        """Read and check `settings`; `bounded` (ListPop, Trigger) requires maxRecords or maxDuration.

        Raises:
            TaskFailure: A missing or malformed setting.
        """
        key = settings.get("key")
        if key is None or key == "":
            raise TaskFailure("`key` is required")
        max_records = whole_number("maxRecords", settings.get("maxRecords"), None, least=1)
        max_duration = seconds("maxDuration", settings.get("maxDuration"))
        if bounded and max_records is None and max_duration is None:
            raise TaskFailure("maxDuration or maxRecords must be set to avoid infinite loop")
        return cls(
            url=settings.get("url") or "",
            key=str(key),
            serde=serde_type(settings.get("serdeType")),
            batch=whole_number("count", settings.get("count"), _POP_BATCH, least=1) or _POP_BATCH,
            max_records=max_records,
            max_duration=max_duration,
        )


async def pop_into(client: Redis, settings: PopSettings, write: Callable[[Any], None]) -> int:
    """LPOP batches until the list is empty or a limit is reached, each value decoded and handed to
    `write`; return how many there were."""
    loop = asyncio.get_running_loop()
    deadline = None if settings.max_duration is None else loop.time() + settings.max_duration
    total = 0
    while True:
        batch = await guarded(client.lpop(settings.key, settings.batch)) or []
        for text in batch:
            write(deserialize(settings.serde, text, f"An element of list '{settings.key}'"))
            total += 1
        if not batch:
            return total
        if settings.max_records is not None and total >= settings.max_records:
            return total
        if deadline is not None and loop.time() > deadline:
            return total


async def pop_messages(settings: Mapping[str, Any], name: str | None = None) -> list[Any]:
    """The polling `list.Trigger`'s consuming: what ListPop would pop with these rendered settings
    (url, key, serdeType, count, maxRecords, maxDuration), as a list; empty when the list is.

    Raises:
        TaskFailure: Bad settings, or the server failing or refusing the connection.
    """
    parsed = PopSettings.of(settings)
    messages: list[Any] = []
    async with connected(parsed.url, name) as client:
        await pop_into(client, parsed, messages.append)
    return messages


async def listen(settings: Mapping[str, Any], name: str | None = None) -> AsyncIterator[Any]:
    """The `list.RealtimeTrigger`'s consuming: each element of the list (url, key, serdeType) as it
    is popped, one at a time, asking again every 100 ms while the list is empty; it runs until the
    caller stops iterating or cancels it, which closes the connection."""
    parsed = PopSettings.of(settings, bounded=False)
    async with connected(parsed.url, name) as client:
        while True:
            text = await guarded(client.lpop(parsed.key))
            if text is None:
                await asyncio.sleep(_IDLE)
                continue
            yield deserialize(parsed.serde, text, f"An element of list '{parsed.key}'")


async def list_pop(context: TaskContext) -> Mapping[str, Any]:
    settings = PopSettings.of(settings_of(context, POP_SETTINGS))
    with tempfile.TemporaryDirectory(prefix="tiercel-redis-") as folder:
        target = Path(folder) / "list.ion"
        with target.open("w", encoding="utf-8", newline="\n") as out:

            def write(value: Any) -> None:
                out.write(ion_dumps(value))
                out.write("\n")

            async with connected(settings.url, client_name(context)) as client:
                total = await pop_into(client, settings, write)
        context.metric("counter", "popped.records.count", total, {"key": settings.key})
        return {"count": total, "uri": context.put_file(target.name, target)}


def _batches(values: Iterable[str], size: int) -> Iterator[list[str]]:
    items = iter(values)
    while batch := list(islice(items, size)):
        yield batch


def _serialized(context: TaskContext, json_array: bool) -> Iterator[str]:
    serde = serde_type(context.prop("serdeType"))
    for index, value in enumerate(from_values(context, json_array), start=1):
        yield serialize(serde, value, f"`from` value {index}")


async def list_push(context: TaskContext) -> Mapping[str, Any]:
    """LPUSH the values of `from`, `batchSize` at a time (so the list holds them last first)."""
    key = context.prop("key")
    if key is None or key == "":
        raise TaskFailure("`key` is required")
    size = whole_number("batchSize", context.prop("batchSize"), _PUSH_BATCH, least=1) or _PUSH_BATCH
    values = _serialized(context, json_array=True)
    total = 0
    async with connected(context.prop("url"), client_name(context)) as client:
        for batch in _batches(values, size):
            await guarded(client.lpush(str(key), *batch))
            total += len(batch)
    context.metric("counter", "inserted.records.count", total)
    return {"count": total}


async def publish(context: TaskContext) -> Mapping[str, Any]:
    """PUBLISH each value of `from` to `channel` (pipelined); `count` is the values published,
    whoever received them."""
    channel = context.prop("channel")
    if channel is None or channel == "":
        raise TaskFailure("`channel` is required")
    values = _serialized(context, json_array=False)
    total = 0
    async with connected(context.prop("url"), client_name(context)) as client:
        for batch in _batches(values, _PUSH_BATCH):
            async with client.pipeline(transaction=False) as pipe:
                for value in batch:
                    pipe.publish(str(channel), value)
                await guarded(pipe.execute())
            total += len(batch)
    context.metric("counter", "published.records.count", total)
    return {"count": total}
