"""Flow triggers: ids, plugin defaults, and Kestra's checks of each trigger type's properties."""

from __future__ import annotations

import datetime
import re
import zoneinfo
from typing import Any

from ..model import PluginDefault, StateType, TriggerSpec
from ..tasks.registry import missing_requirement, registry
from ..tasks.types import TriggerType
from ..triggers.conditions import SCHEDULE_CONDITION_TYPES, condition_problem, condition_type
from ..triggers.types import ENGINE_TRIGGERS, FLOW, HTTP, SCHEDULE, TRIGGER_ALIASES, WEBHOOK
from .conditions import check_condition_templates
from .context import ID_PATTERN, Context, parse_duration_value, type_name
from .loader import YamlPath
from .tasks import apply_defaults, defaults_for
from .templates import check_templates

# AbstractTrigger's properties (Kestra's AbstractTrigger.java), common to every trigger type.
_ABSTRACT_TRIGGER_KEYS = frozenset(
    {
        "id",
        "type",
        "version",
        "description",
        "conditions",
        "disabled",
        "workerGroup",
        "logLevel",
        "minLogLevel",
        "labels",
        "stopAfter",
        "logToFile",
        "failOnTriggerError",
        "allowConcurrent",
        "assets",
    }
)
# Schedule's own (Kestra's Schedule.java).
_SCHEDULE_KEYS = _ABSTRACT_TRIGGER_KEYS | {
    "cron",
    "withSeconds",
    "timezone",
    "interval",
    "scheduleConditions",
    "inputs",
    "lateMaximumDelay",
    "backfill",
    "recoverMissedSchedules",
}
CRON_NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT"),
)
_RECOVER = ("ALL", "LAST", "NONE")
# What a trigger renders when it fires, by trigger type (a Schedule's inputs are passed as written).
_RENDERED = {
    FLOW: ("inputs", "labels"),
    WEBHOOK: ("key", "inputs", "labels"),
    HTTP: ("uri", "method", "body", "formData", "contentType", "headers", "options", "responseCondition"),
}


def parse_triggers(
    ctx: Context, raw: Any, defaults: list[PluginDefault], task_ids: dict[str, YamlPath]
) -> tuple[TriggerSpec, ...]:
    """The flow's triggers; ids must differ from each other and from every task id (`task_ids`)."""
    items = ctx.sequence(raw, ("triggers",), "`triggers`")
    triggers: list[TriggerSpec] = []
    seen: dict[str, YamlPath] = {}
    for index, item in enumerate(items or ()):
        path: YamlPath = ("triggers", index)
        entry = ctx.mapping(item, path, "A trigger")
        if entry is None:
            continue
        missing_id = "A trigger has no `id`: add one, e.g. `id: daily`"
        trigger_id = ctx.required_text(entry, "id", path, missing_id) or ""
        if trigger_id:
            _check_trigger_id(ctx, trigger_id, (*path, "id"), seen, task_ids)
        missing_type = f"Trigger `{trigger_id}` has no `type`: e.g. `type: {SCHEDULE}`"
        written = ctx.required_text(entry, "type", path, missing_type)
        if written is None:
            continue
        kind = TRIGGER_ALIASES.get(written, written)
        plugin = None if kind in ENGINE_TRIGGERS else registry().lookup_trigger(written)
        if plugin is not None:
            kind = plugin.name
        entry = apply_defaults(entry, defaults_for(written, kind, defaults))
        if kind == SCHEDULE:
            _check_schedule(ctx, entry, path, trigger_id)
        elif kind == FLOW:
            _check_flow_trigger(ctx, entry, path, trigger_id)
        elif kind == WEBHOOK:
            _check_webhook(ctx, entry, path, trigger_id)
        elif kind == HTTP:
            _check_http_trigger(ctx, entry, path, trigger_id)
        elif plugin is not None:
            if not _check_plugin_trigger(ctx, entry, path, trigger_id, plugin):
                continue
        else:
            _unknown_type(ctx, written, (*path, "type"), trigger_id)
            continue
        rendered = _RENDERED.get(kind, ()) if plugin is None else tuple(plugin.properties - {"interval"})
        for key in rendered:
            check_templates(ctx, entry.get(key), (*path, key))
        props = {key: value for key, value in entry.items() if key not in ("id", "type", "disabled")}
        disabled = ctx.boolean(entry, "disabled", path, "`disabled`", False)
        triggers.append(TriggerSpec(trigger_id, kind, props, disabled, ctx.position(path)))
    return tuple(triggers)


