"""Kestra's core NATS tasks: Produce (publish messages), Request (request/reply) and Consume (pull a
JetStream stream with an explicitly acknowledged consumer).

`consume(settings)` and `iter_messages(settings)` are the consume logic the polling `Trigger` and the
`RealtimeTrigger` are meant to call, with the same rendered settings as the Consume task.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncGenerator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from tiercel.engine.plugin import (
    LogLevel,
    TaskContext,
    TaskFailure,
    ion_dumps,
    seconds,
    settings_of,
    whole_number,
)

from .common import (
    CONNECTION,
    address,
    connected,
    failure,
    headers,
    messages_of,
    payload,
    text,
)

PRODUCE_PROPERTIES = CONNECTION | {"subject", "from"}
REQUEST_PROPERTIES = CONNECTION | {"subject", "from", "requestTimeout"}
CONSUME_PROPERTIES = CONNECTION | {
    "subject",
    "durableId",
    "since",
    "pollDuration",
    "batchSize",
    "maxRecords",
    "maxDuration",
    "deliverPolicy",
}
# Kestra's DeliverPolicy names (jnats' enum) -> the JetStream API's.
DELIVER_POLICIES = {
    "all": "all",
    "last": "last",
    "new": "new",
    "bystartsequence": "by_start_sequence",
    "bystarttime": "by_start_time",
    "lastpersubject": "last_per_subject",
}
# How long a server answer of the JetStream API (a consumer's creation, its deletion) may take.
_API_TIMEOUT = 10.0


async def produce(context: TaskContext) -> Mapping[str, Any]:
    """Produce: every message of `from` published to `subject`, then a flush so that the server has
    them all before the connection closes; `messagesCount`."""
    settings = settings_of(context, PRODUCE_PROPERTIES)
    subject = text(settings, "subject")
    assert subject is not None
    if "from" not in settings:
        raise TaskFailure("`from` is required")
    count = 0
    async with connected(settings) as client:
        try:
            for message in messages_of(context, settings["from"]):
                sent = headers(message)
                await client.publish(subject, payload(message), headers=cast(dict[str, str] | None, sent))
                count += 1
            await client.flush(timeout=5)
        except TaskFailure:
            raise
        except Exception as error:
            raise failure(settings["url"], error) from None
    return {"messagesCount": count}


async def request(context: TaskContext) -> Mapping[str, Any]:
    """Request: the first message of `from` sent to `subject`; the reply's text as `response`, or
    null when nobody answers within `requestTimeout` (PT5S)."""
    from nats.errors import NoRespondersError

    settings = settings_of(context, REQUEST_PROPERTIES)
    subject = text(settings, "subject")
    assert subject is not None
    timeout = seconds("requestTimeout", settings.get("requestTimeout"), 5.0)
    assert timeout is not None
    message = next(messages_of(context, settings.get("from")), None)
    if message is None:
        raise TaskFailure("`from` holds no message to send")
    async with connected(settings) as client:
        try:
            sent = cast(dict[str, str] | None, headers(message))
            reply = await client.request(subject, payload(message), timeout=timeout, headers=sent)
        except (NoRespondersError, TimeoutError) as error:
            context.log(LogLevel.WARN, f"No reply on `{subject}`: {error}")
            return {"response": None}
        except Exception as error:
            raise failure(settings["url"], error) from None
    return {"response": reply.data.decode("utf-8", errors="replace")}


# -- consuming ------------------------------------------------------------------------------------------


def _deliver_policy(settings: Mapping[str, Any]) -> str:
    given = settings.get("deliverPolicy")
    if given is None:
        # `since` alone means "from then on": the server refuses a start time with the All policy.
        return "by_start_time" if settings.get("since") is not None else "all"
    key = str(given).strip().replace("_", "").lower()
    if key not in DELIVER_POLICIES:
        names = "All, Last, New, ByStartSequence, ByStartTime, LastPerSubject"
        raise TaskFailure(f"`deliverPolicy` `{given}` is not one of {names}")
    return DELIVER_POLICIES[key]


def _since(settings: Mapping[str, Any]) -> datetime | None:
    value = settings.get("since")
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise TaskFailure(f"`since` `{value}` is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise TaskFailure(f"`since` `{value}` needs a zone offset (Z, +02:00)")
    return moment


def _record(message: Any) -> dict[str, Any]:
    """A message as Kestra's Consume stores it: subject, headers (name -> values), data, timestamp."""
    given = message.headers or {}
    return {
        "subject": message.subject,
        "headers": {str(name): [str(value)] for name, value in given.items()},
        "data": message.data.decode("utf-8", errors="replace"),
        "timestamp": message.metadata.timestamp,
    }


