"""Kestra's RedisJSON tasks (`io.kestra.plugin.redis.json`): Set, Get, Delete and Increment, sent
as the module's JSON.* commands. A server without the module fails them saying so.

Kestra's shapes are kept: with JSONPath (`$...`) the module answers an array of matches, which Get
unwraps when it holds one value, and which Set's `oldValue` gives as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tiercel.engine.plugin import TaskContext, TaskFailure, java_text

from .connection import client_name, connected, serialize
from .strings import amount_of, apply_expiration, option_flag, options_of

if TYPE_CHECKING:
    from redis.asyncio import Redis


_GUARDS = (("mustNotExist", "NX"), ("mustExist", "XX"))


def _key(context: TaskContext) -> str:
    key = context.prop("key")
    if key is None or key == "":
        raise TaskFailure("`key` is required")
    return str(key)


async def _command(client: Redis, *arguments: Any) -> Any:
    """A RedisJSON command (the client has no typed methods for the module's commands here)."""
    return await client.execute_command(*arguments)  # type: ignore[no-untyped-call]


def _parsed(text: Any) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return text


async def json_set(context: TaskContext) -> Mapping[str, Any]:
    key = _key(context)
    value = context.prop("value")
    if value is None:
        raise TaskFailure("`value` is required")
    document = serialize("JSON", value, "`value`")
    path = str(context.prop("path", "$"))
    options = options_of(context)
    guards = [word for name, word in _GUARDS if option_flag(options, name)]
    get = context.flag("get", False)
    async with connected(context.prop("url"), client_name(context)) as client:
        old = _parsed(await _command(client, "JSON.GET", key, path)) if get else None
        await _command(client, "JSON.SET", key, path, document, *guards)
    return {} if old is None else {"oldValue": old}


async def json_get(context: TaskContext) -> Mapping[str, Any]:
    key = _key(context)
    path = str(context.prop("path", "$"))
    async with connected(context.prop("url"), client_name(context)) as client:
        result = _parsed(await _command(client, "JSON.GET", key, path))
    if isinstance(result, list) and len(result) == 1:
        result = result[0]
    if result is None and context.flag("failedOnMissing", False):
        raise TaskFailure(f"Missing keys '{key}'")
    return {"key": key} if result is None else {"data": result, "key": key}


async def json_delete(context: TaskContext) -> Mapping[str, Any]:
    keys = context.prop("keys")
    if not isinstance(keys, Mapping) or not keys:
        raise TaskFailure("`keys` must map each key to the JSON paths to delete in it (none: `$`, all of it)")
    deleted = 0
    async with connected(context.prop("url"), client_name(context)) as client:
        for key, paths in keys.items():
            chosen = [java_text(path) for path in (paths or [])] or ["$"]
            for path in chosen:
                deleted += int(await _command(client, "JSON.DEL", java_text(key), path))
    if deleted < len(keys) and context.flag("failedOnMissing", False):
        raise TaskFailure(f"Missing keys or path, only {deleted} deleted out of {len(keys)}")
    context.metric("counter", "deleted.records.count", deleted)
    return {"count": deleted}


async def json_increment(context: TaskContext) -> Mapping[str, Any]:
    """JSON.NUMINCRBY, after the expiration `options` (in that order, as Kestra applies them)."""
    key = _key(context)
    path = context.prop("path")
    if path is None or path == "":
        raise TaskFailure("`path` is required")
    amount = amount_of(context, 1)
    async with connected(context.prop("url"), client_name(context)) as client:
        await apply_expiration(context, client, key)
        result = _parsed(await _command(client, "JSON.NUMINCRBY", key, str(path), amount))
    value = result[0] if isinstance(result, list) and result else result
    return {"value": value, "key": key}
