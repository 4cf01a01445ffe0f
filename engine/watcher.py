"""Watch the flows folder and hand each burst of saved, added or deleted files to the engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from watchfiles import Change, awatch

from .catalog import FLOW_SUFFIXES, NAMESPACE_FILES_FOLDER

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
    """Runs `on_change` with the changed flow files, or with None when a whole folder changed."""

    def __init__(self, folder: Path, on_change: OnChange) -> None:
        self.folder = folder
        self.on_change = on_change
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tiercel-watcher")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        folder = self.folder.resolve()
        first = True
        while not self._stop.is_set():
            identity = _identity(folder)
            if identity is None:  # the folder is gone (a checkout or a deploy swapping it): wait for it
                if not first:
                    await self._apply(None)  # its flows are gone too
                first = False
                while _identity(folder) is None and not self._stop.is_set():
                    await asyncio.sleep(RECHECK_SECONDS)
                continue
            if not first:
                await self._apply(None)  # what changed while nothing watched
            first = False
            try:
                await self._watch(folder, identity)
            except Exception:  # watching failed: try again, rather than go on with stale flows
                _log.exception("watching %s failed; watching again", folder)
                await asyncio.sleep(RECHECK_SECONDS)

    async def _watch(self, folder: Path, identity: tuple[int, int]) -> None:
        """Hand changes over until stopped, or until the folder is removed or replaced."""
        watch = awatch(
            folder,
            watch_filter=_relevant(folder),
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            stop_event=self._stop,
            recursive=True,
            yield_on_timeout=True,
            rust_timeout=1_000,
        )
        async for changes in watch:
            self.ready.set()
            if changes:
                paths = {Path(name) for _, name in changes}
                whole = any(path.suffix not in FLOW_SUFFIXES for path in paths)
                await self._apply(None if whole else paths)
            if _identity(folder) != identity:
                return  # gone, or a new folder under the same name: that needs a new watch

    async def _apply(self, paths: set[Path] | None) -> None:
        try:
            await self.on_change(paths)
        except Exception:  # a bad burst must not stop the watching
            _log.exception("could not apply changes in %s", self.folder)


def _identity(folder: Path) -> tuple[int, int] | None:
    """Which folder is there under that name (device, inode), or None when there is none."""
    try:
        found = folder.stat()
    except OSError:
        return None
    return (found.st_dev, found.st_ino)