def _short(type_name: str) -> str:
    return ".".join(type_name.rsplit(".", 2)[-2:]).lower()


def _unknown_type(ctx: Context, written: str, path: YamlPath, trigger_id: str) -> None:
    """Refuse a trigger type this engine cannot fire, as an unknown task type is refused."""
    import difflib  # only a flow with an unknown type needs it

    known = (*ENGINE_TRIGGERS, *TRIGGER_ALIASES)
    # The class name with its package (`trigger.Schedule`, `http.Trigger`): a plugin's `pubsub.Trigger`
    # is another trigger, not a misspelt `http.Trigger`.
    by_short = {_short(name): name for name in known}
    close = difflib.get_close_matches(_short(written), by_short, n=1, cutoff=0.8)
    matches = [by_short[name] for name in close]
    tail = (
        f" Did you mean `{TRIGGER_ALIASES.get(matches[0], matches[0])}`?"
        if matches
        else f" This engine fires {', '.join(f'`{name}`' for name in ENGINE_TRIGGERS)}."
    )
    ctx.error(path, f"Unknown trigger type `{written}` on trigger `{trigger_id}`.{tail}")


def _check_trigger_id(
    ctx: Context, trigger_id: str, path: YamlPath, seen: dict[str, YamlPath], task_ids: dict[str, YamlPath]
) -> None:
    ctx.check_id(trigger_id, path, "Trigger id", ID_PATTERN)
    if trigger_id in seen:
        line = ctx.line_of(seen[trigger_id])
        ctx.error(
            path,
            f"Duplicate trigger id `{trigger_id}`: trigger ids must be unique (first used on line {line})",
        )
    else:
        seen[trigger_id] = path
    if trigger_id in task_ids:
        line = ctx.line_of(task_ids[trigger_id])
        ctx.error(
            path,
            f"Trigger id `{trigger_id}` is also the id of a task (line {line}): ids must be unique across "
            "tasks and triggers",
        )


def _check_schedule(ctx: Context, entry: dict[str, Any], path: YamlPath, trigger_id: str) -> None:
    ctx.unknown_keys(entry, _SCHEDULE_KEYS, path, f"Schedule trigger `{trigger_id}`")
    with_seconds = ctx.boolean(entry, "withSeconds", path, "`withSeconds`", False)
    cron = entry.get("cron")
    if cron is None:
        ctx.error(path, f'Schedule trigger `{trigger_id}` has no `cron`: add one, e.g. `cron: "0 9 * * *"`')
    elif not isinstance(cron, str):
        ctx.error((*path, "cron"), f'`cron` must be text such as "0 9 * * *", not {type_name(cron)}')
    else:
        problem = cron_problem(cron, with_seconds)
        if problem:
            ctx.error(
                (*path, "cron"), f"Invalid cron expression `{cron}` on trigger `{trigger_id}`: {problem}"
            )
    timezone = entry.get("timezone")
    if timezone is not None and not _is_timezone(timezone):
        ctx.error(
            (*path, "timezone"),
            f"Unknown time zone `{timezone}`: use an IANA name such as `Europe/Paris`, "
            "`America/New_York` or `UTC`",
        )
    recover = entry.get("recoverMissedSchedules")
    if recover is not None and recover not in _RECOVER:
        ctx.error(
            (*path, "recoverMissedSchedules"),
            f"`recoverMissedSchedules` must be one of {', '.join(_RECOVER)}",
        )
    parse_duration_value(
        ctx, entry.get("lateMaximumDelay"), (*path, "lateMaximumDelay"), "`lateMaximumDelay`"
    )
    _check_schedule_extras(ctx, entry, path, f"Schedule trigger `{trigger_id}`")


