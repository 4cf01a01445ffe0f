"""Kestra's notifications plugin (`io.kestra.plugin.notifications`): messages to chat webhooks
(Slack, Microsoft Teams, Discord, Google Chat) and mail over SMTP."""

from __future__ import annotations

from tiercel.engine.plugin import Registry

from .mail import MAIL_TYPES
from .webhooks import WEBHOOK_TYPES


def register(registry: Registry) -> None:
    """The `tiercel.tasks` entry point of the notifications family."""
    for task_type in (*WEBHOOK_TYPES, *MAIL_TYPES):
        registry.add(task_type)
