"""Backfills: a Schedule trigger fires every slot of a past range, on command.

A backfill is stored with its trigger's state (the row's `backfill`), so it goes on after a
restart where it stopped. It fires its slots as the schedule does: in order, one at a time unless
the trigger allows concurrent executions, each slot at most once (its fire record is keyed by the
slot and the backfill). Its executions carry the backfill's inputs and labels, and the label
`system.backfill: true`. A paused backfill keeps its progress; a cancelled one stops for good.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..model import Label, iso, new_id, parse_iso
from .slots import TICK, Schedule
from .state import BackfillProgress, SchedulerError

BACKFILL_LABEL = "system.backfill"

Backfill = Mapping[str, Any]


def checked_range(start: datetime, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The range [start, end] a backfill asked for (end: now).

    Raises:
        SchedulerError: A date without a time zone, or an end before the start.
    """
    if start.tzinfo is None or (end is not None and end.tzinfo is None):
        raise SchedulerError("backfill dates need a time zone, e.g. 2025-01-01T00:00:00Z")
    end = end or now
    if end < start:
        raise SchedulerError(f"backfill end {iso(end)} is before its start {iso(start)}")
    return start, end


def new_backfill(
    trigger_id: str,
    schedule: Schedule,
    under_way: Backfill | None,
    start: datetime,
    end: datetime,
    inputs: Mapping[str, Any] | None,
    labels: Sequence[Label],
) -> dict[str, Any]:
    """A new backfill of the trigger's slots in [start, end], as stored.

    Raises:
        SchedulerError: The trigger has a backfill under way already.
    """
    current = BackfillProgress.of(under_way)
    if current is not None and current.status in ("RUNNING", "PAUSED"):
        raise SchedulerError(
            f"trigger `{trigger_id}` already has a backfill under way ({current.fired} fired): "
            "cancel it first"
        )
    first = schedule.after(start - TICK)
    return {
        "id": new_id(),
        "start": iso(start),
        "end": iso(end),
        "current": iso(first) if first <= end else None,
        "fired": 0,
        "skipped": 0,
        "status": "RUNNING" if first <= end else "DONE",
        "inputs": dict(inputs or {}),
        "labels": [{"key": label.key, "value": label.value} for label in labels],
    }


def with_status(
    trigger_id: str, data: Backfill | None, allowed: tuple[str, ...], status: str
) -> dict[str, Any]:
    """The backfill with its new status (pause, resume, cancel).

    Raises:
        SchedulerError: No backfill, or one whose status does not allow the change.
    """
    if not data or data.get("status") not in allowed:
        now = data.get("status", "").lower() if data else "none"
        raise SchedulerError(f"trigger `{trigger_id}` has no backfill to {status.lower()} (it is {now})")
    return {**data, "status": status}


def is_running(data: Backfill | None) -> bool:
    return data is not None and data.get("status") == "RUNNING"


def due(schedule: Schedule, data: Backfill, limit: int) -> tuple[list[datetime], datetime]:
    """Up to `limit` slots of the backfill still to fire, and the slot that follows them."""
    current = parse_iso(data["current"]) if data.get("current") else None
    return schedule.due(current, parse_iso(data["end"]), limit)


def advanced(data: Backfill, upcoming: datetime, *, fired: bool) -> dict[str, Any]:
    """The backfill once a slot fired (or was skipped) and `upcoming` is next."""
    moved = dict(data)
    end = parse_iso(moved["end"])
    moved["current"] = iso(upcoming) if upcoming <= end else None
    counter = "fired" if fired else "skipped"
    moved[counter] = int(moved.get(counter, 0)) + 1
    if upcoming > end:
        moved["status"] = "DONE"
    return moved


def fire_key(slot: datetime, backfill: Backfill | None) -> str:
    """The key of a slot's fire record: a backfill fires slots the schedule may have fired too."""
    key = iso(slot) or ""
    return key if backfill is None else f"{key}#backfill:{backfill['id']}"


def execution_values(
    inputs: Mapping[str, Any], labels: Sequence[Label], backfill: Backfill | None
) -> tuple[dict[str, Any], list[Label]]:
    """The inputs and labels of a slot's execution: the trigger's, and the backfill's over them."""
    merged = dict(inputs)
    all_labels = list(labels)
    if backfill is not None:
        merged.update(backfill.get("inputs") or {})
        all_labels.extend(Label(item["key"], item["value"]) for item in backfill.get("labels") or ())
        all_labels.append(Label(BACKFILL_LABEL, "true"))
    return merged, all_labels


__all__ = [
    "BACKFILL_LABEL",
    "Backfill",
    "advanced",
    "checked_range",
    "due",
    "execution_values",
    "fire_key",
    "is_running",
    "new_backfill",
    "with_status",
]
