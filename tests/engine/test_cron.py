"""Fire times of a cron in a time zone, across daylight-saving changes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from tiercel.engine.triggers.cron import next_fire, previous_fire, zone

PARIS = zone("Europe/Paris")


def fires(
    cron: str, tz_name: str, start: datetime, end: datetime, with_seconds: bool = False
) -> list[datetime]:
    tz = zone(tz_name)
    found, moment = [], start
    while True:
        moment = next_fire(cron, tz, moment, with_seconds=with_seconds)
        if moment >= end:
            return found
        found.append(moment)


def test_every_five_minutes_in_utc() -> None:
    day = fires(
        "*/5 * * * *",
        "UTC",
        datetime(2025, 1, 1, tzinfo=UTC) - timedelta(seconds=1),
        datetime(2025, 1, 2, tzinfo=UTC),
    )
    assert len(day) == 288
    assert day[0] == datetime(2025, 1, 1, tzinfo=UTC)
    assert all(b - a == timedelta(minutes=5) for a, b in itertools.pairwise(day))


def test_next_is_strictly_after() -> None:
    moment = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
    assert next_fire("0 9 * * *", UTC, moment) == datetime(2025, 1, 2, 9, 0, tzinfo=UTC)
    assert previous_fire("0 9 * * *", UTC, moment) == datetime(2024, 12, 31, 9, 0, tzinfo=UTC)


def test_spring_forward_slot_fires_once_after_the_gap() -> None:
    found = fires(
        "30 2 * * *", "Europe/Paris", datetime(2025, 3, 28, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)
    )
    on_day = [moment for moment in found if moment.astimezone(PARIS).date().isoformat() == "2025-03-30"]
    assert on_day == [datetime(2025, 3, 30, 1, 0, tzinfo=UTC)]  # 03:00 CEST, first instant after the gap
    assert len(found) == 4


def test_fall_back_slot_fires_once_at_first_occurrence() -> None:
    found = fires(
        "30 2 * * *", "Europe/Paris", datetime(2025, 10, 24, tzinfo=UTC), datetime(2025, 10, 28, tzinfo=UTC)
    )
    on_day = [moment for moment in found if moment.astimezone(PARIS).date().isoformat() == "2025-10-26"]
    assert on_day == [datetime(2025, 10, 26, 0, 30, tzinfo=UTC)]  # 02:30 CEST, not 02:30 CET
    assert len(found) == 4


def test_repeated_hour_is_walked_once() -> None:
    start = datetime(2025, 10, 26, 0, 0, tzinfo=UTC)
    found = fires("*/15 * * * *", "Europe/Paris", start, start + timedelta(hours=3))
    walls = [moment.astimezone(PARIS).strftime("%H:%M") for moment in found]
    assert walls == sorted(set(walls))  # each wall-clock slot once
    assert "02:15" in walls and walls.count("02:15") == 1
    # 02:15-02:45 CEST, then the repeated 02:xx CET hour does not fire again, then 03:xx CET.
    assert walls == ["02:15", "02:30", "02:45", "03:00", "03:15", "03:30", "03:45"]


def test_gap_slots_collapse_to_one_fire() -> None:
    start = datetime(2025, 3, 30, 0, 0, tzinfo=UTC)  # 01:00 CET
    found = fires("*/20 * * * *", "Europe/Paris", start, start + timedelta(hours=2))
    walls = [moment.astimezone(PARIS).strftime("%H:%M") for moment in found]
    assert walls == ["01:20", "01:40", "03:00", "03:20", "03:40"]


def test_previous_skips_the_repeated_hour() -> None:
    # 02:30 CET (second occurrence) is not a fire; the one before it is 02:15 CEST.
    before = datetime(2025, 10, 26, 1, 30, tzinfo=UTC)
    assert previous_fire("*/15 * * * *", PARIS, before) == datetime(2025, 10, 26, 0, 45, tzinfo=UTC)


def test_nicknames_and_seconds() -> None:
    moment = datetime(2025, 5, 5, 10, 0, tzinfo=UTC)
    assert next_fire("@daily", UTC, moment) == datetime(2025, 5, 6, tzinfo=UTC)
    assert next_fire("@hourly", UTC, moment) == datetime(2025, 5, 5, 11, tzinfo=UTC)
    assert next_fire("*/10 * * * * *", UTC, moment, with_seconds=True) == moment + timedelta(seconds=10)


def test_time_zone_offsets_the_wall_clock() -> None:
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    assert next_fire("0 9 * * *", zone("America/New_York"), moment) == datetime(2025, 1, 1, 14, tzinfo=UTC)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError):
        next_fire("* * * * *", UTC, datetime(2025, 1, 1))
