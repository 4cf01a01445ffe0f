"""States of executions and task runs, their history, and the time helpers they use."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any


class StateType(StrEnum):
    """Kestra's execution and task run states."""

    CREATED = "CREATED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    RESTARTED = "RESTARTED"
    KILLING = "KILLING"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILED = "FAILED"
    KILLED = "KILLED"
    CANCELLED = "CANCELLED"
    QUEUED = "QUEUED"
    RETRYING = "RETRYING"
    RETRIED = "RETRIED"
    SKIPPED = "SKIPPED"
    BREAKPOINT = "BREAKPOINT"
    RESUBMITTED = "RESUBMITTED"

    @property
    def is_terminated(self) -> bool:
        return self in _TERMINATED

    @property
    def is_running(self) -> bool:
        return self in (StateType.RUNNING, StateType.KILLING)


_TERMINATED = frozenset(
    {
        StateType.SUCCESS,
        StateType.WARNING,
        StateType.FAILED,
        StateType.KILLED,
        StateType.CANCELLED,
        StateType.SKIPPED,
        StateType.RETRIED,
    }
)


def utcnow() -> datetime:
    """Now, to the millisecond: the precision dates are stored and shown with (see `iso`), so an
    execution in memory holds the very dates a reader of the store gets back."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


def iso(moment: datetime | None) -> str | None:
    """Kestra's instant format: ISO 8601 in UTC with milliseconds and a Z."""
    return None if moment is None else iso_text(moment)


# The last moment formatted (in UTC) and its text: the lines a busy task prints within one millisecond
# share their timestamp (`utcnow`), formatted once. Replaced whole, so threads may share it.
_last_iso: tuple[datetime | None, str] = (None, "")


def iso_text(moment: datetime) -> str:
    """`iso` of a moment that is given."""
    global _last_iso
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)  # a naive moment is taken as local time, as astimezone does
    last = _last_iso
    if moment == last[0]:  # both in UTC: equal fields are the same instant (no fold to tell apart)
        return last[1]
    if moment.year < 1000:  # strftime does not pad such years: keep what they always printed
        text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    else:
        # isoformat cuts to milliseconds like the division above, at about half the cost of strftime.
        text = moment.isoformat(timespec="milliseconds")[:-6] + "Z"
    _last_iso = (moment, text)
    return text


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_id() -> str:
    """A 22-character random id, shaped like Kestra's short UUIDs (22 base62 characters).

    Each character is a random byte below 248 (4 x 62) taken modulo 62, so all are equally likely;
    a byte above is drawn again. One read of 32 bytes nearly always gives the 22 characters.
    """
    found = ""
    while len(found) < 22:
        found += "".join(_ID_ALPHABET[byte % 62] for byte in secrets.token_bytes(32) if byte < 248)
    return found[:22]


@dataclass(frozen=True, slots=True)
class History:
    state: StateType
    date: datetime
    # `iso(date)`, formatted once: a state is written to the store and answered many times.
    text: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", iso_text(self.date))


@dataclass(frozen=True, slots=True)
class State:
    """A current state and every state it went through, oldest first."""

    current: StateType
    histories: tuple[History, ...]

    @staticmethod
    def new(state: StateType = StateType.CREATED, at: datetime | None = None) -> State:
        return State(state, (History(state, at or utcnow()),))

    def to(self, state: StateType, at: datetime | None = None) -> State:
        return State(state, (*self.histories, History(state, at or utcnow())))

    @property
    def start_date(self) -> datetime:
        return self.histories[0].date

    @property
    def end_date(self) -> datetime | None:
        return self.histories[-1].date if self.current.is_terminated else None

    def duration(self, now: datetime | None = None) -> timedelta:
        return (self.end_date or now or utcnow()) - self.start_date

    def first_date(self, state: StateType) -> datetime | None:
        return next((h.date for h in self.histories if h.state is state), None)

    def to_json(self) -> dict[str, Any]:
        end = self.end_date
        return {
            "current": self.current.value,
            "histories": [{"state": h.state.value, "date": h.text} for h in self.histories],
            "startDate": self.histories[0].text,
            **(
                {"endDate": self.histories[-1].text, "duration": _duration_text(end - self.start_date)}
                if end
                else {}
            ),
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> State:
        return State(
            StateType(data["current"]),
            tuple(History(StateType(h["state"]), parse_iso(h["date"])) for h in data["histories"]),
        )


def _duration_text(delta: timedelta) -> str:
    """ISO 8601 duration, as Java prints it (PT1.234S)."""
    seconds = delta.total_seconds()
    return f"PT{seconds:.3f}S".replace(".000S", "S")
