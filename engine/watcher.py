"""Watch the flows folder and hand each burst of saved, added or deleted files to the engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from watchfiles import Change, awatch

from engine.catalog import FLOW_SUFFIXES, NAMESPACE_FILES_FOLDER

# Changes are grouped until the folder has been quiet for STEP_MS (at most DEBOUNCE_MS): an editor's
# save (temporary file, rename) arrives as one burst, and a saved file shows up well within a second.
DEBOUNCE_MS = 400
STEP_MS = 50

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
            if not changes:
                continue
            paths = {Path(name) for _, name in changes}
            whole = any(path.suffix not in FLOW_SUFFIXES for path in paths)
            try:
                await self.on_change(None if whole else paths)
            except Exception:  # a bad burst must not stop the watching
                _log.exception("could not apply changes in %s", folder)
