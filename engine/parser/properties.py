"""The values a task's type declares: its durations and its rendered text.

Kestra refuses a flow whose duration property is not a duration when the flow is saved; a template
with a syntax error fails only when its task runs. Both are reported when the flow loads, where they
are written. A value set by a plugin default is reported on the task it applies to.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..durations import format_duration
from ..tasks.types import TaskType
from .context import Context, is_expression, parse_duration_value
from .loader import YamlPath
from .templates import check_templates

FROM_DEFAULT = " (set by a plugin default)"
# Every task's own durations (Kestra's `timeout`, common to all tasks), besides its type's.
COMMON_DURATIONS = frozenset({"timeout"})


def check_task_values(
    ctx: Context, data: dict[str, Any], task_type: TaskType, path: YamlPath, written: Collection[str]
) -> dict[str, Any]:
    """Check a task's durations and templates; `written` are the properties the task sets itself.

    Returns:
        The task's properties, with each duration written as a number of seconds turned into ISO
        8601 text, which the tasks read when they run.
    """
    for name in sorted(task_type.durations | COMMON_DURATIONS):
        data = _duration(ctx, data, name, path, _note(name, written))
    for key, value in data.items():
        if task_type.renders(key):
            check_templates(ctx, value, (*path, key), note=_note(key, written))
    return data


def _note(name: str, written: Collection[str]) -> str:
    return "" if name.split(".", 1)[0] in written else FROM_DEFAULT


def _duration(ctx: Context, data: dict[str, Any], name: str, path: YamlPath, note: str) -> dict[str, Any]:
    """Check the duration `name` (dotted: inside mappings) of `data`; absent, or an expression, is fine."""
    steps = name.split(".")
    holders = [data]
    for step in steps[:-1]:
        inner = holders[-1].get(step)
        if not isinstance(inner, dict):
            return data  # the mapping holding it is absent, or refused by its own check
        holders.append(inner)
    value = holders[-1].get(steps[-1])
    if value is None or is_expression(value):
        return data
    delta = parse_duration_value(ctx, value, (*path, *steps), f"`{name}`{note}")
    if delta is None or isinstance(value, str):
        return data
    replaced: Any = format_duration(delta)
    for holder, step in reversed(list(zip(holders, steps, strict=True))):
        replaced = {**holder, step: replaced}
    return dict(replaced)
