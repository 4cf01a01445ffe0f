"""A flows folder's namespace files published to the internal storage its machines share.

On a store the machines of a cluster share, namespace files are read from the internal storage
(`tasks.namespace_store`), where Kestra keeps them; the `_files` folder of a flows folder is where
they come from. An engine given a flows folder publishes at start each file newer than its stored
copy (or not stored), and while it watches the folder, every `PUBLISH_SECONDS`, each file added or
changed since; a file removed from the folder meanwhile is deleted from the storage. A file
removed while no engine watched stays stored (it cannot be told from one a task uploaded), as does
one a namespace.UploadFiles task wrote: delete those with namespace.DeleteFiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path, PurePosixPath

from ..internal_storage import SharedFiles, Storage, StorageError
from ..internal_storage.folders import walk_files
from ..internal_storage.uris import join_uri, namespace_files_uri, parse_uri

PUBLISH_SECONDS = 2.0

_log = logging.getLogger(__name__)

# A namespace file: (namespace, its path with `/` between folders); and how it looked when read
# (modification time in nanoseconds, size).
_Key = tuple[str, str]
_Look = tuple[int, int]


class NamespaceFilesPublisher:
    """Publishes the files of one `_files` folder (a folder per namespace) to a shared storage."""

    def __init__(self, folder: Path, storage: Storage, shared: SharedFiles) -> None:
        self.folder = folder
        self.storage = storage  # a copy of the shared files
        self.shared = shared
        self._published: dict[_Key, _Look] | None = None  # None until the first step
        self._refused: dict[_Key, _Look] = {}  # said once, tried again when the file changes
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, watch: bool) -> None:
        """Publish what is newer than stored; with `watch`, go on with what changes."""
        await asyncio.to_thread(self.step)
        if watch:
            self._task = asyncio.create_task(self._follow(), name="tiercel-namespace-files")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_SECONDS)
            try:
                await asyncio.to_thread(self.step)
            except Exception:  # a failed round is tried again at the next
                _log.exception("publishing the namespace files of %s failed", self.folder)

    def step(self) -> int:
        """Publish the files added or changed since the last step (at the first, those newer than
        their stored copy) and delete those removed since; how many files were published or deleted.
        A file that fails is tried again at each step, and said again once it changed."""
        found = self._scan()
        first = self._published is None
        published = dict(self._published or {})
        stamps: dict[str, dict[str, int]] = {}
        done = 0
        for key, look in found.items():
            if published.get(key) == look:
                continue
            namespace, path = key
            try:
                uri = _uri(namespace, path)
                if first:
                    if namespace not in stamps:
                        stamps[namespace] = self.shared.files(namespace_files_uri(namespace))
                    stamp = stamps[namespace].get(uri)
                    if stamp is not None and stamp >= look[0]:
                        published[key] = look  # the stored copy is as new
                        continue
                *folder, name = parse_uri(uri)
                self.storage.put_file(join_uri(folder), name, self.folder / namespace / path)
            except StorageError as error:
                if self._refused.get(key) != look:
                    _log.warning("namespace file %s/%s not published: %s", namespace, path, error)
                self._refused[key] = look
                continue
            self._refused.pop(key, None)
            published[key] = look
            done += 1
        for key in set(published) - set(found) if not first else ():
            try:
                self.storage.delete(_uri(*key))
            except StorageError as error:
                _log.warning("namespace file %s/%s not deleted: %s", *key, error)
                continue
            del published[key]
            done += 1
        self._published = published
        return done

    def _scan(self) -> dict[_Key, _Look]:
        """Every file of the folder, as it looks now."""
        found: dict[_Key, _Look] = {}
        try:
            namespaces = [
                entry for entry in self.folder.iterdir() if entry.is_dir() and not entry.is_symlink()
            ]
        except OSError:
            return found  # no `_files` folder (yet)
        for folder in namespaces:
            for relative in walk_files(folder, folder.resolve()):
                try:
                    info = (folder / relative).stat()
                except OSError:
                    continue
                found[(folder.name, relative.as_posix())] = (info.st_mtime_ns, info.st_size)
        return found


def _uri(namespace: str, path: str) -> str:
    return join_uri((*parse_uri(namespace_files_uri(namespace)), *PurePosixPath(path).parts))