async def iter_messages(settings: Mapping[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    """The messages of the JetStream stream bound to `subject`, each acknowledged once yielded.

    Settings (rendered, Kestra's names): the connection's, `subject`, `durableId` (a durable consumer
    that resumes where the last run stopped; without it, an ephemeral one deleted at the end),
    `since`, `deliverPolicy` (All), `batchSize` (10), `pollDuration` (PT2S: how long a fetch waits),
    `maxRecords`, `maxDuration`. Ends when a fetch finds nothing, at `maxRecords`, or once
    `maxDuration` has passed (checked between fetches). Closing the iterator, or cancelling the task
    reading it, closes the connection: no consumer is left running."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    subject = text(settings, "subject")
    assert subject is not None
    policy = DeliverPolicy(_deliver_policy(settings))
    since = _since(settings)
    durable = text(settings, "durableId", required=False)
    batch_size = whole_number("batchSize", settings.get("batchSize"), 10, least=1)
    max_records = whole_number("maxRecords", settings.get("maxRecords"), None, least=1)
    poll = seconds("pollDuration", settings.get("pollDuration"), 2.0)
    max_duration = seconds("maxDuration", settings.get("maxDuration"), None)
    assert batch_size is not None and poll is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with connected(settings) as client:
        js = client.jetstream(timeout=_API_TIMEOUT)
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=policy, opt_start_time=since)
        try:
            stream = await js.find_stream_name_by_subject(subject)
            subscription = await js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
        except NotFoundError:
            raise TaskFailure(
                f"NATS at {address(settings['url'])}: no JetStream stream holds the subject `{subject}`"
            ) from None
        except Exception as error:
            raise failure(settings["url"], error) from None
        consumer = None if durable else (await subscription.consumer_info()).name
        total = 0
        try:
            while True:
                wanted = batch_size if max_records is None else min(batch_size, max_records - total)
                try:
                    fetched = await subscription.fetch(wanted, timeout=poll)
                except TimeoutError:  # nats-py's own, or asyncio's when its deadline passes
                    fetched = []
                except Exception as error:
                    raise failure(settings["url"], error) from None
                for message in fetched:
                    yield _record(message)
                    await message.ack()
                    total += 1
                if not fetched or (max_records is not None and total >= max_records):
                    break
                if max_duration is not None and loop.time() - started >= max_duration:
                    break
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(js.delete_consumer(stream, consumer), _API_TIMEOUT)


async def consume(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every message `iter_messages` gives, in order (the polling Trigger's call)."""
    return [message async for message in iter_messages(settings)]


async def consume_task(context: TaskContext) -> Mapping[str, Any]:
    """Consume: the messages stored as an Ion file (`uri`), one per line; `messagesCount`."""
    settings = settings_of(context, CONSUME_PROPERTIES)
    with tempfile.TemporaryDirectory(prefix="tiercel-nats-") as folder:
        target = Path(folder) / "messages.ion"
        count = 0
        with target.open("w", encoding="utf-8", newline="\n") as out:
            messages = iter_messages(settings)
            try:
                async for message in messages:
                    out.write(ion_dumps(message) + "\n")
                    count += 1
            finally:
                await messages.aclose()
        return {"messagesCount": count, "uri": context.put_file(target.name, target)}
