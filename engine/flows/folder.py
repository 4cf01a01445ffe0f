"""The flows folder as the engine holds it: the catalog of its files, older revisions, the watcher.

Every change of the current flows is announced as FlowsChanged once the catalog has taken it in, so
the trigger sources and the dashboard see the flows the engine runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from ..errors import EngineCommandError
from ..events import EventBus, FlowsChanged
from ..internal_storage import Storage
from ..model import Flow
from ..parser import FlowError
from ..store import Store
from .catalog import NAMESPACE_FILES_FOLDER, FlowCatalog
from .namespaces import Namespaces
from .needs import flows_named
from .publish import NamespaceFilesPublisher
from .revisions import FlowRevisions
from .view import FlowsView
from .watcher import FlowWatcher
from .writing import FlowFiles

_log = logging.getLogger(__name__)


class FlowFolder:
    """The current flows of one folder (or of none), their stored revisions, and their errors."""

    def __init__(self, store: Store, folder: Path | None, events: EventBus, storage: Storage) -> None:
        self.store = store
        self.events = events
        self.storage = storage
        self.catalog = FlowCatalog(store, folder)
        self.revisions = FlowRevisions(self.catalog, store)
        # The current revision of every flow, by (namespace, flow id), each parsed on first use.
        self.flows = FlowsView(self.catalog.flows)
        # The folder written by the REST API and the tasks that sync flows (engine.flows.writing).
        self.files = FlowFiles(self, folder)
        self.watcher: FlowWatcher | None = None
        self.publisher: NamespaceFilesPublisher | None = None
        self._on_demand = False

    @property
    def namespaces(self) -> Namespaces:
        """The namespaces the folder's `_namespace.yaml` files declare."""
        return self.catalog.namespaces

    @property
    def errors(self) -> dict[str, list[FlowError]]:
        """The errors of every broken flow or namespace file, by path."""
        return {**self.catalog.namespaces.errors, **self.catalog.errors}

    def read_on_demand(self) -> None:
        """Read no flow file at start, only those `load_file` needs: the file, and the flows it names
        (subflows ...) found in the folder. For a one-off run of a file (`tiercel run FILE`), which
        need not parse every flow beside it. Call before `start`; a watching engine reads all."""
        self._on_demand = True

    async def start(self, *, watch: bool) -> None:
        """Read the folder (when there is one); with `watch`, follow its files as they change."""
        folder = self.catalog.folder
        if folder is None:
            return
        if self.storage.shared is not None:  # its namespace files go where every machine reads them
            files = folder / NAMESPACE_FILES_FOLDER
            self.publisher = NamespaceFilesPublisher(files, self.storage, self.storage.shared)
            await self.publisher.start(watch=watch)
        if self._on_demand and not watch:
            # Declarations are read all the same: their plugin defaults apply to the flows read later.
            self.catalog.namespaces.load(folder)
            return
        self._on_demand = False
        await self.sync()
        _log.info(
            "%d flows read from %s, %d files in error", len(self.catalog.flows), folder, len(self.errors)
        )
        if watch:
            self.watcher = FlowWatcher(folder, self.sync)
            await self.watcher.start()

    async def stop(self) -> None:
        if self.watcher is not None:
            await self.watcher.stop()
        if self.publisher is not None:
            await self.publisher.stop()

    def runnable(self, namespace: str, flow_id: str) -> Flow:
        """The current revision of a flow a command starts; EngineCommandError when it cannot start."""
        flow = self.flows.get((namespace, flow_id))
        if flow is None:
            raise EngineCommandError(f"No flow `{flow_id}` in namespace `{namespace}`")
        if flow.disabled:
            raise EngineCommandError(f"Flow {namespace}.{flow_id} is disabled")
        return flow

    async def sync(self, paths: Iterable[Path] | None = None) -> None:
        """Bring the flows in step with their files (the given ones, or all); announce any change."""
        if await self.catalog.sync(paths):
            self.events.publish(FlowsChanged())

    async def load(self, folder: Path) -> None:
        """Read every flow file under `folder` (which becomes the flows folder)."""
        if self.catalog.folder is None or self.catalog.folder.resolve() != folder.resolve():
            self.catalog.folder = folder
        await self.sync()

    async def load_file(self, path: Path) -> Flow:
        """Parse one file and make it the current revision of its flow (raises FlowParseError)."""
        flow = self.catalog.parse_file(path)
        if self._on_demand:
            await self._load_named(flow, path)
        flow = await self.catalog.add_file(path, flow)
        self.events.publish(FlowsChanged())
        return flow

    async def _load_named(self, flow: Flow, path: Path) -> None:
        """Read the flows `flow` names from the folder, and those they name in turn. The whole folder
        is read, as at a full start, when a name is known only at run time or is not found."""
        done = {flow.uid}
        waiting = [flow]
        while waiting:
            named = flows_named(waiting.pop())
            if named is None:
                return await self._load_all()
            for uid in sorted(named - done):
                done.add(uid)
                found = uid in self.flows or await self.catalog.load_flow(uid, besides=path)
                other = self.flows.get(uid) if found else None  # None also when it no longer parses
                if other is None:
                    return await self._load_all()
                waiting.append(other)

    async def _load_all(self) -> None:
        self._on_demand = False
        await self.sync()

    def add(self, flow: Flow) -> None:
        """Register a flow parsed elsewhere (tests, one-off files)."""
        self.catalog.flows[flow.uid] = flow
        self.events.publish(FlowsChanged())

    async def history(self, namespace: str, flow_id: str) -> list[tuple[int, str, datetime]]:
        """Every stored revision of a flow, oldest first, as (revision, source, created)."""
        return await self.store.flow_revisions(namespace, flow_id)

    async def revision(self, namespace: str, flow_id: str, revision: int) -> Flow | None:
        """A given revision of a flow, parsed from the store (cached)."""
        return await self.revisions.get(namespace, flow_id, revision)
