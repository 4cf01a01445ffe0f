"""A task's cache: the outputs of a successful run, reused by later runs of the same key.

The key is a hash of the flow, the task (id, type, loop value) and:
- for Kestra's `taskCache`, the execution's inputs and the task as written (so that editing the task
  starts afresh), as Kestra keys it;
- for the article's `cache`, the rendered values of the properties its `inputs` lists, or of every
  property of the task when it lists none: a query whose rendered SQL is the same reuses its rows.

Only a SUCCESS is kept. A hit gives the task run the cached outputs without running the task, and
names the execution that filled the cache (`TaskRun.cached_from`). Outputs that point at stored files
are reused only while those files exist (purging the execution that made them removes them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from ..internal_storage import StorageError
from ..mappings import strings_in
from ..model import LogLevel, TaskCacheSpec, iso, utcnow
from ..store.codec import dumps
from ..store.errors import StoreError
from ..store.task_cache import CachedOutputs
from ..tasks.base import TaskContext

_STORED = "kestra://"


class CacheStore(Protocol):
    """Where the entries are kept (the store's `task_cache` table)."""

    async def cached_outputs(self, namespace: str, flow_id: str, key: str) -> CachedOutputs | None: ...

    async def cache_outputs(
        self, namespace: str, flow_id: str, key: str, task_id: str, entry: CachedOutputs
    ) -> None: ...


def cache_key(context: TaskContext, cache: TaskCacheSpec) -> str:
    """The hash that names this task run's entry (rendering properties may raise ExpressionError)."""
    task = context.task
    material: dict[str, Any] = {
        "flow": [context.flow.namespace, context.flow.id],
        "task": [task.id, task.type, context.run.value],
    }
    if cache.by_execution_inputs:
        material["inputs"] = context.variables.get("inputs")
        material["written"] = task.props
    else:
        names = cache.properties if cache.properties is not None else sorted(task.props)
        material["properties"] = {name: context.prop(name) for name in names}
    return hashlib.sha256(dumps(material).encode()).hexdigest()


async def reuse(store: CacheStore, context: TaskContext, key: str) -> CachedOutputs | None:
    """The live entry under `key` whose stored files all still exist, said in the task's log."""
    flow = context.flow
    try:
        entry = await store.cached_outputs(flow.namespace, flow.id, key)
    except StoreError as error:
        context.emit(LogLevel.WARN, f"The task's cache could not be read ({error}): the task runs")
        return None
    if entry is None:
        return None
    stored = (text for text in strings_in(entry.outputs) if text.startswith(_STORED))
    if not all(_exists(context, uri) for uri in stored):
        context.emit(LogLevel.INFO, "The cached outputs name files that are gone: the task runs")
        return None
    context.emit(
        LogLevel.INFO,
        f"Outputs taken from the cache (filled by execution {entry.execution_id} at {iso(entry.created)}, "
        f"kept until {iso(entry.expires)}): the task does not run",
    )
    return entry


async def keep(
    store: CacheStore, context: TaskContext, key: str, cache: TaskCacheSpec, outputs: Mapping[str, Any] | None
) -> None:
    """Keep a successful run's outputs under `key` for the cache's ttl."""
    now = utcnow()
    entry = CachedOutputs(context.execution.id, dict(outputs or {}), now, now + cache.ttl)
    try:
        await store.cache_outputs(context.flow.namespace, context.flow.id, key, context.task.id, entry)
    except StoreError as error:  # the run itself succeeded
        context.emit(LogLevel.WARN, f"The task's outputs could not be cached: {error}")


def _exists(context: TaskContext, uri: str) -> bool:
    if context.storage is None:
        return False
    try:
        return context.storage.exists(uri)
    except StorageError:
        return False
