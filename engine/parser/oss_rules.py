"""Rules of Kestra's open-source edition that a flow's tasks and triggers must follow.

- `workerGroup` (on the flow, a task or a trigger) is an Enterprise Edition feature: Kestra OSS
  refuses the flow ("Worker Group is an Enterprise Edition functionality", its WorkerGroupValidator).
- A WorkingDirectory holds runnable tasks only: no flowable (Pause, If, ForEach ...) and no Subflow
  (its WorkingDirectoryTaskValidator), since its tasks run one after the other in one worker.
"""

from __future__ import annotations

from typing import Any

from ..tasks.registry import registry
from ..tasks.types import Kind
from .context import Context
from .loader import YamlPath

WORKER_GROUP = "Worker Group is an Enterprise Edition functionality"
WORKING_DIRECTORY = "io.kestra.plugin.core.flow.WorkingDirectory"


def check_oss_rules(ctx: Context, root: dict[str, Any]) -> None:
    """Report every place of the flow document that breaks one of the rules above."""
    if root.get("workerGroup") is not None:
        ctx.error(("workerGroup",), WORKER_GROUP, key=True)
    for key in ("tasks", "errors", "finally", "afterExecution", "triggers", "listeners"):
        _walk(ctx, root.get(key), (key,))


def _walk(ctx: Context, value: Any, path: YamlPath) -> None:
    if isinstance(value, list):
        for index, item in enumerate(value):
            _walk(ctx, item, (*path, index))
        return
    if not isinstance(value, dict):
        return
    if isinstance(value.get("type"), str):
        if value.get("workerGroup") is not None:
            ctx.error((*path, "workerGroup"), WORKER_GROUP, key=True)
        task_type = registry().lookup(value["type"])
        if task_type is not None and task_type.name == WORKING_DIRECTORY:
            _check_working_directory(ctx, value.get("tasks"), (*path, "tasks"))
    for key, item in value.items():
        if isinstance(item, list | dict):
            _walk(ctx, item, (*path, key))


def _check_working_directory(ctx: Context, tasks: Any, path: YamlPath) -> None:
    for index, task in enumerate(tasks if isinstance(tasks, list) else ()):
        if not isinstance(task, dict) or not isinstance(task.get("type"), str):
            continue
        task_type = registry().lookup(task["type"])
        if task_type is not None and task_type.kind is not Kind.RUNNABLE:
            short = task_type.name.rsplit(".", 1)[-1]
            ctx.error(
                (*path, index, "type"),
                f"Only runnable tasks are allowed as children of a WorkingDirectory task, not {short} "
                f"(task `{task.get('id')}`)",
            )
