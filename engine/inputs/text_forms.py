"""Kestra's text and JSON forms of typed input values.

A value is shown the way Kestra shows it: `true`, not `True`; compact JSON for mappings and lists;
ISO 8601 for dates, instants and durations; Java's own forms (Instant, LocalTime, double) where a
message quotes a setting, so that messages read the same as on a Kestra cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ..durations import format_duration
from ..model import InputSpec

_MAX_ECHO = 200


def input_to_text(spec: InputSpec, value: Any) -> str:
    """How a typed value is shown in, or prefilled into, a form field that holds text.

    The text parses back to the same value with `coerce_input`: a DATETIME becomes ISO 8601 in UTC,
    a DURATION ISO 8601 (PT5M), JSON, YAML and ARRAY values compact JSON, a MULTISELECT a
    comma-separated list (JSON when an item holds a comma).
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    kind = str(spec.type).upper()
    if kind == "MULTISELECT" and isinstance(value, list | tuple):
        items = [as_text(item) for item in value]
        if any("," in item or item != item.strip() for item in items) or (items and items[0].startswith("[")):
            return json.dumps(items, separators=(",", ":"), ensure_ascii=False)
        return ", ".join(items)
    return as_text(value)


def input_json_value(value: Any) -> Any:
    """Convert a typed input value into what an execution's JSON stores, as Kestra prints it.

    date -> "2024-01-01", datetime -> "2024-01-01T10:00:00Z" (Java's Instant), time -> "10:00:00",
    timedelta -> "PT5M"; mappings and lists are converted item by item; anything else is kept.
    """
    if isinstance(value, datetime):
        return instant_text(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Mapping):
        return {str(key): input_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [input_json_value(item) for item in value]
    return value


def as_text(value: Any) -> str:
    """A value as text, the way Kestra shows it (true, not True; JSON for mappings and lists)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, datetime | date | time | timedelta):
        return str(input_json_value(value))
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(input_json_value(value), separators=(",", ":"), ensure_ascii=False)
    return str(value)


def echo(value: Any) -> str:
    """A received value quoted in a message, shortened when it is long."""
    text = as_text(value)
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 1] + "…"


def float_text(value: float) -> str:
    """A FLOAT setting as a message quotes it: 1.0, 2.5."""
    return repr(float(value))


def instant_text(moment: datetime) -> str:
    """Java's Instant.toString: seconds always, a fraction only when there is one."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + _java_fraction(moment.microsecond) + "Z"


def local_time_text(clock: time) -> str:
    """Java's LocalTime.toString: 01:00, 11:59:59, 11:59:59.500."""
    text = f"{clock.hour:02d}:{clock.minute:02d}"
    if clock.second or clock.microsecond:
        text += f":{clock.second:02d}"
    return text + _java_fraction(clock.microsecond)


def _java_fraction(microsecond: int) -> str:
    """Java prints a fraction of a second in groups of three digits, and nothing for none."""
    if not microsecond:
        return ""
    return f".{microsecond // 1000:03d}" if microsecond % 1000 == 0 else f".{microsecond:06d}"
