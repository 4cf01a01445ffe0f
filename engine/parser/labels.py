"""Labels as a flow (or a task) writes them."""

from __future__ import annotations

from typing import Any

from ..model import Label
from .context import Context, java_text, type_name
from .loader import YamlPath

#: The `system.` labels a flow may carry itself: Kestra lets `system.readOnly` mark a flow that its
#: UI shows as read-only; every other `system.` label is the engine's to set.
FLOW_SYSTEM_LABELS = frozenset({"system.readOnly"})


def parse_labels(
    ctx: Context, raw: Any, path: YamlPath, allowed_system: frozenset[str] = FLOW_SYSTEM_LABELS
) -> tuple[Label, ...]:
    """Labels as a map (`key: value`) or a list of `{key, value}`; values become text. Of the
    `system.` labels, only `allowed_system` may be written."""
    if raw is None:
        return ()
    # (key, value, where the key is, where the value is, whether the key's place is a mapping key)
    pairs: list[tuple[Any, Any, YamlPath, YamlPath, bool]] = []
    if isinstance(raw, dict):
        pairs = [(key, value, (*path, key), (*path, key), True) for key, value in raw.items()]
    elif isinstance(raw, list):
        for index, item in enumerate(raw):
            entry = ctx.mapping(item, (*path, index), "A label (`key:` and `value:`)")
            if entry is None:
                continue
            ctx.unknown_keys(entry, ("key", "value"), (*path, index), "a label")
            pairs.append(
                (entry.get("key"), entry.get("value"), (*path, index, "key"), (*path, index, "value"), False)
            )
    else:
        ctx.error(
            path,
            "`labels` must be a mapping (`key: value`) or a list of `key`/`value` pairs, "
            f"not {type_name(raw)}",
        )
        return ()
    labels: list[Label] = []
    for key, value, key_path, value_path, is_key in pairs:
        if not isinstance(key, str) or not key:
            ctx.error(key_path, "A label needs a non-empty `key`", key=is_key)
            continue
        if key.startswith("system.") and key not in allowed_system:
            ctx.error(
                key_path,
                f"Label `{key}` uses the reserved `system.` prefix: those labels are set by the engine; "
                "rename it",
                key=is_key,
            )
        if value is None:
            ctx.error(value_path, f"Label `{key}` has no value")
        elif isinstance(value, dict | list):
            ctx.error(value_path, f"The value of label `{key}` must be text, not {type_name(value)}")
        else:
            labels.append(Label(key, java_text(value)))
    return tuple(labels)
