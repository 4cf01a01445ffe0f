"""The flows of a folder: which file defines which flow, their current revisions and their errors.

The catalog is the one place that turns files into flow revisions. Rules:
- a file whose content changed becomes a new revision of its flow (the store skips identical ones);
- a deleted file, or a file whose id or namespace changed, retires the flow it defined (its
  revisions are kept in the store);
- a broken file keeps the last good revision of its flow running and records the error;
- two files defining the same flow: the first one keeps it, the other one gets an error;
- a flow whose subflow calls lead back to itself is refused as `tiercel validate` refuses it (the file
  that closes the cycle gets the error); it is checked again whenever other flows change;
- a file unchanged since its flow's current revision was stored (same content hash, checked with the
  same engine, task types and namespace defaults) is not parsed at start: its flow is parsed when
  first used, and which triggers it has is known from the outline kept with the revision.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..internal_storage.uris import NAMESPACE_FILES as STORED_NAMESPACE_FILES
from ..model import Flow
from ..parser import (
    MAX_FLOW_BYTES,
    FlowError,
    FlowParseError,
    parse_flow,
    parse_flow_file,
    subflow_calls,
    validate_flows,
)
from ..store import FlowSave, Store, source_hash
from ..tasks.registry import plugins_fingerprint
from .namespaces import NAMESPACE_FILES, Namespaces
from .table import FlowTable, StoredFlow, trigger_types

FLOW_SUFFIXES = (".yml", ".yaml")
# <flows folder>/_files/<namespace>/...: Kestra's namespace files, for namespaceFiles and read().
NAMESPACE_FILES_FOLDER = STORED_NAMESPACE_FILES  # the same name as in the internal storage

FlowUid = tuple[str, str]
RECENT_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class _Stamp:
    """What a file looked like when last read: an unchanged stamp means no need to parse again."""

    mtime_ns: int
    size: int


@dataclass(frozen=True, slots=True)
class _Stored:
    """What the store holds for a file at start: its flow's current revision and outline."""

    uid: FlowUid
    revision: int
    source_hash: str | None
    trigger_types: tuple[str, ...] | None
    checked_with: str | None


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


def is_test_file(path: Path, size: int | None = None) -> bool:
    """Whether a YAML file holds flow tests (a top-level `testCases`: engine.flowtests), not a flow.
    A file the parser would refuse (too big, not UTF-8) is none: it is reported as a broken flow."""
    try:
        size = path.stat().st_size if size is None else size
    except OSError:
        return False
    text = _read_source(path, size)
    return text is not None and (text.startswith("testCases:") or "\ntestCases:" in text)


def _read_source(path: Path, size: int) -> str | None:
    """A flow file's text as the parser reads it, or None when the parser would refuse it."""
    if size > MAX_FLOW_BYTES:
        return None
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FLOW_BYTES + 1)
        return None if len(raw) > MAX_FLOW_BYTES else raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None


def _engine_version() -> str:
    try:
        return metadata.version("tiercel")
    except metadata.PackageNotFoundError:
        return "unknown"


def _recent(mtime_ns: int) -> bool:
    """Modified so lately that another write of the same size may share its timestamp (coarse file
    system clocks): such a file is read again rather than trusted by its stamp."""
    return time.time_ns() - mtime_ns < RECENT_NS


