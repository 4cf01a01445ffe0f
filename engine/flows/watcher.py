"""Watch the flows folder and hand each burst of saved, added or deleted files to the engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .catalog import FLOW_SUFFIXES, NAMESPACE_FILES_FOLDER

if TYPE_CHECKING:
    from watchfiles import Change

# Changes are grouped until the folder has been quiet for STEP_MS (at most DEBOUNCE_MS): an editor's
# save (temporary file, rename) arrives as one burst, and a saved file shows up well within a second.
DEBOUNCE_MS = 400
STEP_MS = 50
# How often a missing flows folder is looked for again, and the pause after watching failed.
RECHECK_SECONDS = 0.5

_log = logging.getLogger(__name__)

OnChange = Callable[[set[Path] | None], Awaitable[None]]


def _relevant(folder: Path) -> Callable[[Change, str], bool]:
    files = folder.resolve() / NAMESPACE_FILES_FOLDER

    def keep(change: Change, name: str) -> bool:
        path = Path(name)
        if path.is_relative_to(files):
            return False  # namespace files are data for tasks, not flows
        # A flow file, or a path without a suffix: a folder created, moved or deleted as a whole.
        return path.suffix in FLOW_SUFFIXES or (path.suffix == "" and not path.name.startswith("."))

    return keep


class FlowWatcher:
    """Runs `on_change` with the changed flow files, or with None when a whole folder changed.

    Each real folder under the flows folder is watched on its own, without following links: a link
    to an ancestor (or to a large tree elsewhere) is neither a loop nor a flood of watches, as the
    catalog does not follow links either. Folders added or removed change the set watched. The
    flows folder itself is held open while watched, so a folder made under the same name after it
    was removed cannot reuse its identity (file systems hand a freed inode number out again).
    """

    def __init__(self, folder: Path, on_change: OnChange) -> None:
        self.folder = folder
        self.on_change = on_change
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.watched: frozenset[Path] = frozenset()  # the folders watched now
        self._round = asyncio.Event()  # ends the current watch (stopping, or folders added or removed)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tiercel-watcher")

    async def stop(self) -> None:
        self._stop.set()
        self._round.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        folder = self.folder.resolve()
        first = True
        while not self._stop.is_set():
            held = _hold(folder)
            if held is None:  # the folder is gone (a checkout or a deploy swapping it): wait for it
                if not first:
                    await self._apply(None)  # its flows are gone too
                first = False
                while not folder.is_dir() and not self._stop.is_set():
                    await asyncio.sleep(RECHECK_SECONDS)
                continue
            try:
                if not first:
                    await self._apply(None)  # what changed while nothing watched
                first = False
                await self._watch(folder, held)
            except Exception:  # watching failed: try again, rather than go on with stale flows
                _log.exception("watching %s failed; watching again", folder)
                await asyncio.sleep(RECHECK_SECONDS)
            finally:
                os.close(held)
                self.watched = frozenset()

    async def _watch(self, folder: Path, held: int) -> None:
        """Hand changes over until stopped, or until the folder is removed or replaced."""
        from watchfiles import awatch  # only engines that watch load it (`tiercel run` does not)

        folders = _folders(folder)
        catch_up = False
        while not self._stop.is_set():
            self.watched = folders
            self._round = asyncio.Event()
            watch = awatch(
                *sorted(folders),
                watch_filter=_relevant(folder),
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=self._round,
                recursive=False,
                yield_on_timeout=True,
                rust_timeout=1_000,
            )
            async for changes in watch:
                self.ready.set()
                if catch_up:  # files written in a new folder before it was watched
                    catch_up = False
                    await self._apply(None)
                if changes:
                    paths = {Path(name) for _, name in changes}
                    whole = any(path.suffix not in FLOW_SUFFIXES for path in paths)
                    await self._apply(None if whole else paths)
                    if whole:
                        found = _folders(folder)
                        if found != folders:
                            folders, catch_up = found, True
                            self._round.set()
                if _swapped(folder, held):
                    return  # gone, or a new folder under the same name: that needs a new watch

    async def _apply(self, paths: set[Path] | None) -> None:
        try:
            await self.on_change(paths)
        except Exception:  # a bad burst must not stop the watching
            _log.exception("could not apply changes in %s", self.folder)


def _folders(folder: Path) -> frozenset[Path]:
    """The real folders under `folder` (itself included) that can hold flows: links, dot-folders and
    the namespace files are left out, as the catalog leaves them out."""
    found = {folder}
    for root, dirs, _ in os.walk(folder, followlinks=False):
        top = Path(root) == folder
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (top and d == NAMESPACE_FILES_FOLDER)]
        found.update(Path(root) / d for d in dirs if not (Path(root) / d).is_symlink())
    return frozenset(found)


def _hold(folder: Path) -> int | None:
    """The folder opened (so its inode stays taken while watched), or None when there is none."""
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def _swapped(folder: Path, held: int) -> bool:
    """Whether the folder held was removed, or another folder now stands under its name."""
    try:
        mine = os.fstat(held)
        there = folder.stat()
    except OSError:
        return True
    return mine.st_nlink == 0 or (mine.st_dev, mine.st_ino) != (there.st_dev, there.st_ino)
