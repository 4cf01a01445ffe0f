"""templating.TemplatedTask: a task whose whole definition is a template.

Its `spec` is rendered, parsed as YAML into a task (a `type` and its properties, no `id` needed) and
run in place of the TemplatedTask, in the same task run: its outputs are the TemplatedTask's. As in
Kestra, the inner task renders its own properties once more when it runs, only runnable tasks are
accepted (no flowable task, no subflow, no TemplatedTask inside a TemplatedTask), and properties the
type does not know are ignored.

The registry builds the handler with its own lookup of task types (see `handler`), so that this
module does not import the registry that imports it; the worker needs no change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from ..expressions import to_text
from ..model import TaskSpec
from .base import RunnableHandler, TaskContext, TaskFailure
from .types import COMMON_PROPERTIES, Kind, TaskType

TEMPLATED = "io.kestra.plugin.core.templating.TemplatedTask"


def handler(lookup: Callable[[str], TaskType | None]) -> RunnableHandler:
    """The TemplatedTask handler, finding the inner task's type through `lookup`."""

    async def templated_task(context: TaskContext) -> Mapping[str, Any] | None:
        spec = to_text(context.prop("spec"))
        try:
            parsed = yaml.safe_load(spec)
        except yaml.YAMLError as error:
            raise TaskFailure(f"The rendered `spec` is not valid YAML: {error}") from None
        if not isinstance(parsed, Mapping) or not isinstance(parsed.get("type"), str):
            raise TaskFailure("The rendered `spec` must be a task: a map with a `type`")
        task_type = lookup(parsed["type"])
        if task_type is None:
            raise TaskFailure(f"Unknown task type `{parsed['type']}` in the templated task")
        if task_type.name == TEMPLATED:
            raise TaskFailure(f"The templated task cannot be of type '{TEMPLATED}'")
        if task_type.kind is not Kind.RUNNABLE or task_type.handler is None:
            raise TaskFailure("The templated task must be a runnable task")
        props = {
            str(name): value
            for name, value in parsed.items()
            if name not in COMMON_PROPERTIES and task_type.accepts(str(name))
        }
        missing = sorted(task_type.required - props.keys())
        if missing:
            raise TaskFailure(f"The templated `{task_type.name}` misses {', '.join(missing)}")
        inner = TaskSpec(
            id=context.task.id, type=task_type.name, props=props, log_level=context.task.log_level
        )
        await context.renderer.prefetch(inner.props, context.variables)
        inner_handler: RunnableHandler = task_type.handler
        inner_context = dataclasses.replace(context, task=inner)  # shares the labels list
        try:
            return await inner_handler(inner_context)
        finally:
            context.warning = context.warning or inner_context.warning

    return templated_task
