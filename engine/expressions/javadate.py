"""Java ``DateTimeFormatter`` patterns and Kestra's date conversions.

Kestra's ``date``, ``dateAdd``, ``timestamp*`` filters and the ``now()`` function take Java patterns
(``yyyy-MM-dd'T'HH:mm:ss.SSSXXX``), a handful of named formats (``iso``, ``sql``, ``iso_date_time``...)
and Java zone ids. This module reproduces that behaviour with the standard library, in English.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DateError",
    "Zone",
    "add_to_date",
    "format_date",
    "to_datetime",
    "zone_of",
]


class DateError(ValueError):
    """A date, pattern, unit or time zone could not be understood."""


@dataclass(frozen=True, slots=True)
class Zone:
    """A time zone as Java's ``ZoneId`` sees it.

    Attributes:
        tz: The Python time zone.
        id: The zone id as Java prints it (``Europe/Paris``, ``UTC``, ``+01:00``, ``Z``).
        region: True for a named region (printed in brackets by ``iso_date_time``), False for an offset.
    """

    tz: tzinfo
    id: str
    region: bool


# Kestra uses the JVM's default zone; servers run in UTC, and a fixed default keeps output reproducible.
DEFAULT_ZONE: Final = Zone(UTC, "UTC", True)

_MONTHS: Final = [calendar.month_name[i] for i in range(1, 13)]
_DAYS: Final = list(calendar.day_name)  # Monday first, like Python's weekday()
_QUARTERS: Final = ["1st quarter", "2nd quarter", "3rd quarter", "4th quarter"]
_ZONE_NAMES: Final = {"UTC": "Coordinated Universal Time", "GMT": "Greenwich Mean Time", "Z": "Z"}
_NNBSP: Final = "\u202f"  # Java 20+ (CLDR 42) puts a narrow no-break space before AM/PM

_OFFSET_RE: Final = re.compile(r"([+-])(\d{1,2})(?::?(\d{2}))?(?::?(\d{2}))?")


def _parse_offset(text: str) -> timedelta:
    match = _OFFSET_RE.fullmatch(text)
    if match is None:
        raise DateError(f"Invalid ID for ZoneOffset, invalid format: {text}")
    sign, hours, minutes, seconds = match.groups()
    total = int(hours) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
    if int(hours) > 18 or total > 18 * 3600:
        raise DateError(f"Zone offset not in valid range: {text}")
    return timedelta(seconds=-total if sign == "-" else total)


def _offset_id(offset: timedelta) -> str:
    total = int(offset.total_seconds())
    if total == 0:
        return "Z"
    return _format_offset(total, colon=True, minutes="always", seconds=True)


@functools.lru_cache(maxsize=256)
def zone_of(name: str | None) -> Zone:
    """Resolve a Java zone id (``Europe/Paris``, ``UTC``, ``Z``, ``+02:00``, ``GMT+1``).

    Args:
        name: The zone id, or None for the default zone (UTC).

    Returns:
        The zone.

    Raises:
        DateError: The id is not a known zone.
    """
    if name is None:
        return DEFAULT_ZONE
    text = name.strip()
    if not text:
        raise DateError("Invalid ID for ZoneOffset, invalid format: ")
    if text == "Z":
        return Zone(UTC, "Z", False)
    if text[0] in "+-":
        offset = _parse_offset(text)
        return Zone(timezone(offset), _offset_id(offset), False)
    for prefix in ("UTC", "GMT", "UT"):
        if text == prefix:
            return Zone(UTC, text, True)
        if text.startswith(prefix) and text[len(prefix)] in "+-":
            offset = _parse_offset(text[len(prefix) :])
            suffix = _offset_id(offset)
            return Zone(timezone(offset), prefix + ("" if suffix == "Z" else suffix), True)
    try:
        return Zone(ZoneInfo(text), text, True)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise DateError(f"Unknown time-zone ID: {text}") from None


# ---------------------------------------------------------------------------------------------------------
# Pattern compilation
# ---------------------------------------------------------------------------------------------------------

_LETTERS: Final = frozenset("GuyDMLdQqYwWEecFahKkHmsSAnNVvzOXxZ")
_MAX_COUNT: Final = {
    "G": 5, "u": 19, "y": 19, "D": 3, "M": 5, "L": 5, "d": 2, "Q": 5, "q": 5, "Y": 19, "w": 2, "W": 1,
    "E": 5, "e": 5, "c": 5, "F": 1, "a": 1, "h": 2, "K": 2, "k": 2, "H": 2, "m": 2, "s": 2, "S": 9,
    "A": 19, "n": 19, "N": 19, "V": 2, "v": 4, "z": 4, "O": 4, "X": 5, "x": 5, "Z": 5,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Field:
    letter: str
    count: int


# A compiled pattern: literal text, fields, and "[" / "]" markers for optional sections.
_Token = str | _Field
_OPTIONAL_START: Final = _Field("[", 0)
_OPTIONAL_END: Final = _Field("]", 0)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> tuple[_Token, ...]:
    tokens: list[_Token] = []
    i = 0
    depth = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "'":
            end = i + 1
            text: list[str] = []
            while True:
                if end >= n:
                    raise DateError(f"Pattern ends with an incomplete string literal: {pattern}")
                if pattern[end] == "'":
                    if end + 1 < n and pattern[end + 1] == "'":
                        text.append("'")
                        end += 2
                        continue
                    break
                text.append(pattern[end])
                end += 1
            tokens.append("'" if end == i + 1 else "".join(text))
            i = end + 1
        elif ch == "[":
            depth += 1
            tokens.append(_OPTIONAL_START)
            i += 1
        elif ch == "]":
            if depth == 0:
                raise DateError(f"Pattern invalid as it contains ] without previous [: {pattern}")
            depth -= 1
            tokens.append(_OPTIONAL_END)
            i += 1
        elif ch in "{}#":
            raise DateError(f"Pattern includes reserved character: '{ch}'")
        elif ("a" <= ch <= "z") or ("A" <= ch <= "Z"):
            if ch not in _LETTERS:
                raise DateError(f"Unknown pattern letter: {ch}")
            end = i
            while end < n and pattern[end] == ch:
                end += 1
            count = end - i
            if count > _MAX_COUNT[ch]:
                raise DateError(f"Too many pattern letters: {ch}")
            tokens.append(_Field(ch, count))
            i = end
        else:
            tokens.append(ch)
            i += 1
    return tuple(tokens)


# ---------------------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------------------


def _format_offset(total: int, *, colon: bool, minutes: str, seconds: bool) -> str:
    """Format an offset in seconds; minutes is "always" or "nonzero"."""
    sign = "-" if total < 0 else "+"
    total = abs(total)
    hh, rest = divmod(total, 3600)
    mm, ss = divmod(rest, 60)
    sep = ":" if colon else ""
    out = f"{sign}{hh:02d}"
    if minutes == "always" or mm or (seconds and ss):
        out += f"{sep}{mm:02d}"
    if seconds and ss:
        out += f"{sep}{ss:02d}"
    return out


def _gmt_offset(total: int, *, full: bool) -> str:
    if total == 0:
        return "GMT"
    sign = "-" if total < 0 else "+"
    hh, rest = divmod(abs(total), 3600)
    mm, ss = divmod(rest, 60)
    if full:
        out = f"GMT{sign}{hh:02d}:{mm:02d}"
        return out + (f":{ss:02d}" if ss else "")
    out = f"GMT{sign}{hh}"
    if mm or ss:
        out += f":{mm:02d}"
    return out + (f":{ss:02d}" if ss else "")


def _pad(value: int, width: int) -> str:
    return f"{value:0{width}d}" if value >= 0 else "-" + f"{-value:0{width}d}"


def _week_of_month(d: date) -> int:
    # WeekFields.ISO (weeks start on Monday, a first week needs 4 days), as Java computes it.
    dow = d.isoweekday()
    dom = d.day
    week_start = (dom - dow) % 7
    offset = -week_start
    if week_start + 1 > 4:
        offset = 7 - week_start
    return (7 + offset + (dom - 1)) // 7


def _zone_text(dt: datetime, zone: Zone, full: bool) -> str:
    if not zone.region:
        return zone.id
    name = dt.tzname() or zone.id
    if full:
        return _ZONE_NAMES.get(name, _ZONE_NAMES.get(zone.id, name))
    return name


def _format_field(dt: datetime, zone: Zone, letter: str, count: int) -> str:
    offset = dt.utcoffset()
    total = int(offset.total_seconds()) if offset is not None else 0
    if letter in "uyY":
        year = dt.isocalendar()[0] if letter == "Y" else dt.year
        if count == 2:
            return f"{year % 100:02d}"
        return _pad(year, count)
    if letter == "G":
        return {4: "Anno Domini", 5: "A"}.get(count, "AD")
    if letter in "ML":
        if count <= 2:
            return _pad(dt.month, count)
        name = _MONTHS[dt.month - 1]
        return {3: name[:3], 4: name}.get(count, name[:1])
    if letter == "d":
        return _pad(dt.day, count)
    if letter == "D":
        return _pad(dt.timetuple().tm_yday, count)
    if letter in "Qq":
        quarter = (dt.month - 1) // 3 + 1
        if count <= 2:
            return _pad(quarter, count)
        return {3: f"Q{quarter}", 4: _QUARTERS[quarter - 1]}.get(count, str(quarter))
    if letter == "w":
        return _pad(dt.isocalendar()[1], count)
    if letter == "W":
        return str(_week_of_month(dt.date()))
    if letter == "F":
        return str((dt.day - 1) // 7 + 1)
    if letter in "Eec":
        if letter != "E" and count <= 2:
            return _pad(dt.isoweekday(), count)
        name = _DAYS[dt.weekday()]
        return {4: name, 5: name[:1]}.get(count, name[:3])
    if letter == "a":
        return "AM" if dt.hour < 12 else "PM"
    if letter == "H":
        return _pad(dt.hour, count)
    if letter == "k":
        return _pad(dt.hour or 24, count)
    if letter == "K":
        return _pad(dt.hour % 12, count)
    if letter == "h":
        return _pad(dt.hour % 12 or 12, count)
    if letter == "m":
        return _pad(dt.minute, count)
    if letter == "s":
        return _pad(dt.second, count)
    if letter == "S":
        return f"{dt.microsecond * 1000:09d}"[:count]
    if letter == "n":
        return _pad(dt.microsecond * 1000, count)
    if letter == "A":
        millis = ((dt.hour * 60 + dt.minute) * 60 + dt.second) * 1000 + dt.microsecond // 1000
        return _pad(millis, count)
    if letter == "N":
        nanos = (((dt.hour * 60 + dt.minute) * 60 + dt.second) * 1_000_000 + dt.microsecond) * 1000
        return _pad(nanos, count)
    if letter == "V":
        if count != 2:
            raise DateError("Pattern letter count must be 2: V")
        return zone.id
    if letter in "zv":
        return _zone_text(dt, zone, full=count == 4)
    if letter == "O":
        if count not in (1, 4):
            raise DateError("Pattern letter count must be 1 or 4: O")
        return _gmt_offset(total, full=count == 4)
    if letter in "Xx":
        if letter == "X" and total == 0:
            return "Z"
        if count == 1:
            return _format_offset(total, colon=False, minutes="nonzero", seconds=False)
        return _format_offset(total, colon=count in (3, 5), minutes="always", seconds=count >= 4)
    if letter == "Z":
        if count <= 3:
            return _format_offset(total, colon=False, minutes="always", seconds=True)
        if count == 4:
            return _gmt_offset(total, full=True)
        return "Z" if total == 0 else _format_offset(total, colon=True, minutes="always", seconds=True)
    raise DateError(f"Unknown pattern letter: {letter}")  # pragma: no cover - guarded by _compile


def format_pattern(dt: datetime, pattern: str, zone: Zone) -> str:
    """Format an aware datetime (already in ``zone``) with a Java pattern.

    Args:
        dt: The datetime, converted to ``zone``.
        pattern: A Java ``DateTimeFormatter`` pattern.
        zone: The zone, for zone ids and names.

    Returns:
        The formatted text.

    Raises:
        DateError: The pattern is invalid.
    """
    out: list[str] = []
    for token in _compile(pattern):
        if isinstance(token, str):
            out.append(token)
        elif token.count:  # optional-section markers have a zero count: everything is printable
            out.append(_format_field(dt, zone, token.letter, token.count))
    return "".join(out)


def _iso_local_time(dt: datetime) -> str:
    out = f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    if dt.microsecond:
        out += "." + f"{dt.microsecond:06d}".rstrip("0")
    return out


def _iso_local_date(dt: datetime) -> str:
    return f"{_pad(dt.year, 4)}-{dt.month:02d}-{dt.day:02d}"


def _offset_of(dt: datetime) -> str:
    offset = dt.utcoffset()
    return _offset_id(offset if offset is not None else timedelta(0))


def _iso_instant(dt: datetime) -> str:
    utc = dt.astimezone(UTC)
    out = f"{_iso_local_date(utc)}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    if utc.microsecond:
        # Java prints the fraction in groups of three digits.
        millis, micros = divmod(utc.microsecond, 1000)
        out += f".{millis:03d}" if micros == 0 else f".{utc.microsecond:06d}"
    return out + "Z"


def _iso_date_time(dt: datetime, zone: Zone) -> str:
    out = f"{_iso_local_date(dt)}T{_iso_local_time(dt)}{_offset_of(dt)}"
    return out + (f"[{zone.id}]" if zone.region else "")


def _rfc_1123(dt: datetime) -> str:
    offset = dt.utcoffset()
    total = int(offset.total_seconds()) if offset is not None else 0
    zone = "GMT" if total == 0 else _format_offset(total, colon=False, minutes="always", seconds=False)
    return (
        f"{_DAYS[dt.weekday()][:3]}, {dt.day} {_MONTHS[dt.month - 1][:3]} {dt.year:04d} "
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {zone}"
    )


def _parse_rfc_1123(text: str) -> datetime:
    """`Tue, 3 Jun 2008 11:05:30 GMT` (the day name optional, GMT or an offset such as +0200)."""
    try:
        moment = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise DateError(f"Text '{text}' could not be parsed with the pattern 'rfc_1123_date_time'")
    return moment


_PATTERN_FORMATS: Final = {
    "iso": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "iso_sec": "yyyy-MM-dd'T'HH:mm:ssXXX",
    "sql": "yyyy-MM-dd HH:mm:ss.SSSSSS",
    "sql_seq": "yyyy-MM-dd HH:mm:ss",
    # Localized styles as Java 21 prints them for en_US.
    "short": f"M/d/yy, h:mm{_NNBSP}a",
    "medium": f"MMM d, y, h:mm:ss{_NNBSP}a",
    "long": f"MMMM d, y 'at' h:mm:ss{_NNBSP}a z",
    "full": f"EEEE, MMMM d, y 'at' h:mm:ss{_NNBSP}a zzzz",
}


def _named(dt: datetime, name: str, zone: Zone) -> str | None:
    if name == "iso_date_time" or name == "iso_zoned_date_time":
        return _iso_date_time(dt, zone)
    if name == "iso_local_date_time":
        return f"{_iso_local_date(dt)}T{_iso_local_time(dt)}"
    if name == "iso_local_date":
        return _iso_local_date(dt)
    if name == "iso_local_time":
        return _iso_local_time(dt)
    if name == "iso_date":
        return _iso_local_date(dt) + _offset_of(dt)
    if name == "iso_time" or name == "iso_offset_time":
        return _iso_local_time(dt) + _offset_of(dt)
    if name == "iso_instant":
        return _iso_instant(dt)
    if name == "iso_ordinal_date":
        return f"{_pad(dt.year, 4)}-{dt.timetuple().tm_yday:03d}{_offset_of(dt)}"
    if name == "iso_week_date":
        year, week, day = dt.isocalendar()
        return f"{_pad(year, 4)}-W{week:02d}-{day}{_offset_of(dt)}"
    if name == "rfc_1123_date_time":
        return _rfc_1123(dt)
    return None


def format_date(
    value: object,
    format: str | None = None,
    time_zone: str | None = None,
    existing_format: str | None = None,
) -> str:
    """Kestra's ``date`` filter: convert ``value`` to a date and print it.

    Args:
        value: ISO text (or text in ``existing_format``), a datetime, a date, or epoch seconds.
        format: A Java pattern or a named format (``iso``, ``sql``, ``iso_date_time``, ``short``...);
            defaults to ``iso``.
        time_zone: The zone to print in (and to read zone-less input in); defaults to UTC.
        existing_format: The Java pattern or named format of ``value`` when it is text.

    Returns:
        The formatted date.

    Raises:
        DateError: The value, pattern or zone is invalid.
    """
    zone = zone_of(time_zone)
    dt = to_datetime(value, zone, existing_format)
    return format_in_zone(dt, format or "iso", zone)


def format_in_zone(dt: datetime, fmt: str, zone: Zone) -> str:
    """Print an aware datetime in ``zone`` with a Java pattern or named format.

    Args:
        dt: An aware datetime.
        fmt: A Java pattern or a named format.
        zone: The zone to convert to before printing.

    Returns:
        The formatted date.
    """
    try:
        local = dt.astimezone(zone.tz)
    except (OverflowError, ValueError) as exc:
        raise DateError(f"Date out of range: {exc}") from None
    named = _named(local, fmt, zone)
    if named is not None:
        return named
    return format_pattern(local, _PATTERN_FORMATS.get(fmt, fmt), zone)


# ---------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------

_NAMES_RE: Final = {
    "month_full": "|".join(_MONTHS),
    "month_short": "|".join(m[:3] for m in _MONTHS),
    "day_full": "|".join(_DAYS),
    "day_short": "|".join(d[:3] for d in _DAYS),
}
_OFFSET_TEXT_RE: Final = r"Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?"


_NUMERIC_KINDS: Final = {
    "d": "day", "D": "yday", "H": "hour", "k": "hour24", "K": "hour12", "h": "hour12",
    "m": "minute", "s": "second", "n": "nano", "M": "month", "L": "month",
    "u": "year", "y": "year",
}  # fmt: skip


def _field_regex(field: _Field, next_is_numeric: bool) -> tuple[str, str | None]:
    """Return (regex, group kind) for one pattern field; a None kind is matched and ignored."""
    letter, count = field.letter, field.count
    if letter in "ML" and count >= 3:
        return f"({_NAMES_RE['month_full'] if count >= 4 else _NAMES_RE['month_short']})", "month_name"
    if letter in "Eec" and (letter == "E" or count >= 3):
        return f"({_NAMES_RE['day_full']}|{_NAMES_RE['day_short']})", None
    if letter == "a":
        return "(AM|PM)", "ampm"
    if letter == "G":
        return "(AD|BC|Anno Domini|Before Christ|A|B)", None
    if letter == "S":
        return rf"(\d{{{count}}})", "fraction"
    if letter == "O" or (letter == "Z" and count == 4):
        return r"(GMT(?:[+-]\d{1,2}(?::?\d{2}(?::?\d{2})?)?)?)", "zone"
    if letter in "Vzv":
        return r"([A-Za-z][A-Za-z0-9_/+\-]*)", "zone"
    if letter in "XxZ":
        return f"({_OFFSET_TEXT_RE})", "zone"
    if letter in "uyY" and count == 2:
        return r"(\d{2})", "year2" if letter != "Y" else None
    kind = _NUMERIC_KINDS.get(letter)
    sign = "[+-]?" if letter in "uyY" else ""
    if next_is_numeric:
        # Adjacent numeric fields (yyyyMMdd) have fixed widths.
        width = count if letter in "uyY" or count > 1 else 2
        return rf"({sign}\d{{{width}}})", kind
    return rf"({sign}\d{{{count},19}})", kind


@functools.lru_cache(maxsize=128)
def _parser(pattern: str) -> tuple[re.Pattern[str], tuple[str | None, ...]]:
    tokens = _compile(pattern)
    parts: list[str] = []
    kinds: list[str | None] = []
    for index, token in enumerate(tokens):
        if isinstance(token, str):
            parts.append(re.escape(token))
        elif token is _OPTIONAL_START:
            parts.append("(?:")
        elif token is _OPTIONAL_END:
            parts.append(")?")
        else:
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            next_is_numeric = isinstance(following, _Field) and following.count > 0
            regex, kind = _field_regex(token, next_is_numeric)
            parts.append(regex)
            kinds.append(kind)
    return re.compile("".join(parts), re.IGNORECASE), tuple(kinds)


def _month_number(name: str) -> int:
    lowered = name.lower()
    for index, month in enumerate(_MONTHS):
        if month.lower() == lowered or month[:3].lower() == lowered:
            return index + 1
    raise DateError(f"Unknown month: {name}")


def parse_pattern(text: str, pattern: str, zone: Zone) -> datetime:
    """Parse text written with a Java pattern (or a named format) into an aware datetime.

    Zone-less text is read in ``zone``; text without a time is read as the start of the day.

    Args:
        text: The text to parse.
        pattern: A Java pattern or a named format.
        zone: The zone for zone-less text.

    Returns:
        The aware datetime.

    Raises:
        DateError: The text does not match the pattern.
    """
    if pattern in ("iso_date_time", "iso_zoned_date_time", "iso_local_date_time", "iso_instant"):
        return _parse_iso(text, zone)
    if pattern in _ISO_DATE_ONLY:
        return _parse_iso_date_only(text, pattern, zone)
    if pattern in ("iso_time", "iso_local_time", "iso_offset_time"):
        raise DateError(f"Text '{text}' holds no date: the format '{pattern}' cannot be read into a date")
    if pattern == "rfc_1123_date_time":
        return _parse_rfc_1123(text)
    regex, kinds = _parser(_PATTERN_FORMATS.get(pattern, pattern))
    match = regex.fullmatch(text.strip())
    if match is None:
        raise DateError(f"Text '{text}' could not be parsed with the pattern '{pattern}'")
    values: dict[str, str] = {}
    for kind, group in zip(kinds, match.groups(), strict=True):
        if kind is not None and group is not None:
            values[kind] = group
    if "year" in values:
        year = int(values["year"])
    elif "year2" in values:
        year = 2000 + int(values["year2"])
    else:
        raise DateError(f"Text '{text}' could not be parsed: the pattern '{pattern}' has no year")
    try:
        if "yday" in values:
            day = date(year, 1, 1) + timedelta(days=int(values["yday"]) - 1)
        else:
            month = _month_number(values["month_name"]) if "month_name" in values else int(values["month"])
            day = date(year, month, int(values["day"]))
        hour = 0
        if "hour" in values:
            hour = int(values["hour"])
        elif "hour24" in values:
            hour = int(values["hour24"]) % 24
        elif "hour12" in values:
            hour = int(values["hour12"]) % 12
            if values.get("ampm", "AM").upper() == "PM":
                hour += 12
        fraction = values.get("fraction", "")
        micros = int((fraction + "000000")[:6]) if fraction else int(values.get("nano", "0")) // 1000
        moment = datetime.combine(
            day, time(hour, int(values.get("minute", 0)), int(values.get("second", 0)), micros)
        )
    except (KeyError, ValueError) as exc:
        raise DateError(f"Text '{text}' could not be parsed with the pattern '{pattern}': {exc}") from None
    if "zone" in values:
        raw = values["zone"]
        found = zone_of("UTC" + raw[3:] if raw.upper().startswith("GMT") else raw)
        return moment.replace(tzinfo=found.tz)
    return moment.replace(tzinfo=zone.tz)


_BRACKET_ZONE_RE: Final = re.compile(r"^(.*?)\[([^\]]+)\]$")


_ISO_OFFSET_SUFFIX: Final = r"(?:Z|[+-]\d{2}:\d{2}(?::\d{2})?)?"
# Java's ISO date formats without a time; Kestra reads them as LocalDate, so any offset is dropped and
# the day starts at midnight in the zone.
_ISO_DATE_ONLY: Final = {
    "iso_local_date": re.compile(r"(?P<y>[+-]?\d{4,9})-(?P<m>\d{2})-(?P<d>\d{2})"),
    "iso_date": re.compile(r"(?P<y>[+-]?\d{4,9})-(?P<m>\d{2})-(?P<d>\d{2})" + _ISO_OFFSET_SUFFIX),
    "iso_ordinal_date": re.compile(r"(?P<y>[+-]?\d{4,9})-(?P<yd>\d{3})" + _ISO_OFFSET_SUFFIX),
    "iso_week_date": re.compile(r"(?P<y>[+-]?\d{4,9})-W(?P<w>\d{2})-(?P<wd>[1-7])" + _ISO_OFFSET_SUFFIX),
}


def _parse_iso_date_only(text: str, pattern: str, zone: Zone) -> datetime:
    match = _ISO_DATE_ONLY[pattern].fullmatch(text.strip())
    if match is None:
        raise DateError(f"Text '{text}' could not be parsed with the pattern '{pattern}'")
    parts = match.groupdict()
    year = int(parts["y"])
    try:
        if parts.get("yd") is not None:
            if not 1 <= int(parts["yd"]) <= (366 if calendar.isleap(year) else 365):
                raise ValueError("day of year out of range")
            day = date(year, 1, 1) + timedelta(days=int(parts["yd"]) - 1)
        elif parts.get("w") is not None:
            day = date.fromisocalendar(year, int(parts["w"]), int(parts["wd"]))
        else:
            day = date(year, int(parts["m"]), int(parts["d"]))
    except ValueError as exc:
        raise DateError(f"Text '{text}' could not be parsed: {exc}") from None
    return datetime.combine(day, time(0), tzinfo=zone.tz)


def _parse_iso(text: str, zone: Zone) -> datetime:
    stripped = text.strip()
    bracket = _BRACKET_ZONE_RE.match(stripped)
    named: Zone | None = None
    if bracket is not None:
        stripped, named = bracket.group(1), zone_of(bracket.group(2))
    try:
        parsed = datetime.fromisoformat(stripped)
    except ValueError:
        raise DateError(f"Text '{text}' could not be parsed as an ISO date") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=(named or zone).tz)
    return parsed.astimezone(named.tz) if named is not None else parsed


def to_datetime(value: object, zone: Zone, existing_format: str | None = None) -> datetime:
    """Convert a filter input into an aware datetime, the way Kestra's ``AbstractDate.convert`` does.

    Args:
        value: ISO text (zoned, local date-time or date), text in ``existing_format``, a datetime
            (naive ones are read in ``zone``), a date (read as noon) or epoch seconds.
        zone: The zone for zone-less input.
        existing_format: The Java pattern or named format of text input.

    Returns:
        The aware datetime.

    Raises:
        DateError: The value cannot be read as a date.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone.tz)
    if isinstance(value, date):
        return datetime.combine(value, time(12), tzinfo=zone.tz)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC).astimezone(zone.tz)
        except (OverflowError, OSError, ValueError):
            raise DateError(f"Epoch value out of range: {value}") from None
    if isinstance(value, str):
        if existing_format:
            return parse_pattern(value, existing_format, zone)
        return _parse_iso(value, zone)
    raise DateError(f"Unable to convert a value of type {type(value).__name__} to a date")


