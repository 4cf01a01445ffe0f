"""Older revisions of flows, parsed from the store for the executions that still run them."""

from __future__ import annotations

from typing import Protocol

from ..model import Flow
from ..parser import FlowParseError, parse_flow
from .catalog import FlowCatalog

# Older flow revisions kept parsed, for the executions that still run them.
OLD_REVISIONS_CACHED = 256


class FlowSources(Protocol):
    """The store as older revisions are read from it."""

    async def flow_source(self, namespace: str, flow_id: str, revision: int) -> tuple[int, str] | None: ...


class FlowRevisions:
    """A given revision of a flow: the current one from the catalog, older ones parsed (and cached)."""

    def __init__(self, catalog: FlowCatalog, store: FlowSources) -> None:
        self.catalog = catalog
        self.store = store
        self._cache: dict[tuple[str, str, int], Flow] = {}

    async def get(self, namespace: str, flow_id: str, revision: int) -> Flow | None:
        """The revision, or None when it is not stored or no longer parses."""
        current = self.catalog.flows.get((namespace, flow_id))
        if current is not None and current.revision == revision:
            return current
        key = (namespace, flow_id, revision)
        cached = self._cache.pop(key, None)
        if cached is None:
            found = await self.store.flow_source(namespace, flow_id, revision)
            if found is None:
                return None
            try:
                parsed = parse_flow(found[1], defaults=self.catalog.namespaces.plugin_defaults)
            except FlowParseError:
                return None
            cached = parsed.with_revision(found[0])
        self._cache[key] = cached  # most recently used last; the oldest go past the limit
        while len(self._cache) > OLD_REVISIONS_CACHED:
            del self._cache[next(iter(self._cache))]
        return cached
