"""Java `DateTimeFormatter.ofPattern` patterns (`yyyy-MM-dd'T'HH:mm:ss.SSS[XXX]`), for the date and
time formats flows give Kestra's text writers: a pattern is compiled once, then formats dates,
times and date-times. As in Java, a field the value lacks (the offset of a local date-time) fails
the format, unless it sits in an optional `[...]` section, which is then left out."""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final, Union
from zoneinfo import ZoneInfo

from tiercel.engine.plugin import TaskFailure

Temporal = date | datetime | time
_Printer = Callable[[Temporal], "str | None"]  # None: the field is not available
_Part = Union[str, "_Field", "_Optional"]
_LETTERS: Final = "GuyDMLdQqYwWEecFaBhKkHmsSAnNVvzOXxZp"


@dataclass(frozen=True)
class _Field:
    printer: _Printer


@dataclass(frozen=True)
class _Optional:
    parts: tuple[_Part, ...]


def _has_date(value: Temporal) -> bool:
    return isinstance(value, date)


def _has_time(value: Temporal) -> bool:
    return isinstance(value, datetime | time)


def _padded(get: Callable[[Temporal], int], width: int, needs: Callable[[Temporal], bool]) -> _Printer:
    def printer(value: Temporal) -> str | None:
        return f"{get(value):0{width}d}" if needs(value) else None

    return printer


def _offset(value: Temporal) -> timedelta | None:
    return value.utcoffset() if isinstance(value, datetime | time) else None


def _offset_printer(letter: str, count: int) -> _Printer:
    def printer(value: Temporal) -> str | None:
        offset = _offset(value)
        if offset is None:
            return None
        seconds = int(offset.total_seconds())
        sign = "-" if seconds < 0 else "+"
        hours, rest = divmod(abs(seconds), 3600)
        minutes, secs = divmod(rest, 60)
        if letter == "X" and seconds == 0:
            return "Z"
        if letter == "Z":
            if count == 4:
                return (
                    "GMT"
                    if seconds == 0
                    else f"GMT{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")
                )
            if count == 5:
                return (
                    "Z"
                    if seconds == 0
                    else f"{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")
                )
            return f"{sign}{hours:02d}{minutes:02d}"
        if letter == "O":
            if seconds == 0:
                return "GMT"
            return (
                f"GMT{sign}{hours}" + (f":{minutes:02d}" if minutes else "")
                if count == 1
                else f"GMT{sign}{hours:02d}:{minutes:02d}"
            )
        colon = ":" if count in (3, 5) else ""
        text = f"{sign}{hours:02d}"
        if count == 1:
            return text + (f"{minutes:02d}" if minutes else "")
        text += f"{colon}{minutes:02d}"
        return text + (f"{colon}{secs:02d}" if count >= 4 and secs else "")

    return printer


def _zone_printer(letter: str, count: int) -> _Printer:
    def printer(value: Temporal) -> str | None:
        if not isinstance(value, datetime | time) or value.tzinfo is None:
            return None
        if letter == "V" and isinstance(value.tzinfo, ZoneInfo):
            return value.tzinfo.key
        if letter == "z" and isinstance(value, datetime):
            return value.tzname()
        offset = value.utcoffset()
        return "Z" if not offset else _offset_printer("X", 3)(value)

    return printer


def _text(
    names: list[str], index: Callable[[Temporal], int], count: int, needs: Callable[[Temporal], bool]
) -> _Printer:
    def printer(value: Temporal) -> str | None:
        if not needs(value):
            return None
        name = names[index(value)]
        return name[:3] if count <= 3 else name[0] if count == 5 else name

    return printer


