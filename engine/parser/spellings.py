"""The founding article's spellings of Kestra's task properties, read as Kestra's own and warned as
not Kestra's (the warning names what to write there):

- `maxParallel` on a flowable: its `concurrent` (Parallel, EachParallel, Dag) or `concurrencyLimit`
  (ForEach); an error on a task without children.
- `transmit` on a Subflow: its `inputs`, as a list of `{name, value}`; `receive`: the names of the
  child's flow outputs the task expects, read as `outputs.<task>.outputs.<name>` (accepted as a note).
- `send` (a value "sent" to the next task) is no property of any task: tasks read each other's
  outputs through expressions, and the article's flows that use it are told so.
"""

from __future__ import annotations

from typing import Any

from ..tasks.types import TaskType
from .context import Context, type_name
from .loader import YamlPath

SUBFLOW = "io.kestra.plugin.core.flow.Subflow"
ARTICLE_KEYS = frozenset({"maxParallel", "transmit", "receive", "send"})
# A flowable's limit on the child tasks running at once, by the names Kestra gives it.
_PARALLEL_LIMITS = ("concurrent", "concurrencyLimit")


def article_spellings(
    ctx: Context, data: dict[str, Any], task_type: TaskType, path: YamlPath, task_id: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """`data` with the article's keys replaced by Kestra's, each problem reported at its key, and
    which key became which. A type that has one of these keys as its own property keeps it."""
    data = dict(data)
    before = set(data)
    mine = ARTICLE_KEYS - task_type.properties
    if "maxParallel" in mine and "maxParallel" in data:
        _max_parallel(ctx, data, task_type, (*path, "maxParallel"), task_id)
    if task_type.name == SUBFLOW and ("transmit" in data or "receive" in data):
        _transmit(ctx, data, path, task_id)
    renamed = {
        old: new
        for old, new in (("maxParallel", _limit(task_type)), ("transmit", "inputs"))
        if old in before and new
    }
    if "send" in mine and "send" in data:
        data.pop("send")
        ctx.error(
            (*path, "send"),
            f"`send` is not a property of any task (task `{task_id}`): a task reads another's outputs "
            "in an expression, e.g. `{{ outputs.producer.value }}`",
            key=True,
        )
    return data, {old: new for old, new in renamed.items() if new in data}


def _limit(task_type: TaskType) -> str | None:
    return next((name for name in _PARALLEL_LIMITS if name in task_type.properties), None)


def _max_parallel(
    ctx: Context, data: dict[str, Any], task_type: TaskType, where: YamlPath, task_id: str
) -> None:
    value = data.pop("maxParallel")
    limit = _limit(task_type)
    if limit is None:
        ctx.error(
            where,
            f"`maxParallel` caps how many child tasks of a flowable run at once (Parallel, ForEach, "
            f"EachParallel, Dag); task `{task_id}` has none: remove it",
            key=True,
        )
    elif limit in data:
        ctx.error(where, f"Task `{task_id}` sets both `maxParallel` and `{limit}`: keep `{limit}`", key=True)
    else:
        data[limit] = value
        ctx.warn(
            where,
            f"`maxParallel` is a Tiercel name: Kestra refuses this flow (write `{limit}: {value}` there)",
            key=True,
        )


def _transmit(ctx: Context, data: dict[str, Any], path: YamlPath, task_id: str) -> None:
    written = data.get("inputs")
    inputs = dict(written) if isinstance(written, dict) else {}
    where = (*path, "transmit" if "transmit" in data else "receive")
    for index, entry in enumerate(
        ctx.sequence(data.pop("transmit", None), (*path, "transmit"), "`transmit`") or ()
    ):
        where = (*path, "transmit", index)
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or set(entry) - {"name", "value"}:
            ctx.error(where, f"An entry of `transmit` is `{{name: ..., value: ...}}`, not {type_name(entry)}")
        elif name in inputs:
            ctx.error(where, f"Subflow `{task_id}` gives input `{name}` twice (`inputs` and `transmit`)")
        else:
            inputs[name] = entry.get("value")
    if inputs:
        data["inputs"] = inputs
    for index, entry in enumerate(
        ctx.sequence(data.pop("receive", None), (*path, "receive"), "`receive`") or ()
    ):
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str) and set(entry) == {"name"}):
            ctx.error(
                (*path, "receive", index), f"An entry of `receive` is `{{name: ...}}`, not {type_name(entry)}"
            )
    ctx.warn(
        where,
        "`transmit` and `receive` are the article's names: Kestra refuses this flow (give the values as "
        "`inputs:` there, and read the child's outputs as `outputs.<task>.outputs.<name>`)",
        key=True,
    )
