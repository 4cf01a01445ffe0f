"""Tasks on item files of the internal storage (Ion, one value per line) and on an execution's files:
storage.DeduplicateItems, FilterItems, Reverse and PurgeCurrentExecutionFiles.

DeduplicateItems and FilterItems copy the kept lines as they are, byte for byte, as Kestra does;
each line is parsed only to render the task's expression with the item's fields as variables.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

from ..expressions import ExpressionError, to_text
from ..internal_storage import StorageError
from ..internal_storage.purge import purge_execution
from ..ion import IonError, iter_lines, loads
from .base import TaskContext, TaskFailure

CORE = "io.kestra.plugin.core"
# Kestra's TruthUtils: these texts (after trimming, case-sensitive) are false, any other is true.
_FALSE_TEXTS = frozenset({"false", "0", "-0", ""})
_FILTER_TYPES = ("INCLUDE", "EXCLUDE")
_ERROR_OR_NULL = ("FAIL", "INCLUDE", "EXCLUDE")


def _source(context: TaskContext) -> str:
    """The rendered `from` URI, checked readable by this execution."""
    uri = to_text(context.prop("from"))
    try:
        context.require_storage().check_readable(uri, context.execution.namespace, context.execution.trigger)
    except StorageError as error:
        raise TaskFailure(str(error)) from None
    return uri


@contextmanager
def _open(context: TaskContext, uri: str) -> Iterator[IO[bytes]]:
    try:
        with context.require_storage().path(uri).open("rb") as handle:
            yield handle
    except FileNotFoundError:
        raise TaskFailure(f"File '{uri}' does not exist in the internal storage") from None
    except IsADirectoryError:
        raise TaskFailure(f"'{uri}' is a folder, not a file") from None
    except StorageError as error:
        raise TaskFailure(str(error)) from None


def _item(line: bytes) -> dict[str, Any]:
    """One line of an item file as the variables of an expression: its struct's fields."""
    text = line.decode("utf-8", errors="replace")
    try:
        value = loads(text)
    except IonError as error:
        raise TaskFailure(f"Invalid Ion item `{text[:200]}`: {error}") from None
    if not isinstance(value, dict):
        raise TaskFailure(f"Each item must be an Ion struct (a map), got `{text[:200]}`")
    return value


def _choice(context: TaskContext, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = to_text(context.prop(name) or default).strip().upper()
    if value not in allowed:
        raise TaskFailure(f"`{name}` must be one of {', '.join(allowed)}, got `{value}`")
    return value


class _Stopped(Exception):
    """The task run was killed while its loop ran in a thread."""


async def _in_thread(context: TaskContext, work: Callable[[threading.Event], Any]) -> Any:
    """Run a loop over a file off the event loop; a killed task run stops it at the next item."""
    stop = threading.Event()
    worker = asyncio.ensure_future(asyncio.to_thread(work, stop))
    try:
        return await asyncio.shield(worker)
    except asyncio.CancelledError:
        stop.set()
        worker.add_done_callback(lambda done: done.cancelled() or done.exception())
        raise


def _store(context: TaskContext, path: Path, name: str) -> str:
    try:
        return context.put_file(name, path)
    except StorageError as error:
        raise TaskFailure(str(error)) from None
    finally:
        path.unlink(missing_ok=True)


def _temp(suffix: str) -> tuple[IO[bytes], Path]:
    handle = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)  # noqa: SIM115 - closed by callers
    return handle, Path(handle.name)


