"""The common course of the Push* and Sync* tasks (Kestra's AbstractPushTask and AbstractSyncTask).

Push: clone the branch into the task's working directory, write the engine's resources under
`gitDirectory`, remove (with `delete`, the default) the files there the engine no longer has, then
commit and push (or, with `dryRun`, only report the staged diff). Sync: clone the branch and walk
`gitDirectory`, the subclass writing each entry into the engine and deleting what git no longer has.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiercel.engine.plugin import LogLevel, TaskContext, TaskFailure

from .clone import clone_branch, workspace
from .command import Git, inside, remote_of
from .diffs import matches_any
from .pushing import finish_push, push_settings

# The engine's resources for a push, by their path in the clone: name -> content.
Produce = Callable[[Path, list[str] | None], Awaitable[dict[Path, bytes]]]


def _posix(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


async def push_resources(
    context: TaskContext,
    *,
    default_message: str,
    default_directory: str,
    globs: list[str] | None,
    produce: Produce,
    output: str,
) -> Mapping[str, Any]:
    settings = push_settings(context, default_message)
    remote = remote_of(context)
    if not remote.url:
        raise TaskFailure("`url` is required")
    async with workspace(context) as base, Git(context, remote) as git:
        had_head = await clone_branch(context, git, base, settings.branch)
        directory = inside(base, str(context.prop("gitDirectory", default_directory)), "gitDirectory")
        directory.mkdir(parents=True, exist_ok=True)
        contents = await produce(directory, globs)
        for path, data in contents.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if settings.delete:
            await _delete_outdated(git, base, directory, set(contents), globs)
        if not contents:
            git.log(LogLevel.INFO, "No content to push - skipping Git operations.")
            return {}
        paths = sorted(_posix(path, base) for path in contents)
        await git.run("add", "--", *paths, cwd=base, what="Adding files")
        return await finish_push(context, git, base, settings, output, had_head)


async def _delete_outdated(
    git: Git, base: Path, directory: Path, keep: set[Path], globs: list[str] | None
) -> None:
    """Remove from git the files under `directory` that the engine does not have (only those the
    globs match, when there are globs: by path from the repository root, by name or by stem)."""
    outdated = []
    for root, folders, files in os.walk(directory):
        folders[:] = sorted(f for f in folders if f != ".git")
        for name in sorted(files):
            path = Path(root) / name
            if name == ".kestraignore" or path in keep or path.is_symlink():
                continue
            relative = _posix(path, base)
            stem = name.rsplit(".", 1)[0] if name.rfind(".") > 0 else name
            if globs is None or matches_any(globs, relative, name, stem):
                outdated.append(relative)
    if outdated:
        await git.run(
            "rm", "-q", "--ignore-unmatch", "--", *outdated, cwd=base, what="Removing outdated files"
        )


@dataclass(frozen=True)
class Entry:
    """A file (or folder, `path` ending with `/`) under the synced git directory."""

    uri: str  # `/relative/path`, as Kestra names it
    path: Path
    folder: bool


def git_entries(directory: Path, recursive: bool) -> list[Entry]:
    """Everything under `directory` except git's own files and symbolic links, shallowest first."""
    entries = []
    for root, folders, files in os.walk(directory):
        folders[:] = sorted(f for f in folders if f != ".git")
        here = Path(root)
        for name in folders:
            entries.append(Entry(f"/{_posix(here / name, directory)}/", here / name, True))
        for name in sorted(files):
            if name in (".gitignore", ".gitkeep") or (here / name).is_symlink():
                continue  # a link could reach files outside the repository
            entries.append(Entry(f"/{_posix(here / name, directory)}", here / name, False))
        if not recursive:
            folders[:] = []
    return sorted(entries, key=lambda e: (e.uri.rstrip("/").count("/"), e.uri))


@dataclass(frozen=True)
class SyncSettings:
    branch: str
    git_directory: str
    dry_run: bool
    delete: bool


async def checkout_for_sync(
    context: TaskContext, git: Git, base: Path, settings: SyncSettings
) -> Path | None:
    """Clone the branch; the git directory to sync, or None when it is missing and
    `failOnMissingDirectory` is false."""
    await clone_branch(context, git, base, settings.branch)
    directory = inside(base, settings.git_directory, "gitDirectory")
    if not directory.exists():
        if context.flag("failOnMissingDirectory", True):
            raise TaskFailure(
                f"The directory '{settings.git_directory}' was not found in the git repository. "
                f"Verify if the path exists in the specified branch '{settings.branch}'."
            )
        git.log(
            LogLevel.INFO,
            f"The directory '{settings.git_directory}' is not in the repository: nothing to sync",
        )
        return None
    if not directory.is_dir():
        raise TaskFailure(
            f"The path '{settings.git_directory}' exists but is a file, not a directory. "
            "Sync tasks require a directory to process files."
        )
    return directory


def sync_settings(context: TaskContext, default_directory: str, default_delete: bool) -> SyncSettings:
    branch = str(context.prop("branch", "main") or "main").strip()
    return SyncSettings(
        branch=branch,
        git_directory=str(context.prop("gitDirectory", default_directory)),
        dry_run=context.flag("dryRun", False),
        delete=context.flag("delete", default_delete),
    )


def sorted_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Kestra's order: the deleted rows (no git path) first, then by git path."""
    return sorted(rows, key=lambda row: (row.get("gitPath") is not None, row.get("gitPath") or ""))
