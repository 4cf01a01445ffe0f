"""Kestra's calendar functions: dayOfWeek(), dayOfMonth(), monthOfYear(), hourOfDay(), isWeekend(),
isDayWeekInMonth(), isLastWorkingDay() and isDateBetween().

Each reads its date the way Java's ``java.time`` parsers do (Kestra's ``DateUtils.parseLocalDate``): an
ISO date (``2025-01-06``), an ISO date-time with an offset and an optional zone id
(``2025-01-06T14:30:00+02:00[Europe/Paris]``) or a local ISO date-time (``2025-01-06T14:30``). The day is
the one written in the text, never converted to UTC: ``2025-01-06T00:30:00+02:00`` is a Monday.
"""

from __future__ import annotations

import calendar
import functools
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Final

from .core import RenderFailure, current_state, fail_if_undefined

__all__ = ["CALENDAR_FUNCTIONS"]

_DAYS: Final = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
_POSITIONS: Final = ("FIRST", "SECOND", "THIRD", "FOURTH", "LAST")
_DEFAULT_WORKING_DAYS: Final = frozenset(range(5))

_DATE: Final = r"(?P<year>[+-]?\d{4,9})-(?P<month>\d{2})-(?P<day>\d{2})"
_TIME: Final = r"(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
_OFFSET: Final = r"(?P<offset>Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)"
_LOCAL_DATE: Final = re.compile(_DATE)
_LOCAL_DATE_TIME: Final = re.compile(rf"{_DATE}T{_TIME}")
_ZONED_DATE_TIME: Final = re.compile(rf"{_DATE}T{_TIME}{_OFFSET}(?:\[(?P<zone>[^\]]+)\])?")


def _local_date(match: re.Match[str]) -> date:
    try:
        return date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError as exc:
        raise ValueError(f"Text '{match.string}' could not be parsed: {exc}") from None


