"""Tasks as written -> TaskSpec: type lookup, plugin defaults, common properties, child tasks, retry."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

from ..model import DagNode, PluginDefault, RetrySpec, TaskSpec
from ..tasks.registry import missing_requirement, registry
from ..tasks.types import (
    COMMON_IGNORED,
    COMMON_PROPERTIES,
    FLOWABLE_PROPERTIES,
    SPEC_FIELDS,
    ChildShape,
    Kind,
    TaskType,
)
from .conditions import task_conditions
from .context import (
    ID_PATTERN,
    Context,
    java_text,
    parse_duration_value,
    suggestion,
    type_name,
)
from .dependencies import NOT_KESTRA, Edges, check_dependencies, depends_on
from .loader import YamlPath
from .properties import check_task_values
from .spellings import ARTICLE_KEYS, article_spellings
from .task_extras import fatal_errors, task_cache, task_labels

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
MAX_TASK_ID = 256

RETRY_TYPES = ("constant", "exponential", "random")
RETRY_BEHAVIORS = ("RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION")
RETRY_KEYS = frozenset(
    {
        "type",
        "interval",
        "maxInterval",
        "minInterval",
        "delayFactor",
        "maxAttempt",
        "maxAttempts",
        "maxDuration",
        "warningOnRetry",
        "behavior",
    }
)
RETRY_NEEDS = {
    "constant": ("interval",),
    "exponential": ("interval", "maxInterval"),
    "random": ("minInterval", "maxInterval"),
}
_DAG_NODE_KEYS = frozenset({"task", "dependsOn"})
# The flowables whose `tasks` all start at once.
_PARALLEL_TYPES = frozenset(
    {"io.kestra.plugin.core.flow.Parallel", "io.kestra.plugin.core.flow.EachParallel"}
)


# ---------------------------------------------------------------------------------------------
# Plugin defaults
# ---------------------------------------------------------------------------------------------


def defaults_for(written: str, canonical: str, defaults: Sequence[PluginDefault]) -> list[PluginDefault]:
    """The defaults whose type is the task's (or trigger's) type or one of its packages."""
    names = {written, canonical}
    found: list[PluginDefault] = []
    for default in defaults:
        # A plugin's type is loaded once a task names it: a default needs no plugin loaded for itself.
        known = registry().lookup(default.type, plugins=False)
        prefixes = {default.type, known.name} if known else {default.type}
        if any(name == prefix or name.startswith(prefix + ".") for name in names for prefix in prefixes):
            found.append(default)
    return found


def apply_defaults(data: dict[str, Any], defaults: Sequence[PluginDefault]) -> dict[str, Any]:
    """Non-forced defaults fill what the task leaves out (later defaults first); forced ones override."""
    result = data
    for default in reversed([d for d in defaults if not d.forced]):
        result = _fill(result, default.values)
    for default in (d for d in defaults if d.forced):
        result = _force(result, default.values)
    return result


def _fill(target: dict[str, Any], defaults: Any) -> dict[str, Any]:
    result = dict(target)
    for key, value in defaults.items():
        if key in ("id", "type"):
            continue
        if result.get(key) is None:
            result[key] = copy.deepcopy(value)
        elif isinstance(result[key], dict) and isinstance(value, dict):
            result[key] = _fill(result[key], value)
    return result


def _force(target: dict[str, Any], forced: Any) -> dict[str, Any]:
    result = dict(target)
    for key, value in forced.items():
        if key in ("id", "type"):
            continue
        if isinstance(result.get(key), dict) and isinstance(value, dict):
            result[key] = _force(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# ---------------------------------------------------------------------------------------------
# Durations and retries
# ---------------------------------------------------------------------------------------------


def parse_retry(ctx: Context, value: Any, path: YamlPath) -> RetrySpec | None:
    """A retry policy, the same shape on a task and on the flow."""
    data = ctx.mapping(value, path, "`retry`")
    if data is None:
        return None
    ctx.unknown_keys(data, RETRY_KEYS, path, "`retry`")
    kind = data.get("type")
    choices = "`constant`, `exponential` or `random`"
    if kind is None:
        ctx.error(path, f"`retry` has no `type`: use {choices}")
    elif kind not in RETRY_TYPES:
        ctx.error((*path, "type"), f"Unknown retry type `{kind}`: use {choices}")
    durations = {
        name: parse_duration_value(ctx, data.get(name), (*path, name), f"`{name}`")
        for name in ("interval", "maxInterval", "minInterval", "maxDuration")
    }
    for name in RETRY_NEEDS.get(kind, ()) if isinstance(kind, str) else ():
        if data.get(name) is None:
            ctx.error(path, f"A retry of type `{kind}` needs `{name}` (an ISO 8601 duration such as PT1S)")
    if "maxAttempt" in data and "maxAttempts" in data:
        ctx.error((*path, "maxAttempts"), "Give either `maxAttempt` or `maxAttempts`, not both", key=True)
    attempt_key = "maxAttempt" if "maxAttempt" in data else "maxAttempts"
    max_attempt = data.get(attempt_key)
    if max_attempt is not None and (
        not isinstance(max_attempt, int) or isinstance(max_attempt, bool) or max_attempt < 1
    ):
        ctx.error((*path, attempt_key), f"`{attempt_key}` must be an integer >= 1, not `{max_attempt}`")
        max_attempt = None
    factor = data.get("delayFactor")
    if factor is not None and (not isinstance(factor, int | float) or isinstance(factor, bool)):
        ctx.error((*path, "delayFactor"), f"`delayFactor` must be a number, not {type_name(factor)}")
        factor = None
    behavior = data.get("behavior") or "RETRY_FAILED_TASK"
    if behavior not in RETRY_BEHAVIORS:
        ctx.error(
            (*path, "behavior"), f"Unknown retry behavior `{behavior}`: use {' or '.join(RETRY_BEHAVIORS)}"
        )
        behavior = "RETRY_FAILED_TASK"
    return RetrySpec(
        type=kind if kind in RETRY_TYPES else "constant",
        interval=durations["interval"],
        max_interval=durations["maxInterval"],
        min_interval=durations["minInterval"],
        delay_factor=float(factor) if factor is not None else None,
        max_attempt=max_attempt,
        max_duration=durations["maxDuration"],
        warning_on_retry=ctx.boolean(data, "warningOnRetry", path, "`warningOnRetry`", False),
        behavior=str(behavior),
    )


# ---------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------


class TaskParser:
    """Parses every task of one flow, remembering ids to refuse duplicates across the whole tree."""

    def __init__(self, ctx: Context, defaults: Sequence[PluginDefault]) -> None:
        self.ctx = ctx
        self.defaults = defaults
        self.task_ids: dict[str, YamlPath] = {}
        self._depends: dict[str, list[tuple[str, YamlPath]]] = {}  # by task id, until its list is done

    def tasks(self, value: Any, path: YamlPath, what: str, *, in_order: bool = True) -> tuple[TaskSpec, ...]:
        """A task list; `in_order` when its tasks run one after the other (not a Parallel's)."""
        items = self.ctx.sequence(value, path, what)
        if items is None:
            return ()
        parsed = [
            (spec, (*path, index))
            for index, item in enumerate(items)
            if (spec := self.task(item, (*path, index)))
        ]
        declared = {spec.id: self._depends.pop(spec.id, None) for spec, _ in parsed}
        if all(depends is None for depends in declared.values()):
            return tuple(spec for spec, _ in parsed)
        return self._with_dependencies(parsed, declared, what, in_order)

    def _with_dependencies(
        self,
        parsed: list[tuple[TaskSpec, YamlPath]],
        declared: dict[str, list[tuple[str, YamlPath]] | None],
        what: str,
        in_order: bool,
    ) -> tuple[TaskSpec, ...]:
        """A task list where some task has `dependsOn`. In a list that runs in order, each task
        without one waits for the task written before it (disabled ones passed over, and waiting for
        none), as in any sequence; in a Parallel's, it starts at once."""
        edges: Edges = {}
        specs: list[TaskSpec] = []
        previous: TaskSpec | None = None
        for spec, spec_path in parsed:
            written = declared[spec.id]
            if written is None and previous is not None and in_order and not spec.disabled:
                spec = dataclasses.replace(spec, depends_on=(previous.id,))
                written = [(previous.id, spec_path)]
            edges[spec.id] = written or []
            specs.append(spec)
            previous = previous if spec.disabled else spec
        check_dependencies(self.ctx, edges, what, "the same task list")
        first = next(spec_path for spec, spec_path in parsed if declared[spec.id] is not None)
        self.ctx.warn((*first, "dependsOn"), NOT_KESTRA, key=True)
        return tuple(specs)

    def task(self, value: Any, path: YamlPath) -> TaskSpec | None:
        ctx = self.ctx
        data = ctx.mapping(value, path, "A task")
        if data is None:
            return None
        task_id = self._task_id(data, path)
        label = f"task `{task_id}`" if task_id else "the task"
        written = data.get("type")
        if written is None:
            ctx.error(
                path,
                f"{label[0].upper()}{label[1:]} has no `type`: add one, "
                "e.g. `type: io.kestra.plugin.core.log.Log`",
            )
            return None
        if not isinstance(written, str):
            ctx.error((*path, "type"), f"The type of {label} must be text, not {type_name(written)}")
            return None
        task_type = registry().lookup(written)
        if task_type is None:
            matches = registry().close_matches(written)
            # The same class name in other packages are all worth showing; otherwise the closest one.
            short = written.rsplit(".", 1)[-1].lower()
            shown = [m for m in matches if m.rsplit(".", 1)[-1].lower() == short] or matches[:1]
            tail = (
                f" Did you mean {' or '.join(f'`{m}`' for m in shown)}?"
                if shown
                else " Check the spelling, or install the plugin that provides it."
            )
            failed = "".join(f" Note: {failure}." for failure in registry().failures)
            ctx.error((*path, "type"), f"Unknown task type `{written}` on {label}.{tail}{failed}")
            return None
        if needs := missing_requirement(task_type.requires, task_type.extra):
            ctx.error((*path, "type"), f"Task type `{written}` on {label} {needs}")
            return None
        if task_type.not_in_kestra:
            ctx.warn(
                (*path, "type"),
                f"`{written}` is a Tiercel task: Kestra refuses this flow ({task_type.not_in_kestra})",
            )
        own = frozenset(data)
        data = apply_defaults(data, defaults_for(written, task_type.name, self.defaults))
        if not ARTICLE_KEYS.isdisjoint(data):
            data, renamed = article_spellings(ctx, data, task_type, path, task_id)
            own |= {new for old, new in renamed.items() if old in own}  # written on the task itself
        self._check_properties(data, task_type, path, task_id)
        for key in data:
            reason = task_type.ignored.get(key) or COMMON_IGNORED.get(key)
            if reason is not None and data[key] not in (None, False):
                ctx.warn((*path, key), f"`{key}` of task `{task_id}` is not applied: {reason}", key=True)
        data = check_task_values(ctx, data, task_type, path, own)
        props = self._props(data, task_type, path, task_id)
        retry = data.get("retry")
        log_level = ctx.text(data, "logLevel", path, "`logLevel`")
        if log_level is not None and log_level not in LOG_LEVELS:
            ctx.error(
                (*path, "logLevel"), f"Unknown log level `{log_level}`: use one of {', '.join(LOG_LEVELS)}"
            )
        spec = TaskSpec(
            id=task_id,
            type=task_type.name,
            props=props,
            description=ctx.text(data, "description", path, "`description`"),
            retry=parse_retry(ctx, retry, (*path, "retry")) if retry is not None else None,
            timeout=timeout if isinstance(timeout := data.get("timeout"), str) else None,
            disabled=ctx.boolean(data, "disabled", path, "`disabled`", False),
            allow_failure=ctx.boolean(data, "allowFailure", path, "`allowFailure`", False),
            allow_warning=ctx.boolean(data, "allowWarning", path, "`allowWarning`", False),
            run_if=ctx.text(data, "runIf", path, "`runIf`"),
            log_level=log_level,
            position=ctx.position(path),
            depends_on=self._task_depends_on(data, path, task_id),
            conditions=task_conditions(ctx, data.get("conditions"), (*path, "conditions"), task_id),
            fatal_errors=fatal_errors(
                ctx, data.get("fatalError"), (*path, "fatalError"), task_id, task_type.kind is Kind.FLOWABLE
            ),
            labels=task_labels(ctx, data.get("labels"), (*path, "labels"), task_type),
            cache=task_cache(ctx, data, task_type, task_type.kind is Kind.FLOWABLE, path, task_id),
        )
        # A type that runs internal tasks of its own (ForEachItem's split, items and merge) adds them.
        internal = getattr(task_type.handler, "internal_tasks", None)
        return internal(spec) if internal is not None else spec

    def _task_depends_on(self, data: dict[str, Any], path: YamlPath, task_id: str) -> tuple[str, ...]:
        """The siblings a task waits for, kept with where they are written until its list is checked."""
        if data.get("dependsOn") is None:
            return ()
        depends = depends_on(self.ctx, data["dependsOn"], (*path, "dependsOn"))
        self._depends[task_id] = depends  # an empty list included: the task starts at once
        return tuple(name for name, _ in depends)

    def _task_id(self, data: dict[str, Any], path: YamlPath) -> str:
        ctx = self.ctx
        raw = data.get("id")
        if raw is None:
            ctx.error(
                path, "A task has no `id`: add one, e.g. `id: hello` (ids are unique in the whole flow)"
            )
            return ""
        if isinstance(raw, dict | list):
            ctx.error((*path, "id"), f"A task id must be text, not {type_name(raw)}")
            return ""
        task_id = java_text(raw)
        id_path = (*path, "id")
        ctx.check_id(task_id, id_path, "Task id", ID_PATTERN)
        if len(task_id) > MAX_TASK_ID:
            ctx.error(id_path, f"Task id `{task_id[:40]}...` is too long: at most {MAX_TASK_ID} characters")
        first = self.task_ids.get(task_id)
        if first is not None:
            line = ctx.line_of(first)
            where = f" (first used on line {line})" if line else ""
            ctx.error(id_path, f"Duplicate task id `{task_id}`: ids must be unique in the whole flow{where}")
        else:
            self.task_ids[task_id] = id_path
        return task_id

    def _check_properties(
        self, data: dict[str, Any], task_type: TaskType, path: YamlPath, task_id: str
    ) -> None:
        ctx = self.ctx
        known = COMMON_PROPERTIES | task_type.properties | set(task_type.children) | task_type.deprecated
        if task_type.kind is Kind.FLOWABLE:
            known |= FLOWABLE_PROPERTIES
        short = task_type.name.rsplit(".", 1)[-1]
        for key in data:
            if not (task_type.accepts(key) or key in task_type.deprecated):
                ctx.error(
                    (*path, key),
                    f"Unknown property `{key}` on task `{task_id}` ({task_type.name})"
                    f"{suggestion(key, known)}",
                    key=True,
                )
        for name in sorted(task_type.required):
            if data.get(name) is None:
                ctx.error(path, f"Task `{task_id}` ({short}) is missing the required property `{name}`")

    def _props(
        self, data: dict[str, Any], task_type: TaskType, path: YamlPath, task_id: str
    ) -> dict[str, Any]:
        shapes = task_type.child_shapes()
        props: dict[str, Any] = {}
        for key, raw in data.items():
            if key in SPEC_FIELDS and key not in task_type.properties:
                # A type that declares a common name as its own (Pause's `timeout`) reads it from props.
                continue
            shape = shapes.get(key)
            if key in task_type.input_props and raw is not None:
                from .inputs import parse_inputs

                props[key] = parse_inputs(self.ctx, raw, (*path, key))
            elif shape is None:
                props[key] = raw
            elif raw is None:
                # `defaults: null` is the same as leaving the property out.
                continue
            elif shape is ChildShape.LIST:
                if raw == [] and key in task_type.required:
                    self.ctx.error(
                        (*path, key), f"`{key}` of task `{task_id}` is empty: add at least one task"
                    )
                in_order = not (key == "tasks" and task_type.name in _PARALLEL_TYPES)
                props[key] = self.tasks(raw, (*path, key), f"`{key}` of task `{task_id}`", in_order=in_order)
            elif shape is ChildShape.CASES:
                props[key] = self._cases(raw, (*path, key), task_id)
            else:
                props[key] = self._dag(raw, (*path, key), task_id)
        short = task_type.name.rsplit(".", 1)[-1]
        for key, shape in shapes.items():
            if shape is ChildShape.CASES and not props.get(key):
                self.ctx.error(
                    (*path, key),
                    f"{short} task `{task_id}` has no cases: add at least one entry under `{key}`",
                )
        return props

    def _cases(self, raw: Any, path: YamlPath, task_id: str) -> dict[str, tuple[TaskSpec, ...]]:
        data = self.ctx.mapping(raw, path, f"`cases` of task `{task_id}`")
        if data is None:
            return {}
        return {
            str(case): self.tasks(tasks, (*path, case), f"Case `{case}` of task `{task_id}`")
            for case, tasks in data.items()
        }

    def _dag(self, raw: Any, path: YamlPath, task_id: str) -> tuple[DagNode, ...]:
        ctx = self.ctx
        items = ctx.sequence(raw, path, f"`tasks` of Dag `{task_id}`")
        if items is None:
            return ()
        nodes: list[DagNode] = []
        edges: Edges = {}
        for index, item in enumerate(items):
            item_path = (*path, index)
            entry = ctx.mapping(item, item_path, f"An entry of Dag `{task_id}` (`task:` and `dependsOn:`)")
            if entry is None:
                continue
            ctx.unknown_keys(entry, _DAG_NODE_KEYS, item_path, f"an entry of Dag `{task_id}`")
            written_task = entry.get("task")
            if written_task is None:
                ctx.error(item_path, f"An entry of Dag `{task_id}` has no `task`: put the task under `task:`")
                continue
            depends = depends_on(ctx, entry.get("dependsOn"), (*item_path, "dependsOn"))
            if isinstance(written_task, dict) and isinstance(written_task.get("id"), str):
                edges[written_task["id"]] = depends  # named even when the task itself is invalid
            spec = self.task(written_task, (*item_path, "task"))
            if spec is None:
                continue
            if self._depends.pop(spec.id, None) is not None:
                ctx.error(
                    (*item_path, "task", "dependsOn"),
                    f"In Dag `{task_id}`, `dependsOn` goes beside `task:`, not inside the task",
                    key=True,
                )
            names = tuple(name for name, _ in depends)
            nodes.append(DagNode(dataclasses.replace(spec, depends_on=names), names))
        check_dependencies(ctx, edges, f"Dag `{task_id}`", "this Dag")
        return tuple(nodes)
