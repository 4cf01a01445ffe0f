"""The flows of a folder: which file defines which flow, their current revisions and their errors.

The catalog is the one place that turns files into flow revisions. Rules:
- a file whose content changed becomes a new revision of its flow (the store skips identical ones);
- a deleted file, or a file whose id or namespace changed, retires the flow it defined (its
  revisions are kept in the store);
- a broken file keeps the last good revision of its flow running and records the error;
- two files defining the same flow: the first one keeps it, the other one gets an error;
- a flow whose subflow calls lead back to itself is refused as `tiercel validate` refuses it (the file
  that closes the cycle gets the error); it is checked again whenever other flows change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .model import Flow
from .namespaces import NAMESPACE_FILES, Namespaces
from .parser import FlowError, FlowParseError, parse_flow, parse_flow_file, subflow_calls, validate_flows
from .store import Store, source_hash

FLOW_SUFFIXES = (".yml", ".yaml")
# <flows folder>/_files/<namespace>/...: Kestra's namespace files, for namespaceFiles and read().
NAMESPACE_FILES_FOLDER = "_files"

FlowUid = tuple[str, str]
RECENT_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class _Stamp:
    """What a file looked like when last read: an unchanged stamp means no need to parse again."""

    mtime_ns: int
    size: int


def is_flow_file(folder: Path, path: Path, *, resolved: Path | None = None) -> bool:
    """A YAML file under `folder` that is neither a namespace declaration nor a namespace file.

    `resolved` is `folder.resolve()` when the caller knows it already (it saves a lookup per file).
    """
    if path.suffix not in FLOW_SUFFIXES or path.name in NAMESPACE_FILES:
        return False
    try:
        relative = path.resolve().relative_to(resolved or folder.resolve())
    except ValueError:
        return False
    return relative.parts[:1] != (NAMESPACE_FILES_FOLDER,) and not any(
        part.startswith(".") for part in relative.parts
    )


def _recent(mtime_ns: int) -> bool:
    """Modified so lately that another write of the same size may share its timestamp (coarse file
    system clocks): such a file is read again rather than trusted by its stamp."""
    return time.time_ns() - mtime_ns < RECENT_NS


class FlowCatalog:
    """The current flows of one folder, kept in step with its files and with the store."""

    def __init__(self, store: Store, folder: Path | None) -> None:
        self.store = store
        self.folder = folder
        self.flows: dict[FlowUid, Flow] = {}
        self.errors: dict[str, list[FlowError]] = {}
        self.namespaces = Namespaces()
        self._owner: dict[str, FlowUid] = {}  # file key -> the flow it defines
        self._holders: dict[FlowUid, set[str]] = {}  # the same, flow -> file keys (no scans of _owner)
        self._stamps: dict[str, _Stamp] = {}
        # What the store holds for each file at start (flow, revision, content hash): an unchanged
        # file is recognised by its hash and costs no write.
        self._stored: dict[str, tuple[FlowUid, int, str | None]] = {}
        self._adopted = False
        self._lock = asyncio.Lock()
        # Files refused because their flow closes a cycle of subflow calls: checked at every sync.
        self._cyclic: set[str] = set()
        self._resolved: tuple[Path, Path] | None = None  # (folder, folder resolved) during a sync

    # -- paths ---------------------------------------------------------------------------------
    def key(self, path: Path) -> str:
        """A file's name as the catalog reports it: under the folder as the folder was given."""
        if self.folder is None:
            return str(path)
        try:
            return str(self.folder / path.resolve().relative_to(self._folder_resolved()))
        except ValueError:
            return str(path)

    def _folder_resolved(self) -> Path:
        assert self.folder is not None
        if self._resolved is None or self._resolved[0] != self.folder:
            return self.folder.resolve()
        return self._resolved[1]

    def flow_files(self) -> list[Path]:
        if self.folder is None or not self.folder.is_dir():
            return []
        root = self._folder_resolved()
        return sorted(
            p for p in self.folder.rglob("*") if is_flow_file(self.folder, p, resolved=root) and p.is_file()
        )

    # -- syncing ---------------------------------------------------------------------------------
    async def sync(self, paths: Iterable[Path] | None = None) -> bool:
        """Bring the catalog in step with the given files (every file when None); True if anything changed.

        A namespace declaration among `paths`, or no paths at all, reloads the declarations and
        re-reads every flow, since plugin defaults may come from a namespace.
        """
        if self.folder is None:
            return False
        async with self._lock:  # the watcher and the dashboard's `e` may sync at the same time
            # The folder is resolved once per sync, not once per file (it may be a link, retargeted later).
            self._resolved = (self.folder, self.folder.resolve())
            try:
                return await self._sync(paths)
            finally:
                self._resolved = None

    async def _sync(self, paths: Iterable[Path] | None) -> bool:
        assert self.folder is not None
        wanted = None if paths is None else [Path(p) for p in paths]
        changed = False
        if wanted is None or any(p.name in NAMESPACE_FILES for p in wanted):
            changed = self.namespaces.load(self.folder)
            if changed:
                self._stamps.clear()  # defaults may differ: parse everything again
            wanted = None
        if not self._adopted:
            await self._adopt_stored()
        if wanted is None:
            keys = {self.key(p) for p in self.flow_files()} | set(self._owner) | set(self.errors)
        else:
            keys = {self.key(p) for p in wanted if p.suffix in FLOW_SUFFIXES}
            folders = [self.key(p) for p in wanted if p.suffix not in FLOW_SUFFIXES]
            keys |= {key for key in self._owner if any(Path(key).is_relative_to(f) for f in folders)}
        for key in sorted(keys):
            changed |= await self._sync_file(key)
        for key in sorted(self._cyclic - keys):  # a change elsewhere may have broken their cycle
            self._stamps.pop(key, None)
            changed |= await self._sync_file(key)
        return changed

    async def _adopt_stored(self) -> None:
        """Learn which stored flows came from files under the folder, so that a file deleted or
        broken while no engine ran is noticed (retired, or kept at its last good revision)."""
        self._adopted = True
        assert self.folder is not None
        for row in await self.store.list_flows():
            if row.path is None:
                continue
            key = self.key(Path(row.path))
            if Path(key) != Path(row.path) and not Path(row.path).resolve().is_relative_to(
                self._folder_resolved()
            ):
                continue
            if key not in self._owner:
                self._own(key, (row.namespace, row.flow_id))
                self._stored[key] = ((row.namespace, row.flow_id), row.revision, row.source_hash)

    async def _sync_file(self, key: str) -> bool:
        path = Path(key)
        previous = self._owner.get(key)
        try:
            stat = path.stat()
        except OSError:
            stat = None
        folder = self.folder or path.parent
        if stat is None or not is_flow_file(folder, path, resolved=self._folder_resolved()):
            self._stamps.pop(key, None)
            self._cyclic.discard(key)
            had_error = self.errors.pop(key, None) is not None
            if had_error:
                await self.store.save_flow_error(key, None)
            if previous is None:
                return had_error
            self._disown(key)
            await self._retire(previous)
            return True
        stamp = _Stamp(stat.st_mtime_ns, stat.st_size)
        known = previous is None or previous in self.flows or key in self.errors
        if self._stamps.get(key) == stamp and known and not _recent(stat.st_mtime_ns):
            return False
        self._stamps[key] = stamp
        try:
            flow = parse_flow_file(path, defaults=self.namespaces.plugin_defaults)
        except FlowParseError as error:
            return await self._broken(key, error.errors, previous)
        holder = next((k for k in sorted(self._holders.get(flow.uid, ())) if k != key), None)
        if holder is not None and Path(holder).is_file():
            message = (
                f"Flow {flow.namespace}.{flow.id} is also defined in {holder}: "
                "each flow id must be unique in its namespace"
            )
            return await self._broken(key, [FlowError(key, 1, 1, "", message)], previous)
        cycle = self.cycle_errors(flow)
        if cycle:
            self._cyclic.add(key)
            return await self._broken(key, cycle, previous)
        self._cyclic.discard(key)
        if holder is not None:
            self._disown(holder)
        if self.errors.pop(key, None) is not None:
            await self.store.save_flow_error(key, None)
        self._own(key, flow.uid)
        if previous is not None and previous != flow.uid:
            await self._retire(previous)
        stored = self._stored.pop(key, None)
        if stored is not None and stored[0] == flow.uid and stored[2] == source_hash(flow.source):
            revision, created = stored[1], False  # what the store holds already
        else:
            revision, created = await self.store.save_flow(flow.namespace, flow.id, flow.source, path=key)
        current = self.flows.get(flow.uid)
        self.flows[flow.uid] = flow.with_revision(revision)
        return created or current is None or current.source != flow.source or current.path != flow.path

    def _own(self, key: str, uid: FlowUid) -> None:
        self._disown(key)
        self._owner[key] = uid
        self._holders.setdefault(uid, set()).add(key)

    def _disown(self, key: str) -> None:
        uid = self._owner.pop(key, None)
        if uid is not None:
            keys = self._holders[uid]
            keys.discard(key)
            if not keys:
                del self._holders[uid]

    def cycle_errors(self, flow: Flow) -> list[FlowError]:
        """The errors `tiercel validate` gives `flow` for subflow calls that lead back to it.

        Only the flows its calls reach are checked (not the whole catalog), so a folder of many flows
        syncs at the same pace.
        """
        waiting = subflow_calls(flow)
        if not waiting:
            return []
        involved = {flow.uid: flow}
        while waiting:
            uid = waiting.pop()
            other = self.flows.get(uid)
            if uid in involved or other is None:
                continue
            involved[uid] = other
            waiting.extend(subflow_calls(other))
        return [error for error in validate_flows(list(involved.values())) if error.path == flow.path]

    async def _broken(self, key: str, errors: list[FlowError], previous: FlowUid | None) -> bool:
        """Record a file's errors; the flow it defined keeps its last good revision."""
        changed = self.errors.get(key) != errors
        self.errors[key] = errors
        if changed:
            await self.store.save_flow_error(key, "\n".join(str(error) for error in errors))
        if previous is not None and previous not in self.flows:
            last_good = await self._stored_flow(previous, key)
            if last_good is not None and not self.cycle_errors(last_good):
                self.flows[previous] = last_good
                changed = True
        return changed

    async def _stored_flow(self, uid: FlowUid, key: str) -> Flow | None:
        found = await self.store.flow_source(*uid)
        if found is None:
            return None
        try:
            flow = parse_flow(found[1], key, defaults=self.namespaces.plugin_defaults)
        except FlowParseError:
            return None
        return flow.with_revision(found[0])

    async def _retire(self, uid: FlowUid) -> None:
        if self._holders.get(uid):
            return  # another file defines it now
        self.flows.pop(uid, None)
        await self.store.delete_flow(*uid)

    # -- one-off files -----------------------------------------------------------------------------
    async def add_file(self, path: Path) -> Flow:
        """Parse a file outside the sync rules (`tiercel run FILE`) and make it the current revision.

        Raises:
            FlowParseError: The file is not a valid flow.
        """
        flow = parse_flow_file(path, defaults=self.namespaces.plugin_defaults)
        cycle = self.cycle_errors(flow)
        if cycle:
            raise FlowParseError(cycle)
        revision, _ = await self.store.save_flow(flow.namespace, flow.id, flow.source, path=str(path))
        flow = flow.with_revision(revision)
        self.flows[flow.uid] = flow
        return flow
