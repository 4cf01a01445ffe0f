"""The built-in task types: Kestra's core, script and HTTP tasks with the properties each accepts.

A declarative table (what a type is lives in types.py): the parser checks flows against it, the
registry joins each entry to its handler.
"""

from __future__ import annotations

from .types import ChildShape, Kind, TaskType

LIST = ChildShape.LIST
CORE = "io.kestra.plugin.core"
LEGACY = "io.kestra.core.tasks"


# What a flow test puts in place of a task it replaces (engine.tasks.fixture_task).
FIXTURE_TYPE = "tiercel.test.TaskFixture"
# Namespace declarations written by tasks (engine.tasks.namespace_declarations): rendered when the
# task runs, or kept as written (templates for the tasks they will fill).
CREATE_NAMESPACE = "io.kestra.plugin.core.namespace.CreateNamespace"
UPDATE_NAMESPACE = "io.kestra.plugin.core.namespace.UpdateNamespace"
DECLARATION_RENDERED = ("description", "variables", "permissions")
DECLARATION_KEPT = ("taskDefaults", "pluginDefaults", "flowDefaults")


def _props(*names: str) -> frozenset[str]:
    return frozenset(names)


# What ForEachItem passes on to the subflow executions it starts (Kestra's ForEachItemExecutable).
_FOR_EACH_ITEM_SUBFLOW = _props("namespace", "flowId", "revision", "inputs", "labels", "wait") | _props(
    "transmitFailed", "inheritLabels", "scheduleDate", "restartBehavior"
)
_FIXED_SUBFLOW = _props("revision", "wait", "transmitFailed", "inheritLabels", "restartBehavior")
# Kestra holds a subflow execution with a `scheduleDate` in CREATED until that date.
_SUBFLOW_IGNORED = {"scheduleDate": "the subflow execution starts at once: executions are not scheduled"}
SCRIPTS = "io.kestra.plugin.scripts"
# What a script task may ask for that this engine does not do, and what it does instead.
_LOCAL = "this engine runs scripts as local processes"
_NOT_INSTALLED = "nothing is installed by this engine: install it where the engine runs"
_SCRIPT_IGNORED = {
    "containerImage": f"{_LOCAL}, no image is used",
    "docker": f"{_LOCAL}, Docker is not used",
    "targetOS": f"{_LOCAL}, on this machine's OS",
}
_PYTHON_IGNORED = {
    "dependencies": _NOT_INSTALLED,
    "pythonVersion": "the `python` on the engine's PATH runs the script",
    "dependencyCacheEnabled": _NOT_INSTALLED,
    "packageManager": _NOT_INSTALLED,
    "uvAutoInstallEnabled": _NOT_INSTALLED,
    "uvInstallerVersion": _NOT_INSTALLED,
    "uvInstallerSha256": _NOT_INSTALLED,
}
_LEGACY_SCRIPT_IGNORED = {
    "dockerOptions": f"{_LOCAL}, Docker is not used",
    "requirements": _NOT_INSTALLED,
    "virtualEnv": "the `python` on the engine's PATH runs the script",
    "pythonPath": "the `python` on the engine's PATH runs the script",
    "packageManager": _NOT_INSTALLED,
}
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
        _props("executionId", "level", "tasksId", "namespace", "flowId"),
        aliases=(f"{LEGACY}.log.Fetch",),
        ignored=dict.fromkeys(("namespace", "flowId"), "the execution is found by its id alone"),
    ),
    # --- script tasks (run as local processes) ---------------------------------------------
    *(
        TaskType(
            f"{SCRIPTS}.{language}.{kind}",
            Kind.RUNNABLE,
            _SCRIPT_PROPS | frozenset(extra) | {"commands" if kind == "Commands" else "script"},
            required=_props("commands" if kind == "Commands" else "script"),
            static=_SCRIPT_STATIC | frozenset(extra),
            ignored={**_SCRIPT_IGNORED, **extra},
        )
        for language, extra in (
            ("shell", {}),
            ("python", _PYTHON_IGNORED),
            ("node", {}),
        )
        for kind in ("Commands", "Script")
    ),
    TaskType(
        f"{LEGACY}.scripts.Bash",
        Kind.RUNNABLE,
        _LEGACY_SCRIPT_PROPS,
        required=_props("commands"),
        static=_LEGACY_SCRIPT_STATIC,
        ignored={"dockerOptions": _LEGACY_SCRIPT_IGNORED["dockerOptions"]},
    ),
    TaskType(
        f"{LEGACY}.scripts.Python",
        Kind.RUNNABLE,
        _LEGACY_SCRIPT_PROPS | _props("requirements", "virtualEnv", "pythonPath", "args", "packageManager"),
        static=_LEGACY_SCRIPT_STATIC | _props("requirements", "virtualEnv", "pythonPath", "packageManager"),
        ignored=_LEGACY_SCRIPT_IGNORED,
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
        _props("from", "bytes", "partitions", "rows", "regexPattern", "separator"),
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
        _props("includeChildExecutions", "includeStates"),
        aliases=(f"{LEGACY}.storages.PurgeExecution", f"{CORE}.storage.PurgeExecution"),
        # Kestra reads both but purges the execution's own files whatever they say.
        ignored=dict.fromkeys(
            ("includeChildExecutions", "includeStates"), "only this execution's own files are purged"
        ),
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
        f"{CORE}.execution.Resume",
        Kind.RUNNABLE,
        _props("namespace", "flowId", "executionId", "inputs"),
        commands_engine=True,
    ),
    TaskType(
        f"{CORE}.trigger.Toggle",
        Kind.RUNNABLE,
        _props("namespace", "flowId", "trigger", "enabled"),
        required=_props("trigger"),
        aliases=(f"{LEGACY}.trigger.Toggle",),
        static=_props("enabled"),
        commands_engine=True,
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
        _props("inputFiles", "outputFiles", "namespaceFiles", "cache"),
        children={"tasks": LIST},
        required=_props("tasks"),
        aliases=(f"{LEGACY}.flows.WorkingDirectory", f"{LEGACY}.flows.Worker"),
        static=_props("cache"),
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
        ignored=_SUBFLOW_IGNORED,
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
        ignored=_SUBFLOW_IGNORED,
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
    # What a flow test puts in place of a task it replaces (engine.flowtests).
    TaskType(FIXTURE_TYPE, Kind.RUNNABLE, _props("fixtures", "files"), static=_props("fixtures", "files")),
    # Namespace declarations written by tasks, as `_namespace.yaml` files (the flows folder's).
    *(
        TaskType(
            name,
            Kind.RUNNABLE,
            _props("namespace", *DECLARATION_RENDERED, *DECLARATION_KEPT),
            required=_props("namespace"),
            static=frozenset(DECLARATION_KEPT),
            commands_engine=True,
            not_in_kestra="Kestra OSS makes namespaces in its UI or API",
        )
        for name in (CREATE_NAMESPACE, UPDATE_NAMESPACE)
    ),
)
