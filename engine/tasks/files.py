"""Tasks on files in the internal storage (storage.*), and log.Fetch which writes logs to a file."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..expressions import to_text
from ..expressions.javaregex import JavaRegexError, compile_java
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


# Java's BufferedReader.readLine ends a line at \n, \r or \r\n, and reads no empty line after the last end.
_LINE_END = re.compile(r"\r\n|\r|\n")


def java_lines(data: bytes) -> list[str]:
    """The lines of a file as Java's readLine reads them (UTF-8, a malformed byte replaced)."""
    text = data.decode("utf-8", errors="replace")
    if not text:
        return []
    lines = _LINE_END.split(text)
    if text[-1] in "\r\n":
        lines.pop()
    return lines


def _batches(rows: list[bytes], closes: Any) -> list[bytes]:
    """Rows into batches, a new batch started before a row when `closes(bytes, rows)` of the current."""
    chunks: list[list[bytes]] = []
    size = count = 0
    for row in rows:
        if not chunks or closes(size, count):
            chunks.append([])
            size = count = 0
        chunks[-1].append(row)
        size += len(row)
        count += 1
    return [b"".join(chunk) for chunk in chunks]


def split_chunks(
    data: bytes,
    separator: str,
    *,
    regex: str | None = None,
    size: int | None = None,
    partitions: int | None = None,
    rows: int | None = None,
) -> list[bytes]:
    """Kestra's StorageService.split: each line followed by `separator`, grouped by the first of
    `regex` (lines by their first group's value, lines that do not match dropped), `size` (a batch
    closes once it holds that many bytes or more), `partitions` (round-robin, empty ones dropped) or
    `rows` (a batch closes once it holds that many lines)."""
    texts = java_lines(data)
    lines = [(text + separator).encode("utf-8", errors="replace") for text in texts]
    if regex is not None:
        try:
            pattern = compile_java(regex)
        except JavaRegexError as error:
            raise TaskFailure(f"`regexPattern` is not a valid regular expression: {error}") from None
        groups: dict[str | None, list[bytes]] = {}
        for text, line in zip(texts, lines, strict=True):
            match = pattern.search(text)
            if match and pattern.groups:
                groups.setdefault(match.group(1), []).append(line)
        return [chunk for chunk in (b"".join(group) for group in groups.values()) if chunk]
    if size is not None:
        return _batches(lines, lambda total, _count: total >= size)
    if partitions is not None:
        if partitions < 1:
            raise TaskFailure(f"`partitions` must be 1 or more, got {partitions}")
        parts: list[list[bytes]] = [[] for _ in range(partitions)]
        for index, line in enumerate(lines):
            parts[index % partitions].append(line)
        return [chunk for chunk in (b"".join(part) for part in parts) if chunk]
    if rows is not None:
        return _batches(lines, lambda _total, count: count >= rows)
    raise TaskFailure("Split needs one of `regexPattern`, `bytes`, `partitions` or `rows`")


def _int_prop(context: TaskContext, name: str) -> int | None:
    value = context.prop(name)
    if value is None:
        return None
    try:
        return int(to_text(value).strip())
    except ValueError:
        raise TaskFailure(f"`{name}` must be a whole number, got `{to_text(value)[:100]}`") from None


async def split(context: TaskContext) -> Mapping[str, Any] | None:
    """Split a file by `regexPattern`, `bytes`, `partitions` or `rows`, as Kestra's Split does."""
    storage = context.require_storage()
    source = _uri(context, "from")
    try:
        data = storage.read_bytes(source)
    except StorageError as error:
        raise TaskFailure(str(error)) from None
    regex = context.prop("regexPattern")
    limit = context.prop("bytes")
    chunks = split_chunks(
        data,
        to_text(context.prop("separator", "\n")),
        regex=None if regex is None else to_text(regex),
        size=None if limit is None else _byte_size(to_text(limit)),
        partitions=_int_prop(context, "partitions"),
        rows=_int_prop(context, "rows"),
    )
    last = source.rstrip("/").rsplit("/", 1)[-1]
    extension = last[last.rindex(".") :] if "." in last else ".tmp"
    base = context.task_uri()
    names = (f"split-{index}{extension}" for index in range(len(chunks)))
    return {"uris": [storage.put_bytes(base, name, chunk) for name, chunk in zip(names, chunks, strict=True)]}


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
    tasks = context.prop("tasksId") or []
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
