"""The task registry: task type names (and their legacy aliases) -> what the engine knows of them.

The parser asks it which properties a type accepts and which of them hold child tasks; the executor
and the runner ask it for the handler. Third-party packages add task types through the
`tiercel.tasks` entry point group: each entry point loads a callable that receives the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from importlib.metadata import entry_points

from .builtin_types import BUILT_IN_TASK_TYPES
from .types import TaskType


class Registry:
    """Task types by canonical name and by alias."""

    def __init__(self) -> None:
        self._types: dict[str, TaskType] = {}
        self._names: dict[str, str] = {}

    def add(self, task_type: TaskType) -> None:
        self._types[task_type.name] = task_type
        self._names[task_type.name] = task_type.name
        for alias in task_type.aliases:
            self._names[alias] = task_type.name

    def lookup(self, name: str) -> TaskType | None:
        canonical = self._names.get(name)
        return self._types[canonical] if canonical else None

    def names(self) -> Iterable[str]:
        return self._types.keys()

    def close_matches(self, name: str) -> list[str]:
        """Known names that look like `name`, for 'did you mean' hints."""
        import difflib  # only a flow with an unknown type needs it

        short = name.rsplit(".", 1)[-1].lower()
        by_short = [n for n in self._types if n.rsplit(".", 1)[-1].lower() == short]
        return by_short or difflib.get_close_matches(name, list(self._names), n=3, cutoff=0.8)


def _load() -> Registry:
    # The handler modules import what their tasks need (processes, HTTP, storage): loaded on first use.
    from . import core, files, flow, for_each_item, http, items, namespace, scripts, state, system, templating

    registry = Registry()
    handlers = {**core.HANDLERS, **flow.HANDLERS, **scripts.HANDLERS, **http.HANDLERS, **files.HANDLERS}
    handlers |= {**system.HANDLERS, **namespace.HANDLERS}
    handlers |= {**items.HANDLERS, **state.HANDLERS, **for_each_item.HANDLERS}
    # The templated task looks its inner task up in this registry, complete by the time it runs.
    handlers[templating.TEMPLATED] = templating.handler(registry.lookup)
    for task_type in BUILT_IN_TASK_TYPES:
        registry.add(dataclasses.replace(task_type, handler=handlers.get(task_type.name)))
    for entry in entry_points(group="tiercel.tasks"):
        entry.load()(registry)
    return registry


_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _load()
    return _REGISTRY
