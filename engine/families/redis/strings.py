"""Kestra's string tasks (`io.kestra.plugin.redis.string`): Set, Get, Delete, Increment and Ttl.

Outputs leave out what is null, as Kestra's do (a Get of a missing key has no `data`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tiercel.engine.plugin import TaskContext, TaskFailure, seconds

from .connection import (
    client_name,
    connected,
    deserialize,
    keys_list,
    moment,
    serde_type,
    serialize,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis


def options_of(context: TaskContext) -> Mapping[str, Any]:
    options = context.prop("options") or {}
    if not isinstance(options, Mapping):
        raise TaskFailure("`options` must be a map (expirationDuration, expirationDate ...)")
    return options


def option_flag(options: Mapping[str, Any], name: str) -> bool:
    value = options.get(name, False)
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise TaskFailure(f"`options.{name}` must be true or false, got `{value}`")
    return text == "true"


def _key(context: TaskContext) -> str:
    key = context.prop("key")
    if key is None or key == "":
        raise TaskFailure("`key` is required")
    return str(key)


async def set_value(context: TaskContext) -> Mapping[str, Any]:
    key = _key(context)
    value = context.prop("value")
    if value is None:
        raise TaskFailure("`value` is required")
    text = serialize(serde_type(context.prop("serdeType")), value, "`value`")
    options = options_of(context)
    duration = seconds("options.expirationDuration", options.get("expirationDuration"))
    at = moment("options.expirationDate", options.get("expirationDate"))
    keep = option_flag(options, "keepTtl")
    if keep and (duration is not None or at is not None):
        raise TaskFailure(
            "Invalid Redis options: you can't use 'keepTtl' with 'expirationDuration' or 'expirationDate'. "
            "Use either keepTtl to keep existing TTL, or set a new expiration."
        )
    arguments: dict[str, Any] = {
        "nx": option_flag(options, "mustNotExist"),
        "xx": option_flag(options, "mustExist"),
        "keepttl": keep,
        "get": context.flag("get", False),
    }
    if duration is not None:
        arguments["px"] = round(duration * 1000)
    if at is not None:
        arguments["pxat"] = round(at.timestamp() * 1000)
    async with connected(context.prop("url"), client_name(context)) as client:
        old = await client.set(key, text, **arguments)
    return {"oldValue": old} if arguments["get"] and old is not None else {}


async def get_value(context: TaskContext) -> Mapping[str, Any]:
    key = _key(context)
    serde = serde_type(context.prop("serdeType"))
    async with connected(context.prop("url"), client_name(context)) as client:
        text = await client.get(key)
    if text is None and context.flag("failedOnMissing", False):
        raise TaskFailure(f"Missing keys '{key}'")
    data = deserialize(serde, text, f"The value of key '{key}'")
    return {"key": key} if data is None else {"data": data, "key": key}


async def delete_keys(context: TaskContext) -> Mapping[str, Any]:
    keys = keys_list(context.prop("keys"))
    async with connected(context.prop("url"), client_name(context)) as client:
        deleted = int(await client.delete(*keys))
    if deleted != len(keys) and context.flag("failedOnMissing", False):
        raise TaskFailure(f"Missing keys, only {deleted} key deleted")
    context.metric("counter", "deleted.records.count", deleted)
    return {"count": deleted}


async def apply_expiration(context: TaskContext, client: Redis, key: str) -> None:
    """The `options` of the Increment tasks: a relative or an absolute expiration, not both."""
    options = options_of(context)
    duration = seconds("options.expirationDuration", options.get("expirationDuration"))
    at = moment("options.expirationDate", options.get("expirationDate"))
    if duration is not None and at is not None:
        raise TaskFailure(
            "Invalid Redis options: you can't use both 'expirationDuration' and 'expirationDate'. "
            "Use either expirationDuration for a relative TTL, or expirationDate for an absolute "
            "expiration time."
        )
    if duration is not None and int(duration) > 0:
        await client.expire(key, int(duration))
    if at is not None:
        await client.expireat(key, int(at.timestamp()))


def amount_of(context: TaskContext, default: int | None) -> int | float | None:
    value = context.prop("amount")
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise TaskFailure(f"`amount` must be a number, not `{value}`") from None


async def increment(context: TaskContext) -> Mapping[str, Any]:
    """INCR without an `amount`, INCRBY with a whole one, INCRBYFLOAT with a decimal one."""
    key = _key(context)
    amount = amount_of(context, None)
    async with connected(context.prop("url"), client_name(context)) as client:
        if amount is None:
            value: int | float = int(await client.incr(key))
        elif isinstance(amount, int):
            value = int(await client.incrby(key, amount))
        else:
            value = float(await client.incrbyfloat(key, amount))
        await apply_expiration(context, client, key)
    return {"value": value, "key": key}


async def ttl(context: TaskContext) -> Mapping[str, Any]:
    key = _key(context)
    async with connected(context.prop("url"), client_name(context)) as client:
        remaining = int(await client.ttl(key))
    return {"ttl": remaining, "key": key}
