"""Rules of Kestra's open-source edition, and what this engine accepts without doing it.

Refused, as Kestra OSS refuses them:
- `workerGroup` on the flow or a trigger is an Enterprise Edition feature ("Worker Group is an
  Enterprise Edition functionality", its WorkerGroupValidator). On a task it is accepted with that
  warning, as Kestra's Enterprise Edition does: a PostgreSQL cluster runs the task on the workers of
  its group (engine.cluster);
- a WorkingDirectory holds runnable tasks only: no flowable (Pause, If, ForEach ...) and no Subflow
  (its WorkingDirectoryTaskValidator), since its tasks run one after the other in one worker.
Accepted with a validation warning (the flow runs, and `tiercel validate` says what differs): a
task runner other than Process, flow `checks` and `workerSelector`. Task properties that are not
honoured are declared with their task type (`TaskType.ignored`, checked by the task parser).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..processes.limits import LimitError, parse_cpu, parse_memory
from ..tasks.registry import registry
from ..tasks.types import Kind
from .context import Context
from .loader import YamlPath

WORKER_GROUP = "Worker Group is an Enterprise Edition functionality"
TASK_WORKER_GROUP = (
    f"{WORKER_GROUP}: Kestra OSS refuses this flow. Here the task runs on the workers of that group "
    "(`tiercel worker --group KEY`) when the store is PostgreSQL, else on the engine's own worker"
)
WORKING_DIRECTORY = "io.kestra.plugin.core.flow.WorkingDirectory"
PROCESS_RUNNERS = frozenset(
    {"io.kestra.plugin.core.runner.Process", "io.kestra.plugin.scripts.runner.Process"}
)
# What the founding article gives a Process task runner (engine.processes.limits); Kestra's has neither.
_RESOURCES = frozenset({"memory", "cpu"})
_FLOW_IGNORED = {
    "checks": "the flow's checks are not evaluated by this engine: executions start without them",
    "workerSelector": "this engine runs every task on its own worker",
}


def check_oss_rules(ctx: Context, root: dict[str, Any]) -> None:
    """Report every place of the flow document that breaks a rule above, and warn of the rest."""
    if root.get("workerGroup") is not None:
        ctx.error(("workerGroup",), WORKER_GROUP, key=True)
    for key, reason in _FLOW_IGNORED.items():
        if root.get(key):
            ctx.warn((key,), f"`{key}` is not applied: {reason}", key=True)
    for path, entry in plugin_entries(root):
        if entry.get("workerGroup") is not None:
            if path[0] == "triggers":
                ctx.error((*path, "workerGroup"), WORKER_GROUP, key=True)
            else:
                ctx.warn((*path, "workerGroup"), TASK_WORKER_GROUP, key=True)
        # WorkingDirectory is the engine's own: its aliases are known without loading any plugin.
        task_type = registry().lookup(entry["type"], plugins=False)
        if task_type is not None and task_type.name == WORKING_DIRECTORY:
            _check_working_directory(ctx, entry.get("tasks"), (*path, "tasks"))
        _warn_runner(ctx, entry, path)


def plugin_entries(root: dict[str, Any]) -> Iterator[tuple[YamlPath, dict[str, Any]]]:
    """Every task, trigger or nested plugin of the document (a mapping with a `type`), with its path."""
    for key in ("tasks", "errors", "finally", "afterExecution", "triggers", "listeners"):
        yield from _entries(root.get(key), (key,))


def _entries(value: Any, path: YamlPath) -> Iterator[tuple[YamlPath, dict[str, Any]]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _entries(item, (*path, index))
        return
    if not isinstance(value, dict):
        return
    if isinstance(value.get("type"), str):
        yield path, value
    for key, item in value.items():
        if isinstance(item, list | dict):
            yield from _entries(item, (*path, key))


def _check_working_directory(ctx: Context, tasks: Any, path: YamlPath) -> None:
    for index, task in enumerate(tasks if isinstance(tasks, list) else ()):
        if not isinstance(task, dict) or not isinstance(task.get("type"), str):
            continue
        if task.get("dependsOn") is not None:
            ctx.error(
                (*path, index, "dependsOn"),
                "The tasks of a WorkingDirectory run one after the other on one worker, in their folder: "
                f"`dependsOn` cannot reorder them (task `{task.get('id')}`)",
                key=True,
            )
        task_type = registry().lookup(task["type"])
        if task_type is not None and task_type.kind is not Kind.RUNNABLE:
            short = task_type.name.rsplit(".", 1)[-1]
            ctx.error(
                (*path, index, "type"),
                f"Only runnable tasks are allowed as children of a WorkingDirectory task, not {short} "
                f"(task `{task.get('id')}`)",
            )


def _warn_runner(ctx: Context, entry: dict[str, Any], path: YamlPath) -> None:
    """A script asking for Docker, Kubernetes or a cloud batch runner runs as a local process."""
    runner = entry.get("taskRunner")
    kind = runner.get("type") if isinstance(runner, dict) else None
    legacy = str(entry.get("runner") or "").upper() == "DOCKER"
    if (isinstance(kind, str) and kind not in PROCESS_RUNNERS) or legacy:
        where = (*path, "taskRunner") if kind else (*path, "runner")
        asked = kind if kind else "DOCKER"
        ctx.warn(
            where, f"task `{entry.get('id')}` asks for the `{asked}` runner: it runs as a local process here"
        )
    elif isinstance(runner, dict):
        for key in sorted(_RESOURCES & set(runner)):
            value = runner[key]
            if not (isinstance(value, str) and "{{" in value):  # an expression is checked when rendered
                try:
                    (parse_memory if key == "memory" else parse_cpu)(value)
                except LimitError as error:
                    ctx.error((*path, "taskRunner", key), f"task `{entry.get('id')}`: {error}")
                    continue
            ctx.warn(
                (*path, "taskRunner", key),
                f"`{key}` of a Process runner is a Tiercel extension (task `{entry.get('id')}`): Kestra "
                "refuses this flow",
                key=True,
            )
