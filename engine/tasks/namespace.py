"""Kestra's namespace.UploadFiles, DownloadFiles and DeleteFiles over the `NamespaceFiles` service.

Files are selected as Kestra's PathMatcherPredicate does: a pattern starting with `glob:` or
`regex:` is Java's PathMatcher of that syntax; any other is a glob, with `**/` put before it when
it starts with a word character (`file.txt` matches at any depth). A namespace file is matched as
its path with a leading slash (`/folder/file.txt`); a working folder's file as its absolute path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from ..expressions import to_text
from ..internal_storage import StorageError
from ..internal_storage.folders import walk_files
from ..internal_storage.globs import glob_regex
from ..model import LogLevel
from .base import TaskContext, TaskFailure
from .services import Conflict, NamespaceFileExistsError, NamespaceFiles

CORE = "io.kestra.plugin.core"
_WORD_START = re.compile(r"\w", re.ASCII)


def _matcher(pattern: str, base: str | None = None) -> re.Pattern[str]:
    """Kestra's PathMatcherPredicate for one pattern (relative to `base` when given)."""
    if pattern.startswith("regex:"):
        try:
            return re.compile(pattern[len("regex:") :], re.DOTALL)
        except re.error as error:
            raise TaskFailure(f"Pattern `{pattern}` is invalid: {error}") from None
    if pattern.startswith("glob:"):
        glob = pattern[len("glob:") :]
    elif base is not None:
        glob = (base + (pattern if pattern.startswith(("/", "\\")) else "/" + pattern)).replace("\\", "/")
    else:
        glob = ("**/" + pattern if _WORD_START.match(pattern) else pattern).replace("\\", "/")
    try:
        return glob_regex(glob, "Pattern")
    except StorageError as error:
        raise TaskFailure(str(error)) from None


def _matches(path: str, matchers: Sequence[re.Pattern[str]]) -> bool:
    return any(matcher.fullmatch(path) for matcher in matchers)


def _patterns(context: TaskContext, name: str) -> list[str]:
    """`files`: one pattern or a list of them, rendered."""
    value = context.task.props.get(name)
    if isinstance(value, str):
        return [to_text(context.render(value))]
    if isinstance(value, list):
        return [to_text(item) for item in context.render(value)]
    raise TaskFailure(f"`{name}` must be a string or a list of strings")


def _service(context: TaskContext) -> NamespaceFiles:
    if context.namespace_store is None:
        raise TaskFailure(f"{context.task.type} needs namespace files, which need a flows folder")
    return context.namespace_store


def _namespace(context: TaskContext) -> str:
    value = context.prop("namespace")
    return to_text(value) if value is not None else context.flow.namespace


def _selected(context: TaskContext, files: NamespaceFiles, namespace: str) -> list[str]:
    matchers = [_matcher(pattern) for pattern in _patterns(context, "files")]
    return [path for path in files.list_files(namespace) if _matches("/" + path, matchers)]


# -- UploadFiles --------------------------------------------------------------------------------------


def _conflict(context: TaskContext) -> Conflict:
    text = to_text(context.prop("conflict", "OVERWRITE")).strip().upper()
    try:
        return Conflict(text)
    except ValueError:
        raise TaskFailure(f"`conflict` must be OVERWRITE, ERROR or SKIP, got `{text}`") from None


def _put(
    context: TaskContext, files: NamespaceFiles, namespace: str, target: str, data: bytes, conflict: Conflict
) -> None:
    path = PurePosixPath("/", target)
    relative = path.relative_to("/").as_posix()
    try:
        written = files.write_file(namespace, relative, data, conflict)
    except (NamespaceFileExistsError, StorageError) as error:
        raise TaskFailure(str(error)) from None
    if written:
        context.log(LogLevel.DEBUG, f"File '{path}' added to namespace '{namespace}'.")
    else:
        context.log(
            LogLevel.DEBUG,
            f"File '{path}' already exists in namespace '{namespace}' and conflict is set to SKIP. Skipping.",
        )


