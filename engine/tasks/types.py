"""What a task type is (`TaskType`: its kind, the properties it accepts, its children).

Data only, importing nothing of the engine. The built-in types are the table of builtin_types.py;
the registry (engine.tasks.registry) attaches handlers to them by name (the `HANDLERS` of each family
module: core, flow, scripts, files, http, items, state, system, namespace, templating) and adds the
plugins' task types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
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
        "dependsOn",
        "conditions",
        "fatalError",
        "labels",
        "cache",
        "taskCache",
    }
)
# Every property any task accepts (Kestra's Task): what a TaskSpec holds, and properties that concern
# Kestra's workers or services, accepted and ignored (COMMON_IGNORED says what happens instead).
COMMON_PROPERTIES = SPEC_FIELDS | {
    "logToFile",
    "workerGroup",
    "version",
    "pluginDefaultsRef",
    "assets",
}
# Common properties accepted but not honoured, with what happens instead (validation warnings).
COMMON_IGNORED = {
    "logToFile": "log lines are kept in the database with the others",
    "pluginDefaultsRef": "only the flow's and its namespaces' plugin defaults apply",
    "assets": "assets are not tracked by this engine",
}
# Flowable tasks have their own error and finally branches.
FLOWABLE_PROPERTIES = frozenset({"errors", "finally"})
# The common properties whose text is rendered as a template when the task runs.
RENDERED_COMMON_PROPERTIES = frozenset({"runIf", "timeout"})


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
    # Properties holding an ISO 8601 duration, checked when the flow loads unless they hold an
    # expression; a dotted name reaches into a mapping (WaitFor's `checkFrequency.interval`).
    durations: frozenset[str] = frozenset()
    # Properties whose text is not a template, so not checked as one: read as written here (counts,
    # switches, runner settings), or fixed values in Kestra. Every other property is rendered when
    # the task runs, as `TaskContext.prop` does.
    static: frozenset[str] = frozenset()
    # Properties accepted (a flow using them is valid, as on Kestra) but not honoured by this engine,
    # with what happens instead: the parser turns each one present into a validation warning.
    ignored: Mapping[str, str] = field(default_factory=dict)
    # The handler uses the engine's commands (`TaskContext.control`, `trigger_switches`): it runs
    # in the process of the executor, never on a worker of another machine (engine.cluster).
    commands_engine: bool = False
    # Why a flow using this type does not run on Kestra OSS, for a type of Tiercel's own under a
    # Kestra name (the founding article's): validation warns so at the type.
    not_in_kestra: str = ""
    # The Python modules the handler imports when it runs, and the extra of the distribution that
    # installs them (`pip install 'tiercel[<extra>]'`): a flow using the type without them is invalid.
    requires: tuple[str, ...] = ()
    extra: str = ""

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

    def renders(self, prop: str) -> bool:
        """Whether the engine renders this property's text as a template when the task runs."""
        if prop in self.static or prop in self.child_shapes() or prop in self.input_props:
            return False
        return prop in self.properties or prop in self.deprecated or prop in RENDERED_COMMON_PROPERTIES


@dataclass(frozen=True)
class TriggerType:
    """A trigger type a plugin adds: a polling trigger, polled every `interval` (the flow's, else
    `default_interval` seconds); its `poll` takes a `TriggerContext` and returns the new execution's
    `trigger` variables, or None when there is nothing to start an execution for."""

    name: str
    properties: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    poll: Any = None
    default_interval: float = 60.0
    aliases: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    extra: str = ""
    # Set for a Kestra trigger type this engine knows but does not run: why, and what to use instead
    # (a flow using it is invalid, with this message).
    unsupported: str = ""
    # The values a property may take, checked when the flow loads unless it holds an expression.
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
