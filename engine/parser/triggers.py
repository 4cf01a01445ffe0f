"""Flow triggers: ids, plugin defaults, and Kestra's checks of a Schedule (cron, time zone)."""

from __future__ import annotations

import zoneinfo
from typing import Any

from croniter import croniter

from engine.model import PluginDefault, TriggerSpec
from engine.parser.context import ID_PATTERN, Context, type_name
from engine.parser.loader import YamlPath
from engine.parser.tasks import apply_defaults, defaults_for, parse_duration_value

SCHEDULE = "io.kestra.plugin.core.trigger.Schedule"
TRIGGER_ALIASES = {
    "io.kestra.core.models.triggers.types.Schedule": SCHEDULE,
    "io.kestra.core.models.triggers.types.Flow": "io.kestra.plugin.core.trigger.Flow",
    "io.kestra.core.models.triggers.types.Webhook": "io.kestra.plugin.core.trigger.Webhook",
}
# AbstractTrigger's properties plus Schedule's own (Kestra's Schedule.java).
_SCHEDULE_KEYS = frozenset(
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
)
CRON_NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT"),
)
_RECOVER = ("ALL", "LAST", "NONE")


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
        entry = apply_defaults(entry, defaults_for(written, kind, defaults))
        if kind == SCHEDULE:
            _check_schedule(ctx, entry, path, trigger_id)
        props = {key: value for key, value in entry.items() if key not in ("id", "type", "disabled")}
        disabled = ctx.boolean(entry, "disabled", path, "`disabled`", False)
        triggers.append(TriggerSpec(trigger_id, kind, props, disabled, ctx.position(path)))
    return tuple(triggers)


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
    for index, (name, allowed) in enumerate(names):
        probe = ["*"] * len(names)
        probe[index] = fields[index]
        if not croniter.is_valid(" ".join(probe), second_at_beginning=with_seconds):
            return f"the {name} field `{fields[index]}` is invalid (allowed: {allowed})"
    if not croniter.is_valid(text, second_at_beginning=with_seconds):
        return "the fields do not form a valid schedule"
    return None
