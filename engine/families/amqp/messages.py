"""Kestra's AMQP `Message` both ways: a map of `from` (data plus the AMQP properties, in Kestra's
names) into a body and properties to publish, and a delivered message into the record Consume
stores, with Kestra's field order and without the properties the message did not carry.

Serde types as Kestra's: STRING sends the text of `data` (Java's `toString` of a map or a list) and
reads the body as UTF-8 text; JSON sends `data` as JSON (a string becomes a JSON string) and parses
the body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tiercel.engine.plugin import TaskFailure, java_json, java_text, seconds, whole_number

from .connection import java_duration

if TYPE_CHECKING:
    from aiormq.abc import DeliveredMessage
    from pamqp.commands import Basic

SERDE_TYPES = ("STRING", "JSON")
# Kestra's Message fields, in the order its records are written; the properties' names in aiormq.
FIELDS = {
    "contentType": "content_type",
    "contentEncoding": "content_encoding",
    "headers": "headers",
    "deliveryMode": "delivery_mode",
    "priority": "priority",
    "messageId": "message_id",
    "correlationId": "correlation_id",
    "replyTo": "reply_to",
    "expiration": "expiration",
    "timestamp": "timestamp",
    "type": "message_type",
    "userId": "user_id",
    "appId": "app_id",
    "data": "",
}
_TEXT_FIELDS = (
    "contentType",
    "contentEncoding",
    "messageId",
    "correlationId",
    "replyTo",
    "type",
    "userId",
    "appId",
)


def serde_type(value: Any) -> str:
    text = "STRING" if value is None else str(value).strip().upper()
    if text not in SERDE_TYPES:
        raise TaskFailure(f"`serdeType` {text}: must be one of {', '.join(SERDE_TYPES)}")
    return text


def body_of(serde: str, data: Any, what: str) -> bytes:
    if serde == "JSON":
        return java_json(data).encode()
    if data is None:
        raise TaskFailure(f"{what} has no `data`, which serdeType STRING requires")
    return java_text(data).encode("utf-8")


def _moment(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise TaskFailure(
            f"{what}: `timestamp` `{value}` is not an instant such as 2023-01-09T08:46:33Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def outgoing(item: Any, serde: str, what: str, warn: Callable[[str], None]) -> tuple[bytes, Basic.Properties]:
    """The body and properties of one message of `from`; `warn` is told of fields that are not a
    message's (a typo's `dta`), which are ignored."""
    from pamqp.commands import Basic  # aiormq's protocol classes (its `spec`)

    if not isinstance(item, Mapping):
        raise TaskFailure(
            f"{what} must be a map with `data` and the message's properties, not `{str(item)[:200]}`"
        )
    unknown = sorted(str(key) for key in item if key not in FIELDS)
    if unknown:  # Kestra ignores them too
        warn(", ".join(unknown))
    texts = {name: None if item.get(name) is None else str(item[name]) for name in _TEXT_FIELDS}
    headers = item.get("headers")
    if headers is not None and not isinstance(headers, Mapping):
        raise TaskFailure(f"{what}: `headers` must be a map")
    expiration = seconds(f"{what}: expiration", item.get("expiration"))
    properties = Basic.Properties(
        content_type=texts["contentType"],
        content_encoding=texts["contentEncoding"],
        message_id=texts["messageId"],
        correlation_id=texts["correlationId"],
        reply_to=texts["replyTo"],
        message_type=texts["type"],
        user_id=texts["userId"],
        app_id=texts["appId"],
        headers=None if headers is None else {str(key): value for key, value in headers.items()},
        delivery_mode=whole_number(f"{what}: deliveryMode", item.get("deliveryMode"), least=1),
        priority=whole_number(f"{what}: priority", item.get("priority")),
        expiration=None if expiration is None else str(round(expiration * 1000)),
        timestamp=None if item.get("timestamp") is None else _moment(item["timestamp"], what),
    )
    return body_of(serde, item.get("data"), what), properties


def record_of(message: DeliveredMessage, serde: str) -> dict[str, Any]:
    """The record Consume writes for a delivered message (KeyError-free: absent properties are left out).

    Raises:
        ValueError: The body is not JSON when serdeType is JSON.
    """
    properties = message.header.properties
    record: dict[str, Any] = {}
    for name, attribute in FIELDS.items():
        if not attribute:
            continue
        value = getattr(properties, attribute, None)
        if value is None:
            continue
        if name == "headers":
            value = {str(key): java_text(item) for key, item in value.items()}
        elif name == "expiration":
            value = java_duration(int(value))
        elif name == "timestamp" and isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        record[name] = value
    body = bytes(message.body or b"")
    record["data"] = json.loads(body) if serde == "JSON" else body.decode("utf-8", "replace")
    return record
