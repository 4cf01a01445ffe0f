"""What a task type is (`TaskType`), and the built-in ones: names, aliases, the properties each accepts.

This module is data only and imports nothing of the engine: the parser checks flows against it, the
registry (engine.tasks.registry) attaches handlers to it by name (the `HANDLERS` of each family
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
    }
)
# Every property any task accepts (the others are accepted and ignored: they concern Kestra's workers).
COMMON_PROPERTIES = SPEC_FIELDS | {"logToFile", "workerGroup", "version"}
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


LIST = ChildShape.LIST
CORE = "io.kestra.plugin.core"
LEGACY = "io.kestra.core.tasks"


def _props(*names: str) -> frozenset[str]:
    return frozenset(names)


# What ForEachItem passes on to the subflow executions it starts (Kestra's ForEachItemExecutable).
_FOR_EACH_ITEM_SUBFLOW = _props("namespace", "flowId", "revision", "inputs", "labels", "wait") | _props(
    "transmitFailed", "inheritLabels", "scheduleDate", "restartBehavior"
)
_FIXED_SUBFLOW = _props("revision", "wait", "transmitFailed", "inheritLabels", "restartBehavior")
SCRIPTS = "io.kestra.plugin.scripts"
# Kestra's script task properties (io.kestra.plugin.scripts.exec.scripts.models and the runners).
_SCRIPT_PROPS = _props(
    "beforeCommands",
    "env",
    "interpreter",
    "failFast",
    "warningOnStdErr",
    "inputFiles",
    "outputFiles",
    "namespaceFiles",
    "taskRunner",
    "containerImage",
    "runner",
    "docker",
    "targetOS",
    "outputDirectory",
)
_LEGACY_SCRIPT_PROPS = _props(
    "commands",
    "interpreter",
    "interpreterArgs",
    "exitOnFailed",
    "files",
    "inputFiles",
    "outputFiles",
    "outputsFiles",
    "outputDirs",
    "env",
    "warningOnStdErr",
    "runner",
    "dockerOptions",
)
_HTTP_PROPS = _props("uri", "method", "body", "formData", "contentType", "headers", "options", "sslOptions")
# Kestra's HttpConfiguration durations, the older top-level ones and those under `timeout`.
_HTTP_DURATIONS = _props(
    "options.timeout.connectTimeout",
    "options.timeout.readIdleTimeout",
    "options.connectTimeout",
    "options.readTimeout",
    "options.readIdleTimeout",
    "options.connectionPoolIdleTimeout",
)
# Where and how a script runs: read as written, by this engine (which runs scripts as local
# processes) or not at all.
_SCRIPT_STATIC = _props("taskRunner", "containerImage", "runner", "docker", "targetOS", "outputDirectory")
_LEGACY_SCRIPT_STATIC = _props("runner", "dockerOptions", "outputDirs")


BUILT_IN_TASK_TYPES: tuple[TaskType, ...] = (
    # --- runnable tasks ---------------------------------------------------------------------
    TaskType(
        f"{CORE}.log.Log",
        Kind.RUNNABLE,
        _props("message", "level"),
        required=_props("message"),
        aliases=(f"{LEGACY}.log.Log",),
    ),
    TaskType(
        f"{CORE}.debug.Return",
        Kind.RUNNABLE,
        _props("format"),
        aliases=(f"{LEGACY}.debugs.Return",),
    ),
    TaskType(
        f"{CORE}.debug.Echo",
        Kind.RUNNABLE,
        _props("format", "level"),
        required=_props("format"),
        aliases=(f"{LEGACY}.debugs.Echo", f"{CORE}.log.Echo"),
    ),
    TaskType(
        f"{CORE}.output.OutputValues",
        Kind.RUNNABLE,
        _props("values"),
        aliases=(f"{LEGACY}.outputs.OutputValues",),
    ),
    TaskType(
        f"{CORE}.execution.Fail",
        Kind.RUNNABLE,
        _props("condition", "errorMessage"),
        aliases=(f"{LEGACY}.executions.Fail",),
    ),
    TaskType(
        f"{CORE}.execution.Labels",
        Kind.RUNNABLE,
        _props("labels"),
        required=_props("labels"),
        aliases=(f"{LEGACY}.executions.Labels",),
    ),
    TaskType(
        f"{CORE}.flow.Sleep",
        Kind.RUNNABLE,
        _props("duration"),
        required=_props("duration"),
        aliases=(f"{LEGACY}.flows.Sleep",),
        durations=_props("duration"),
    ),
    TaskType(
        f"{CORE}.kv.Set",
        Kind.RUNNABLE,
        _props("key", "value", "namespace", "overwrite", "ttl", "kvType", "kvDescription"),
        required=_props("key", "value"),
        durations=_props("ttl"),
        static=_props("kvDescription"),
    ),
    TaskType(
        f"{CORE}.kv.Get",
        Kind.RUNNABLE,
        _props("key", "namespace", "errorOnMissing"),
        required=_props("key"),
    ),
    TaskType(
        f"{CORE}.kv.Delete",
        Kind.RUNNABLE,
        _props("key", "namespace", "errorOnMissing"),
        required=_props("key"),
    ),
    TaskType(f"{CORE}.kv.GetKeys", Kind.RUNNABLE, _props("prefix", "namespace")),
    TaskType(
        f"{CORE}.log.Fetch",
        Kind.RUNNABLE,
        _props("executionId", "level", "tasksId", "taskId"),
        aliases=(f"{LEGACY}.log.Fetch",),
    ),
    # --- script tasks (run as local processes) ---------------------------------------------
    *(
        TaskType(
            f"{SCRIPTS}.{language}.{kind}",
            Kind.RUNNABLE,
            _SCRIPT_PROPS | extra | {"commands" if kind == "Commands" else "script"},
            required=_props("commands" if kind == "Commands" else "script"),
            static=_SCRIPT_STATIC | extra,
        )
        for language, extra in (
            ("shell", _props()),
            ("python", _props("dependencies", "pythonVersion", "dependencyCacheEnabled", "packageManager")),
            ("node", _props("dependencies")),
        )
        for kind in ("Commands", "Script")
    ),
    TaskType(
        f"{LEGACY}.scripts.Bash",
        Kind.RUNNABLE,
        _LEGACY_SCRIPT_PROPS,
        required=_props("commands"),
        static=_LEGACY_SCRIPT_STATIC,
    ),
    TaskType(
        f"{LEGACY}.scripts.Python",
        Kind.RUNNABLE,
        _LEGACY_SCRIPT_PROPS | _props("requirements", "virtualEnv", "pythonPath", "args"),
        static=_LEGACY_SCRIPT_STATIC | _props("requirements", "virtualEnv", "pythonPath"),
    ),
    # --- files in the internal storage --------------------------------------------------------
    TaskType(
        f"{CORE}.storage.Size",
        Kind.RUNNABLE,
        _props("uri"),
        required=_props("uri"),
        aliases=(f"{LEGACY}.storages.Size",),
    ),
    TaskType(
        f"{CORE}.storage.Delete",
        Kind.RUNNABLE,
        _props("uri", "errorOnMissing"),
        required=_props("uri"),
        aliases=(f"{LEGACY}.storages.Delete",),
    ),
    TaskType(
        f"{CORE}.storage.Concat",
        Kind.RUNNABLE,
        _props("files", "separator", "extension"),
        required=_props("files"),
        aliases=(f"{LEGACY}.storages.Concat",),
    ),
    TaskType(
        f"{CORE}.storage.Split",
        Kind.RUNNABLE,
        _props("from", "bytes", "partitions", "rows", "separator"),
        required=_props("from"),
        aliases=(f"{LEGACY}.storages.Split",),
    ),
    TaskType(
        f"{CORE}.storage.LocalFiles",
        Kind.RUNNABLE,
        _props("inputs", "outputs"),
        aliases=(f"{LEGACY}.storages.LocalFiles",),
    ),
    TaskType(
        f"{CORE}.storage.DeduplicateItems",
        Kind.RUNNABLE,
        _props("from", "expr"),
        required=_props("from", "expr"),
        aliases=(f"{LEGACY}.storages.DeduplicateItems",),
    ),
    TaskType(
        f"{CORE}.storage.FilterItems",
        Kind.RUNNABLE,
        _props("from", "filterCondition", "filterType", "errorOrNullBehavior"),
        required=_props("from", "filterCondition"),
        aliases=(f"{LEGACY}.storages.FilterItems",),
    ),
    TaskType(
        f"{CORE}.storage.Reverse",
        Kind.RUNNABLE,
        _props("from", "separator", "charset"),
        required=_props("from"),
        aliases=(f"{LEGACY}.storages.Reverse",),
    ),
    TaskType(
        f"{CORE}.storage.PurgeCurrentExecutionFiles",
        Kind.RUNNABLE,
        aliases=(f"{LEGACY}.storages.PurgeExecution", f"{CORE}.storage.PurgeExecution"),
    ),
    # --- other executions, logs and triggers (engine.tasks.system) ------------------------------
    TaskType(
        f"{CORE}.execution.Count",
        Kind.RUNNABLE,
        _props("flows", "states", "startDate", "endDate", "expression", "namespaces"),
        required=_props("startDate", "expression"),
        aliases=(f"{LEGACY}.executions.Counts",),
        # Kestra reads `flows` as written; `expression` is rendered for each flow with its `count`.
        static=_props("flows", "expression"),
    ),
    TaskType(
        f"{CORE}.execution.PurgeExecutions",
        Kind.RUNNABLE,
        _props("namespace", "flowId", "startDate", "endDate", "states", "batchSize")
        | _props("purgeExecution", "purgeLog", "purgeMetric", "purgeStorage"),
        required=_props("endDate"),
        aliases=(f"{LEGACY}.storages.Purge", f"{CORE}.storage.Purge"),
    ),
    TaskType(
        f"{CORE}.log.PurgeLogs",
        Kind.RUNNABLE,
        _props("namespace", "flowId", "executionId", "logLevels", "startDate", "endDate", "batchSize")
        | _props("purgeExecutionLogs", "purgeNonExecutionLogs"),
        required=_props("endDate"),
    ),
    TaskType(
        f"{CORE}.execution.Resume", Kind.RUNNABLE, _props("namespace", "flowId", "executionId", "inputs")
    ),
    TaskType(
        f"{CORE}.trigger.Toggle",
        Kind.RUNNABLE,
        _props("namespace", "flowId", "trigger", "enabled"),
        required=_props("trigger"),
        aliases=(f"{LEGACY}.trigger.Toggle",),
        static=_props("enabled"),
    ),
    # --- namespace files (engine.tasks.namespace) ------------------------------------------------
    TaskType(
        f"{CORE}.namespace.UploadFiles",
        Kind.RUNNABLE,
        _props("namespace", "files", "filesMap", "destination", "conflict"),
        required=_props("namespace"),
    ),
    TaskType(
        f"{CORE}.namespace.DownloadFiles",
        Kind.RUNNABLE,
        _props("namespace", "files", "destination"),
        required=_props("namespace", "files"),
    ),
    TaskType(
        f"{CORE}.namespace.DeleteFiles",
        Kind.RUNNABLE,
        _props("namespace", "files", "deleteParentFolder"),
        required=_props("namespace", "files"),
    ),
    # --- the deprecated state store (kept in the KV store, as Kestra does) ----------------------
    TaskType(
        f"{CORE}.state.Get",
        Kind.RUNNABLE,
        _props("name", "namespace", "taskrunValue", "errorOnMissing"),
        aliases=(f"{LEGACY}.states.Get",),
    ),
    TaskType(
        f"{CORE}.state.Set",
        Kind.RUNNABLE,
        _props("name", "namespace", "taskrunValue", "data"),
        aliases=(f"{LEGACY}.states.Set",),
    ),
    TaskType(
        f"{CORE}.state.Delete",
        Kind.RUNNABLE,
        _props("name", "namespace", "taskrunValue", "errorOnMissing"),
        aliases=(f"{LEGACY}.states.Delete",),
    ),
    # --- a task defined by a template -----------------------------------------------------------
    TaskType(
        f"{CORE}.templating.TemplatedTask",
        Kind.RUNNABLE,
        _props("spec"),
        required=_props("spec"),
        aliases=(f"{LEGACY}.templating.TemplatedTask",),
    ),
    # --- HTTP ----------------------------------------------------------------------------------
    TaskType(
        f"{CORE}.http.Request",
        Kind.RUNNABLE,
        _HTTP_PROPS | _props("allowFailed", "encryptBody"),
        required=_props("uri"),
        durations=_HTTP_DURATIONS,
        aliases=("io.kestra.plugin.fs.http.Request",),
    ),
    TaskType(
        f"{CORE}.http.Download",
        Kind.RUNNABLE,
        _HTTP_PROPS | _props("failOnEmptyResponse", "allowFailed"),
        required=_props("uri"),
        durations=_HTTP_DURATIONS,
        aliases=("io.kestra.plugin.fs.http.Download",),
    ),
    # --- flowable tasks ---------------------------------------------------------------------
    TaskType(
        f"{CORE}.flow.Sequential",
        Kind.FLOWABLE,
        children={"tasks": LIST},
        required=_props("tasks"),
        aliases=(f"{LEGACY}.flows.Sequential",),
    ),
    TaskType(
        f"{CORE}.flow.Parallel",
        Kind.FLOWABLE,
        _props("concurrent"),
        children={"tasks": LIST},
        required=_props("tasks"),
        aliases=(f"{LEGACY}.flows.Parallel",),
        static=_props("concurrent"),
    ),
    TaskType(
        f"{CORE}.flow.If",
        Kind.FLOWABLE,
        _props("condition"),
        children={"then": LIST, "else": LIST},
        required=_props("condition", "then"),
        aliases=(f"{LEGACY}.flows.If",),
    ),
    TaskType(
        f"{CORE}.flow.Switch",
        Kind.FLOWABLE,
        _props("value"),
        children={"cases": ChildShape.CASES, "defaults": LIST},
        required=_props("value"),
        aliases=(f"{LEGACY}.flows.Switch",),
    ),
    TaskType(
        f"{CORE}.flow.ForEach",
        Kind.FLOWABLE,
        _props("values", "concurrencyLimit"),
        children={"tasks": LIST},
        required=_props("values", "tasks"),
        aliases=(f"{LEGACY}.flows.ForEach",),
        static=_props("concurrencyLimit"),
    ),
    TaskType(
        f"{CORE}.flow.EachSequential",
        Kind.FLOWABLE,
        _props("value"),
        children={"tasks": LIST},
        required=_props("value", "tasks"),
        aliases=(f"{LEGACY}.flows.EachSequential",),
    ),
    TaskType(
        f"{CORE}.flow.EachParallel",
        Kind.FLOWABLE,
        _props("value", "concurrent"),
        children={"tasks": LIST},
        required=_props("value", "tasks"),
        aliases=(f"{LEGACY}.flows.EachParallel",),
        static=_props("concurrent"),
    ),
    TaskType(
        f"{CORE}.flow.Dag",
        Kind.FLOWABLE,
        _props("concurrent"),
        children={"tasks": ChildShape.DAG},
        required=_props("tasks"),
        aliases=(f"{LEGACY}.flows.Dag",),
        static=_props("concurrent"),
    ),
    TaskType(
        f"{CORE}.flow.AllowFailure",
        Kind.FLOWABLE,
        children={"tasks": LIST},
        required=_props("tasks"),
        aliases=(f"{LEGACY}.flows.AllowFailure",),
    ),
    TaskType(
        f"{CORE}.flow.Pause",
        Kind.FLOWABLE,
        _props("delay", "timeout", "pauseDuration", "behavior"),
        children={"tasks": LIST},
        input_props=_props("onResume"),
        aliases=(f"{LEGACY}.flows.Pause",),
        durations=_props("delay", "timeout", "pauseDuration"),
        static=_props("behavior"),
    ),
    TaskType(
        f"{CORE}.flow.WaitFor",
        Kind.FLOWABLE,
        _props("condition", "checkFrequency", "failOnMaxReached"),
        children={"tasks": LIST},
        required=_props("condition", "tasks"),
        aliases=(f"{CORE}.flow.LoopUntil",),
        durations=_props("checkFrequency.interval", "checkFrequency.maxDuration"),
        static=_props("checkFrequency", "failOnMaxReached"),
    ),
    TaskType(
        f"{CORE}.flow.WorkingDirectory",
        Kind.FLOWABLE,
        _props("inputFiles", "outputFiles", "namespaceFiles", "cache", "taskRunner", "containerImage"),
        children={"tasks": LIST},
        required=_props("tasks"),
        aliases=(f"{LEGACY}.flows.WorkingDirectory", f"{LEGACY}.flows.Worker"),
        static=_props("cache", "taskRunner", "containerImage"),
    ),
    TaskType(
        f"{CORE}.flow.Subflow",
        Kind.SUBFLOW,
        _props(
            "namespace",
            "flowId",
            "revision",
            "inputs",
            "labels",
            "wait",
            "transmitFailed",
            "inheritLabels",
            "outputs",
            "scheduleDate",
            "restartBehavior",
        ),
        required=_props("namespace", "flowId"),
        aliases=(f"{LEGACY}.flows.Subflow", f"{LEGACY}.flows.Flow"),
        # Fixed values in Kestra, though rendered here.
        static=_props("revision", "wait", "transmitFailed", "inheritLabels", "restartBehavior"),
    ),
    # Kestra's ForEachItem runs three internal tasks, `<id>_split`, `<id>_items` and `<id>_merge`,
    # which its handler adds to the task as its `tasks` (engine.tasks.for_each_item).
    TaskType(
        f"{CORE}.flow.ForEachItem",
        Kind.FLOWABLE,
        _FOR_EACH_ITEM_SUBFLOW | _props("items", "batch"),
        required=_props("items", "namespace", "flowId"),
        aliases=(f"{LEGACY}.flows.ForEachItem",),
        static=_FIXED_SUBFLOW,
    ),
    *(
        TaskType(
            f"{CORE}.flow.ForEachItem${name}", kind, props, aliases=(f"{LEGACY}.flows.ForEachItem${name}",)
        )
        for name, kind, props in (
            ("ForEachItemSplit", Kind.RUNNABLE, _props("items", "batch")),
            ("ForEachItemMergeOutputs", Kind.RUNNABLE, frozenset()),
        )
    ),
    TaskType(
        f"{CORE}.flow.ForEachItem$ForEachItemExecutable",
        Kind.SUBFLOW,
        _FOR_EACH_ITEM_SUBFLOW,
        aliases=(f"{LEGACY}.flows.ForEachItem$ForEachItemExecutable",),
        static=_FIXED_SUBFLOW,
    ),
)
