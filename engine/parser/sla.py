"""A flow's `sla`: Kestra's service level agreements, checked as the flow loads.

Each SLA has an `id`, a `type` (MAX_DURATION with a `duration`, or EXECUTION_ASSERTION with an
`assert` expression), a `behavior` (FAIL, CANCEL or NONE) and optional `labels` added to a violating
execution (Kestra's models/flows/sla). The executor applies them (engine.executor.sla).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..model import Label, SlaSpec
from .context import Context, parse_duration_value
from .loader import YamlPath
from .templates import check_templates

SLA_TYPES = ("MAX_DURATION", "EXECUTION_ASSERTION")
SLA_BEHAVIORS = ("FAIL", "CANCEL", "NONE")
_KEYS = ("id", "type", "behavior", "labels", "duration", "assert")


def parse_sla(
    ctx: Context, raw: Any, labels_of: Callable[[Context, Any, YamlPath], tuple[Label, ...]]
) -> tuple[SlaSpec, ...]:
    """The flow's SLAs; `labels_of(ctx, raw, path)` reads labels as the flow's own are read."""
    items = ctx.sequence(raw, ("sla",), "`sla`")
    found: list[SlaSpec] = []
    for index, item in enumerate(items or ()):
        path: YamlPath = ("sla", index)
        entry = ctx.mapping(item, path, "An SLA")
        if entry is None:
            continue
        ctx.unknown_keys(entry, _KEYS, path, "an SLA")
        sla_id = ctx.required_text(entry, "id", path, "An SLA has no `id`: add one, e.g. `id: max_duration`")
        owner = f"SLA `{sla_id or index}`"
        kind = ctx.required_text(entry, "type", path, f"{owner} has no `type`: use {' or '.join(SLA_TYPES)}")
        if kind is not None and kind not in SLA_TYPES:
            ctx.error((*path, "type"), f"Unknown SLA type `{kind}` on {owner}: use {' or '.join(SLA_TYPES)}")
        behavior = ctx.required_text(
            entry, "behavior", path, f"{owner} has no `behavior`: use {', '.join(SLA_BEHAVIORS)}"
        )
        if behavior is not None and behavior not in SLA_BEHAVIORS:
            choices = ", ".join(SLA_BEHAVIORS)
            ctx.error((*path, "behavior"), f"Unknown SLA behavior `{behavior}` on {owner}: use {choices}")
        duration = None
        assertion = None
        if kind == "MAX_DURATION":
            if entry.get("duration") is None:
                ctx.error(path, f"{owner} of type MAX_DURATION needs a `duration`, e.g. `duration: PT1H`")
            what = f"{owner} `duration`"
            duration = parse_duration_value(ctx, entry.get("duration"), (*path, "duration"), what)
        elif kind == "EXECUTION_ASSERTION":
            assertion = ctx.required_text(
                entry, "assert", path, f"{owner} of type EXECUTION_ASSERTION needs an `assert` expression"
            )
            check_templates(ctx, assertion, (*path, "assert"))
        labels = labels_of(ctx, entry.get("labels"), (*path, "labels"))
        if sla_id and kind in SLA_TYPES and behavior in SLA_BEHAVIORS:
            found.append(SlaSpec(sla_id, str(kind), str(behavior), tuple(labels), duration, assertion))
    return tuple(found)
