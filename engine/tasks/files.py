"""Tasks on files in the internal storage (storage.*), and log.Fetch which writes logs to a file."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..expressions import to_text
from ..internal_storage import StorageError, files_matching, write_into
from ..model import LogLevel
from .base import TaskContext, TaskFailure

CORE = "io.kestra.plugin.core"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024**2, "MB": 1024**2, "G": 1024**3, "GB": 1024**3}


def _uri(context: TaskContext, name: str) -> str:
    value = to_text(context.prop(name))
    if not value.startswith("kestra://"):
        raise TaskFailure(f"`{name}` must be a kestra:// URI, got `{value[:200]}`")
    return value


def _uris(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip().startswith("[") else [value]
        except json.JSONDecodeError:
            raise TaskFailure(f"`{name}` must be a list of kestra:// URIs") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TaskFailure(f"`{name}` must be a list of kestra:// URIs")
    return value


async def size(context: TaskContext) -> Mapping[str, Any] | None:
    try:
        return {"size": context.require_storage().size(_uri(context, "uri"))}
    except StorageError as error:
        raise TaskFailure(str(error)) from None


async def delete(context: TaskContext) -> Mapping[str, Any] | None:
    uri = _uri(context, "uri")
    try:
        deleted = context.require_storage().delete(uri)
    except StorageError as error:
        raise TaskFailure(str(error)) from None
    if not deleted and context.prop("errorOnMissing", False):
        raise TaskFailure(f"No file at {uri}")
    return {"uri": uri, "deleted": deleted}


async def concat(context: TaskContext) -> Mapping[str, Any] | None:
    storage = context.require_storage()
    separator = to_text(context.prop("separator", "")).encode()
    extension = to_text(context.prop("extension", ".tmp"))
    with tempfile.NamedTemporaryFile(suffix=extension, delete=False) as out:
        try:
            for index, uri in enumerate(_uris(context.prop("files"), "files")):
                if index and separator:
                    out.write(separator)
                with storage.path(uri).open("rb") as source:
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
        except (StorageError, OSError) as error:
            raise TaskFailure(f"Concat: {error}") from None
    path = Path(out.name)
    try:
        return {"uri": context.put_file(f"concat{extension}", path)}
    finally:
        path.unlink(missing_ok=True)


def _byte_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise TaskFailure(f"`bytes` must look like 10MB or 1024, got `{text}`")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.upper()])


async def split(context: TaskContext) -> Mapping[str, Any] | None:
    """Split a file by size (`bytes`), into `partitions`, or every `rows` lines."""
    storage = context.require_storage()
    try:
        data = storage.read_bytes(_uri(context, "from"))
    except StorageError as error:
        raise TaskFailure(str(error)) from None
    separator = to_text(context.prop("separator", "\n")).encode()
    rows = [row + separator for row in data.split(separator)]
    if rows and rows[-1] == separator:
        rows.pop()
    elif rows and not data.endswith(separator):
        rows[-1] = rows[-1][: -len(separator)]
    chunks: list[bytes]
    if context.prop("rows") is not None:
        per = max(int(context.prop("rows")), 1)
        chunks = [b"".join(rows[i : i + per]) for i in range(0, len(rows), per)]
    elif context.prop("partitions") is not None:
        count = max(int(context.prop("partitions")), 1)
        per = max(-(-len(rows) // count), 1)
        chunks = [b"".join(rows[i : i + per]) for i in range(0, len(rows), per)]
    elif context.prop("bytes") is not None:
        limit = _byte_size(to_text(context.prop("bytes")))
        chunks, current = [], b""
        for row in rows:
            if current and len(current) + len(row) > limit:
                chunks.append(current)
                current = b""
            current += row
        if current:
            chunks.append(current)
    else:
        raise TaskFailure("Split needs one of `bytes`, `partitions` or `rows`")
    base = context.task_uri()
    return {"uris": [storage.put_bytes(base, f"split-{i}", chunk) for i, chunk in enumerate(chunks)]}


async def local_files(context: TaskContext) -> Mapping[str, Any] | None:
    """The deprecated LocalFiles: write `inputs` into the WorkingDirectory, store `outputs` globs."""
    folder = context.working_dir
    if folder is None:
        raise TaskFailure("LocalFiles only works inside a WorkingDirectory task")
    inputs = context.prop("inputs") or {}
    if not isinstance(inputs, Mapping):
        raise TaskFailure("`inputs` must be a map of file names to contents")
    try:
        for name, content in inputs.items():
            text = to_text(content)
            data = context.require_storage().read_bytes(text) if text.startswith("kestra://") else text
            write_into(folder, str(name), data)
        patterns = [to_text(p) for p in context.prop("outputs") or []]
        matched = files_matching(folder, patterns)
        stored = {str(rel): context.put_file(str(rel), folder / rel) for rel in matched}
    except StorageError as error:
        raise TaskFailure(str(error)) from None
    return {"uris": stored}


async def fetch_logs(context: TaskContext) -> Mapping[str, Any] | None:
    """log.Fetch: the logs of an execution (this one by default) as a JSON-lines file."""
    if context.log_reader is None:
        raise TaskFailure("log.Fetch needs a database")
    execution_id = to_text(context.prop("executionId") or context.execution.id)
    level = LogLevel.parse(to_text(context.prop("level", "INFO"))).value
    tasks = context.prop("tasksId") or ([context.prop("taskId")] if context.prop("taskId") else [])
    if context.flush_logs is not None:
        await context.flush_logs()
    await context.log_reader.flush()
    rows = await context.log_reader.logs(execution_id, level=level)
    lines = [
        json.dumps(entry.to_json())
        for _, entry in rows
        if not tasks or entry.task_id in {to_text(t) for t in tasks}
    ]
    data = ("\n".join(lines) + "\n" if lines else "").encode()
    uri = context.require_storage().put_bytes(context.task_uri(), f"{execution_id}.jsonl", data)
    return {"uri": uri, "size": len(lines)}


HANDLERS: dict[str, Any] = {
    f"{CORE}.storage.Size": size,
    f"{CORE}.storage.Delete": delete,
    f"{CORE}.storage.Concat": concat,
    f"{CORE}.storage.Split": split,
    f"{CORE}.storage.LocalFiles": local_files,
    f"{CORE}.log.Fetch": fetch_logs,
}