class FlowCatalog:
    """The current flows of one folder, kept in step with its files and with the store."""

    def __init__(self, store: Store, folder: Path | None) -> None:
        self.store = store
        self.folder = folder
        self.flows = FlowTable(self._parse_stored)
        self.errors: dict[str, list[FlowError]] = {}
        self.namespaces = Namespaces()
        self._owner: dict[str, FlowUid] = {}  # file key -> the flow it defines
        self._holders: dict[FlowUid, set[str]] = {}  # the same, flow -> file keys (no scans of _owner)
        self._stamps: dict[str, _Stamp] = {}
        # What the store holds for each file at start (flow, revision, content hash): an unchanged
        # file is recognised by its hash and costs no write.
        self._stored: dict[str, _Stored] = {}
        # Outlines to store after a sync: (namespace, flow id, revision, trigger types, checked with).
        self._outlines: list[tuple[str, str, int, frozenset[str], str]] = []
        self._checked: str | None = None  # the fingerprint of what flows are checked with now
        # During the first sync, the new revisions to store together at its end.
        self._batch: list[FlowSave] | None = None
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

    def _scan(self) -> dict[str, os.stat_result]:
        """Every flow file under the folder by key, with its stat: the files `flow_files` finds.

        Links to folders are not followed (as `rglob` does not), so a file reached without a link
        is its own key and needs no resolving; a linked file is checked as `is_flow_file` does.
        """
        assert self.folder is not None
        found: dict[str, os.stat_result] = {}
        root = self._folder_resolved()
        pending: list[tuple[Path, Path]] = [(self.folder, Path())]
        while pending:
            folder, relative = pending.pop()
            try:
                with os.scandir(folder) as entries:
                    listed = list(entries)
            except OSError:
                continue
            for entry in listed:
                name = entry.name
                if name.startswith("."):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if relative.parts or name != NAMESPACE_FILES_FOLDER:
                            pending.append((folder / name, relative / name))
                        continue
                    if Path(name).suffix not in FLOW_SUFFIXES or name in NAMESPACE_FILES:
                        continue
                    if entry.is_symlink():
                        path = folder / name
                        if is_flow_file(self.folder, path, resolved=root) and path.is_file():
                            found[self.key(path)] = path.stat()
                    elif entry.is_file(follow_symlinks=False):
                        found[str(self.folder / relative / name)] = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
        return found

    def _fingerprint(self) -> str:
        """What a flow's validity depends on besides its source: the engine's version, the plugins
        installed and the namespaces' plugin defaults. An outline checked with another is not trusted."""
        if self._checked is None:
            declared = sorted(self.namespaces.declared.items(), key=lambda item: item[0])
            parts = [
                _engine_version(),
                plugins_fingerprint(),
                repr([(name, spec.plugin_defaults) for name, spec in declared]),
            ]
            self._checked = hashlib.sha256("\n".join(parts).encode()).hexdigest()
        return self._checked

    def _parse_stored(self, entry: StoredFlow) -> Flow:
        """Parse a flow kept unparsed since start; a failure is recorded as its file's error."""
        try:
            flow = parse_flow(entry.source, entry.path, defaults=self.namespaces.plugin_defaults)
        except FlowParseError as error:
            self.errors[entry.path] = error.errors
            self._stamps.pop(entry.path, None)  # looked at again by the next sync
            raise KeyError(entry.uid) from error
        return flow.with_revision(entry.revision)

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
            if not self._adopted:
                self._batch = []
            try:
                changed = await self._sync(paths)
            except BaseException:
                for save in self._batch or ():  # not stored: read again at the next sync
                    self._forget_unstored(save)
                raise
            finally:
                self._resolved = None
                batch, self._batch = self._batch or [], None
            await self._store_batch(batch)
            outlines, self._outlines = self._outlines, []
            await self.store.save_flow_outlines(outlines)
            return changed

    async def _store_batch(self, batch: list[FlowSave]) -> None:
        """Store the revisions of the first sync at once, and give their flows their revision numbers."""
        try:
            results = await self.store.save_flows(batch)
        except Exception:
            for save in batch:  # not stored: read again at the next sync
                self._forget_unstored(save)
            raise
        for save, (revision, _) in zip(batch, results, strict=True):
            uid = (save.namespace, save.flow_id)
            if self.flows.source(uid) == save.source and self.flows.is_parsed(uid):
                self.flows[uid] = self.flows[uid].with_revision(revision)

    def _forget_unstored(self, save: FlowSave) -> None:
        uid = (save.namespace, save.flow_id)
        if self.flows.source(uid) == save.source:
            self.flows.discard(uid)
        if save.path is not None:
            self._stamps.pop(save.path, None)

    async def _sync(self, paths: Iterable[Path] | None) -> bool:
        assert self.folder is not None
        wanted = None if paths is None else [Path(p) for p in paths]
        changed = False
        if wanted is None or any(p.name in NAMESPACE_FILES for p in wanted):
            changed = self.namespaces.load(self.folder)
            if changed:
                self._stamps.clear()  # defaults may differ: parse everything again
                self._checked = None
            wanted = None
        scanned = self._scan() if wanted is None else {}
        if not self._adopted:
            await self._adopt_stored(scanned)
        if wanted is None:
            keys = set(scanned) | set(self._owner) | set(self.errors)
        else:
            keys = {self.key(p) for p in wanted if p.suffix in FLOW_SUFFIXES}
            folders = [self.key(p) for p in wanted if p.suffix not in FLOW_SUFFIXES]
            keys |= {key for key in self._owner if any(Path(key).is_relative_to(f) for f in folders)}
        for key in sorted(keys):
            changed |= await self._sync_file(key, scanned.get(key))
        for key in sorted(self._cyclic - keys):  # a change elsewhere may have broken their cycle
            self._stamps.pop(key, None)
            changed |= await self._sync_file(key)
        return changed

    async def _adopt_stored(self, scanned: dict[str, os.stat_result]) -> None:
        """Learn which stored flows came from files under the folder, so that a file deleted or
        broken while no engine ran is noticed (retired, or kept at its last good revision)."""
        self._adopted = True
        assert self.folder is not None
        for row in await self.store.list_flows():
            if row.path is None:
                continue
            if row.path in scanned:
                key = row.path  # found where it was: its own key
            else:
                key = self.key(Path(row.path))
                if Path(key) != Path(row.path) and not Path(row.path).resolve().is_relative_to(
                    self._folder_resolved()
                ):
                    continue
            if key not in self._owner:
                self._own(key, (row.namespace, row.flow_id))
                self._stored[key] = _Stored(
                    (row.namespace, row.flow_id),
                    row.revision,
                    row.source_hash,
                    row.trigger_types,
                    row.checked_with,
                )

    async def _no_flow(self, key: str, previous: FlowUid | None) -> bool:
        """The file holds no flow (gone, or not a flow file): forget what it held."""
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

    async def _sync_file(self, key: str, scanned: os.stat_result | None = None) -> bool:
        """Bring one file's flow in step; `scanned` is its stat when `_scan` found it a flow file."""
        path = Path(key)
        previous = self._owner.get(key)
        stat = scanned
        if stat is None:
            try:
                stat = path.stat()
            except OSError:
                stat = None
        folder = self.folder or path.parent
        if stat is None or (
            scanned is None and not is_flow_file(folder, path, resolved=self._folder_resolved())
        ):
            return await self._no_flow(key, previous)
        stamp = _Stamp(stat.st_mtime_ns, stat.st_size)
        known = previous is None or previous in self.flows or key in self.errors
        if self._stamps.get(key) == stamp and known and not _recent(stat.st_mtime_ns):
            return False
        self._stamps[key] = stamp
        if self._unchanged(key, path, stat.st_size, previous):
            return True  # a stored flow's content: no test file
        if is_test_file(path, stat.st_size):  # read once per change of the file, as a flow would be
            changed = await self._no_flow(key, previous)
            self._stamps[key] = stamp
            return changed
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
        # A fix that restores the stored content (an undo) creates no revision, but its error going
        # away is still a change to announce.
        cleared = self.errors.pop(key, None) is not None
        if cleared:
            await self.store.save_flow_error(key, None)
        self._own(key, flow.uid)
        if previous is not None and previous != flow.uid:
            await self._retire(previous)
        stored = self._stored.pop(key, None)
        types = trigger_types(flow.triggers)
        if stored is not None and stored.uid == flow.uid and stored.source_hash == source_hash(flow.source):
            revision, created = stored.revision, False  # what the store holds already
            outline = (tuple(sorted(types)), self._fingerprint())
            if (stored.trigger_types, stored.checked_with) != outline:
                self._outlines.append((*flow.uid, revision, types, outline[1]))
        elif self._batch is not None:  # the first sync: stored with the others once all are read
            self._batch.append(
                FlowSave(flow.namespace, flow.id, flow.source, key, types, self._fingerprint())
            )
            self.flows[flow.uid] = flow
            return True
        else:
            revision, created = await self.store.save_flow(
                flow.namespace,
                flow.id,
                flow.source,
                path=key,
                trigger_types=types,
                checked_with=self._fingerprint(),
            )
        current_source, current_path = self.flows.source(flow.uid), self.flows.path(flow.uid)
        self.flows[flow.uid] = flow.with_revision(revision)
        return cleared or created or current_source != flow.source or current_path != flow.path

    def _unchanged(self, key: str, path: Path, size: int, previous: FlowUid | None) -> bool:
        """At start, take a file whose content is its flow's stored current revision as it is, to be
        parsed when first used; True when so taken."""
        stored = self._stored.get(key)
        if (
            stored is None
            or stored.uid != previous
            or stored.trigger_types is None
            or stored.checked_with != self._fingerprint()
            or key in self.errors
        ):
            return False
        source = _read_source(path, size)
        if source is None or source_hash(source) != stored.source_hash:
            return False
        del self._stored[key]
        types = frozenset(stored.trigger_types)
        self.flows.add_stored(StoredFlow(stored.uid, stored.revision, source, key, types))
        return True

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
        if changed:
            # Stored before it is shown: whoever sees the error in memory also finds it stored.
            await self.store.save_flow_error(key, "\n".join(str(error) for error in errors))
        self.errors[key] = errors
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
        self.flows.discard(uid)
        await self.store.delete_flow(*uid)

    # -- reading on demand ---------------------------------------------------------------------------
    async def load_flow(self, uid: FlowUid, *, besides: Path | None = None) -> bool:
        """Read the files that may define `uid` and no others; True when it is then known.

        They are the files whose text holds its id (found without parsing) and those the store last
        knew it from (one may define another flow now, which frees the id). `besides` is left out.
        """
        if self.folder is None:
            return False
        async with self._lock:
            if not self._adopted:
                await self._adopt_stored({})
            keys = set(self._holders.get(uid, ()))
        for key, stat in self._scan().items():
            source = _read_source(Path(key), stat.st_size)
            if source is not None and uid[1] in source:
                keys.add(key)
        if besides is not None:
            keys.discard(self.key(besides))
        if keys:
            await self.sync([Path(key) for key in sorted(keys)])
        return uid in self.flows

    # -- one-off files -----------------------------------------------------------------------------
    def parse_file(self, path: Path) -> Flow:
        """Parse a file with the plugin defaults of its namespace (raises FlowParseError)."""
        return parse_flow_file(path, defaults=self.namespaces.plugin_defaults)

    async def add_file(self, path: Path, parsed: Flow | None = None) -> Flow:
        """Parse a file outside the sync rules (`tiercel run FILE`) and make it the current revision.

        Args:
            path: The flow file.
            parsed: Its flow, when `parse_file` has read it already.

        Raises:
            FlowParseError: The file is not a valid flow.
        """
        flow = parsed or self.parse_file(path)
        cycle = self.cycle_errors(flow)
        if cycle:
            raise FlowParseError(cycle)
        revision, _ = await self.store.save_flow(
            flow.namespace,
            flow.id,
            flow.source,
            path=str(path),
            trigger_types=trigger_types(flow.triggers),
            checked_with=self._fingerprint(),
        )
        flow = flow.with_revision(revision)
        self.flows[flow.uid] = flow
        return flow
