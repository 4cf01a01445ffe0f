"""Values as Kestra's plugins read and write them: Java's text of a value, the JSON Jackson writes,
durations and whole numbers of a property, and the rendered settings a task hands to the consume
logic its triggers share. Each raises `TaskFailure` naming the property it was given."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import IO, Any

from ..durations import parse_duration
from ..internal_storage.globs import glob_regex
from ..internal_storage.names import StorageError
from ..ion import IonError, iter_lines as ion_lines, loads as ion_loads
from .base import TaskContext, TaskFailure

# Short durations (30s, 1m, 500ms) as some of Kestra's examples write them.
_SHORT = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def java_text(value: Any) -> str:
    """A value as Java's `String.valueOf` writes it (Kestra's STRING serde of a non-string):
    {k=v, ...}, [a, b], true, null; a date-time in ISO form, bytes as UTF-8 text."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{java_text(k)}={java_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(java_text(item) for item in value) + "]"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def json_default(value: Any) -> Any:
    """`json.dumps`' `default` for what Jackson writes and JSON lacks: a decimal as a number, a
    date-time in ISO form, bytes in Base64, anything else as its text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def java_json(value: Any) -> str:
    """Compact JSON, as Jackson writes it (non-ASCII text kept as it is)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=json_default)


def seconds(name: str, value: Any, default: float | None = None, short: bool = False) -> float | None:
    """A duration property in seconds: ISO 8601 as Java's `Duration.parse` reads it (PT10S, P1D,
    PT1.5S), a timedelta, a number of seconds, and with `short` also 30s, 1m, 500ms; `default` when
    unset."""
    if value is None:
        return default
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    found = _SHORT.fullmatch(text) if short else None
    if found:
        return float(found.group(1)) * _UNITS[found.group(2).lower()]
    try:
        return parse_duration(text).total_seconds()
    except ValueError:
        kind = "a duration such as PT10S or 10s" if short else "an ISO 8601 duration such as PT10S"
        raise TaskFailure(f"`{name}` `{text}` is not {kind}") from None


def whole_number(
    name: str, value: Any, default: int | None = None, least: int = 0, most: int | None = None
) -> int | None:
    """A whole-number property (a number or its text) of at least `least` (and at most `most`);
    `default` when unset."""
    if value is None:
        return default
    try:
        number = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value).strip())
    except ValueError:
        number = None
    if most is not None and (number is None or not least <= number <= most):
        raise TaskFailure(f"`{name}` must be between {least} and {most}, not `{value}`")
    if number is None or number < least:
        raise TaskFailure(f"`{name}` must be a whole number of at least {least}, not `{value}`")
    return number


def settings_of(context: TaskContext, names: Iterable[str]) -> dict[str, Any]:
    """The task's rendered properties among `names`, unset ones left out: one plain mapping that the
    task and the triggers calling the same consume logic both pass."""
    values = {name: context.prop(name) for name in names}
    return {name: value for name, value in values.items() if value is not None}


def glob_matches(glob: str, path: str, what: str = "glob") -> bool:
    """Whether a `/`-separated path matches a glob with Java's PathMatcher semantics (Kestra's `glob:`):
    `*` and `?` within a folder, `**` across folders, `[...]`, `{a,b}`."""
    try:
        return glob_regex(glob, what).fullmatch(path) is not None
    except StorageError as error:
        raise TaskFailure(str(error)) from None


_BINARY_ION = b"\xe0\x01\x00\xea"


def ion_records(handle: IO[bytes], what: str = "`from`") -> Iterator[tuple[int, Any]]:
    """(line number, value) of each value of a Kestra Ion file, one a line, read as they come (blank
    lines and version markers skipped).

    Raises:
        TaskFailure: A line that is not Ion text (naming it), or a file of binary Ion.
    """
    for number, line in enumerate(ion_lines(handle), start=1):
        if number == 1 and line.startswith(_BINARY_ION):
            raise TaskFailure(
                f"{what} is binary Ion, which this engine does not read; Kestra writes text Ion"
            )
        stripped = line.strip()
        if not stripped or stripped == b"$ion_1_0":
            continue
        try:
            yield number, ion_loads(line.decode("utf-8"))
        except (IonError, UnicodeDecodeError) as error:
            raise TaskFailure(f"{what} line {number} is not valid Ion: {error}") from None
