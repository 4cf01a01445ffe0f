"""A WorkingDirectory's `cache`: files kept from one run of the task to the next.

As Kestra's WorkingDirectory does: before the tasks run, the archive stored for this task (and its
loop value) is unpacked into the folder unless it is older than `ttl`; after them, the files
matching `patterns` are archived again when any of them changed. The archive lives in the internal
storage beside the flow's executions (`<namespace>/<flow>/cache/<task>/[<value hash>/]cache.zip`).
Unpacked files keep their archived dates, so "changed" is a comparison of names, sizes and dates
with the archive, which holds across engine restarts.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import zipfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from ..durations import parse_duration
from ..internal_storage import StorageError, files_matching, safe_relative, write_into
from ..internal_storage.uris import join_uri
from ..model import LogLevel
from .base import TaskContext, TaskFailure

ARCHIVE = "cache.zip"


def _settings(context: TaskContext) -> tuple[list[str], float | None] | None:
    """The cache's patterns and ttl in seconds, or None without a cache."""
    cache = context.task.props.get("cache")
    if not isinstance(cache, Mapping):
        return None
    patterns = cache.get("patterns")
    if not isinstance(patterns, list) or not patterns:
        raise TaskFailure("`cache.patterns` must be a list of file patterns")
    ttl = cache.get("ttl")
    try:
        seconds = parse_duration(str(ttl)).total_seconds() if ttl is not None else None
    except ValueError as error:
        raise TaskFailure(f"`cache.ttl`: {error}") from None
    return [str(pattern) for pattern in patterns], seconds


def _archive_uri(context: TaskContext) -> str:
    flow = context.flow
    parts = [*flow.namespace.split("."), flow.id, "cache", context.task.id]
    if context.run.value is not None:
        parts.append(hashlib.sha256(context.run.value.encode()).hexdigest()[:32])
    return join_uri([*parts, ARCHIVE])


def restore(context: TaskContext, folder: Path) -> None:
    """Unpack the task's archive into its folder, unless there is none or it expired."""
    settings = _settings(context)
    if settings is None:
        return
    _, ttl = settings
    storage = context.require_storage()
    uri = _archive_uri(context)
    path = storage.path(uri)
    if not path.is_file():
        return
    if ttl is not None and time.time() - path.stat().st_mtime > ttl:
        storage.delete(uri)
        context.log(LogLevel.DEBUG, "Cache expired, deleted")
        return
    try:
        with zipfile.ZipFile(path) as archive:
            for entry in archive.infolist():
                if entry.is_dir():
                    continue
                target = write_into(folder, str(safe_relative(entry.filename)), archive.read(entry))
                stamp = datetime(*entry.date_time).timestamp()
                os.utime(target, (stamp, stamp))
    except (zipfile.BadZipFile, StorageError, OSError) as error:
        context.log(LogLevel.WARN, f"Cache could not be restored: {error}")
        return
    context.log(LogLevel.DEBUG, "Cache restored")


def _entries(folder: Path, patterns: list[str]) -> dict[str, zipfile.ZipInfo]:
    found: dict[str, zipfile.ZipInfo] = {}
    for relative in files_matching(folder, patterns):
        found[str(relative)] = zipfile.ZipInfo.from_file(folder / relative, str(relative))
    return found


def _same(entries: Mapping[str, zipfile.ZipInfo], path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            stored = {info.filename: info for info in archive.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, OSError):
        return False
    return stored.keys() == entries.keys() and all(
        (info.date_time, info.file_size) == (stored[name].date_time, stored[name].file_size)
        for name, info in entries.items()
    )


def save(context: TaskContext, folder: Path) -> None:
    """Archive the files matching the patterns when they differ from the stored archive."""
    settings = _settings(context)
    if settings is None:
        return
    patterns, _ = settings
    storage = context.require_storage()
    uri = _archive_uri(context)
    try:
        entries = _entries(folder, patterns)
        if not entries or _same(entries, storage.path(uri)):
            return
        with tempfile.TemporaryDirectory(prefix="tiercel-cache-") as scratch:
            archive_path = Path(scratch) / ARCHIVE
            with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
                for name, info in entries.items():
                    info.compress_type = zipfile.ZIP_DEFLATED
                    archive.writestr(info, (folder / name).read_bytes())
            base, _, name = uri.rpartition("/")
            storage.put_file(base, name, archive_path)
    except (StorageError, OSError) as error:
        context.log(LogLevel.ERROR, f"Unable to update the WorkingDirectory cache: {error}")
        return
    context.log(LogLevel.DEBUG, f"Caching in {uri}")