def _check_schedule_extras(ctx: Context, entry: dict[str, Any], path: YamlPath, owner: str) -> None:
    """Conditions (only those a schedule can test), stopAfter states, allowConcurrent, inputs."""
    for key in ("conditions", "scheduleConditions"):
        _check_conditions(ctx, entry.get(key), (*path, key), owner)
        written = entry.get(key)
        for index, condition in enumerate(written if isinstance(written, list) else []):
            kind = condition_type(condition) if isinstance(condition, dict) else None
            if kind is not None and kind not in SCHEDULE_CONDITION_TYPES:
                ctx.error(
                    (*path, key, index, "type"),
                    f"{owner}: `{condition['type']}` tests the execution that triggered, "
                    "and a schedule has none (use a date condition or an Expression)",
                )
    if entry.get("stopAfter") is not None:
        _check_states(ctx, entry["stopAfter"], (*path, "stopAfter"), owner)
    ctx.boolean(entry, "allowConcurrent", path, "`allowConcurrent`", False)
    if entry.get("inputs") is not None:
        ctx.mapping(entry["inputs"], (*path, "inputs"), f"`inputs` of {owner}")


def _is_timezone(name: Any) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def cron_problem(expression: str, with_seconds: bool = False) -> str | None:
    """Why a Schedule cron is invalid (Kestra: 5 fields, 6 with a leading seconds field), else None."""
    text = expression.strip()
    if text.startswith("@"):
        return None if text in CRON_NICKNAMES else f"unknown nickname, use one of {', '.join(CRON_NICKNAMES)}"
    fields = text.split()
    names = [("second", "0-59"), *_CRON_FIELDS] if with_seconds else list(_CRON_FIELDS)
    if len(fields) != len(names):
        if len(fields) == 6 and not with_seconds:
            return (
                "it has 6 fields; a cron has 5 (minute hour day-of-month month day-of-week), "
                "or set `withSeconds: true` to add a leading seconds field"
            )
        return f"it has {len(fields)} fields, expected {len(names)} ({' '.join(name for name, _ in names)})"
    from croniter import croniter  # loaded by the first flow with a cron only

    for index, (name, allowed) in enumerate(names):
        probe = ["*"] * len(names)
        probe[index] = fields[index]
        if not croniter.is_valid(" ".join(probe), second_at_beginning=with_seconds):
            return f"the {name} field `{fields[index]}` is invalid (allowed: {allowed})"
    if not croniter.is_valid(text, second_at_beginning=with_seconds):
        return "the fields do not form a valid schedule"
    return None


# ---------------------------------------------------------------------------------------------
# Flow and Webhook triggers (Kestra's Flow.java with its Preconditions, and Webhook.java)
# ---------------------------------------------------------------------------------------------

_FLOW_KEYS = _ABSTRACT_TRIGGER_KEYS | {"inputs", "states", "preconditions"}
_WEBHOOK_KEYS = _ABSTRACT_TRIGGER_KEYS | {
    "key",
    "inputs",
    "wait",
    "returnOutputs",
    "responseContentType",
    "responseCode",
    "fetchType",
}
_PRECONDITION_KEYS = frozenset({"id", "flows", "where", "timeWindow", "resetOnSuccess"})
_UPSTREAM_KEYS = frozenset({"namespace", "flowId", "states", "labels"})
_WHERE_KEYS = frozenset({"id", "operand", "filters"})
_FILTER_KEYS = frozenset({"field", "type", "value", "values"})
_TIME_WINDOW_KEYS = frozenset(
    {"type", "window", "windowAdvance", "deadline", "startTime", "endTime", "timezone"}
)
_FILTER_FIELDS = ("FLOW_ID", "NAMESPACE", "STATE", "EXPRESSION")
_FILTER_TYPES = (
    "EQUAL_TO",
    "NOT_EQUAL_TO",
    "IN",
    "NOT_IN",
    "IS_TRUE",
    "IS_FALSE",
    "IS_NULL",
    "IS_NOT_NULL",
    "STARTS_WITH",
    "ENDS_WITH",
    "REGEX",
    "CONTAINS",
)
_WINDOW_TYPES = ("DURATION_WINDOW", "SLIDING_WINDOW", "DAILY_TIME_WINDOW", "DAILY_TIME_DEADLINE")
_STATE_NAMES = tuple(state.value for state in StateType)


