"""Kestra's CreateNamespace and UpdateNamespace, as the founding article writes them: a namespace's
description, variables, plugin defaults (`taskDefaults`), `flowDefaults` and `permissions`, kept in
its `_namespace.yaml` like a declaration written by hand (engine.flows.declarations merges them).

CreateNamespace declares a namespace that has no declaration yet and leaves an existing one as it is
(a flow creating its namespaces may run again); UpdateNamespace merges into the declaration, creating
it when missing. `namespace`, `description`, `variables` and `permissions` are rendered when the task
runs (a variable set to `{{ inputs.day }}` keeps the day); plugin and flow defaults are kept as
written, since they are templates for the tasks they will fill.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..expressions import ExpressionError, to_text
from ..model import LogLevel
from .base import TaskContext, TaskFailure
from .builtin_types import CREATE_NAMESPACE, DECLARATION_KEPT, DECLARATION_RENDERED, UPDATE_NAMESPACE
from .services import FlowWriteError


async def create_namespace(context: TaskContext) -> Mapping[str, Any]:
    return await _declare(context, only_new=True)


async def update_namespace(context: TaskContext) -> Mapping[str, Any]:
    return await _declare(context, only_new=False)


async def _declare(context: TaskContext, *, only_new: bool) -> Mapping[str, Any]:
    if context.flows is None:
        raise TaskFailure(
            "Namespaces are declared in the flows folder's `_namespace.yaml` files: this engine has none"
        )
    namespace = to_text(context.prop("namespace")).strip()
    props = context.task.props
    # Rendered without secret(): the declaration is a file of the flows folder, shown as it is.
    variables = {**context.variables, "secret": _no_secret}
    render = context.renderer.render_value
    settings = {
        key: render(props[key], variables) for key in DECLARATION_RENDERED if props.get(key) is not None
    }
    settings |= {key: props[key] for key in DECLARATION_KEPT if props.get(key) is not None}
    flow, execution = context.flow, context.execution
    written_by = f"task {context.task.id} of {flow.namespace}.{flow.id}, execution {execution.id}"
    try:
        declared = await context.flows.declare_namespace(
            namespace, settings, only_new=only_new, written_by=written_by
        )
    except FlowWriteError as error:
        raise TaskFailure(f"Namespace `{namespace}` cannot be declared so: {error}") from None
    if declared.created:
        said = f"Namespace {namespace} declared in {declared.path}"
    elif declared.changed:
        said = f"Namespace {namespace} updated in {declared.path}"
    else:
        said = f"Namespace {namespace} is already declared as asked, in {declared.path}: unchanged"
    context.log(LogLevel.INFO, said)
    return {
        "namespace": namespace,
        "path": declared.path,
        "created": declared.created,
        "changed": declared.changed,
    }


def _no_secret(*_: Any, **__: Any) -> str:
    raise ExpressionError(
        "secret() cannot be written into a namespace declaration (a file of the flows folder): "
        "read the secret where it is used instead"
    )


HANDLERS: dict[str, Any] = {CREATE_NAMESPACE: create_namespace, UPDATE_NAMESPACE: update_namespace}
