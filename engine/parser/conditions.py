"""Conditions as written: the templates they render, and a task's `conditions`.

A task's `conditions` (a Tiercel extension, as the founding article writes them) are Kestra's
conditions, all of which must hold for the task to run; when one does not, the task is SKIPPED, as
with `runIf`.

A task's conditions are tested when it starts, against its execution's variables: Expression, Not,
Or and the date conditions (tested on the time the task starts). The execution conditions test the
execution that triggered a flow, which a task does not have: they are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..triggers.conditions import SCHEDULE_CONDITION_TYPES, condition_problem, condition_type
from .context import Context
from .loader import YamlPath
from .templates import check_templates

TASK_CONDITION_TYPES = SCHEDULE_CONDITION_TYPES - {"io.kestra.plugin.core.condition.ExecutionOutputs"}
NOT_KESTRA = (
    "`conditions` on a task is a Tiercel extension: Kestra refuses this flow (use `runIf` there, "
    "which Kestra and Tiercel both honour)"
)


def task_conditions(ctx: Context, value: Any, path: YamlPath, task_id: str) -> tuple[Mapping[str, Any], ...]:
    """The valid conditions of a task, each problem reported where it is written."""
    if value is None:
        return ()
    found: list[Mapping[str, Any]] = []
    for index, condition in enumerate(ctx.sequence(value, path, f"`conditions` of task `{task_id}`") or ()):
        problem = condition_problem(condition) or _trigger_only(condition)
        if problem:
            ctx.error((*path, index), f"Invalid condition in task `{task_id}`: {problem}")
            continue
        check_condition_templates(ctx, condition, (*path, index))
        found.append(condition)
    if found:
        ctx.warn(path, NOT_KESTRA, key=True)
    return tuple(found)


def _trigger_only(condition: Mapping[str, Any]) -> str | None:
    """Why a valid condition cannot be a task's (it, or one it holds, needs a triggering execution)."""
    kind = condition_type(condition)
    if kind is not None and kind not in TASK_CONDITION_TYPES:
        return (
            f"`{condition['type']}` tests the execution that triggered a flow, which a task has not "
            "(use an Expression or a date condition)"
        )
    inner = condition.get("conditions")
    return next(filter(None, map(_trigger_only, inner)), None) if isinstance(inner, list) else None


def check_condition_templates(ctx: Context, condition: Any, path: YamlPath) -> None:
    """The text a condition renders: an `expression` (Expression, ExecutionOutputs), a date
    condition's `date`, and the same in the conditions a Not or an Or holds."""
    if not isinstance(condition, dict):
        return
    for key in ("expression", "date"):
        check_templates(ctx, condition.get(key), (*path, key))
    inner = condition.get("conditions")
    for index, item in enumerate(inner if isinstance(inner, list) else ()):
        check_condition_templates(ctx, item, (*path, "conditions", index))