def _files_map(context: TaskContext) -> dict[str, Any] | None:
    value = context.task.props.get("filesMap")
    if value is None:
        return None
    rendered = context.render(value)
    if isinstance(rendered, str):
        try:
            rendered = json.loads(rendered)
        except ValueError:
            raise TaskFailure("filesMap must be a Map<String, String>") from None
    if not isinstance(rendered, Mapping):
        raise TaskFailure("filesMap must be a Map<String, String>")
    return dict(rendered)


async def upload_files(context: TaskContext) -> Mapping[str, Any] | None:
    """Put files of the working folder (`files`) or of the internal storage (`filesMap`) into a
    namespace, under `destination`, as `conflict` says when a file exists."""
    files = _service(context)
    namespace = _namespace(context)
    destination = to_text(context.prop("destination", "/"))
    if not destination.startswith("/"):
        destination = "/" + destination
    conflict = _conflict(context)
    if context.task.props.get("files") is None and context.task.props.get("filesMap") is None:
        raise TaskFailure("files or filesMap is required")
    if context.task.props.get("files") is not None:
        folder = context.working_dir
        patterns = _patterns(context, "files")
        if folder is not None and patterns:
            base = str(folder)
            matchers = [_matcher(pattern, base) for pattern in patterns]
            for relative in sorted(walk_files(folder, folder.resolve())):
                if _matches(f"{base}/{relative.as_posix()}", matchers):
                    data = (folder / relative).read_bytes()
                    _put(context, files, namespace, f"{destination}/{relative.as_posix()}", data, conflict)
    files_map = _files_map(context)
    for target, uri in (files_map or {}).items():
        if not isinstance(uri, str):
            raise TaskFailure("filesMap must be a Map<String, String>")
        storage = context.require_storage()
        try:
            storage.check_readable(uri, context.execution.namespace, context.execution.trigger)
            if not storage.exists(uri):
                continue
            data = storage.read_bytes(uri)
        except StorageError as error:
            raise TaskFailure(f"filesMap `{target}`: {error}") from None
        _put(context, files, namespace, destination + str(target), data, conflict)
    return {}


# -- DownloadFiles ------------------------------------------------------------------------------------


async def download_files(context: TaskContext) -> Mapping[str, Any] | None:
    """Copy the namespace files matching `files` into this task run's storage, under `destination`;
    output `files`: each file's path (with a leading slash) to its kestra:// URI."""
    files = _service(context)
    namespace = _namespace(context)
    destination = to_text(context.prop("destination", ""))
    storage = context.require_storage()
    downloaded: dict[str, str] = {}
    for path in _selected(context, files, namespace):
        name = "/".join(part for part in (destination + path).split("/") if part)
        try:
            uri = storage.put_bytes(context.task_uri(), name, files.read_file(namespace, path))
        except StorageError as error:
            raise TaskFailure(str(error)) from None
        context.log(LogLevel.DEBUG, f"Downloaded {uri}")
        downloaded["/" + path] = uri
    return {"files": downloaded}


# -- DeleteFiles --------------------------------------------------------------------------------------


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]


async def delete_files(context: TaskContext) -> Mapping[str, Any] | None:
    """Delete the namespace files matching `files`; with `deleteParentFolder`, the folders left
    empty too, deepest first."""
    files = _service(context)
    namespace = _namespace(context)
    delete_parents = context.prop("deleteParentFolder", False)
    if not isinstance(delete_parents, bool):
        delete_parents = to_text(delete_parents).strip().lower() == "true"
    folders: set[str] = set()
    try:
        for path in _selected(context, files, namespace):
            if files.delete_file(namespace, path):
                context.log(LogLevel.DEBUG, f"Deleted {path}")
                folders.update(_parents(path))
        if delete_parents:
            for folder in sorted(folders, key=lambda name: name.count("/"), reverse=True):
                if files.delete_empty_folder(namespace, folder):
                    context.log(LogLevel.DEBUG, f"Deleted empty folder: {folder}")
    except StorageError as error:
        raise TaskFailure(str(error)) from None
    return {}


HANDLERS: dict[str, Any] = {
    f"{CORE}.namespace.UploadFiles": upload_files,
    f"{CORE}.namespace.DownloadFiles": download_files,
    f"{CORE}.namespace.DeleteFiles": delete_files,
}
