"""What every serdes task shares: reading its properties as Kestra types them, the text forms Java
gives values (a CSV cell, a JSON number), Kestra's Ion item files read and written line by line, and
the conversion run off the event loop, stoppable when the task run is killed."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import math
import os
import re
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tiercel.engine.plugin import (
    LogLevel,
    TaskContext,
    TaskFailure,
    ion_dumps,
    ion_records as plugin_ion_records,
    java_iso,
)

T = TypeVar("T")
PACKAGE: Final = "io.kestra.plugin.serdes"
# Warnings collected off the loop are logged when the conversion ends; past this many, a count.
_MAX_NOTES: Final = 200
_CHECK_EVERY: Final = 1024


class Stopped(Exception):
    """The task run was killed while its conversion ran in a thread."""


class Work:
    """What a conversion running in a thread may do: check whether it was stopped, and leave notes
    (warnings) that are logged once it is back on the loop."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.notes: list[str] = []
        self.dropped_notes = 0
        self._ticks = 0

    def tick(self) -> None:
        """Called once a record; raises `Stopped` soon after the task run is killed."""
        self._ticks += 1
        if self._ticks % _CHECK_EVERY == 0 and self.stop.is_set():
            raise Stopped

    def warn(self, message: str) -> None:
        if len(self.notes) < _MAX_NOTES:
            self.notes.append(message)
        else:
            self.dropped_notes += 1


# -- properties ----------------------------------------------------------------------------------------


def source_file(context: TaskContext) -> Path:
    """The local file of `from`, which must be a kestra:// URI this execution may read."""
    uri = context.prop("from")
    if not isinstance(uri, str) or not uri.startswith("kestra://"):
        raise TaskFailure(f"`from` must be the kestra:// URI of a stored file, not `{str(uri)[:200]}`")
    return context.stored_file(uri)


def charset(context: TaskContext, name: str = "charset") -> str:
    """A Java charset name (UTF-8, ISO-8859-1, windows-1252 ...) as Python's codec name."""
    given = str(context.prop(name, "UTF-8")).strip()
    try:
        return codecs.lookup(given).name
    except LookupError:
        raise TaskFailure(f"`{name}` {given}: not a known charset (for instance UTF-8, ISO-8859-1)") from None


def character(context: TaskContext, name: str, default: str) -> str:
    """A Java `Character` property: exactly one character."""
    value = context.prop(name, default)
    text = str(value)
    if len(text) != 1:
        raise TaskFailure(f"`{name}` must be a single character, got `{text[:50]}`")
    return text


def integer(context: TaskContext, name: str, default: int, minimum: int = 0) -> int:
    value = context.prop(name, default)
    if isinstance(value, bool) or not re.fullmatch(r"\s*-?\d+\s*", str(value)):
        raise TaskFailure(f"`{name}` must be a whole number, got `{str(value)[:50]}`")
    number = int(str(value))
    if number < minimum:
        raise TaskFailure(f"`{name}` must be at least {minimum}, got {number}")
    return number