def _field(letter: str, count: int) -> _Printer:
    """The printer of a run of one pattern letter."""
    on_date, on_time = _has_date, _has_time
    if letter in "yu":
        if count == 2:
            return _padded(lambda v: v.year % 100, 2, on_date)  # type: ignore[union-attr]
        return _padded(lambda v: v.year, count, on_date)  # type: ignore[union-attr]
    if letter in "ML":
        if count >= 3:
            return _text(list(calendar.month_name), lambda v: v.month, count, on_date)  # type: ignore[union-attr]
        return _padded(lambda v: v.month, count, on_date)  # type: ignore[union-attr]
    if letter == "d" and count <= 2:
        return _padded(lambda v: v.day, count, on_date)  # type: ignore[union-attr]
    if letter == "D" and count <= 3:
        return _padded(lambda v: v.timetuple().tm_yday, count, on_date)  # type: ignore[union-attr]
    if letter == "E" and count <= 5:
        return _text(list(calendar.day_name), lambda v: v.weekday(), count, on_date)  # type: ignore[union-attr]
    if letter == "a" and count == 1:
        return lambda v: ("AM" if v.hour < 12 else "PM") if on_time(v) else None  # type: ignore[union-attr]
    if letter == "G" and count <= 5:
        return lambda v: ("AD" if count <= 3 else "Anno Domini") if on_date(v) else None
    if count <= 2:
        hour_of: dict[str, Callable[[Temporal], int]] = {
            "H": lambda v: v.hour,  # type: ignore[union-attr]
            "h": lambda v: (v.hour % 12) or 12,  # type: ignore[union-attr]
            "K": lambda v: v.hour % 12,  # type: ignore[union-attr]
            "k": lambda v: v.hour or 24,  # type: ignore[union-attr]
            "m": lambda v: v.minute,  # type: ignore[union-attr]
            "s": lambda v: v.second,  # type: ignore[union-attr]
        }
        if letter in hour_of:
            return _padded(hour_of[letter], count, on_time)
    if letter == "S" and count <= 9:
        return lambda v: f"{v.microsecond:06d}000"[:count] if on_time(v) else None  # type: ignore[union-attr]
    if letter == "n":
        return _padded(lambda v: v.microsecond * 1000, count, on_time)  # type: ignore[union-attr]
    if letter in "XxZO" and count <= 5 and not (letter == "O" and count not in (1, 4)):
        return _offset_printer(letter, count)
    if (letter == "V" and count == 2) or (letter == "z" and count <= 4):
        return _zone_printer(letter, count)
    raise ValueError(f"the pattern letter `{letter}` repeated {count} times is not supported here")


def _parse(pattern: str, position: int, depth: int) -> tuple[list[_Part], int]:
    parts: list[_Part] = []
    while position < len(pattern):
        char = pattern[position]
        if char == "'":
            close = pattern.find("'", position + 1)
            while close >= 0 and pattern.startswith("''", close):
                close = pattern.find("'", close + 2)
            if close < 0:
                raise ValueError("a quote is not closed")
            literal = pattern[position + 1 : close]
            parts.append("'" if not literal else literal.replace("''", "'"))
            position = close + 1
        elif char == "[":
            inner, position = _parse(pattern, position + 1, depth + 1)
            parts.append(_Optional(tuple(inner)))
        elif char == "]":
            if depth == 0:
                raise ValueError("`]` closes no optional section")
            return parts, position + 1
        elif char.isascii() and char.isalpha():
            end = position
            while end < len(pattern) and pattern[end] == char:
                end += 1
            if char not in _LETTERS:
                raise ValueError(f"unknown pattern letter `{char}`")
            parts.append(_Field(_field(char, end - position)))
            position = end
        elif char in "{}#":
            raise ValueError(f"`{char}` is reserved")
        else:
            parts.append(char)
            position += 1
    return parts, position


def _render(parts: tuple[_Part, ...] | list[_Part], value: Temporal) -> str | None:
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, _Field):
            text = part.printer(value)
            if text is None:
                return None
            out.append(text)
        else:
            out.append(_render(part.parts, value) or "")
    return "".join(out)


class JavaFormat:
    """One compiled pattern."""

    def __init__(self, pattern: str, name: str) -> None:
        try:
            parts, _ = _parse(pattern, 0, 0)
        except ValueError as error:
            raise TaskFailure(f"`{name}` `{pattern}` is not a valid date pattern: {error}") from None
        self.pattern = pattern
        self.name = name
        self._parts = parts

    def format(self, value: Temporal) -> str:
        text = _render(self._parts, value)
        if text is None:
            raise TaskFailure(
                f"`{self.name}` `{self.pattern}` cannot format `{value.isoformat()}`: it asks for a field "
                "the value does not have (put it in an optional [...] section)"
            )
        return text


# -- parsing ----------------------------------------------------------------------------------------------

_OFFSETS: Final = {
    ("X", 1): r"Z|[+-]\d{2}(?:\d{2})?", ("X", 2): r"Z|[+-]\d{4}", ("X", 3): r"Z|[+-]\d{2}:\d{2}",
    ("X", 4): r"Z|[+-]\d{4}(?:\d{2})?", ("X", 5): r"Z|[+-]\d{2}:\d{2}(?::\d{2})?",
    ("x", 1): r"[+-]\d{2}(?:\d{2})?", ("x", 2): r"[+-]\d{4}", ("x", 3): r"[+-]\d{2}:\d{2}",
    ("x", 4): r"[+-]\d{4}(?:\d{2})?", ("x", 5): r"[+-]\d{2}:\d{2}(?::\d{2})?",
    ("Z", 1): r"[+-]\d{4}", ("Z", 2): r"[+-]\d{4}", ("Z", 3): r"[+-]\d{4}", ("Z", 5): r"Z|[+-]\d{2}:\d{2}",
}  # fmt: skip
_MONTHS: Final = [name.lower() for name in calendar.month_name[1:]]