def _check_flow_trigger(ctx: Context, entry: dict[str, Any], path: YamlPath, trigger_id: str) -> None:
    owner = f"Flow trigger `{trigger_id}`"
    ctx.unknown_keys(entry, _FLOW_KEYS, path, owner)
    states = _check_states(ctx, entry.get("states"), (*path, "states"), owner)
    if "CREATED" in states:
        ctx.error(
            (*path, "states"),
            f"{owner} cannot react to CREATED: a Flow trigger reacts to state changes, "
            "and CREATED is the first state",
        )
    _check_conditions(ctx, entry.get("conditions"), (*path, "conditions"), owner)
    if entry.get("inputs") is not None:
        ctx.mapping(entry["inputs"], (*path, "inputs"), f"`inputs` of {owner}")
    if entry.get("preconditions") is not None:
        _check_preconditions(ctx, entry["preconditions"], (*path, "preconditions"), owner)


def _check_states(ctx: Context, value: Any, path: YamlPath, owner: str) -> list[str]:
    items = ctx.sequence(value, path, f"`states` of {owner}") or []
    for index, item in enumerate(items):
        if item not in _STATE_NAMES:
            ctx.error(
                (*path, index), f"Unknown state `{item}` in {owner}: use one of {', '.join(_STATE_NAMES)}"
            )
    return [str(item) for item in items]


def _check_conditions(ctx: Context, value: Any, path: YamlPath, owner: str) -> None:
    for index, condition in enumerate(ctx.sequence(value, path, f"`conditions` of {owner}") or ()):
        written = condition.get("type") if isinstance(condition, dict) else None
        if isinstance(written, str) and written.endswith(".MultipleCondition"):
            _check_multiple_condition(ctx, condition, (*path, index), owner)
            continue
        problem = condition_problem(condition)
        if problem:
            ctx.error((*path, index), f"Invalid condition in {owner}: {problem}")
        else:
            check_condition_templates(ctx, condition, (*path, index))


def _check_multiple_condition(ctx: Context, data: dict[str, Any], path: YamlPath, owner: str) -> None:
    """Kestra's deprecated MultipleCondition: named conditions to meet within a time window."""
    if not owner.startswith("Flow trigger"):
        ctx.error((*path, "type"), f"{owner}: MultipleCondition is only allowed on a Flow trigger")
        return
    allowed = {"type", "id", "conditions", "timeWindow", "sla", "window", "windowAdvance", "resetOnSuccess"}
    ctx.unknown_keys(data, allowed, path, "MultipleCondition")
    if data.get("id") is not None:
        ctx.check_id(str(data["id"]), (*path, "id"), "MultipleCondition id", ID_PATTERN)
    members = ctx.mapping(data.get("conditions"), (*path, "conditions"), "MultipleCondition `conditions`")
    if members == {}:
        ctx.error(path, "MultipleCondition needs `conditions`: a mapping of names to conditions")
    for name, member in (members or {}).items():
        problem = condition_problem(member)
        if problem:
            ctx.error((*path, "conditions", name), f"Invalid condition `{name}` in {owner}: {problem}")
        else:
            check_condition_templates(ctx, member, (*path, "conditions", name))
    ctx.boolean(data, "resetOnSuccess", path, "`resetOnSuccess`", True)
    for key in ("window", "windowAdvance"):
        parse_duration_value(ctx, data.get(key), (*path, key), f"`{key}`")
    for key in ("timeWindow", "sla"):
        if data.get(key) is not None:
            _check_time_window(ctx, data[key], (*path, key))


