"""Kestra's AMQP plugin (`io.kestra.plugin.amqp`, RabbitMQ): Publish, Consume, CreateQueue,
DeclareExchange and QueueBind, with aio_pika (the `amqp` extra).

The triggers are not task types: their consuming is `consuming.consume_messages` (Trigger) and
`consuming.listen` (RealtimeTrigger).
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from tiercel.engine.plugin import Kind, Registry, TaskType, consuming_trigger, realtime_trigger

from .connection import CONNECTION_PROPERTIES, PACKAGE
from .consuming import CONSUME_SETTINGS, consume, consume_messages
from .tasks import create_queue, declare_exchange, publish, queue_bind


def _type(name: str, handler: Any, properties: Set[str], required: Set[str]) -> TaskType:
    # `host` is not required here: the deprecated `url` may stand for it (checked when the task runs).
    return TaskType(
        f"{PACKAGE}.{name}",
        Kind.RUNNABLE,
        properties=frozenset(CONNECTION_PROPERTIES | set(properties)),
        required=frozenset(required),
        handler=handler,
        durations=frozenset({"maxDuration"} & set(properties)),
        requires=("aio_pika",),
        extra="amqp",
    )


_DECLARE = {"name", "durability", "autoDelete", "args"}
TASK_TYPES = (
    _type("Publish", publish, {"exchange", "routingKey", "from", "serdeType"}, {"exchange", "from"}),
    _type("Consume", consume, CONSUME_SETTINGS, {"queue"}),
    _type("CreateQueue", create_queue, _DECLARE | {"exclusive"}, {"name"}),
    _type("DeclareExchange", declare_exchange, _DECLARE | {"exchangeType", "internal"}, {"name"}),
    _type("QueueBind", queue_bind, {"exchange", "queue", "routingKey", "args"}, {"exchange", "queue"}),
)


def register(registry: Registry) -> None:
    """The `tiercel.tasks` entry point of the amqp family."""
    for task_type in TASK_TYPES:
        registry.add(task_type)
    consume = next(task for task in TASK_TYPES if task.name == f"{PACKAGE}.Consume")
    registry.add_trigger(consuming_trigger(f"{PACKAGE}.Trigger", consume_messages, consume, "count"))
    registry.add_trigger(realtime_trigger(f"{PACKAGE}.RealtimeTrigger", f"{PACKAGE}.Trigger"))