def _letter_regex(letter: str, count: int) -> tuple[str, str]:
    """The regex of a run of one letter when parsing, and the field it sets."""
    if letter in "yu":
        return (
            r"\d{2}" if count == 2 else rf"[+-]?\d{{{max(count, 1)},19}}"
        ), "year2" if count == 2 else "year"
    if letter in "ML" and count >= 3:
        return "|".join(m[:3] if count == 3 else m for m in _MONTHS), "month_name"
    widths = {1: r"\d{1,2}", 2: r"\d{2}"}
    fields = {"M": "month", "L": "month", "d": "day", "H": "hour", "k": "hour", "h": "hour12", "K": "hour12",
              "m": "minute", "s": "second"}  # fmt: skip
    if letter in fields and count <= 2:
        return widths[count], fields[letter]
    if letter == "S":
        return rf"\d{{{count}}}", "fraction"
    if letter == "n":
        return r"\d{1,9}", "nano"
    if letter == "a" and count == 1:
        return "AM|PM|am|pm", "ampm"
    if (letter, count) in _OFFSETS:
        return _OFFSETS[(letter, count)], "offset"
    raise ValueError(f"the pattern letter `{letter}` repeated {count} times cannot be parsed here")


def _parse_regex(pattern: str, fields: list[str]) -> str:
    out: list[str] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == "'":
            close = pattern.find("'", position + 1)
            while close >= 0 and pattern.startswith("''", close):
                close = pattern.find("'", close + 2)
            if close < 0:
                raise ValueError("a quote is not closed")
            literal = pattern[position + 1 : close]
            out.append(re.escape("'" if not literal else literal.replace("''", "'")))
            position = close + 1
        elif char == "[":
            out.append("(?:")
            position += 1
        elif char == "]":
            out.append(")?")
            position += 1
        elif char.isascii() and char.isalpha():
            end = position
            while end < len(pattern) and pattern[end] == char:
                end += 1
            regex, field = _letter_regex(char, end - position)
            fields.append(field)
            out.append(f"(?P<g{len(fields)}>{regex})")
            position = end
        else:
            out.append(re.escape(char))
            position += 1
    text = "".join(out)
    if text.count("(?:") != text.count(")?"):
        raise ValueError("an optional section `[` is not closed, or `]` closes none")
    return text


@dataclass(frozen=True)
class Parsed:
    """The fields a text gave; what a value needs is checked by the caller."""

    day: date | None
    clock: time | None
    offset: timedelta | None


class JavaParser:
    """A `DateTimeFormatter.ofPattern` pattern used to parse, as `LocalDate.parse(text, formatter)` does:
    the whole text must match; a field left out of an optional section is absent."""

    def __init__(self, pattern: str, name: str) -> None:
        self._fields: list[str] = []
        try:
            self._regex = re.compile(_parse_regex(pattern, self._fields), re.IGNORECASE)
        except (ValueError, re.error) as error:
            raise TaskFailure(f"`{name}` `{pattern}` is not a valid date pattern: {error}") from None
        self.pattern = pattern

    def parse(self, text: str) -> Parsed:
        """Raises ValueError when the text does not match the pattern or is not a real date or time."""
        match = self._regex.fullmatch(text)
        if match is None:
            raise ValueError(f"Text '{text}' could not be parsed with the pattern `{self.pattern}`")
        got: dict[str, str] = {}
        for index, field in enumerate(self._fields, start=1):
            value = match.group(f"g{index}")
            if value is not None:
                got[field] = value
        year = int(got["year"]) if "year" in got else 2000 + int(got["year2"]) if "year2" in got else None
        month = int(got["month"]) if "month" in got else None
        if "month_name" in got:
            month = next(i for i, m in enumerate(_MONTHS, 1) if m.startswith(got["month_name"].lower()))
        day = date(year, month, int(got["day"])) if year and month and "day" in got else None
        hour = int(got["hour"]) if "hour" in got else None
        if "hour12" in got:
            hour = int(got["hour12"]) % 12 + (12 if got.get("ampm", "AM").upper() == "PM" else 0)
        clock = None
        if hour is not None:
            nanos = int(got["fraction"].ljust(9, "0")) if "fraction" in got else int(got.get("nano", 0))
            clock = time(hour % 24, int(got.get("minute", 0)), int(got.get("second", 0)), nanos // 1000)
        offset = None
        if "offset" in got and got["offset"].upper() != "Z":
            digits = got["offset"][1:].replace(":", "")
            offset = timedelta(
                hours=int(digits[:2]), minutes=int(digits[2:4] or 0), seconds=int(digits[4:6] or 0)
            )
            offset = -offset if got["offset"][0] == "-" else offset
        elif "offset" in got:
            offset = timedelta(0)
        return Parsed(day, clock, offset)
