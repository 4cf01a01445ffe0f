"""Kestra's Redis plugin (`io.kestra.plugin.redis`): strings, lists, pub/sub and RedisJSON documents,
with the `redis` library's asyncio client (the `redis` extra).

Each type keeps the alias of the name it had before Kestra grouped them (`io.kestra.plugin.redis.Set`
...). The list triggers are not task types: their consuming is `lists.pop_messages` (Trigger) and
`lists.listen` (RealtimeTrigger). Left out: `cli.RedisCLI` (a redis-cli container) and `vector.*`
(Redis 8's vector sets).
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from tiercel.engine.plugin import Kind, Registry, TaskType, consuming_trigger, realtime_trigger

from .connection import PACKAGE
from .json_tasks import json_delete, json_get, json_increment, json_set
from .lists import list_pop, list_push, pop_messages, publish
from .strings import delete_keys, get_value, increment, set_value, ttl

_EXPIRY = frozenset({"options"})
_DURATIONS = {"maxDuration": frozenset({"maxDuration"}), "options": frozenset({"options.expirationDuration"})}


def _type(
    name: str, handler: Any, properties: Set[str], required: Set[str], alias: str | None = None
) -> TaskType:
    durations = frozenset().union(*(found for prop, found in _DURATIONS.items() if prop in properties))
    return TaskType(
        f"{PACKAGE}.{name}",
        Kind.RUNNABLE,
        properties=frozenset({"url"} | set(properties)),
        required=frozenset({"url"} | set(required)),
        handler=handler,
        aliases=(f"{PACKAGE}.{alias}",) if alias else (),
        durations=durations,
        requires=("redis",),
        extra="redis",
    )


TASK_TYPES = (
    _type("string.Set", set_value, {"key", "value", "options", "get", "serdeType"}, {"key", "value"}, "Set"),
    _type("string.Get", get_value, {"key", "serdeType", "failedOnMissing"}, {"key"}, "Get"),
    _type("string.Delete", delete_keys, {"keys", "failedOnMissing"}, {"keys"}, "Delete"),
    _type("string.Increment", increment, {"key", "amount"} | _EXPIRY, {"key"}),
    _type("string.Ttl", ttl, {"key"}, {"key"}),
    _type("list.ListPush", list_push, {"key", "from", "serdeType", "batchSize"}, {"key", "from"}, "ListPush"),
    _type(
        "list.ListPop",
        list_pop,
        {"key", "serdeType", "maxRecords", "maxDuration", "count"},
        {"key"},
        "ListPop",
    ),
    _type("pubsub.Publish", publish, {"channel", "from", "serdeType"}, {"channel", "from"}, "Publish"),
    _type("json.Set", json_set, {"key", "value", "options", "get", "path"}, {"key", "value"}),
    _type("json.Get", json_get, {"key", "failedOnMissing", "path"}, {"key"}),
    _type("json.Delete", json_delete, {"keys", "failedOnMissing"}, {"keys"}),
    _type("json.Increment", json_increment, {"key", "amount", "path"} | _EXPIRY, {"key", "path"}),
)


def register(registry: Registry) -> None:
    """The `tiercel.tasks` entry point of the redis family."""
    for task_type in TASK_TYPES:
        registry.add(task_type)
    pop = next(task for task in TASK_TYPES if task.name == f"{PACKAGE}.list.ListPop")
    trigger = f"{PACKAGE}.list.Trigger"
    aliases = (f"{PACKAGE}.TriggerList",)
    registry.add_trigger(consuming_trigger(trigger, pop_messages, pop, "count", aliases=aliases))
    registry.add_trigger(realtime_trigger(f"{PACKAGE}.list.RealtimeTrigger", trigger))
