"""Tasks on files in the internal storage (storage.*), and log.Fetch which writes logs to a file."""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..expressions import to_text
from ..expressions.javaregex import JavaRegexError, compile_java
from ..internal_storage import StorageError, files_matching, write_into
from ..ion import iter_lines
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


def split_batches(
    lines: Iterable[bytes],
    separator: bytes,
    *,
    regex: re.Pattern[str] | None = None,
    size: int | None = None,
    partitions: int | None = None,
    rows: int | None = None,
) -> Iterator[bytes]:
    """Kestra's StorageService.split, as the Split task and ForEachItem's batches use it: each line
    (Java's readLine) ends with `separator` in its batch, and the first given of these decides.

    With `regex`, the lines are grouped by the value of the pattern's first group, in the order the
    values first appear, and lines it does not match are left out; with `size`, a batch is closed
    once it holds `size` bytes or more; with `partitions`, the lines are dealt round-robin and empty
    partitions are left out; else a batch holds `rows` lines (1 when not given).
    """
    if regex is not None:
        groups: dict[str | None, list[bytes]] = {}
        for line in lines:
            match = regex.search(line.decode("utf-8", errors="replace"))
            if match and regex.groups:
                groups.setdefault(match.group(1), []).append(line + separator)
        yield from (b"".join(group) for group in groups.values())
        return
    if partitions is not None:
        dealt: list[list[bytes]] = [[] for _ in range(partitions)]
        for index, line in enumerate(lines):
            dealt[index % partitions].append(line + separator)
        yield from (b"".join(part) for part in dealt if part)
        return
    current: list[bytes] = []
    count = used = 0
    for line in lines:
        full = used >= size if size is not None else count >= (rows or 1)
        if current and full:
            yield b"".join(current)
            current, count, used = [], 0, 0
        data = line + separator
        current.append(data)
        count += 1
        used += len(data)
    if current:
        yield b"".join(current)


def java_regex(pattern: Any, name: str) -> re.Pattern[str]:
    """`pattern` compiled as Java reads it; a TaskFailure naming property `name` when invalid."""
    try:
        return compile_java(to_text(pattern))
    except JavaRegexError as error:
        raise TaskFailure(f"`{name}` is not a valid regular expression: {error}") from None


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
    pattern, limit = context.prop("regexPattern"), context.prop("bytes")
    regex = None if pattern is None else java_regex(pattern, "regexPattern")
    size = None if limit is None else _byte_size(to_text(limit))
    partitions, rows = _int_prop(context, "partitions"), _int_prop(context, "rows")
    if regex is None and size is None and partitions is None and rows is None:
        raise TaskFailure("Split needs one of `regexPattern`, `bytes`, `partitions` or `rows`")
    if partitions is not None and partitions < 1:
        raise TaskFailure(f"`partitions` must be 1 or more, got {partitions}")
    separator = to_text(context.prop("separator", "\n")).encode()
    lines = iter_lines(io.BytesIO(data))
    chunks = list(split_batches(lines, separator, regex=regex, size=size, partitions=partitions, rows=rows))
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
