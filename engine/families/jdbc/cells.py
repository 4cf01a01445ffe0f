"""Database values as Kestra's jdbc tasks hand them on.

A driver's cell becomes what Kestra's cell converters make of it (`kestra_value`): a timestamp with a
time zone an instant (shown in the task's `timeZoneId`, UTC by default), one without it a local
date-time, a date a date, a time a local time, an interval an ISO 8601 duration, a UUID its text,
numerics exact decimals, binary data bytes, JSON a structure. The stored file (fetchType STORE) holds
those values as Ion; the outputs of FETCH and FETCH_ONE hold them as Kestra's JSON writes them
(`plain_value`): date-times as ISO text, decimals as numbers, bytes as base64.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any
from uuid import UUID

from tiercel.engine.plugin import java_iso

Convert = Callable[[Any], Any]


def iso_duration(value: timedelta) -> str:
    """An interval as ISO 8601 (`P1DT2H3M4.5S`), as Kestra writes one; `PT0S` when empty."""
    negative = value < timedelta(0)
    value = -value if negative else value
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    second_text = (
        f"{seconds}.{value.microseconds:06d}".rstrip("0").rstrip(".") if value.microseconds else str(seconds)
    )
    clock = "".join(f"{amount}{unit}" for amount, unit in ((hours, "H"), (minutes, "M")) if amount)
    if seconds or value.microseconds:
        clock += f"{second_text}S"
    text = "P" + (f"{value.days}D" if value.days else "") + (f"T{clock}" if clock else "")
    return ("-" if negative else "") + (text if text != "P" else "PT0S")


def kestra_value(value: Any, zone: tzinfo) -> Any:
    """A driver's value as Kestra's converters give it, once each database's own columns are
    converted (a naive date-time stays a local one; a moment keeps the zone it was given)."""
    if isinstance(value, Decimal) and not value.is_finite():
        return float(value)  # NaN and infinities, which a Java BigDecimal cannot hold
    if value is None or isinstance(value, str | bool | int | float | Decimal | bytes):
        return value
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return value
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): kestra_value(item, zone) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [kestra_value(item, zone) for item in value]
    return str(value)


def in_zone(zone: tzinfo) -> Convert:
    """A moment shown in `zone` (a timestamp with a time zone, read in the task's `timeZoneId`)."""

    def convert(value: Any) -> Any:
        return value.astimezone(zone) if isinstance(value, datetime) and value.tzinfo is not None else value

    return convert


def at_zone(zone: tzinfo) -> Convert:
    """A naive date-time read as a moment in `zone` (a timestamp Kestra reads as an instant)."""
    return lambda value: (
        value.replace(tzinfo=zone) if isinstance(value, datetime) and value.tzinfo is None else value
    )


def parsed_json(value: Any) -> Any:
    """JSON text as the structure it holds; text that is not JSON stays text."""
    if not isinstance(value, str | bytes):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def plain_value(value: Any) -> Any:
    """A converted value as it reads back from Kestra's JSON outputs."""
    if isinstance(value, datetime | time):
        return java_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_value(item) for item in value]
    return value


def plain_row(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {key: plain_value(item) for key, item in row.items()}
