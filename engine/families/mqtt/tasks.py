"""Kestra's MQTT tasks: Publish (messages to one topic) and Subscribe (messages of one or more topics
stored as an Ion file until `maxRecords` or `maxDuration`).

`iter_messages(settings)` and `consume(settings)` are the consume logic the polling `Trigger` and
the `RealtimeTrigger` are meant to call, with the same rendered settings as the Subscribe task.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from pathlib import Path
from typing import Any

from tiercel.engine.plugin import (
    TaskContext,
    TaskFailure,
    ion_dumps,
    ion_records,
    java_json,
    java_text,
    seconds,
    settings_of,
    whole_number,
)

from .connection import CONNECTION, choice, connected, failure, flag, where

SERDE_TYPES = ("STRING", "JSON", "BYTES")
PUBLISH_PROPERTIES = CONNECTION | {
    "topic",
    "from",
    "serdeType",
    "qos",
    "retain",
    "responseTopic",
    "correlationData",
}
SUBSCRIBE_PROPERTIES = CONNECTION | {"topic", "serdeType", "qos", "maxRecords", "maxDuration"}


def _rows(context: TaskContext, value: Any) -> Iterator[Any]:
    """Kestra's `Data.From` for JSON: a message, a list of messages, or the kestra:// URI of an Ion
    file with one message per line."""
    if isinstance(value, list):
        yield from value
        return
    if not isinstance(value, str):
        yield value
        return
    if not value.startswith("kestra://"):
        raise TaskFailure(
            "`from` must be a message, a list of messages or the kestra:// URI of an Ion file, "
            f"not `{value[:200]}`"
        )
    with context.stored_file(value).open("rb") as handle:
        for _, item in ion_records(handle):
            yield item


def _payloads(context: TaskContext, settings: Mapping[str, Any], serde: str) -> Iterator[bytes]:
    given = settings.get("from")
    if serde == "STRING":  # Kestra sends each item's text, even a kestra:// URI's
        for item in given if isinstance(given, list) else [given]:
            yield (item if isinstance(item, str) else java_text(item)).encode("utf-8")
    elif serde == "JSON":
        for row in _rows(context, given):
            yield java_json(row).encode()
    else:
        raise TaskFailure("`serdeType` BYTES cannot publish: use STRING or JSON, as in Kestra")


async def publish(context: TaskContext) -> Mapping[str, Any]:
    """Publish: each message of `from`, serialised by `serdeType`, sent to `topic` with `qos` (1)
    and `retain` (false), each one acknowledged as its QoS asks; `messagesCount`, the `records`
    counter (tagged with the topic) and the `duration` timer."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    started = time.monotonic()
    settings = settings_of(context, PUBLISH_PROPERTIES)
    topic = str(settings.get("topic") or "")
    if not topic or any(mark in topic for mark in "+#"):
        raise TaskFailure(f"`topic` `{topic}` must be a topic name, without wildcards")
    if settings.get("serdeType") is None:
        raise TaskFailure("`serdeType` is required (STRING or JSON)")
    serde = choice(settings, "serdeType", "JSON", SERDE_TYPES)
    qos = whole_number("qos", settings.get("qos"), 1, most=2)
    retain = flag(settings, "retain", False)
    if "from" not in settings:
        raise TaskFailure("`from` is required")
    properties = None
    if choice(settings, "mqttVersion", "V5", ("V5", "V3")) == "V5" and (
        settings.get("responseTopic") is not None or settings.get("correlationData") is not None
    ):
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if settings.get("responseTopic") is not None:
            properties.ResponseTopic = str(settings["responseTopic"])
        if settings.get("correlationData") is not None:
            try:
                properties.CorrelationData = base64.b64decode(str(settings["correlationData"]), validate=True)
            except binascii.Error as error:
                raise TaskFailure(
                    f"`correlationData` must be Base64-encoded, as it is binary on the wire: {error}"
                ) from None
    count = 0
    async with connected(settings, context) as client:
        for body in _payloads(context, settings, serde):
            try:
                await client.publish(topic, body, qos=qos or 0, retain=retain, properties=properties)
            except Exception as error:
                raise failure(settings, error) from None
            count += 1
    context.metric("counter", "records", count, {"topic": topic})
    context.metric("timer", "duration", time.monotonic() - started)
    return {"messagesCount": count}


# -- subscribing ---------------------------------------------------------------------------------------


def topics_of(settings: Mapping[str, Any]) -> list[str]:
    """`topic`: one topic filter or a list of them."""
    given = settings.get("topic")
    topics = given if isinstance(given, list) else [given]
    names = [str(topic).strip() for topic in topics if topic is not None and str(topic).strip()]
    if not names:
        raise TaskFailure("`topic` must be a topic filter or a list of them")
    return names


