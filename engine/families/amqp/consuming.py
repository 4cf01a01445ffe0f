"""Consuming a queue: the Consume task, and the functions the AMQP triggers call.

As Kestra's consumer: each message is written, then acknowledged (unless `autoAck`), and the
consumer stops once `maxRecords` messages are in or `maxDuration` has passed; without a
`maxDuration` it also stops one minute after it started, where Kestra's consumer gives up waiting.
Messages delivered but not taken (the prefetch) go back to the queue when the channel closes, and a
body that serdeType JSON cannot read is put back (NACK, requeued) and fails the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tiercel.engine.plugin import TaskContext, TaskFailure, ion_dumps, seconds, settings_of, whole_number

from .connection import (
    CONNECTION_PROPERTIES,
    OPERATION_TIMEOUT,
    Broker,
    channel,
    switch,
)
from .messages import record_of, serde_type

if TYPE_CHECKING:
    import aiormq.abc

CONSUME_SETTINGS = CONNECTION_PROPERTIES | {
    "queue",
    "consumerTag",
    "serdeType",
    "autoAck",
    "maxRecords",
    "maxDuration",
}
# Kestra's consumer waits at most this long for its end condition when no maxDuration says.
KESTRA_WAIT = 60.0
_PREFETCH = 250


@dataclass(frozen=True)
class ConsumeSettings:
    """The rendered settings of Consume and of the AMQP triggers."""

    broker: Broker
    queue: str
    consumer_tag: str
    serde: str
    auto_ack: bool
    max_records: int | None
    max_duration: float | None

    @classmethod
    def of(cls, settings: Mapping[str, Any], bounded: bool = True) -> ConsumeSettings:
        """Read and check `settings`; `bounded` (Consume, Trigger) requires maxRecords or maxDuration.

        Raises:
            TaskFailure: A missing or malformed setting.
        """
        max_records = whole_number("maxRecords", settings.get("maxRecords"), least=1)
        max_duration = seconds("maxDuration", settings.get("maxDuration"))
        if bounded and max_records is None and max_duration is None:
            raise TaskFailure("maxDuration or maxRecords must be set to avoid infinite loop")
        queue = settings.get("queue")
        if queue is None or queue == "":
            raise TaskFailure("`queue` is required")
        return cls(
            broker=Broker.of(settings),
            queue=str(queue),
            consumer_tag=str(settings.get("consumerTag") or "Kestra"),
            serde=serde_type(settings.get("serdeType")),
            auto_ack=switch("autoAck", settings.get("autoAck"), False),
            max_records=max_records,
            max_duration=max_duration,
        )


async def _next(
    inbox: asyncio.Queue[aiormq.abc.DeliveredMessage], closing: asyncio.Future[Any], timeout: float | None
) -> aiormq.abc.DeliveredMessage | None:
    """The next delivery; None when `timeout` passes first. The channel closing raises its reason."""
    getter = asyncio.ensure_future(inbox.get())
    try:
        await asyncio.wait({getter, closing}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    if closing.done():
        closing.result()  # the broker's reason, raised
        raise TaskFailure("The broker closed the channel")
    return None


async def _subscribe(
    amqp: aiormq.abc.AbstractChannel, settings: ConsumeSettings, prefetch: int
) -> asyncio.Queue[aiormq.abc.DeliveredMessage]:
    inbox: asyncio.Queue[aiormq.abc.DeliveredMessage] = asyncio.Queue()

    async def deliver(message: aiormq.abc.DeliveredMessage) -> None:
        inbox.put_nowait(message)

    if not settings.auto_ack:  # with autoAck the broker sends as fast as it can, as Kestra's consumer
        await amqp.basic_qos(prefetch_count=prefetch, timeout=OPERATION_TIMEOUT)
    await amqp.basic_consume(
        settings.queue,
        deliver,
        no_ack=settings.auto_ack,
        consumer_tag=settings.consumer_tag,
        timeout=OPERATION_TIMEOUT,
    )
    return inbox


async def _take(
    amqp: aiormq.abc.AbstractChannel, settings: ConsumeSettings, message: aiormq.abc.DeliveredMessage
) -> dict[str, Any]:
    """The record of a delivery; one that cannot be read goes back to the queue and fails the run."""
    try:
        return record_of(message, settings.serde)
    except ValueError as error:
        if not settings.auto_ack and message.delivery_tag is not None:
            with contextlib.suppress(Exception):
                await amqp.basic_nack(message.delivery_tag, requeue=True)
        raise TaskFailure(
            f"A message of queue `{settings.queue}` is not JSON, which serdeType JSON requires: {error}"
        ) from None


async def consume_into(settings: ConsumeSettings, write: Callable[[dict[str, Any]], None]) -> int:
    """Consume until an end condition, each message's record handed to `write` before it is
    acknowledged; return how many were taken."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (settings.max_duration if settings.max_duration is not None else KESTRA_WAIT)
    prefetch = min(settings.max_records or _PREFETCH, _PREFETCH)
    total = 0
    async with channel(settings.broker) as amqp:
        closing = amqp.closing
        inbox = await _subscribe(amqp, settings, prefetch)
        while settings.max_records is None or total < settings.max_records:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            message = await _next(inbox, closing, remaining)
            if message is None:
                break
            write(await _take(amqp, settings, message))
            if not settings.auto_ack and message.delivery_tag is not None:
                await amqp.basic_ack(message.delivery_tag)
            total += 1
        with contextlib.suppress(Exception):
            await amqp.basic_cancel(settings.consumer_tag, timeout=OPERATION_TIMEOUT)
        closing.cancel()
    return total


async def consume_messages(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The polling `Trigger`'s consuming: the records Consume would store with these rendered settings
    (host/port/username/password/virtualHost or url, queue, consumerTag, serdeType, autoAck,
    maxRecords, maxDuration), as a list; empty when the queue had nothing.

    Raises:
        TaskFailure: Bad settings, a refused connection, a missing queue, an unreadable body.
    """
    records: list[dict[str, Any]] = []
    await consume_into(ConsumeSettings.of(settings), records.append)
    return records


async def listen(settings: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The `RealtimeTrigger`'s consuming: each message's record as it comes (acknowledged once the
    caller has taken it, as Kestra acknowledges after emitting the execution), until the caller
    stops iterating or cancels it, which closes the connection. Needs no maxRecords/maxDuration."""
    parsed = ConsumeSettings.of(settings, bounded=False)
    async with channel(parsed.broker) as amqp:
        closing = amqp.closing
        try:
            inbox = await _subscribe(amqp, parsed, _PREFETCH)
            while True:
                message = await _next(inbox, closing, None)
                if message is None:
                    continue
                yield await _take(amqp, parsed, message)
                if not parsed.auto_ack and message.delivery_tag is not None:
                    await amqp.basic_ack(message.delivery_tag)
        finally:
            closing.cancel()


async def consume(context: TaskContext) -> Mapping[str, Any]:
    settings = ConsumeSettings.of(settings_of(context, CONSUME_SETTINGS))
    with tempfile.TemporaryDirectory(prefix="tiercel-amqp-") as folder:
        target = Path(folder) / "messages.ion"
        with target.open("w", encoding="utf-8", newline="\n") as out:

            def write(record: dict[str, Any]) -> None:
                out.write(ion_dumps(record))
                out.write("\n")

            total = await consume_into(settings, write)
        context.metric("counter", "consumed.records", total, {"queue": settings.queue})
        return {"uri": context.put_file(target.name, target), "count": total}
