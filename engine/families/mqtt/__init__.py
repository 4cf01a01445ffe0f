"""Kestra's MQTT plugin (`io.kestra.plugin.mqtt`): Publish and Subscribe, over MQTT 5 or 3.1.1,
through aiomqtt.

The polling `Trigger` and the `RealtimeTrigger` are not registered here; their consume logic is
`tasks.consume(settings)` and `tasks.iter_messages(settings)`.
"""

from __future__ import annotations

from typing import Any

from tiercel.engine.plugin import Kind, Registry, TaskType, consuming_trigger, realtime_trigger

from .tasks import PUBLISH_PROPERTIES, SUBSCRIBE_PROPERTIES, consume, publish, subscribe

PACKAGE = "io.kestra.plugin.mqtt"


def _type(name: str, handler: Any, properties: frozenset[str], required: set[str]) -> TaskType:
    return TaskType(
        f"{PACKAGE}.{name}",
        Kind.RUNNABLE,
        properties=properties,
        required=frozenset(required),
        handler=handler,
        requires=("aiomqtt",),
        extra="mqtt",
    )


TYPES = (
    _type("Publish", publish, PUBLISH_PROPERTIES, {"server", "topic", "from", "serdeType"}),
    _type("Subscribe", subscribe, SUBSCRIBE_PROPERTIES, {"server", "topic"}),
)


def register(registry: Registry) -> None:
    """The `tiercel.tasks` entry point of the MQTT family."""
    for task_type in TYPES:
        registry.add(task_type)
    subscribe = next(task for task in TYPES if task.name == f"{PACKAGE}.Subscribe")
    registry.add_trigger(consuming_trigger(f"{PACKAGE}.Trigger", consume, subscribe, "messagesCount"))
    registry.add_trigger(realtime_trigger(f"{PACKAGE}.RealtimeTrigger", f"{PACKAGE}.Trigger"))