def _offset(text: str) -> timezone:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes, seconds = int(digits[:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    if hours > 18 or minutes > 59 or seconds > 59:
        raise ValueError(f"invalid offset '{text}'")
    return timezone(sign * timedelta(hours=hours, minutes=minutes, seconds=seconds))


def _date_time(match: re.Match[str], zone: timezone | None) -> datetime:
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    try:
        return datetime(
            int(match["year"]), int(match["month"]), int(match["day"]),
            int(match["hour"]), int(match["minute"]), int(match["second"] or 0), int(fraction),
            tzinfo=zone,
        )  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"Text '{match.string}' could not be parsed: {exc}") from None


def _parse_local_date(value: Any) -> date:
    """Kestra's ``DateUtils.parseLocalDate``: an ISO date, zoned date-time or local date-time."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value)
    for pattern in (_LOCAL_DATE, _ZONED_DATE_TIME, _LOCAL_DATE_TIME):
        match = pattern.fullmatch(text)
        if match is not None:
            if match.re is _ZONED_DATE_TIME:
                _offset(match["offset"])
            if match.re is not _LOCAL_DATE:
                _date_time(match, None)
            return _local_date(match)
    raise ValueError(f"Text '{text}' could not be parsed as an ISO date or date-time")


def _argument(function: str, name: str, value: Any) -> Any:
    fail_if_undefined(value)
    if value is None:
        raise RenderFailure(f"The '{function}()' function expects a '{name}' argument.")
    return value


def _date_argument(function: str, value: Any) -> date:
    current_state().check_time()
    try:
        return _parse_local_date(_argument(function, "date", value))
    except ValueError as exc:
        raise RenderFailure(f"The '{function}()' function could not parse 'date': {exc}") from None


def _day_of_week(function: str, name: str, value: Any) -> int:
    try:
        return _DAYS.index(str(value).upper())
    except ValueError:
        raise RenderFailure(
            f"The '{function}()' function received an invalid '{name}' value: '{value}'. "
            f"Expected one of: {', '.join(_DAYS)}."
        ) from None


def fn_day_of_week(date: Any = None) -> str:
    """``dayOfWeek(date)``: the day's English name in capitals (``MONDAY`` ... ``SUNDAY``)."""
    return _DAYS[_date_argument("dayOfWeek", date).weekday()]


def fn_day_of_month(date: Any = None) -> int:
    """``dayOfMonth(date)``: the day of the month, 1 to 31."""
    return _date_argument("dayOfMonth", date).day


def fn_month_of_year(date: Any = None) -> int:
    """``monthOfYear(date)``: the month, 1 to 12."""
    return _date_argument("monthOfYear", date).month


def fn_hour_of_day(date: Any = None) -> int:
    """``hourOfDay(date)``: the hour (0 to 23) written in a date-time, with or without an offset."""
    current_state().check_time()
    value = _argument("hourOfDay", "date", date)
    if isinstance(value, datetime):
        return value.hour
    text = str(value)
    for pattern in (_ZONED_DATE_TIME, _LOCAL_DATE_TIME):
        match = pattern.fullmatch(text)
        if match is not None:
            try:
                if match.re is _ZONED_DATE_TIME:
                    _offset(match["offset"])
                return _date_time(match, None).hour
            except ValueError as exc:
                raise RenderFailure(f"The 'hourOfDay()' function could not parse 'date': {exc}") from None
    raise RenderFailure(
        f"The 'hourOfDay()' function could not parse 'date': Text '{text}' could not be parsed"
    )


def fn_is_weekend(date: Any = None) -> bool:
    """``isWeekend(date)``: whether the day is a Saturday or a Sunday."""
    return _date_argument("isWeekend", date).weekday() >= 5


def fn_is_day_week_in_month(date: Any = None, dayOfWeek: Any = None, position: Any = None) -> bool:
    """``isDayWeekInMonth(date, dayOfWeek, position)``: whether the day is the FIRST, SECOND, THIRD,
    FOURTH or LAST given weekday of its month."""
    name = "isDayWeekInMonth"
    day = _date_argument(name, date)
    weekday = _day_of_week(name, "dayOfWeek", _argument(name, "dayOfWeek", dayOfWeek))
    where = str(_argument(name, "position", position)).upper()
    if where not in _POSITIONS:
        raise RenderFailure(
            f"The '{name}()' function received an invalid 'position' value: '{position}'. "
            f"Expected one of: {', '.join(_POSITIONS)}."
        )
    if where == "LAST":
        last = day.replace(day=calendar.monthrange(day.year, day.month)[1])
        return day == last - timedelta(days=(last.weekday() - weekday) % 7)
    first = day.replace(day=1)
    first += timedelta(days=(weekday - first.weekday()) % 7)
    # SECOND to FOURTH count whole weeks from the first: they may fall in the next month.
    return day == first + timedelta(weeks=_POSITIONS.index(where))


def fn_is_last_working_day(date: Any = None, workingDays: Any = None) -> bool:
    """``isLastWorkingDay(date, workingDays)``: whether the day is the last working day of its month.

    ``workingDays`` lists day names separated by commas or spaces; Monday to Friday by default.
    """
    name = "isLastWorkingDay"
    day = _date_argument(name, date)
    fail_if_undefined(workingDays)
    working = _DEFAULT_WORKING_DAYS
    if workingDays is not None and str(workingDays).strip():
        parts = [part for part in re.split(r"[,\s]+", str(workingDays)) if part.strip()]
        working = frozenset(_day_of_week(name, "workingDays", part.strip()) for part in parts)
        if not working:
            raise RenderFailure(f"The '{name}()' function requires at least one valid day in 'workingDays'.")
    if day.weekday() not in working:
        return False
    candidate = day.replace(day=calendar.monthrange(day.year, day.month)[1])
    while candidate.weekday() not in working:
        candidate -= timedelta(days=1)
    return day == candidate


def _instant(name: str, value: Any) -> datetime:
    fail_if_undefined(value)
    if value is None:
        raise RenderFailure(f"The 'isDateBetween()' function expects a '{name}' argument.")
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    match = _ZONED_DATE_TIME.fullmatch(str(value)) if isinstance(value, str) else None
    try:
        if match is None:
            raise ValueError(f"'{value}' is not an ISO 8601 date-time with an offset")
        return _date_time(match, _offset(match["offset"]))
    except ValueError as exc:
        raise RenderFailure(f"The 'isDateBetween()' function could not parse '{name}': {exc}") from None


def fn_is_date_between(date: Any = None, after: Any = None, before: Any = None) -> bool:
    """``isDateBetween(date, after, before)``: whether the instant is strictly between the two bounds.

    The three are compared as instants, so that different offsets compare right; each needs an offset.
    """
    current_state().check_time()
    moment, low, high = _instant("date", date), _instant("after", after), _instant("before", before)
    return low < moment < high


@functools.lru_cache(maxsize=64)
def holiday_calendar(country: str, subdivision: str | None) -> Any:
    """The public holidays of a country (or of one of its subdivisions), by the `holidays` package,
    the counterpart of the Jollyday calendars Kestra uses; years are filled in as they are asked.

    Raises:
        NotImplementedError: For a country or subdivision the package does not know.
    """
    import holidays  # loaded by the first holiday asked for only

    return holidays.country_holidays(country, subdiv=subdivision)


def fn_is_public_holiday(date: Any = None, countryCode: Any = None, subDivision: Any = None) -> bool:
    """``isPublicHoliday(date, countryCode, subDivision)``: whether the day is a public holiday of the
    country (or of its subdivision; a blank one means the country), as Kestra's function says."""
    day = _date_argument("isPublicHoliday", date)
    if countryCode is None:
        raise RenderFailure("The 'isPublicHoliday()' function expects a 'countryCode' argument.")
    subdivision = str(subDivision).strip().upper() if subDivision is not None else ""
    try:
        calendar = holiday_calendar(str(countryCode).strip().upper(), subdivision or None)
    except NotImplementedError as error:
        raise RenderFailure(f"The 'isPublicHoliday()' function: {error}") from None
    return day in calendar


CALENDAR_FUNCTIONS: Final = {
    "dayOfMonth": fn_day_of_month,
    "dayOfWeek": fn_day_of_week,
    "hourOfDay": fn_hour_of_day,
    "isDateBetween": fn_is_date_between,
    "isDayWeekInMonth": fn_is_day_week_in_month,
    "isLastWorkingDay": fn_is_last_working_day,
    "isPublicHoliday": fn_is_public_holiday,
    "isWeekend": fn_is_weekend,
    "monthOfYear": fn_month_of_year,
}