def _check_preconditions(ctx: Context, value: Any, path: YamlPath, owner: str) -> None:
    data = ctx.mapping(value, path, f"`preconditions` of {owner}")
    if data is None:
        return
    what = f"`preconditions` of {owner}"
    ctx.unknown_keys(data, _PRECONDITION_KEYS, path, what)
    if data.get("id") is not None:
        ctx.check_id(str(data["id"]), (*path, "id"), "Preconditions id", ID_PATTERN)
    ctx.boolean(data, "resetOnSuccess", path, "`resetOnSuccess`", True)
    for index, upstream in enumerate(ctx.sequence(data.get("flows"), (*path, "flows"), "`flows`") or ()):
        where = (*path, "flows", index)
        item = ctx.mapping(upstream, where, "An upstream flow")
        if item is None:
            continue
        ctx.unknown_keys(item, _UPSTREAM_KEYS, where, "an upstream flow")
        ctx.required_text(item, "namespace", where, f"An upstream flow of {what} needs a `namespace`")
        ctx.text(item, "flowId", where, "`flowId`")
        _check_states(ctx, item.get("states"), (*where, "states"), owner)
        if item.get("labels") is not None:
            ctx.mapping(item["labels"], (*where, "labels"), "`labels` (key: value)")
    for index, filters in enumerate(ctx.sequence(data.get("where"), (*path, "where"), "`where`") or ()):
        _check_where(ctx, filters, (*path, "where", index))
    if data.get("timeWindow") is not None:
        _check_time_window(ctx, data["timeWindow"], (*path, "timeWindow"))


def _check_where(ctx: Context, value: Any, path: YamlPath) -> None:
    data = ctx.mapping(value, path, "A `where` precondition")
    if data is None:
        return
    ctx.unknown_keys(data, _WHERE_KEYS, path, "a `where` precondition")
    ctx.required_text(data, "id", path, "A `where` precondition needs an `id`")
    if data.get("operand") not in (None, "AND", "OR"):
        ctx.error((*path, "operand"), "`operand` must be AND or OR")
    filters = ctx.sequence(data.get("filters"), (*path, "filters"), "`filters`")
    if filters == []:
        ctx.error(path, "A `where` precondition needs a non-empty list of `filters`")
    for index, item in enumerate(filters or ()):
        where = (*path, "filters", index)
        entry = ctx.mapping(item, where, "A filter")
        if entry is None:
            continue
        ctx.unknown_keys(entry, _FILTER_KEYS, where, "a filter")
        if entry.get("field") not in _FILTER_FIELDS:
            ctx.error((*where, "field"), f"A filter's `field` must be one of {', '.join(_FILTER_FIELDS)}")
        kind = entry.get("type")
        if kind not in _FILTER_TYPES:
            ctx.error((*where, "type"), f"A filter's `type` must be one of {', '.join(_FILTER_TYPES)}")
        elif kind in ("IN", "NOT_IN"):
            if not isinstance(entry.get("values"), list):
                ctx.error(where, f"A {kind} filter needs `values`, a list")
        elif (
            kind not in ("IS_NULL", "IS_NOT_NULL", "IS_TRUE", "IS_FALSE")
            or entry.get("field") == "EXPRESSION"
        ) and (entry.get("value") is None):
            ctx.error(where, f"A {kind} filter on {entry.get('field')} needs a `value`")
        elif kind == "REGEX":
            _check_regex(ctx, entry.get("value"), (*where, "value"))
        if entry.get("field") == "EXPRESSION":  # its value is the expression rendered
            check_templates(ctx, entry.get("value"), (*where, "value"))


def _check_regex(ctx: Context, value: Any, path: YamlPath) -> None:
    """A literal REGEX pattern must compile (one holding an expression is known only at run time)."""
    if not isinstance(value, str) or "{{" in value:
        return
    try:
        re.compile(value)
    except re.error as error:
        ctx.error(path, f"A REGEX filter's `value` is not a valid regular expression: {error}")