def _deserialise(serde: str, topic: str, payload: bytes) -> Any:
    if serde == "JSON":
        try:
            return json.loads(payload) if payload else None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TaskFailure(f"A message of `{topic}` is not JSON (serdeType JSON): {error}") from None
    if serde == "STRING":
        return payload.decode("utf-8", errors="replace")
    return payload


def _record(message: Any, serde: str, v5: bool) -> dict[str, Any]:
    """A message as Kestra's Subscribe stores it: id, topic, qos, payload, retain, and in MQTT 5 the
    response topic and the correlation data (as Base64); absent values left out, as Kestra does."""
    topic = str(message.topic)
    payload = message.payload if isinstance(message.payload, bytes) else str(message.payload or "").encode()
    record: dict[str, Any] = {
        "id": message.mid,
        "topic": topic,
        "qos": message.qos,
        "payload": _deserialise(serde, topic, payload),
        "retain": bool(message.retain),
    }
    if record["payload"] is None:
        del record["payload"]
    properties = message.properties if v5 else None
    response = getattr(properties, "ResponseTopic", None)
    correlation = getattr(properties, "CorrelationData", None)
    if response is not None:
        record["responseTopic"] = response
    if correlation is not None:
        record["correlationData"] = base64.b64encode(correlation).decode()
    return record


async def iter_messages(
    settings: Mapping[str, Any], context: TaskContext | None = None
) -> AsyncGenerator[dict[str, Any], None]:
    """The messages of `topic` (one filter or a list), deserialised by `serdeType` (JSON).

    Settings (rendered, Kestra's names): the connection's, `topic`, `serdeType`, `qos` (1),
    `maxRecords`, `maxDuration`. Ends at `maxRecords` messages, or once `maxDuration` has passed;
    with neither it runs until closed (the RealtimeTrigger's use). Closing the generator, or
    cancelling the task reading it, unsubscribes and disconnects."""
    topics = topics_of(settings)
    serde = choice(settings, "serdeType", "JSON", SERDE_TYPES)
    qos = whole_number("qos", settings.get("qos"), 1, most=2) or 0
    max_records = whole_number("maxRecords", settings.get("maxRecords"), least=1, most=2**31 - 1)
    max_duration = seconds("maxDuration", settings.get("maxDuration"), short=True)
    v5 = choice(settings, "mqttVersion", "V5", ("V5", "V3")) == "V5"
    loop = asyncio.get_running_loop()
    deadline = None if max_duration is None else loop.time() + max_duration
    async with connected(settings, context) as client:
        for topic in topics:
            try:
                granted = await client.subscribe(topic, qos=qos)
            except Exception as error:
                raise failure(settings, error) from None
            code = granted[0]
            if (code if isinstance(code, int) else code.value) >= 0x80:
                raise TaskFailure(f"{where(settings)} refused the subscription to `{topic}`: {code}")
        total = 0
        messages = client.messages.__aiter__()
        try:
            while max_records is None or total < max_records:
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    break
                try:
                    message = await asyncio.wait_for(messages.__anext__(), left)
                except TimeoutError:
                    break
                except Exception as error:
                    raise failure(settings, error) from None
                yield _record(message, serde, v5)
                total += 1
        finally:
            with contextlib.suppress(Exception):  # disconnecting ends the subscriptions as well
                await asyncio.wait_for(client.unsubscribe(topics), 5)


async def consume(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every message `iter_messages` gives, in order (the polling Trigger's call)."""
    return [message async for message in iter_messages(settings)]


async def subscribe(context: TaskContext) -> Mapping[str, Any]:
    """Subscribe: the messages stored as an Ion file (`uri`), one per line; `messagesCount`, the
    `records` counter for each topic and the `duration` timer."""
    started = time.monotonic()
    settings = settings_of(context, SUBSCRIBE_PROPERTIES)
    if settings.get("maxRecords") is None and settings.get("maxDuration") is None:
        raise TaskFailure("`maxRecords` or `maxDuration` is required: without either, Subscribe never ends")
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="tiercel-mqtt-") as folder:
        target = Path(folder) / "messages.ion"
        with target.open("w", encoding="utf-8", newline="\n") as out:
            messages = iter_messages(settings, context)
            try:
                async for message in messages:
                    out.write(ion_dumps(message) + "\n")
                    counts[message["topic"]] = counts.get(message["topic"], 0) + 1
            finally:
                await messages.aclose()
        uri = context.put_file(target.name, target)
    for topic, count in counts.items():
        context.metric("counter", "records", count, {"topic": topic})
    context.metric("timer", "duration", time.monotonic() - started)
    return {"messagesCount": sum(counts.values()), "uri": uri}
