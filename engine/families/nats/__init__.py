"""Kestra's NATS plugin (`io.kestra.plugin.nats`): Produce, Request and Consume (a JetStream stream
read by an explicitly acknowledged pull consumer), and the key-value tasks, through nats-py.

Each core task also answers to its older name without `.core` (Kestra's aliases). The polling
`Trigger` and the `RealtimeTrigger` are not registered here; their consume logic is
`core.consume(settings)` and `core.iter_messages(settings)`.
"""

from __future__ import annotations

from typing import Any

from tiercel.engine.plugin import Kind, Registry, TaskType, consuming_trigger, realtime_trigger

from . import kv
from .core import (
    CONSUME_PROPERTIES,
    PRODUCE_PROPERTIES,
    REQUEST_PROPERTIES,
    consume,
    consume_task,
    produce,
    request,
)

PACKAGE = "io.kestra.plugin.nats"


def _type(name: str, handler: Any, properties: frozenset[str], required: set[str], alias: bool) -> TaskType:
    return TaskType(
        f"{PACKAGE}.{name}",
        Kind.RUNNABLE,
        properties=properties,
        required=frozenset({"url"} | required),
        handler=handler,
        aliases=(f"{PACKAGE}.{name.removeprefix('core.')}",) if alias else (),
        durations=properties & {"pollDuration", "maxDuration", "requestTimeout"},
        requires=("nats",),
        extra="nats",
    )


TYPES = (
    _type("core.Produce", produce, PRODUCE_PROPERTIES, {"subject", "from"}, alias=True),
    _type("core.Request", request, REQUEST_PROPERTIES, {"subject", "from"}, alias=True),
    _type("core.Consume", consume_task, CONSUME_PROPERTIES, {"subject"}, alias=True),
    _type("kv.CreateBucket", kv.create_bucket, kv.CREATE_BUCKET_PROPERTIES, {"name"}, alias=False),
    _type("kv.Put", kv.put, kv.PUT_PROPERTIES, {"bucketName", "values"}, alias=False),
    _type("kv.Get", kv.get, kv.GET_PROPERTIES, {"bucketName"}, alias=False),
    _type("kv.Delete", kv.delete, kv.DELETE_PROPERTIES, {"bucketName", "keys"}, alias=False),
)


def register(registry: Registry) -> None:
    """The `tiercel.tasks` entry point of the NATS family."""
    for task_type in TYPES:
        registry.add(task_type)
    consuming = next(task for task in TYPES if task.name == f"{PACKAGE}.core.Consume")
    trigger = f"{PACKAGE}.core.Trigger"
    aliases = (f"{PACKAGE}.Trigger",)
    registry.add_trigger(consuming_trigger(trigger, consume, consuming, "messagesCount", aliases=aliases))
    realtime = (f"{PACKAGE}.RealtimeTrigger",)
    registry.add_trigger(realtime_trigger(f"{PACKAGE}.core.RealtimeTrigger", trigger, realtime))
