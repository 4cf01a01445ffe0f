"""Flows written into the flows folder by something other than an editor: the REST API's flow
writes and the tasks that keep flows in step with a git repository (`TaskContext.flows`).

A source is saved into the flow's own file (a new flow gets `<namespace as folders>/<id>.yml`, or
`<id>-2.yml` ... when that name is taken), in one step so that the watcher never reads half a flow,
and read by the engine at once. A change the engine refuses (the YAML is invalid, or the flow makes
a subflow cycle once it is in the folder) is put back as it was, and so is every change of the same
`changes()` block when one fails: a namespace replaced by several writes changes all or nothing.
Changes happen one block at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ..model import Flow
from ..parser import FlowError, FlowParseError, parse_flow
from ..tasks.services import FlowSource, FlowWriteError, NamespaceDeclared
from .declarations import declare
from .files import replace_file
from .namespaces import Namespaces
from .view import FlowsView


class Folder(Protocol):
    """What the writes need of the flows folder (engine.flows.folder.FlowFolder, which holds them)."""

    flows: FlowsView

    @property
    def namespaces(self) -> Namespaces: ...

    @property
    def errors(self) -> dict[str, list[FlowError]]: ...

    async def sync(self, paths: Iterable[Path] | None = None) -> None: ...


def parsed_flow(source: str) -> Flow:
    """The flow a source holds.

    Raises:
        FlowWriteError: With every error of the source, each at its YAML path.
    """
    try:
        return parse_flow(source)
    except FlowParseError as error:
        raise FlowWriteError(
            [(problem.yaml_path or "flow", problem.message) for problem in error.errors]
        ) from None


class FlowChanges:
    """The flow files one `changes()` block wrote or removed, and what they held before."""

    def __init__(self, files: FlowFiles) -> None:
        self._files = files
        self._before: dict[Path, bytes | None] = {}

    def _keep(self, path: Path) -> None:
        if path not in self._before:
            self._before[path] = path.read_bytes() if path.exists() else None

    async def save(self, flow: Flow) -> Flow:
        """Write the flow to its file and have the engine read it; the flow as it now has it.

        Raises:
            FlowWriteError: The engine refused it (the block's changes are then put back).
        """
        folder = self._files.folder
        path = self._files.file_of(flow)
        self._keep(path)
        replace_file(path, (flow.source if flow.source.endswith("\n") else flow.source + "\n").encode())
        await folder.sync([path])
        problems = folder.errors.get(str(path))
        saved = folder.flows.get(flow.uid)
        if problems or saved is None:
            found = [("flow", str(problem).replace(f"{path}:", "").strip()) for problem in problems or ()]
            raise FlowWriteError(found or [("flow", "not loaded")])
        return saved

    async def remove(self, namespace: str, flow_id: str) -> bool:
        """Delete the flow's file; False when no file holds that flow."""
        known = self._files.folder.flows.path((namespace, flow_id))
        if known is None:
            return False
        path = Path(known)
        self._keep(path)
        path.unlink(missing_ok=True)
        await self._files.folder.sync([path])
        return True

    async def undo(self) -> None:
        for path, data in self._before.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                replace_file(path, data)
        await self._files.folder.sync(list(self._before))


class FlowFiles:
    """The flows folder, written (the `FlowSources` tasks see, and the REST API's writes)."""

    def __init__(self, folder: Folder, flows_dir: Path | None) -> None:
        self.folder = folder
        self.flows_dir = flows_dir
        self._lock = asyncio.Lock()

    def file_of(self, flow: Flow) -> Path:
        """Where the flow's source goes: its current file, else a new one under the flows folder."""
        known = self.folder.flows.path(flow.uid)
        if known is not None:
            return Path(known)
        if self.flows_dir is None:
            raise FlowWriteError(
                [("flow", "this engine has no flows folder to write flows to")], invalid=False
            )
        root = self.flows_dir.resolve()
        folder = root.joinpath(*flow.namespace.split("."))
        if not folder.resolve().is_relative_to(root):  # namespaces are checked names; a guard
            raise FlowWriteError([("flow.namespace", f"`{flow.namespace}` cannot be a folder name")])
        path, number = folder / f"{flow.id}.yml", 1
        while path.exists() or path.is_symlink():
            number += 1
            path = folder / f"{flow.id}-{number}.yml"
        return path

    @contextlib.asynccontextmanager
    async def changes(self) -> AsyncIterator[FlowChanges]:
        """One block of changes, one block at a time, all put back if the block fails."""
        async with self._lock:
            changes = FlowChanges(self)
            try:
                yield changes
            except BaseException:
                await asyncio.shield(changes.undo())
                raise

    # -- the FlowSources service of tasks ------------------------------------------------------------
    def flow_sources(self, namespace: str, children: bool = False) -> list[FlowSource]:
        """The flows of a namespace (and of its children), as their files hold them, by namespace and id."""
        found = []
        for flow_namespace, flow_id in sorted(self.folder.flows):
            inside = children and flow_namespace.startswith(f"{namespace}.")
            if flow_namespace != namespace and not inside:
                continue
            source = self.folder.flows.source((flow_namespace, flow_id))
            if source is not None:
                found.append(FlowSource(flow_namespace, flow_id, source))
        return found

    async def save_flow(self, source: str) -> FlowSource:
        """Create or update the flow a source holds.

        Raises:
            FlowWriteError: The source is invalid, or the engine refused the flow.
        """
        flow = parsed_flow(source)
        async with self.changes() as changes:
            saved = await changes.save(flow)
        return FlowSource(saved.namespace, saved.id, saved.source)

    async def delete_flow(self, namespace: str, flow_id: str) -> bool:
        """Delete a flow's file; False when there is none."""
        async with self.changes() as changes:
            return await changes.remove(namespace, flow_id)

    async def declare_namespace(
        self, namespace: str, settings: Mapping[str, Any], *, only_new: bool, written_by: str
    ) -> NamespaceDeclared:
        """Merge settings into a namespace's declaration (engine.flows.declarations)."""
        async with self._lock:
            found = await declare(
                self.folder, self.flows_dir, namespace, settings, only_new=only_new, written_by=written_by
            )
        return NamespaceDeclared(str(found.path), found.created, found.changed)