def choice(context: TaskContext, name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    """An enum property, in Kestra's upper-case names."""
    value = context.prop(name, default)
    if value is None:
        return None
    text = str(value).strip().upper()
    if text not in allowed:
        raise TaskFailure(f"`{name}` must be one of {', '.join(allowed)}, got `{str(value)[:50]}`")
    return text


def system_zone() -> tzinfo:
    """The machine's time zone (Java's `ZoneId.systemDefault()`), by name when it can be found."""
    names = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(IndexError, OSError):
        names.append(os.path.realpath("/etc/localtime").split("zoneinfo/", 1)[1])
    for name in names:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return UTC


_OFFSET_ID: Final = re.compile(r"(?:UTC|GMT|UT)?([+-])(\d{1,2})(?::?(\d{2}))?")


def zone(context: TaskContext, name: str = "timeZoneId") -> tzinfo:
    """A Java `ZoneId`: a region (Europe/Paris), Z, UTC, or an offset (+02:00, GMT+2)."""
    value = context.prop(name)
    if value is None:
        return system_zone()
    text = str(value).strip()
    if text in ("Z", "UTC", "GMT", "UT"):
        return UTC if text != "UTC" else ZoneInfo("UTC")
    offset = _OFFSET_ID.fullmatch(text)
    if offset:
        sign, hours, minutes = offset.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta <= timedelta(hours=18):
            return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise TaskFailure(
            f"`{name}` {text}: not a known time zone (for instance Europe/Paris, UTC, +02:00)"
        ) from None


# -- Java's text forms -------------------------------------------------------------------------------------


def java_double(value: float) -> str:
    """Java's `Double.toString`: plain between 10^-3 and 10^7, else `1.0E10` style."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "e" not in text else f"{Decimal(text):f}"
    mantissa, _, power = f"{Decimal(repr(value)).normalize():e}".partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}E{int(power)}"


def offset_text(offset: timedelta, zero: str) -> str:
    seconds = int(offset.total_seconds())
    if not seconds:
        return zero
    hours, rest = divmod(abs(seconds), 3600)
    text = f"{'-' if seconds < 0 else '+'}{hours:02d}:{rest // 60:02d}"
    return text + (f":{rest % 60:02d}" if rest % 60 else "")


def java_string(value: Any) -> str:
    """`String.valueOf` of a value as Kestra's Ion reader gives it (a list as `[a, b]`, a map as
    `{k=v}`), for a value that has no text form of its own in a CSV cell."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | time):
        return java_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return "[" + ", ".join(str(b - 256 if b > 127 else b) for b in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}={java_string(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(java_string(item) for item in value) + "]"
    return str(value)


# -- Ion item files ----------------------------------------------------------------------------------------

_PLAIN_STRING: Final = re.compile(r'[\x00-\x1f\x7f-\x9f"\\]')


def ion_text(value: str | None) -> str:
    """A string (or null) as Ion text, exactly as `ion_dumps` writes it, without its dispatch."""
    if value is None:
        return "null"
    return f'"{value}"' if _PLAIN_STRING.search(value) is None else ion_dumps(value)


def ion_symbol(name: str) -> str:
    """A field name as Ion writes it before a colon."""
    return ion_dumps({name: None})[1:-6]


def ion_records(handle: IO[bytes], work: Work) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each record of a Kestra Ion item file, the work stoppable between them."""
    for number, value in plugin_ion_records(handle):
        work.tick()
        yield number, value


# -- running ------------------------------------------------------------------------------------------------


async def in_folder(
    context: TaskContext,
    job: Callable[[Path, Work], T],
    finish: Callable[[T], Awaitable[Mapping[str, Any]]],
) -> Mapping[str, Any]:
    """Run `job(folder, state)` in a thread in a temporary folder (the loop stays free, a kill stops it
    between records), log its notes, then `finish` with its result while the folder still exists: the
    outputs."""
    state = Work()
    with tempfile.TemporaryDirectory(prefix="tiercel-serdes-") as folder:
        runner = asyncio.ensure_future(asyncio.to_thread(_guarded, job, Path(folder), state))
        try:
            result = await asyncio.shield(runner)
        except asyncio.CancelledError:
            state.stop.set()
            runner.add_done_callback(lambda done: done.cancelled() or done.exception())
            raise
        finally:
            for note in state.notes:
                context.log(LogLevel.WARN, note)
            if state.dropped_notes:
                context.log(LogLevel.WARN, f"... and {state.dropped_notes} more warnings like these")
        return await finish(result)


async def convert(
    context: TaskContext,
    suffix: str,
    work: Callable[[Path, Path, Work], int],
    count_metric: bool = True,
) -> Mapping[str, Any]:
    """Run `work(source, target, state)` in a thread on `from` into a new file, store the file, and
    report Kestra's `records` counter (unless `count_metric` is false); outputs `uri` and `size` (the
    records converted)."""
    source = source_file(context)

    def job(folder: Path, state: Work) -> tuple[Path, int]:
        target = folder / f"{source.stem or 'data'}{suffix}"
        return target, work(source, target, state)

    async def finish(done: tuple[Path, int]) -> Mapping[str, Any]:
        target, count = done
        uri = await asyncio.to_thread(context.put_file, target.name, target)
        if count_metric:
            context.metric("counter", "records", count)
        return {"uri": uri, "size": count}

    return await in_folder(context, job, finish)


def _guarded(job: Callable[[Path, Work], T], folder: Path, state: Work) -> T:
    """The job, its unexpected failures (a file that cannot be read or written) made task failures."""
    try:
        return job(folder, state)
    except OSError as error:
        raise TaskFailure(f"Cannot convert `from`: {error.strerror or error}") from None
    except (UnicodeError, LookupError) as error:
        raise TaskFailure(f"Cannot convert `from`: {error}") from None