async def deduplicate_items(context: TaskContext) -> Mapping[str, Any] | None:
    """Keep the last item of each key (`expr` rendered with the item's fields), in file order."""
    uri = _source(context)
    expression = to_text(context.task.props.get("expr"))

    def key(line: bytes) -> str:
        return context.renderer.render(expression, {**context.variables, **_item(line)})

    def work(stop: threading.Event) -> dict[str, Any]:
        last: dict[str, int] = {}
        with _open(context, uri) as source:
            for offset, line in enumerate(iter_lines(source)):
                if stop.is_set():
                    raise _Stopped
                last[key(line)] = offset
        out, path = _temp(".ion")
        processed = dropped = 0
        with out, _open(context, uri) as source:
            for offset, line in enumerate(iter_lines(source)):
                if stop.is_set():
                    raise _Stopped
                if last.get(key(line)) == offset:
                    out.write(line + b"\n")
                else:
                    dropped += 1
                processed += 1
        return {
            "uri": _store(context, path, "deduplicate.ion"),
            "numKeys": len(last),
            "processedItemsTotal": processed,
            "droppedItemsTotal": dropped,
        }

    result: dict[str, Any] = await _in_thread(context, work)
    return result


async def filter_items(context: TaskContext) -> Mapping[str, Any] | None:
    """Keep or drop each item by `filterCondition`, rendered with the item's fields."""
    uri = _source(context)
    condition = to_text(context.task.props.get("filterCondition"))
    filter_type = _choice(context, "filterType", _FILTER_TYPES, "INCLUDE")
    on_error = _choice(context, "errorOrNullBehavior", _ERROR_OR_NULL, "FAIL")

    def keep(line: bytes) -> bool:
        try:
            matched = context.renderer.render(condition, {**context.variables, **_item(line)})
        except ExpressionError as error:
            if on_error == "FAIL":
                raise ExpressionError(f"{error} (on item `{line[:200].decode(errors='replace')}`)") from None
            return on_error == "INCLUDE"
        if matched.strip() in _FALSE_TEXTS:
            return filter_type == "EXCLUDE"
        return filter_type == "INCLUDE"

    def work(stop: threading.Event) -> dict[str, Any]:
        out, path = _temp(".ion")
        processed = dropped = 0
        with out, _open(context, uri) as source:
            for line in iter_lines(source):
                if stop.is_set():
                    raise _Stopped
                if keep(line):
                    out.write(line + b"\n")
                else:
                    dropped += 1
                processed += 1
        return {
            "uri": _store(context, path, "filter.ion"),
            "processedItemsTotal": processed,
            "droppedItemsTotal": dropped,
        }

    result: dict[str, Any] = await _in_thread(context, work)
    return result


async def reverse(context: TaskContext) -> Mapping[str, Any] | None:
    """The lines of a file, last first, each followed by `separator`; the file keeps its extension."""
    uri = _source(context)
    separator = to_text(context.prop("separator", "\n"))
    charset = to_text(context.prop("charset", "UTF-8"))
    try:
        data = context.require_storage().read_bytes(uri)
        text = data.decode(charset)
        separator_bytes = separator.encode(charset)
    except StorageError as error:
        raise TaskFailure(str(error)) from None
    except LookupError:
        raise TaskFailure(f"Unknown charset `{charset}`") from None
    except UnicodeError as error:
        raise TaskFailure(f"'{uri}' is not {charset} text: {error}") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the end of the last line, not an empty line
    body = b"".join(line.encode(charset) + separator_bytes for line in reversed(lines))
    extension = PurePosixPath(uri).suffix
    try:
        stored = context.require_storage().put_bytes(context.task_uri(), f"reverse{extension}", body)
    except StorageError as error:
        raise TaskFailure(str(error)) from None
    return {"uri": stored}


async def purge_current_execution_files(context: TaskContext) -> Mapping[str, Any] | None:
    """Delete every file of this execution (inputs, outputs, trigger files); list what was deleted."""
    execution = context.execution
    try:
        uris = purge_execution(
            context.require_storage(), execution.namespace, execution.flow_id, execution.id
        )
    except StorageError as error:
        raise TaskFailure(str(error)) from None
    return {"uris": uris}


HANDLERS: dict[str, Any] = {
    f"{CORE}.storage.DeduplicateItems": deduplicate_items,
    f"{CORE}.storage.FilterItems": filter_items,
    f"{CORE}.storage.Reverse": reverse,
    f"{CORE}.storage.PurgeCurrentExecutionFiles": purge_current_execution_files,
}
