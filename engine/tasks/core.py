"""Runnable core tasks: logs, outputs, failures, labels, sleep and the KV store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from ..durations import format_duration, parse_duration
from ..expressions import to_text
from ..model import Label, LogLevel
from ..store.errors import StoreError
from .base import TaskContext, TaskFailure
from .services import KeyValueStore

CORE = "io.kestra.plugin.core"


def _level(context: TaskContext, default: str = "INFO") -> LogLevel:
    text = str(context.prop("level", default))
    try:
        return LogLevel.parse(text)
    except ValueError:
        raise TaskFailure(f"Unknown log level `{text}` (TRACE, DEBUG, INFO, WARN, ERROR)") from None


async def log(context: TaskContext) -> Mapping[str, Any] | None:
    level = _level(context)
    message = context.prop("message")
    for line in message if isinstance(message, list) else [message]:
        context.log(level, to_text(line))
    return None


async def return_(context: TaskContext) -> Mapping[str, Any] | None:
    value = context.prop("format")
    return {"value": to_text(value) if value is not None else None}


async def echo(context: TaskContext) -> Mapping[str, Any] | None:
    context.log(_level(context), to_text(context.prop("format")))
    return None


async def output_values(context: TaskContext) -> Mapping[str, Any] | None:
    return {"values": context.prop("values") or {}}


async def fail(context: TaskContext) -> Mapping[str, Any] | None:
    message = to_text(context.prop("errorMessage", "Task failure"))
    condition = context.task.props.get("condition")
    if condition is None:
        raise TaskFailure(message)
    if not context.is_truthy(condition):
        return None
    context.log(LogLevel.ERROR, message)
    raise TaskFailure("Fail on a condition")


def labels_of(value: Any) -> list[Label]:
    """Labels written as a map, a list of {key, value}, or JSON text of either."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise TaskFailure("`labels` must be a map or a list of {key, value}") from None
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = [(item.get("key"), item.get("value")) for item in value if isinstance(item, Mapping)]
    else:
        raise TaskFailure("`labels` must be a map or a list of {key, value}")
    labels = []
    for key, item in pairs:
        key = to_text(key)
        if key.startswith("system."):
            raise TaskFailure(
                f"System labels can only be set by Kestra itself, offending label: {key}={to_text(item)}"
            )
        labels.append(Label(key, to_text(item)))
    return labels


async def labels(context: TaskContext) -> Mapping[str, Any] | None:
    context.labels.extend(labels_of(context.prop("labels")))
    return None


async def sleep(context: TaskContext) -> Mapping[str, Any] | None:
    text = to_text(context.prop("duration"))
    try:
        delta = parse_duration(text)
    except ValueError as error:
        raise TaskFailure(f"`duration`: {error}") from None
    # Kestra's line, with Java's spelling of the duration (log.Fetch and log counts see it).
    context.log(LogLevel.INFO, f"Waiting for {format_duration(delta)}")
    await asyncio.sleep(max(delta.total_seconds(), 0))
    return None


def _kv_namespace(context: TaskContext) -> str:
    return to_text(context.prop("namespace") or context.flow.namespace)


def _store(context: TaskContext) -> KeyValueStore:
    if context.kv is None:
        raise TaskFailure("The KV store needs a database")
    return context.kv


async def kv_set(context: TaskContext) -> Mapping[str, Any] | None:
    ttl_text = context.prop("ttl")
    ttl = parse_duration(to_text(ttl_text)) if ttl_text else None
    value = context.prop("value")
    kind = str(context.prop("kvType") or "").upper()
    if kind in ("NUMBER",) and isinstance(value, str):
        value = float(value) if "." in value else int(value)
    elif kind == "BOOLEAN" and isinstance(value, str):
        value = value.strip().lower() == "true"
    elif kind == "JSON" and isinstance(value, str):
        import json

        value = json.loads(value)
    overwrite = context.prop("overwrite", True)
    key = to_text(context.prop("key"))
    try:
        await _store(context).kv_set(_kv_namespace(context), key, value, ttl=ttl, overwrite=bool(overwrite))
    except StoreError as error:
        raise TaskFailure(str(error)) from None
    return None


async def kv_get(context: TaskContext) -> Mapping[str, Any] | None:
    key = to_text(context.prop("key"))
    namespace = _kv_namespace(context)
    found, value = await _store(context).kv_get(namespace, key)
    if not found and context.prop("errorOnMissing", False):
        raise TaskFailure(f"No value for key `{key}` in namespace `{namespace}`")
    return {"value": value if found else None}


async def kv_delete(context: TaskContext) -> Mapping[str, Any] | None:
    key = to_text(context.prop("key"))
    namespace = _kv_namespace(context)
    deleted = await _store(context).kv_delete(namespace, key)
    if not deleted and context.prop("errorOnMissing", False):
        raise TaskFailure(f"No value for key `{key}` in namespace `{namespace}`")
    return {"deleted": deleted}


async def kv_get_keys(context: TaskContext) -> Mapping[str, Any] | None:
    prefix = context.prop("prefix")
    keys = await _store(context).kv_keys(_kv_namespace(context), to_text(prefix) if prefix else None)
    return {"keys": keys}


HANDLERS: dict[str, Any] = {
    f"{CORE}.log.Log": log,
    f"{CORE}.debug.Return": return_,
    f"{CORE}.debug.Echo": echo,
    f"{CORE}.output.OutputValues": output_values,
    f"{CORE}.execution.Fail": fail,
    f"{CORE}.execution.Labels": labels,
    f"{CORE}.flow.Sleep": sleep,
    f"{CORE}.kv.Set": kv_set,
    f"{CORE}.kv.Get": kv_get,
    f"{CORE}.kv.Delete": kv_delete,
    f"{CORE}.kv.GetKeys": kv_get_keys,
}