def _check_time_window(ctx: Context, value: Any, path: YamlPath) -> None:
    data = ctx.mapping(value, path, "`timeWindow`")
    if data is None:
        return
    ctx.unknown_keys(data, _TIME_WINDOW_KEYS, path, "`timeWindow`")
    kind = data.get("type") or "DURATION_WINDOW"
    if kind not in _WINDOW_TYPES:
        ctx.error((*path, "type"), f"`timeWindow.type` must be one of {', '.join(_WINDOW_TYPES)}")
    window = parse_duration_value(ctx, data.get("window"), (*path, "window"), "`window`")
    if window is not None and window.total_seconds() <= 0:
        ctx.error((*path, "window"), "`window` must be a positive duration")
    parse_duration_value(ctx, data.get("windowAdvance"), (*path, "windowAdvance"), "`windowAdvance`")
    needed = {"DAILY_TIME_DEADLINE": ("deadline",), "DAILY_TIME_WINDOW": ("startTime", "endTime")}.get(
        kind, ()
    )
    for key in ("deadline", "startTime", "endTime"):
        if data.get(key) is None:
            if key in needed:
                ctx.error(path, f'A {kind} time window needs `{key}`, e.g. `{key}: "09:00:00"`')
            continue
        raw = data[key]
        try:
            if not isinstance(raw, int):
                datetime.time.fromisoformat(str(raw))
        except ValueError:
            ctx.error((*path, key), f'`{key}` must be a time of day such as "09:00:00", not `{raw}`')
    if data.get("timezone") is not None and not _is_timezone(data["timezone"]):
        ctx.error(
            (*path, "timezone"), f"Unknown time zone `{data['timezone']}`: use an IANA name such as `UTC`"
        )


def _check_webhook(ctx: Context, entry: dict[str, Any], path: YamlPath, trigger_id: str) -> None:
    owner = f"Webhook trigger `{trigger_id}`"
    ctx.unknown_keys(entry, _WEBHOOK_KEYS, path, owner)
    key = ctx.required_text(
        entry, "key", path, f"{owner} has no `key`: add a long random one, e.g. `key: 4wjtkzwVGBM9`"
    )
    if key is not None:
        if not key.strip():
            ctx.error((*path, "key"), f"{owner}: `key` must not be blank")
        elif len(key) > 256:
            ctx.error(
                (*path, "key"), f"{owner}: `key` is {len(key)} characters long, at most 256 are allowed"
            )
        elif "/" in key:
            ctx.error((*path, "key"), f"{owner}: `key` is part of the webhook URL and cannot contain `/`")
    _check_conditions(ctx, entry.get("conditions"), (*path, "conditions"), owner)
    if entry.get("inputs") is not None:
        ctx.mapping(entry["inputs"], (*path, "inputs"), f"`inputs` of {owner}")
    wait = ctx.boolean(entry, "wait", path, "`wait`", False)
    if ctx.boolean(entry, "returnOutputs", path, "`returnOutputs`", False) and not wait:
        ctx.error((*path, "returnOutputs"), f"{owner}: `returnOutputs` requires `wait: true`")


# ---------------------------------------------------------------------------------------------
# The HTTP polling trigger (Kestra's io.kestra.plugin.core.http.Trigger)
# ---------------------------------------------------------------------------------------------

_HTTP_KEYS = _ABSTRACT_TRIGGER_KEYS | {
    "interval",
    "responseCondition",
    "uri",
    "method",
    "body",
    "params",
    "formData",
    "contentType",
    "headers",
    "options",
    "encryptBody",
    "sslOptions",
}


