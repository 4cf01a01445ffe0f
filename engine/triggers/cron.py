"""Fire times of a Schedule's cron expression in a time zone.

Daylight saving: a cron names wall-clock slots, and each slot fires at most once.
- A slot that does not exist (spring forward, e.g. 02:30 in Europe/Paris on the last Sunday of
  March) fires once, at the first instant after the gap (03:00 local). Several slots inside one gap
  therefore fire together, once.
- A slot that happens twice (fall back, e.g. 02:30 on the last Sunday of October) fires once, at its
  first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from croniter import croniter

# A wall-clock slot maps to an instant no more than this far from the naive iteration; walking more
# slots than this without passing the reference means the cron has no such instant.
_MAX_STEPS = 100_000


@lru_cache(maxsize=256)
def zone(name: str | None) -> tzinfo:
    """The time zone of a Schedule (`timezone`, default UTC)."""
    return ZoneInfo(name) if name else UTC


def next_fire(cron: str, tz: tzinfo, after: datetime, *, with_seconds: bool = False) -> datetime:
    """The first fire time strictly after `after` (aware), as an aware UTC datetime.

    Raises:
        ValueError: The expression is invalid or never fires.
    """
    return next(fires_after(cron, tz, after, with_seconds=with_seconds))


def fires_after(cron: str, tz: tzinfo, after: datetime, *, with_seconds: bool = False) -> Iterator[datetime]:
    """The fire times strictly after `after`, in order (cheaper than repeated `next_fire`).

    Raises:
        ValueError: The expression is invalid, or it has no (further) fire time.
    """
    walker = _walker(cron, _wall(after, tz), with_seconds)
    last = after
    while True:
        for _ in range(_MAX_STEPS):
            instant = _instant(walker.get_next(datetime), tz)
            if instant > last:
                break
        else:
            raise ValueError(f"cron `{cron}` has no fire time after {last.isoformat()}")
        last = instant
        yield instant


def previous_fire(cron: str, tz: tzinfo, before: datetime, *, with_seconds: bool = False) -> datetime:
    """The last fire time strictly before `before` (aware), as an aware UTC datetime.

    Raises:
        ValueError: The expression is invalid or never fired.
    """
    # Start one hour later in wall time so that a repeated (fall back) hour is walked whole.
    walker = _walker(cron, _wall(before, tz) + timedelta(hours=1, seconds=1), with_seconds)
    for _ in range(_MAX_STEPS):
        instant = _instant(walker.get_prev(datetime), tz)
        if instant < before:
            return instant
    raise ValueError(f"cron `{cron}` has no fire time before {before.isoformat()}")


def _walker(cron: str, start: datetime, with_seconds: bool) -> croniter:
    from croniter import croniter  # loaded by the first schedule: a run or `validate` without one skips it

    return croniter(cron.strip(), start, second_at_beginning=with_seconds)


def _wall(moment: datetime, tz: tzinfo) -> datetime:
    """The naive local wall-clock time of an aware instant."""
    if moment.tzinfo is None:
        raise ValueError("fire times are computed from aware datetimes")
    return moment.astimezone(tz).replace(tzinfo=None, fold=0)


def _instant(wall: datetime, tz: tzinfo) -> datetime:
    """The instant of a wall-clock slot: its first occurrence, or the end of the gap it falls in."""
    first = wall.replace(tzinfo=tz, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) == wall:
        return utc
    return _gap_end(wall.replace(tzinfo=tz, fold=1).astimezone(UTC), utc, tz)


def _gap_end(low: datetime, high: datetime, tz: tzinfo) -> datetime:
    """The first instant in [low, high] with the offset after the transition (to the second)."""
    after = high.astimezone(tz).utcoffset()
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == after:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)
