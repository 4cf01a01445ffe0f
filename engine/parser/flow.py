"""A loaded YAML document -> Flow: the flow's own properties, then each section in its module."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..model import Flow, PluginDefault
from .context import Context, type_name
from .inputs import parse_inputs, parse_outputs
from .labels import parse_labels
from .loader import YamlPath
from .oss_rules import check_oss_rules
from .sla import parse_sla
from .tasks import TaskParser, parse_retry
from .triggers import parse_triggers

# The plugin defaults a namespace declares (engine/flows/namespaces.py), by namespace.
NamespaceDefaults = Callable[[str], Sequence[PluginDefault]]

FLOW_KEYS = frozenset(
    {
        "id",
        "namespace",
        "revision",
        "description",
        "labels",
        "inputs",
        "variables",
        "tasks",
        "errors",
        "finally",
        "afterExecution",
        "triggers",
        "pluginDefaults",
        "taskDefaults",
        "concurrency",
        "outputs",
        "retry",
        "disabled",
        "listeners",
        "deleted",
        "workerGroup",
        "workerSelector",
        "sla",
        "checks",
    }
)
# Kestra's AbstractFlow patterns: flow ids may hold dots, namespaces are lower case.
FLOW_ID_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]*")
NAMESPACE_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")
MAX_FLOW_ID = 100
MAX_NAMESPACE = 150

_PLUGIN_DEFAULT_KEYS = frozenset({"type", "values", "forced"})
_LISTENER_KEYS = frozenset({"conditions", "tasks", "description"})
CONCURRENCY_BEHAVIORS = ("QUEUE", "CANCEL", "FAIL")


def build_flow(
    ctx: Context, root: Any, text: str, path: str | None, namespace_defaults: NamespaceDefaults | None = None
) -> Flow | None:
    """Check every part of the document, reporting into `ctx`; the Flow when nothing was wrong.

    `namespace_defaults` gives the plugin defaults the flow's namespace declares; the flow's own
    come after them, so they win.
    """
    if not isinstance(root, dict):
        ctx.error(
            (), f"A flow is a mapping with at least `id`, `namespace` and `tasks`, not {type_name(root)}"
        )
        return None
    data: dict[str, Any] = root
    ctx.unknown_keys(data, FLOW_KEYS, (), "the flow")
    flow_id = _flow_id(ctx, data)
    namespace = _namespace(ctx, data)
    inherited = namespace_defaults(namespace) if namespace and namespace_defaults else ()
    defaults = [*inherited, *plugin_defaults(ctx, data)]
    parser = TaskParser(ctx, defaults)
    if data.get("tasks") in (None, []):
        ctx.error(("tasks",), "The flow has no tasks: add at least one task under `tasks`")
    tasks = parser.tasks(data.get("tasks"), ("tasks",), "`tasks`")
    errors = parser.tasks(data.get("errors"), ("errors",), "`errors`")
    finally_ = parser.tasks(data.get("finally"), ("finally",), "`finally`")
    after_execution = parser.tasks(data.get("afterExecution"), ("afterExecution",), "`afterExecution`")
    listeners = _listeners(ctx, data.get("listeners"), parser)
    check_oss_rules(ctx, data)
    triggers = parse_triggers(ctx, data.get("triggers"), defaults, parser.task_ids)
    inputs = parse_inputs(ctx, data.get("inputs"), rendered=True)
    outputs = parse_outputs(ctx, data.get("outputs"))
    labels = parse_labels(ctx, data.get("labels"), ("labels",))
    concurrency = _concurrency(ctx, data.get("concurrency"))
    retry = parse_retry(ctx, data["retry"], ("retry",)) if data.get("retry") is not None else None
    sla = parse_sla(ctx, data.get("sla"), parse_labels)
    variables = ctx.mapping(data["variables"], ("variables",), "`variables`") if data.get("variables") else {}
    description = ctx.text(data, "description", (), "`description`")
    disabled = ctx.boolean(data, "disabled", (), "`disabled`", False)
    ctx.boolean(data, "deleted", (), "`deleted`", False)
    if ctx.errors or flow_id is None or namespace is None:
        return None
    return Flow(
        id=flow_id,
        namespace=namespace,
        tasks=tasks,
        description=description,
        labels=labels,
        inputs=inputs,
        variables=variables or {},
        errors=errors,
        finally_=finally_,
        after_execution=after_execution,
        triggers=triggers,
        plugin_defaults=tuple(defaults),
        concurrency=concurrency,
        outputs=outputs,
        retry=retry,
        disabled=disabled,
        listeners=listeners,
        sla=sla,
        source=text,
        path=path,
    )


def _flow_id(ctx: Context, data: dict[str, Any]) -> str | None:
    flow_id = ctx.required_text(data, "id", (), "The flow has no `id`: add one, e.g. `id: hello_world`")
    if flow_id is not None:
        ctx.check_id(flow_id, ("id",), "Flow id", FLOW_ID_PATTERN)
        if len(flow_id) > MAX_FLOW_ID:
            ctx.error(("id",), f"Flow id is too long: at most {MAX_FLOW_ID} characters")
    return flow_id


def _namespace(ctx: Context, data: dict[str, Any]) -> str | None:
    missing = "The flow has no `namespace`: add one, e.g. `namespace: company.team`"
    namespace = ctx.required_text(data, "namespace", (), missing)
    if namespace is None:
        return None
    if not NAMESPACE_PATTERN.fullmatch(namespace):
        hint = " (namespaces are lower case)" if NAMESPACE_PATTERN.fullmatch(namespace.lower()) else ""
        ctx.error(
            ("namespace",),
            f"Namespace `{namespace}` is invalid: it must match the pattern `^{NAMESPACE_PATTERN.pattern}$`, "
            f"lower-case letters, digits, `.`, `_` and `-`{hint}",
        )
    if len(namespace) > MAX_NAMESPACE:
        ctx.error(("namespace",), f"Namespace is too long: at most {MAX_NAMESPACE} characters")
    return namespace


def plugin_defaults(
    ctx: Context, data: dict[str, Any], keys: tuple[str, ...] = ("taskDefaults", "pluginDefaults")
) -> list[PluginDefault]:
    defaults: list[PluginDefault] = []
    # `taskDefaults` is the older name; `pluginDefaults` come after it so they win on conflicts.
    for key in keys:
        items = ctx.sequence(data.get(key), (key,), f"`{key}`")
        for index, item in enumerate(items or ()):
            path: YamlPath = (key, index)
            entry = ctx.mapping(item, path, f"An entry of `{key}`")
            if entry is None:
                continue
            ctx.unknown_keys(entry, _PLUGIN_DEFAULT_KEYS, path, f"an entry of `{key}`")
            kind = ctx.required_text(
                entry, "type", path, f"An entry of `{key}` has no `type` (the plugin it applies to)"
            )
            values = entry.get("values")
            if values is None:
                ctx.error(path, f"An entry of `{key}` has no `values` (the properties to set)")
                continue
            if ctx.mapping(values, (*path, "values"), "`values`") is None or kind is None:
                continue
            forced = ctx.boolean(entry, "forced", path, "`forced`", False)
            defaults.append(PluginDefault(type=kind, values=values, forced=forced))
    return defaults


def _listeners(ctx: Context, raw: Any, parser: TaskParser) -> tuple[Mapping[str, Any], ...]:
    items = ctx.sequence(raw, ("listeners",), "`listeners`")
    listeners: list[Mapping[str, Any]] = []
    for index, item in enumerate(items or ()):
        path: YamlPath = ("listeners", index)
        entry = ctx.mapping(item, path, "A listener")
        if entry is None:
            continue
        ctx.unknown_keys(entry, _LISTENER_KEYS, path, "a listener")
        if not entry.get("tasks"):  # Kestra's Listener: `tasks` is @NotEmpty
            ctx.error(path, "A listener needs at least one task in `tasks`")
            continue
        # Kept as written; its tasks are checked like any other (ids, types, properties).
        parser.tasks(entry.get("tasks"), (*path, "tasks"), "`tasks` of a listener")
        listeners.append(entry)
    return tuple(listeners)


def _concurrency(ctx: Context, raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    path: YamlPath = ("concurrency",)
    data = ctx.mapping(raw, path, "`concurrency`")
    if data is None:
        return None
    ctx.unknown_keys(data, ("limit", "behavior"), path, "`concurrency`")
    limit = data.get("limit")
    if limit is None:
        ctx.error(
            path, "`concurrency` needs a `limit`: how many executions of this flow may run at once (>= 1)"
        )
    elif not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        ctx.error((*path, "limit"), f"`concurrency.limit` must be an integer >= 1, not `{limit}`")
    behavior = data.get("behavior")
    if behavior is None:
        behavior = "QUEUE"
    elif behavior not in CONCURRENCY_BEHAVIORS:
        ctx.error(
            (*path, "behavior"),
            f"Unknown concurrency behavior `{behavior}`: use {', '.join(CONCURRENCY_BEHAVIORS)}",
        )
    return {"limit": limit, "behavior": behavior}
