"""The task registry: task type names (and their legacy aliases) -> what the engine knows of them.

The parser asks it which properties a type accepts and which of them hold child tasks; the executor
and the runner ask it for the handler. Third-party packages add task types through the
`tiercel.tasks` entry point group: each entry point loads a callable that receives the registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from importlib.metadata import entry_points
from typing import Any


class ChildShape(Enum):
    """How a property holds child tasks."""

    LIST = "list"  # tasks: [ {id, type ...}, ... ]
    CASES = "cases"  # Switch.cases: {value: [tasks]}
    DAG = "dag"  # Dag.tasks: [ {task: {...}, dependsOn: [ids]} ]


class Kind(Enum):
    """Who runs a task: the runner (RUNNABLE), the executor (FLOWABLE), or a child execution."""

    RUNNABLE = "runnable"
    FLOWABLE = "flowable"
    SUBFLOW = "subflow"


# Properties every task has that become TaskSpec fields rather than staying in `props`.
SPEC_FIELDS = frozenset(
    {
        "id",
        "type",
        "description",
        "retry",
        "timeout",
        "disabled",
        "allowFailure",
        "allowWarning",
        "runIf",
        "logLevel",
    }
)
# Every property any task accepts (the others are accepted and ignored: they concern Kestra's workers).
COMMON_PROPERTIES = SPEC_FIELDS | {"logToFile", "workerGroup", "version"}
# Flowable tasks have their own error and finally branches.
FLOWABLE_PROPERTIES = frozenset({"errors", "finally"})


@dataclass(frozen=True)
class TaskType:
    """What the engine knows of one task type."""

    name: str
    kind: Kind
    properties: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    children: Mapping[str, ChildShape] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    handler: Any = None
    # Properties that also accept the spelling of an older Kestra version (e.g. ForEach `value`).
    deprecated: frozenset[str] = frozenset()
    # Properties that declare inputs (Pause's onResume): parsed and checked like flow inputs.
    input_props: frozenset[str] = frozenset()

    def child_shapes(self) -> dict[str, ChildShape]:
        """Every property that holds child tasks, including a flowable's `errors` and `finally`."""
        shapes = dict(self.children)
        if self.kind is Kind.FLOWABLE:
            shapes.update({name: ChildShape.LIST for name in FLOWABLE_PROPERTIES})
        return shapes

    def accepts(self, prop: str) -> bool:
        if (
            prop in COMMON_PROPERTIES
            or prop in self.properties
            or prop in self.children
            or prop in self.input_props
        ):
            return True
        return self.kind is Kind.FLOWABLE and prop in FLOWABLE_PROPERTIES


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
        import difflib

        short = name.rsplit(".", 1)[-1].lower()
        by_short = [n for n in self._types if n.rsplit(".", 1)[-1].lower() == short]
        return by_short or difflib.get_close_matches(name, list(self._names), n=3, cutoff=0.8)


def _load() -> Registry:
    import dataclasses

    from . import core, files, flow, http, scripts
    from . import types as catalog

    handlers = {**core.HANDLERS, **flow.HANDLERS, **scripts.HANDLERS, **http.HANDLERS, **files.HANDLERS}
    registry = Registry()
    for task_type in catalog.TASK_TYPES:
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
