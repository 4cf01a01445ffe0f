"""A minimal third-party task plugin: one task type, `io.example.tasks.Hello`.

A package adds task types by declaring an entry point in the `tiercel.tasks` group whose object is a
callable taking the registry:

    [project.entry-points."tiercel.tasks"]
    hello = "tiercel_hello:register"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tiercel.engine.plugin import Kind, LogLevel, Registry, TaskContext, TaskType


async def hello(context: TaskContext) -> Mapping[str, Any] | None:
    name = context.prop("name", "world")
    context.log(LogLevel.INFO, f"Hello from a plugin, {name}!")
    return {"greeting": f"Hello {name}"}


def register(registry: Registry) -> None:
    registry.add(
        TaskType(
            "io.example.tasks.Hello", Kind.RUNNABLE, frozenset({"name"}), required=frozenset(), handler=hello
        )
    )