_TIME_UNITS: Final = {
    "MICROS": timedelta(microseconds=1),
    "MILLIS": timedelta(milliseconds=1),
    "SECONDS": timedelta(seconds=1),
    "MINUTES": timedelta(minutes=1),
    "HOURS": timedelta(hours=1),
    "HALF_DAYS": timedelta(hours=12),
}
_MONTH_UNITS: Final = {"MONTHS": 1, "YEARS": 12, "DECADES": 120, "CENTURIES": 1200, "MILLENNIA": 12000}


def add_to_date(dt: datetime, amount: int, unit: str) -> datetime:
    """Add an amount of a Java ``ChronoUnit`` to an aware datetime, like ``ZonedDateTime.plus``.

    Time units (NANOS ... HALF_DAYS) move the instant; date units (DAYS, WEEKS, MONTHS ...) move the
    local date-time and keep the wall-clock time across daylight-saving changes.

    Args:
        dt: An aware datetime.
        amount: How many units to add (negative to subtract).
        unit: A ``ChronoUnit`` name such as ``DAYS`` or ``HOURS``.

    Returns:
        The new datetime, in the same zone.

    Raises:
        DateError: The unit is unknown or the result is out of range.
    """
    name = unit.strip().upper()
    try:
        if name == "NANOS":
            # Python keeps microseconds: truncate toward zero like Java's integer division.
            micros = abs(amount) // 1000 * (1 if amount >= 0 else -1)
            return (dt.astimezone(UTC) + timedelta(microseconds=micros)).astimezone(dt.tzinfo)
        if name in _TIME_UNITS:
            return (dt.astimezone(UTC) + _TIME_UNITS[name] * amount).astimezone(dt.tzinfo)
        if name in ("DAYS", "WEEKS"):
            days = amount * (7 if name == "WEEKS" else 1)
            return (dt.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=dt.tzinfo)
        if name in _MONTH_UNITS:
            months = dt.year * 12 + dt.month - 1 + amount * _MONTH_UNITS[name]
            year, month = divmod(months, 12)
            month += 1
            day = min(dt.day, calendar.monthrange(year, month)[1]) if 1 <= year <= 9999 else dt.day
            return dt.replace(year=year, month=month, day=day)
    except (OverflowError, ValueError) as exc:
        raise DateError(f"Date out of range after adding {amount} {name}: {exc}") from None
    raise DateError(
        f"Unknown unit '{unit}', expected one of NANOS, MICROS, MILLIS, SECONDS, MINUTES, "
        "HOURS, HALF_DAYS, DAYS, WEEKS, MONTHS, YEARS, DECADES, CENTURIES, MILLENNIA"
    )
