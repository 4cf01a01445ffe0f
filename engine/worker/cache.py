"""A task's cache: the state and outputs of a run that ended SUCCESS or WARNING, reused by later
runs of the same key.

The key is a hash of the flow, the task (id, type, loop value) and its rendered properties: all of
them for Kestra's `taskCache` (as Kestra hashes the rendered task) and for the article's `cache`
without `inputs`, or those its `inputs` lists. `workingDir` and `outputDir`, different for every run,
render as fixed placeholders in the key. A key that cannot be rendered is said in the log and the
task runs uncached.

A hit gives the task run the cached outputs and state without running the task, and names the
execution that filled the cache (`TaskRun.cached_from`). Outputs that point at stored files are
reused only while those files exist (purging the execution that made them removes them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from ..expressions import ExpressionError
from ..internal_storage import StorageError
from ..mappings import strings_in
from ..model import LogLevel, TaskCacheSpec, iso, utcnow
from ..store.codec import dumps
from ..store.errors import StoreError
from ..store.task_cache import NEVER, CachedOutputs
from ..tasks.base import TaskContext

_STORED = "kestra://"
_PLACEHOLDERS = {"workingDir": "<workingDir>", "outputDir": "<outputDir>"}


class CacheStore(Protocol):
    """Where the entries are kept (the store's `task_cache` table)."""

    async def cached_outputs(self, namespace: str, flow_id: str, key: str) -> CachedOutputs | None: ...

    async def cache_outputs(
        self, namespace: str, flow_id: str, key: str, task_id: str, entry: CachedOutputs
    ) -> None: ...


def cache_key(context: TaskContext, cache: TaskCacheSpec) -> str | None:
    """The hash that names this task run's entry, or None (said in the log) when it cannot render."""
    task = context.task
    names = cache.properties if cache.properties is not None else sorted(task.props)
    variables = {**context.variables, **_PLACEHOLDERS}
    try:
        rendered = {name: context.renderer.render_value(task.props.get(name), variables) for name in names}
    except ExpressionError as error:
        context.emit(
            LogLevel.WARN, f"The task's cache key cannot be rendered ({error}): the task runs uncached"
        )
        return None
    material = {
        "flow": [context.flow.namespace, context.flow.id],
        "task": [task.id, task.type, context.run.value],
        "properties": rendered,
    }
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
        f"Outputs taken from the cache (filled by execution {entry.execution_id} at {iso(entry.created)}"
        f"{'' if entry.expires == NEVER else f', kept until {iso(entry.expires)}'}): the task does not run"
        f" and ends {entry.state}",
    )
    return entry


async def keep(
    store: CacheStore,
    context: TaskContext,
    key: str,
    cache: TaskCacheSpec,
    state: str,
    outputs: Mapping[str, Any] | None,
) -> None:
    """Keep a run's state and outputs under `key` for the cache's ttl (until cleared without one)."""
    now = utcnow()
    expires = now + cache.ttl if cache.ttl is not None else NEVER
    entry = CachedOutputs(context.execution.id, dict(outputs or {}), now, expires, state)
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
