"""Kestra's names of the trigger types, and the older names flows may still use for them."""

from __future__ import annotations

SCHEDULE = "io.kestra.plugin.core.trigger.Schedule"
FLOW = "io.kestra.plugin.core.trigger.Flow"
WEBHOOK = "io.kestra.plugin.core.trigger.Webhook"
HTTP = "io.kestra.plugin.core.http.Trigger"
# The trigger types the engine fires itself (no plugin needed), in the order messages name them.
ENGINE_TRIGGERS = (SCHEDULE, FLOW, WEBHOOK, HTTP)
TRIGGER_ALIASES = {
    "io.kestra.core.models.triggers.types.Schedule": SCHEDULE,
    "io.kestra.core.models.triggers.types.Flow": FLOW,
    "io.kestra.core.models.triggers.types.Webhook": WEBHOOK,
    "io.kestra.plugin.fs.http.Trigger": HTTP,
}
