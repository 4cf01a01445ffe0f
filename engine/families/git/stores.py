"""The engine services the git tasks read and write: namespace files and flows.

Both are reached through the plugin API (`context.namespace_store`, `context.flows`); a task needing
one the engine was started without fails saying so.
"""

from __future__ import annotations

from tiercel.engine.plugin import (
    Conflict,
    FlowSource,
    FlowSources,
    FlowWriteError,
    NamespaceFiles,
    TaskContext,
    TaskFailure,
)

__all__ = ["FlowWriteError", "flow_sources", "namespace_files", "overwrite", "require_flows"]


def namespace_files(context: TaskContext) -> NamespaceFiles:
    store = context.namespace_store
    if store is None:
        raise TaskFailure("This task needs namespace files, which this engine was started without")
    return store


def require_flows(context: TaskContext) -> FlowSources:
    found = context.flows
    if found is None:
        raise TaskFailure(
            "This task needs the flows, which this engine was started without (no flows folder)"
        )
    return found


def flow_sources(context: TaskContext, namespace: str, children: bool) -> list[FlowSource]:
    return list(require_flows(context).flow_sources(namespace, children=children))


def overwrite(store: NamespaceFiles, namespace: str, path: str, data: bytes) -> None:
    """Write a namespace file, replacing it when it exists."""
    store.write_file(namespace, path, data, Conflict.OVERWRITE)
