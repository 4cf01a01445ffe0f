"""Kestra's AMQP tasks besides Consume: Publish, and the admin tasks CreateQueue, DeclareExchange
and QueueBind (each declaration idempotent, as AMQP's are: re-declaring with other settings fails
with the broker's PRECONDITION_FAILED)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tiercel.engine.plugin import (
    LogLevel,
    TaskContext,
    TaskFailure,
    ion_records,
    settings_of,
)

from .connection import (
    CONNECTION_PROPERTIES,
    OPERATION_TIMEOUT,
    Broker,
    arguments,
    channel,
    required_text,
    switch,
)
from .messages import outgoing, serde_type

EXCHANGE_TYPES = ("DIRECT", "FANOUT", "TOPIC", "HEADERS")


def _broker(context: TaskContext) -> Broker:
    return Broker.of(settings_of(context, CONNECTION_PROPERTIES))


def _ion_records(path: Path) -> Iterator[Any]:
    with path.open("rb") as handle:
        for _, value in ion_records(handle):
            yield value


def _messages(context: TaskContext) -> Iterator[Any]:
    """Kestra's `Data.From`: one message (a map), a list of them, or the kestra:// URI of an Ion
    file of them, one a line."""
    given = context.prop("from")
    if isinstance(given, str):
        if not given.strip().startswith("kestra://"):
            raise TaskFailure(
                "`from` must be a message (a map with `data`), a list of them or the kestra:// URI "
                f"of an Ion file of them, not `{given[:200]}`"
            )
        return _ion_records(context.stored_file(given.strip()))
    if isinstance(given, Mapping):
        return iter([given])
    if isinstance(given, list):
        return iter(given)
    raise TaskFailure("`from` is required: a message (a map with `data`), a list of them or a kestra:// URI")


async def publish(context: TaskContext) -> Mapping[str, Any]:
    """Publish each message of `from` to `exchange` with `routingKey` (not mandatory: a message no
    queue is bound for is dropped by the broker, as with Kestra)."""
    exchange = context.prop("exchange")
    if exchange is None:
        raise TaskFailure('`exchange` is required (the default exchange is "")')
    routing_key = str(context.prop("routingKey") or "")
    serde = serde_type(context.prop("serdeType"))
    broker = _broker(context)
    messages = _messages(context)
    count = 0
    warned: set[str] = set()

    def warn(fields: str) -> None:  # once for each set of unknown fields, not once a message
        if fields not in warned:
            warned.add(fields)
            context.log(LogLevel.WARN, f"`from`: {fields} ignored: not a property of an AMQP message")

    async with channel(broker) as amqp:
        for index, item in enumerate(messages, start=1):
            body, properties = outgoing(item, serde, f"`from` message {index}", warn)
            await amqp.basic_publish(
                body,
                exchange=str(exchange),
                routing_key=routing_key,
                properties=properties,
                timeout=OPERATION_TIMEOUT,
            )
            count += 1
        # A publish to a missing exchange closes the channel only after the fact: a round trip tells.
        await amqp.basic_qos(prefetch_count=0, timeout=OPERATION_TIMEOUT)
    context.metric("counter", "published.records", count)
    return {"messagesCount": count}


async def create_queue(context: TaskContext) -> Mapping[str, Any]:
    name = required_text(context, "name")
    async with channel(_broker(context)) as amqp:
        await amqp.queue_declare(
            name,
            durable=switch("durability", context.prop("durability"), True),
            exclusive=switch("exclusive", context.prop("exclusive"), False),
            auto_delete=switch("autoDelete", context.prop("autoDelete"), False),
            arguments=arguments(context),
            timeout=OPERATION_TIMEOUT,
        )
    return {"queue": name}


async def declare_exchange(context: TaskContext) -> Mapping[str, Any]:
    name = required_text(context, "name")
    kind = str(context.prop("exchangeType") or "DIRECT").strip().upper()
    if kind not in EXCHANGE_TYPES:
        raise TaskFailure(f"`exchangeType` {kind}: must be one of {', '.join(EXCHANGE_TYPES)}")
    async with channel(_broker(context)) as amqp:
        await amqp.exchange_declare(
            name,
            exchange_type=kind.lower(),
            durable=switch("durability", context.prop("durability"), True),
            auto_delete=switch("autoDelete", context.prop("autoDelete"), False),
            internal=switch("internal", context.prop("internal"), False),
            arguments=arguments(context),
            timeout=OPERATION_TIMEOUT,
        )
    return {"exchange": name}


async def queue_bind(context: TaskContext) -> Mapping[str, Any]:
    queue = required_text(context, "queue")
    exchange = required_text(context, "exchange")
    async with channel(_broker(context)) as amqp:
        await amqp.queue_bind(
            queue,
            exchange,
            routing_key=str(context.prop("routingKey") or ""),
            arguments=arguments(context),
            timeout=OPERATION_TIMEOUT,
        )
    return {"queue": queue, "exchange": exchange}
