"""Kestra's `PushNamespaceFiles` and `SyncNamespaceFiles`: a namespace's files kept in git.

PushNamespaceFiles writes the files the `files` globs match (all by default) under `gitDirectory`
(`_files`) and pushes them; its `files` output is the diff file, one row a changed file:
`{changes:"3",file:"_files/a.py",deletions:"-5",additions:"+10"}`. SyncNamespaceFiles writes every
file under `gitDirectory` into the namespace (and, with `delete`, removes the namespace's files git
does not have); its `files` output has a row per file and folder: `{gitPath, syncState, kestraPath}`
with syncState ADDED, OVERWRITTEN, UNCHANGED or DELETED (no gitPath), kestraPath as
`/<namespace with / for .>/_files/<path>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tiercel.engine.plugin import LogLevel, TaskContext, TaskFailure

from .clone import workspace
from .command import Git, remote_of
from .diffs import globs_of, matches_any, store_rows
from .resources import checkout_for_sync, git_entries, push_resources, sorted_rows, sync_settings
from .stores import namespace_files, overwrite


def _namespace(context: TaskContext, name: str) -> str:
    value = context.prop(name) or context.execution.namespace
    text = str(value).strip()
    if not text:
        raise TaskFailure(f"`{name}` must not be empty")
    return text


async def push_namespace_files(context: TaskContext) -> Mapping[str, Any]:
    namespace = _namespace(context, "namespace")
    store = namespace_files(context)
    globs = globs_of(context.prop("files"), "files")
    error_on_missing = context.flag("errorOnMissing", False)

    async def produce(directory: Path, globs: list[str] | None) -> dict[Path, bytes]:
        found = {
            directory / path: store.read_file(namespace, path)
            for path in store.list_files(namespace)
            if globs is None or matches_any(globs, path, "/" + path)
        }
        if error_on_missing and not found:
            raise TaskFailure("No Namespace Files matched the provided 'files' parameter to commit.")
        return found

    return await push_resources(
        context,
        default_message=f"Add files from {namespace} namespace",
        default_directory="_files",
        globs=globs,
        produce=produce,
        output="files",
    )


def _kestra_path(namespace: str, path: str) -> str:
    return f"/{namespace.replace('.', '/')}/_files/{path}"


async def sync_namespace_files(context: TaskContext) -> Mapping[str, Any]:
    namespace = _namespace(context, "namespace")
    store = namespace_files(context)
    settings = sync_settings(context, "_files", default_delete=False)
    remote = remote_of(context)
    if not remote.url:
        raise TaskFailure("`url` is required")
    async with workspace(context) as base, Git(context, remote) as git:
        directory = await checkout_for_sync(context, git, base, settings)
        before = set(store.list_files(namespace))
        folders_before = {
            "/".join(p.split("/")[:i]) + "/" for p in before for i in range(1, p.count("/") + 1)
        }
        rows: list[dict[str, Any]] = []
        from_git: set[str] = set()
        prefix = settings.git_directory
        for entry in git_entries(directory, recursive=True) if directory is not None else []:
            path = entry.uri.lstrip("/")
            from_git.add(path)
            if entry.folder:
                state = "UNCHANGED" if path in folders_before else "ADDED"
            else:
                data = entry.path.read_bytes()
                if path not in before:
                    state = "ADDED"
                elif store.read_file(namespace, path) == data:
                    state = "UNCHANGED"
                else:
                    state = "OVERWRITTEN"
                if state != "UNCHANGED" and not settings.dry_run:
                    overwrite(store, namespace, path, data)
            rows.append(
                {
                    "gitPath": prefix + entry.uri,
                    "syncState": state,
                    "kestraPath": _kestra_path(namespace, path),
                }
            )
        if settings.delete:
            gone = sorted(before - from_git)
            for path in gone:
                if not settings.dry_run:
                    store.delete_file(namespace, path)
                rows.append({"syncState": "DELETED", "kestraPath": _kestra_path(namespace, path)})
            if not settings.dry_run:
                _drop_empty_folders(store, namespace, gone)
        counts = {
            state: sum(1 for r in rows if r["syncState"] == state)
            for state in ("ADDED", "OVERWRITTEN", "DELETED")
        }
        git.log(
            LogLevel.INFO,
            f"Synced namespace {namespace} from git: {counts}{' (dry run)' if settings.dry_run else ''}",
        )
        return {"files": store_rows(context, "diffs.ion", sorted_rows(rows))}


def _drop_empty_folders(store: Any, namespace: str, deleted: list[str]) -> None:
    folders = {"/".join(p.split("/")[:i]) for p in deleted for i in range(1, p.count("/") + 1)}
    for folder in sorted(folders, key=lambda f: f.count("/"), reverse=True):
        store.delete_empty_folder(namespace, folder)
