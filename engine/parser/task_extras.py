"""Task properties beyond Kestra's own task fields: the founding article's `fatalError`, `labels`
and `cache`, and Kestra's `taskCache`.

- `fatalError`: errors that fail the flow even under `allowFailure`, and are not retried; each entry
  is an error code or text of the error message (engine.tasks.failures). A flowable's state comes
  from its tasks, so the property belongs on the task whose error is fatal.
- `labels` on a task: metadata (`key: value`), added to the
  tags of every metric the task reports. A type with labels of its own (Subflow, Labels) keeps them.
- `cache: {enabled, ttl, inputs}` (the article's) and `taskCache: {enabled, ttl}` (Kestra's): a
  successful run's outputs reused within `ttl` (engine.worker.cache says how each is keyed). A
  flowable's outputs come from its tasks: it has no cache. A type with a `cache` of its own
  (WorkingDirectory's cached files) keeps it.
"""

from __future__ import annotations

import re
from typing import Any

from ..model import Label, TaskCacheSpec
from ..tasks.failures import ERROR_CODES
from ..tasks.types import TaskType
from .context import Context, java_text, parse_duration_value, suggestion, type_name
from .labels import parse_labels
from .loader import YamlPath

_NOT_KESTRA = "is a Tiercel extension: Kestra refuses this flow"
_CODE_LIKE = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+")


def fatal_errors(ctx: Context, value: Any, path: YamlPath, task_id: str, flowable: bool) -> tuple[str, ...]:
    """The entries of a task's `fatalError`, each problem reported where it is written."""
    if value is None:
        return ()
    if flowable:
        ctx.error(
            path,
            f"`fatalError` on flowable task `{task_id}`: its state comes from its tasks, so put "
            "`fatalError` on the task whose error must fail the flow",
            key=True,
        )
        return ()
    items = (
        [value] if isinstance(value, str) else ctx.sequence(value, path, f"`fatalError` of task `{task_id}`")
    )
    found: list[str] = []
    for index, item in enumerate(items or ()):
        where = path if isinstance(value, str) else (*path, index)
        if item is None or isinstance(item, dict | list) or not java_text(item).strip():
            ctx.error(where, f"An entry of `fatalError` must be an error code or text, not {type_name(item)}")
            continue
        entry = java_text(item).strip()
        if _CODE_LIKE.fullmatch(entry) and entry not in ERROR_CODES:
            ctx.warn(
                where,
                f"`{entry}` is no error code{suggestion(entry, ERROR_CODES)} (the codes: "
                f"{', '.join(ERROR_CODES)}); it matches error messages that contain it",
            )
        found.append(entry)
    if found:
        ctx.warn(path, f"`fatalError` {_NOT_KESTRA}", key=True)
    return tuple(found)


def task_labels(ctx: Context, value: Any, path: YamlPath, task_type: TaskType) -> tuple[Label, ...]:
    """A task's own labels (no `system.` label: those are the engine's), unless `labels` is a
    property of its type."""
    if value is None or "labels" in task_type.properties:
        return ()
    labels = parse_labels(ctx, value, path, frozenset())
    if labels:
        ctx.warn(path, f"`labels` on a task {_NOT_KESTRA} (put them on the flow there)", key=True)
    return labels


def task_cache(
    ctx: Context, data: dict[str, Any], task_type: TaskType, flowable: bool, path: YamlPath, task_id: str
) -> TaskCacheSpec | None:
    """The task's cache, from `taskCache` or (a type without a `cache` of its own) `cache`."""
    written = [key for key in ("taskCache", "cache") if data.get(key) is not None]
    if "cache" in task_type.properties and "cache" in written:
        written.remove("cache")
    if not written:
        return None
    key = written[0]
    where = (*path, key)
    if len(written) > 1:
        ctx.error((*path, "cache"), f"Task `{task_id}` has both `taskCache` and `cache`: keep one", key=True)
        return None
    if flowable:
        ctx.error(where, f"`{key}` on flowable task `{task_id}`: its outputs come from its tasks", key=True)
        return None
    entry = ctx.mapping(data[key], where, f"`{key}` of task `{task_id}`")
    if entry is None:
        return None
    allowed = ("enabled", "ttl") if key == "taskCache" else ("enabled", "ttl", "inputs")
    ctx.unknown_keys(entry, allowed, where, f"`{key}`")
    enabled = ctx.boolean(entry, "enabled", where, f"`{key}.enabled`", key == "cache")
    ttl = None
    if entry.get("ttl") is not None:
        ttl = parse_duration_value(
            ctx, entry["ttl"], (*where, "ttl"), f"`ttl` of the cache of task `{task_id}`"
        )
        if ttl is not None and ttl.total_seconds() <= 0:
            ctx.error((*where, "ttl"), f"`ttl` of the cache of task `{task_id}` must be a positive duration")
            return None
    properties = _cache_inputs(ctx, entry.get("inputs"), task_type, (*where, "inputs"), task_id)
    if key == "cache":
        ctx.warn(where, f"`cache` {_NOT_KESTRA} (Kestra's own is `taskCache: {{enabled, ttl}}`)", key=True)
    if not enabled:
        return None
    return TaskCacheSpec(ttl=ttl, properties=properties)


def _cache_inputs(
    ctx: Context, value: Any, task_type: TaskType, path: YamlPath, task_id: str
) -> tuple[str, ...] | None:
    """The properties whose rendered values key the cache (None: all of the task's)."""
    if value is None:
        return None
    names: list[str] = []
    own = task_type.properties | set(task_type.input_props)
    for index, item in enumerate(
        ctx.sequence(value, path, f"`inputs` of the cache of task `{task_id}`") or ()
    ):
        name = item if isinstance(item, str) else None
        if name is None or name not in own:
            hint = suggestion(str(item), own) if name else ""
            ctx.error(
                (*path, index),
                f"`{item}` is not a property of task `{task_id}` ({task_type.name}): the cache is "
                f"keyed by the rendered values of the task's own properties{hint}",
            )
            continue
        names.append(name)
    return tuple(names)