def _check_http_trigger(ctx: Context, entry: dict[str, Any], path: YamlPath, trigger_id: str) -> None:
    """Kestra's Trigger.java: a required `uri`, a positive `interval`, the Request task's properties."""
    owner = f"HTTP trigger `{trigger_id}`"
    ctx.unknown_keys(entry, _HTTP_KEYS, path, owner)
    uri = ctx.required_text(
        entry,
        "uri",
        path,
        f"{owner} has no `uri`: add the URL to poll, e.g. `uri: https://example.com/status`",
    )
    if uri is not None and "{{" not in uri and not uri.strip().lower().startswith(("http://", "https://")):
        ctx.error((*path, "uri"), f"{owner}: `uri` must be an http:// or https:// URL, not `{uri}`")
    interval = parse_duration_value(ctx, entry.get("interval"), (*path, "interval"), "`interval`")
    if interval is not None and interval.total_seconds() <= 0:
        ctx.error((*path, "interval"), f"{owner}: `interval` must be a positive duration such as PT60S")
    for key in ("method", "body", "contentType", "responseCondition"):
        value = entry.get(key)
        if key != "body" and value is not None and not isinstance(value, str):
            ctx.error((*path, key), f"{owner}: `{key}` must be text, not {type_name(value)}")
    for key in ("headers", "formData", "params", "options", "sslOptions"):
        if entry.get(key) is not None:
            ctx.mapping(entry[key], (*path, key), f"`{key}` of {owner}")
    ctx.boolean(entry, "encryptBody", path, "`encryptBody`", False)
    _check_polling(ctx, entry, path, owner)


def _check_polling(ctx: Context, entry: dict[str, Any], path: YamlPath, owner: str) -> None:
    """What every polling trigger has: date-only `conditions`, `stopAfter`, `allowConcurrent`."""
    _check_conditions(ctx, entry.get("conditions"), (*path, "conditions"), owner)
    written = entry.get("conditions")
    for index, condition in enumerate(written if isinstance(written, list) else []):
        kind = condition_type(condition) if isinstance(condition, dict) else None
        if kind is not None and kind not in SCHEDULE_CONDITION_TYPES:
            ctx.error(
                (*path, "conditions", index, "type"),
                f"{owner}: `{condition['type']}` tests the execution that triggered, "
                "and a polling trigger has none (use a date condition or an Expression)",
            )
    if entry.get("stopAfter") is not None:
        _check_states(ctx, entry["stopAfter"], (*path, "stopAfter"), owner)
    ctx.boolean(entry, "allowConcurrent", path, "`allowConcurrent`", False)


def _check_plugin_trigger(
    ctx: Context, entry: dict[str, Any], path: YamlPath, trigger_id: str, plugin: TriggerType
) -> bool:
    """A plugin's polling trigger: its own properties, those it requires, a positive `interval`, the
    polling triggers' common ones; False when the modules it needs are not installed."""
    owner = f"Trigger `{trigger_id}`"
    if plugin.unsupported:
        ctx.error((*path, "type"), f"Trigger type `{entry['type']}` of {owner}: {plugin.unsupported}")
        return False
    if needs := missing_requirement(plugin.requires, plugin.extra):
        ctx.error((*path, "type"), f"Trigger type `{entry['type']}` of {owner} {needs}")
        return False
    ctx.unknown_keys(entry, _ABSTRACT_TRIGGER_KEYS | {"interval"} | plugin.properties, path, owner)
    for key in sorted(plugin.required - entry.keys()):
        ctx.error(path, f"{owner} has no `{key}`, which `{plugin.name}` requires")
    interval = parse_duration_value(ctx, entry.get("interval"), (*path, "interval"), "`interval`")
    if interval is not None and interval.total_seconds() <= 0:
        ctx.error((*path, "interval"), f"{owner}: `interval` must be a positive duration such as PT60S")
    for key, allowed in plugin.choices.items():
        value = entry.get(key)
        if isinstance(value, str) and "{{" not in value and value.strip().upper() not in allowed:
            ctx.error((*path, key), f"{owner}: `{key}` {value} is not one of {', '.join(allowed)}")
    _check_polling(ctx, entry, path, owner)
    return True


def trigger_keys() -> dict[str, frozenset[str]]:
    """The properties each trigger type accepts (what `parse_triggers` checks), by its name."""
    keys = {SCHEDULE: _SCHEDULE_KEYS, FLOW: _FLOW_KEYS, WEBHOOK: _WEBHOOK_KEYS, HTTP: _HTTP_KEYS}
    for name in registry().trigger_names():
        found = registry().lookup_trigger(name)
        if found is not None:
            keys[name] = _ABSTRACT_TRIGGER_KEYS | {"interval"} | found.properties
    return keys
