"""The Schedule trigger's time arithmetic: its slots, where its next slot starts, and its dates.

A slot is a date the cron names in the schedule's time zone. Where a trigger goes on from follows
Kestra's rules:
- A new trigger starts from now; a trigger whose cron changed continues from its last fired date.
- After downtime, `recoverMissedSchedules` decides: ALL fires every missed slot, LAST only the most
  recent one, NONE none of them (default ALL). A cron edited since the last fire goes on from the
  last fired date, under `recoverMissedSchedules` too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from ..model import Label, TriggerSpec
from ..store import TriggerRow
from ..tasks.core import labels_of
from .cron import fires_after, next_fire, previous_fire, zone

TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Schedule:
    """The properties of a Schedule trigger the scheduler uses."""

    cron: str
    tz: tzinfo
    with_seconds: bool
    conditions: tuple[Mapping[str, Any], ...]
    inputs: Mapping[str, Any]
    labels: tuple[Label, ...]
    stop_after: frozenset[str]
    recover: str
    allow_concurrent: bool
    # What, when it changes, makes the trigger start again from its last fired date.
    signature: str

    @staticmethod
    def of(spec: TriggerSpec) -> Schedule:
        props = spec.props
        cron = str(props.get("cron") or "")
        timezone = str(props.get("timezone") or "UTC")
        with_seconds = bool(props.get("withSeconds", False))
        conditions = [*(props.get("conditions") or ()), *(props.get("scheduleConditions") or ())]
        return Schedule(
            cron=cron,
            tz=zone(timezone),
            with_seconds=with_seconds,
            conditions=tuple(conditions),
            inputs=dict(props.get("inputs") or {}),
            labels=tuple(labels_of(props["labels"])) if props.get("labels") else (),
            stop_after=frozenset(str(state) for state in props.get("stopAfter") or ()),
            recover=str(props.get("recoverMissedSchedules") or "ALL"),
            allow_concurrent=bool(props.get("allowConcurrent", False)),
            signature=f"{cron}|{timezone}|{with_seconds}",
        )

    def after(self, moment: datetime) -> datetime:
        """The first slot after `moment`."""
        return next_fire(self.cron, self.tz, moment, with_seconds=self.with_seconds)

    def before(self, moment: datetime) -> datetime:
        """The last slot before `moment` (raises ValueError when there is none)."""
        return previous_fire(self.cron, self.tz, moment, with_seconds=self.with_seconds)

    def first_from(self, now: datetime) -> datetime:
        """The first slot at or after `now`."""
        return self.after(now - TICK)

    def previous(self, slot: datetime) -> datetime | None:
        """The slot before `slot`, or None."""
        try:
            return self.before(slot)
        except ValueError:
            return None

    def due(self, first: datetime | None, until: datetime, limit: int) -> tuple[list[datetime], datetime]:
        """Up to `limit` slots from `first` up to `until`, and the slot that follows them."""
        if first is None or first > until or limit <= 0:
            return [], first or until
        slots = [first]
        for date in fires_after(self.cron, self.tz, first, with_seconds=self.with_seconds):
            if date > until or len(slots) >= limit:
                return slots, date
            slots.append(date)
        raise AssertionError("fires_after never ends")

    def recovered(self, next_date: datetime, now: datetime) -> datetime:
        """The next slot to fire once `recoverMissedSchedules` is applied to the missed ones."""
        if next_date >= now:
            return next_date
        if self.recover == "NONE":
            return self.first_from(now)
        if self.recover == "LAST":
            return max(self.before(now), next_date)
        return next_date

    def format(self, moment: datetime | None) -> str | None:
        """A trigger date as Kestra shows it: ISO 8601 in the schedule's time zone."""
        if moment is None:
            return None
        text = moment.astimezone(self.tz).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text


def starting_row(row: TriggerRow, schedule: Schedule | None, now: datetime, *, recover: bool) -> TriggerRow:
    """A trigger's state as the scheduler takes it up: where its next slot is, at `now`.

    A new schedule starts from now, a changed one from its last fired date; with `recover` (the
    engine starting after downtime), missed slots are kept or dropped as the policy says.
    """
    if schedule is None:
        return row
    if row.next_date is None or row.schedule != schedule.signature:
        anchor = row.last_date if row.last_date is not None and row.schedule is not None else None
        if anchor is None:
            start = schedule.first_from(now)
        else:
            start = schedule.recovered(schedule.after(anchor), now)
        return dataclasses.replace(row, next_date=start, schedule=schedule.signature)
    if recover:
        next_date = schedule.recovered(row.next_date, now)
        if next_date != row.next_date:
            return dataclasses.replace(row, next_date=next_date)
    return row


__all__ = ["TICK", "Schedule", "starting_row"]
