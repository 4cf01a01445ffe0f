"""The `*Execution` tasks' message: a summary of one execution (by default the running one; usually
`{{ trigger.executionId }}` in a flow a Flow trigger starts when others fail), with the task's
`customMessage` and `customFields`, shaped for each service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tiercel.engine.plugin import TaskContext, TaskFailure

# Properties every `*Execution` task has beside its service's own.
EXECUTION_PROPERTIES = frozenset({"executionId", "customFields", "customMessage"})
_COLOURS = {"SUCCESS": "#2e7d32", "WARNING": "#f9a825", "FAILED": "#c62828", "KILLED": "#6d4c41"}


class Summary:
    """What the message says of the execution: a title, then named facts in order."""

    def __init__(self, title: str, facts: list[tuple[str, str]], message: str | None, state: str) -> None:
        self.title = title
        self.facts = facts
        self.message = message
        self.state = state

    @property
    def colour(self) -> str:
        return _COLOURS.get(self.state, "#546e7a")

    def lines(self) -> list[str]:
        return [self.title, *([self.message] if self.message else []), *(f"{k}: {v}" for k, v in self.facts)]


async def summary(context: TaskContext) -> Summary:
    """The summary of the execution the task names.

    Raises:
        TaskFailure: No such execution (or none this engine can read).
    """
    execution_id = str(context.prop("executionId") or context.execution.id)
    execution: Any = context.execution
    if execution_id != context.execution.id:
        found = await context.control.execution(execution_id) if context.control is not None else None
        if found is None:
            raise TaskFailure(f"`executionId`: no execution {execution_id}")
        execution = found
    state = execution.state.current.value
    ended = execution.state.current.is_terminated
    title = f"Execution {execution.id} of {execution.namespace}.{execution.flow_id} " + (
        f"ended {state}" if ended else f"is {state}"
    )
    facts = [
        ("Namespace", execution.namespace),
        ("Flow", execution.flow_id),
        ("Execution", execution.id),
        ("State", state),
        ("Started", execution.state.start_date.isoformat(timespec="seconds")),
        ("Duration", f"{execution.state.duration().total_seconds():.1f} s"),
    ]
    failed = [run.task_id for run in execution.task_runs if run.state.current.value in ("FAILED", "KILLED")]
    if failed:
        facts.append(("Failed tasks", ", ".join(dict.fromkeys(failed))))
    custom = context.prop("customFields") or {}
    if not isinstance(custom, Mapping):
        raise TaskFailure("`customFields` must be a map of names to values")
    facts += [(str(name), str(value)) for name, value in custom.items()]
    message = context.prop("customMessage")
    return Summary(title, facts, str(message) if message is not None else None, state)


def slack(summary: Summary, context: TaskContext) -> dict[str, Any]:
    fields = [{"title": name, "value": value, "short": True} for name, value in summary.facts]
    payload: dict[str, Any] = {
        "text": "\n".join([summary.title, *([summary.message] if summary.message else [])]),
        "attachments": [{"color": summary.colour, "fields": fields}],
    }
    for prop, key in (
        ("channel", "channel"),
        ("username", "username"),
        ("iconUrl", "icon_url"),
        ("iconEmoji", "icon_emoji"),
    ):
        if context.prop(prop) is not None:
            payload[key] = str(context.prop(prop))
    return payload


def teams(summary: Summary, context: TaskContext) -> dict[str, Any]:
    return {
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": summary.colour.lstrip("#"),
        "summary": summary.title,
        "sections": [
            {
                "activityTitle": summary.title,
                "activitySubtitle": summary.message or "",
                "facts": [{"name": name, "value": value} for name, value in summary.facts],
            }
        ],
    }


def discord(summary: Summary, context: TaskContext) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "content": summary.message or summary.title,
        "embeds": [
            {
                "title": summary.title,
                "color": int(summary.colour.lstrip("#"), 16),
                "fields": [{"name": name, "value": value, "inline": True} for name, value in summary.facts],
            }
        ],
    }
    for prop, key in (("username", "username"), ("avatarUrl", "avatar_url")):
        if context.prop(prop) is not None:
            payload[key] = str(context.prop(prop))
    return payload


def google_chat(summary: Summary, context: TaskContext) -> dict[str, Any]:
    return {"text": "\n".join(summary.lines())}
