"""Timestamps in Kestra's instant format, formatted once per log line and read back as stored."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tiercel.engine.model import LogEntry, LogLevel, iso
from tiercel.engine.store import Store


def strftime_iso(moment: datetime) -> str:
    """The format as it was first written: strftime, then the milliseconds cut (not rounded)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


MOMENTS = [
    datetime(2024, 3, 1, 12, 30, 45, 123999, tzinfo=UTC),
    datetime(2024, 3, 1, 12, 30, 45, 0, tzinfo=UTC),
    datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2024, 10, 27, 2, 30, 0, 500, tzinfo=ZoneInfo("Europe/Paris")),
    datetime(2024, 10, 27, 2, 30, 0, 500, fold=1, tzinfo=ZoneInfo("Europe/Paris")),
    datetime(2024, 6, 1, 8, 0, 0, 42000, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2024, 6, 1, 8, 0, 0, 42000),  # naive: local time, as astimezone takes it
    datetime(999, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),  # a year strftime does not pad
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_iso_is_the_instant_format_it_always_was(moment: datetime) -> None:
    assert iso(moment) == strftime_iso(moment)
    assert iso(moment) == strftime_iso(moment)  # the same moment again, as consecutive log lines


def test_iso_of_consecutive_moments_follows_each() -> None:
    start = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
    moments = [start + timedelta(microseconds=step * 700) for step in range(5000)]
    assert [iso(moment) for moment in moments] == [strftime_iso(moment) for moment in moments]
    paris = moments[10].astimezone(ZoneInfo("Europe/Paris"))
    assert iso(moments[10]) == iso(paris) == strftime_iso(paris)
    assert iso(None) is None


def entry(moment: datetime, message: str = "a line") -> LogEntry:
    return LogEntry("exec", "acme", "flow", moment, LogLevel.INFO, message, "task", "run", 0)


def test_a_log_line_formats_its_timestamp_once_and_anew_when_it_changes() -> None:
    moment = datetime(2024, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
    line = entry(moment)
    assert line.stamp == "2024-03-01T12:30:45.123Z" == line.to_json()["timestamp"]
    later = dataclasses.replace(line, timestamp=moment + timedelta(seconds=1))
    assert later.stamp == "2024-03-01T12:30:46.123Z"
    masked = dataclasses.replace(line, message="******")
    assert masked.stamp == line.stamp
    assert masked == dataclasses.replace(entry(moment), message="******")  # the stamp is not compared


async def test_log_lines_read_back_keep_the_stored_timestamp(tmp_path: Path) -> None:
    moments = [datetime(2024, 3, 1, 12, 0, 0, 1000 * n, tzinfo=UTC) for n in (0, 1, 1, 999)]
    async with await Store.open(tmp_path / "t.db") as store:
        await store.append_logs([entry(moment, f"line {n}") for n, moment in enumerate(moments)])
        read = [line for _, line in await store.logs("exec")]
    assert [line.message for line in read] == ["line 0", "line 1", "line 2", "line 3"]
    assert [line.timestamp for line in read] == moments
    assert [line.stamp for line in read] == [strftime_iso(moment) for moment in moments]
