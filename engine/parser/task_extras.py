"""The founding article's task properties that Kestra's tasks lack: `fatalError` and `labels`.

- `fatalError`: errors that fail the flow even under `allowFailure`, and are not retried; each entry
  is an error code or text of the error message (engine.tasks.failures). A flowable's state comes
  from its tasks, so the property belongs on the task whose error is fatal.
- `labels` on a task: metadata (`key: value`), added to the
  tags of every metric the task reports. A type with labels of its own (Subflow, Labels) keeps them.
"""

from __future__ import annotations

import re
from typing import Any

from ..model import Label
from ..tasks.failures import ERROR_CODES
from .context import Context, java_text, suggestion, type_name
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


def task_labels(ctx: Context, value: Any, path: YamlPath) -> tuple[Label, ...]:
    """A task's own labels (no `system.` label: those are the engine's)."""
    if value is None:
        return ()
    labels = parse_labels(ctx, value, path, frozenset())
    if labels:
        ctx.warn(path, f"`labels` on a task {_NOT_KESTRA} (put them on the flow there)", key=True)
    return labels
