"""Incoming webhooks of chat services: the task's JSON `payload` posted to its `url`.

Slack's task also takes `messageText`: JSON as it is, or text (Markdown's bold, italics and links
turned into Slack's) sent as `{"text": ...}`. An answer other than 2xx fails the task with the
status and the start of the body; `options` sets headers and timeouts as Kestra's do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Set
from datetime import timedelta
from typing import Any

from tiercel.engine.plugin import Kind, LogLevel, TaskContext, TaskFailure, TaskType

from . import summary as shapes
from .summary import EXECUTION_PROPERTIES, Summary, summary

PACKAGE = "io.kestra.plugin.notifications"
_BODY_SHOWN = 300


def _seconds(value: Any, default: float) -> float:
    """An ISO 8601 duration (PT10S) or a number of seconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?", str(value).strip().upper())
    if not match or not any(match.groups()):
        raise TaskFailure(f"`options`: `{value}` is not a duration such as PT10S")
    hours, minutes, seconds = (float(part or 0) for part in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds).total_seconds()


def _payload(context: TaskContext, slack: bool) -> Any:
    payload = context.prop("payload")
    if payload is not None:
        try:
            return json.loads(str(payload))
        except json.JSONDecodeError as error:
            raise TaskFailure(f"`payload` is not JSON: {error}") from None
    text = context.prop("messageText") if slack else None
    if text is None:
        raise TaskFailure(
            "Either 'messageText' or 'payload' must be provided" if slack else "`payload` is required"
        )
    try:
        return json.loads(str(text))
    except json.JSONDecodeError:
        markdown = re.sub(r"\*\*(.*?)\*\*", r"*\1*", str(text))
        markdown = re.sub(r"__(.*?)__", r"_\1_", markdown)
        return {"text": re.sub(r"\[(.*?)\]\((.*?)\)", r"<\2|\1>", markdown)}


async def post(context: TaskContext, url: Any, payload: Any) -> None:
    """POST `payload` as JSON to `url`, with the task's `options`; a failure fails the task."""
    import httpx  # loaded by the first post: `validate`, and flows that send nothing, never need it

    options = context.prop("options") or {}
    if not isinstance(options, Mapping):
        raise TaskFailure("`options` must be a map (headers, connectTimeout, readTimeout ...)")
    headers = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
    timeout = httpx.Timeout(
        _seconds(options.get("readTimeout"), 10.0), connect=_seconds(options.get("connectTimeout"), 10.0)
    )
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise TaskFailure(f"`url` must be an http(s) URL, not `{str(url)[:200]}`")
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            answer = await client.post(url, json=payload, headers=headers)
    except httpx.HTTPError as error:
        raise TaskFailure(f"Cannot post to the webhook: {type(error).__name__}: {error}") from None
    if answer.status_code >= 300:
        body = answer.text[:_BODY_SHOWN]
        raise TaskFailure(f"The webhook answered {answer.status_code} {answer.reason_phrase}: {body}")
    context.log(LogLevel.INFO, "Request succeeded")


def _webhook(slack: bool) -> Any:
    async def handler(context: TaskContext) -> Mapping[str, Any] | None:
        await post(context, context.prop("url"), _payload(context, slack))
        return None

    return handler


def _execution(shape: Callable[[Summary, TaskContext], Any]) -> Any:
    """The handler of a `*Execution` task: the execution's summary, shaped for its service."""

    async def handler(context: TaskContext) -> Mapping[str, Any] | None:
        await post(context, context.prop("url"), shape(await summary(context), context))
        return None

    return handler


def _type(name: str, handler: Any, properties: Set[str]) -> TaskType:
    return TaskType(
        f"{PACKAGE}.{name}",
        Kind.RUNNABLE,
        properties=frozenset({"url", "options"} | properties),
        required=frozenset({"url"}),
        handler=handler,
    )


_SLACK_LOOK = {"channel", "username", "iconUrl", "iconEmoji"}
WEBHOOK_TYPES = (
    _type("slack.SlackIncomingWebhook", _webhook(slack=True), {"payload", "messageText"}),
    _type("teams.TeamsIncomingWebhook", _webhook(slack=False), {"payload"}),
    _type("discord.DiscordIncomingWebhook", _webhook(slack=False), {"payload"}),
    _type("google.GoogleChatIncomingWebhook", _webhook(slack=False), {"payload"}),
    # The other services' incoming webhooks take the same `url` and JSON `payload`.
    _type("zulip.ZulipIncomingWebhook", _webhook(slack=False), {"payload"}),
    _type("whatsapp.WhatsAppIncomingWebhook", _webhook(slack=False), {"payload"}),
    _type("squadcast.SquadcastIncomingWebhook", _webhook(slack=False), {"payload"}),
    _type("x.XIncomingWebhook", _webhook(slack=False), {"payload"}),
    _type("slack.SlackExecution", _execution(shapes.slack), EXECUTION_PROPERTIES | _SLACK_LOOK),
    _type("teams.TeamsExecution", _execution(shapes.teams), set(EXECUTION_PROPERTIES)),
    _type(
        "discord.DiscordExecution",
        _execution(shapes.discord),
        EXECUTION_PROPERTIES | {"username", "avatarUrl"},
    ),
    _type("google.GoogleChatExecution", _execution(shapes.google_chat), set(EXECUTION_PROPERTIES)),
)
