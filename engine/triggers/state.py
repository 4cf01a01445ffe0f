"""Trigger state: what listings show of a trigger, and the stored state the scheduler keeps.

Every trigger has one stored row (store `TriggerRow`): whether it is enabled by command, its last
and next dates (Schedule triggers), and its backfill. The rows of triggers whose flow is gone are
kept: the flow may come back. Every change of a row is published as a TriggerChanged event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..events import EventBus, TriggerChanged
from ..model import Flow, TriggerSpec, parse_iso
from ..store import TriggerRow
from .host import TriggerStateStore
from .slots import Schedule

TriggerKey = tuple[str, str, str]


class SchedulerError(Exception):
    """A trigger command cannot be carried out (unknown trigger, bad backfill range ...)."""


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """A backfill of a Schedule trigger and how far it went.

    Attributes:
        status: RUNNING, PAUSED, CANCELLED or DONE.
        current: The next slot to fire (None once there is none left).
    """

    id: str
    start: datetime
    end: datetime
    current: datetime | None
    fired: int
    skipped: int
    status: str

    @property
    def fraction(self) -> float:
        """How much of the range is done, by time (0.0 to 1.0)."""
        if self.current is None or self.status == "DONE":
            return 1.0
        span = (self.end - self.start).total_seconds()
        return 1.0 if span <= 0 else min(max((self.current - self.start).total_seconds() / span, 0.0), 1.0)

    @staticmethod
    def of(data: Mapping[str, Any] | None) -> BackfillProgress | None:
        """The progress of a stored backfill (a trigger row's `backfill`), or None."""
        if not data:
            return None
        return BackfillProgress(
            id=str(data["id"]),
            start=parse_iso(data["start"]),
            end=parse_iso(data["end"]),
            current=parse_iso(data["current"]) if data.get("current") else None,
            fired=int(data.get("fired", 0)),
            skipped=int(data.get("skipped", 0)),
            status=str(data["status"]),
        )


@dataclass(frozen=True, slots=True)
class TriggerState:
    """A trigger of a current flow, for listings (CLI, dashboard).

    Attributes:
        enabled: Enabled by command (the default); `disabled` is the flow's own `disabled`.
        next_date: The next slot the scheduler looks at (Schedule triggers only).
    """

    namespace: str
    flow_id: str
    trigger_id: str
    type: str
    enabled: bool
    disabled: bool
    last_date: datetime | None
    next_date: datetime | None
    backfill: BackfillProgress | None


@dataclass
class LiveTrigger:
    """A trigger of a current flow and its state (the last state written to the store).

    Attributes:
        schedule: The Schedule trigger's properties (None for other trigger types).
        running: The executions it fired that have not ended.
        retry_at: When to try again after a failure (None: as its slots come).
    """

    flow: Flow
    spec: TriggerSpec
    schedule: Schedule | None
    row: TriggerRow
    running: set[str] = field(default_factory=set)
    retry_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.row.enabled and not self.spec.disabled and not self.flow.disabled

    @property
    def stop_after(self) -> frozenset[str]:
        """The execution states that disable the trigger (Kestra's AbstractTrigger `stopAfter`)."""
        return frozenset(str(state) for state in self.spec.props.get("stopAfter") or ())

    def blocked(self) -> bool:
        """A non-concurrent trigger (schedule, polling) waits for its running execution."""
        return bool(self.running) and not bool(self.spec.props.get("allowConcurrent", False))

    def state(self) -> TriggerState:
        row = self.row
        return TriggerState(
            namespace=row.namespace,
            flow_id=row.flow_id,
            trigger_id=row.trigger_id,
            type=self.spec.type,
            enabled=row.enabled,
            disabled=self.spec.disabled or self.flow.disabled,
            last_date=row.last_date,
            next_date=row.next_date if self.schedule is not None else None,
            backfill=BackfillProgress.of(row.backfill),
        )


def key_of(row: TriggerRow) -> TriggerKey:
    return (row.namespace, row.flow_id, row.trigger_id)


def switched(row: TriggerRow, enabled: bool) -> TriggerRow:
    """A trigger's stored state after a command that ran while no engine did.

    Switched on, a schedule starts again from the first slot after the next engine starts, as
    `Scheduler.set_enabled` does, rather than catching up from its last fire.
    """
    if not enabled:
        return dataclasses.replace(row, enabled=False)
    return dataclasses.replace(row, enabled=True, next_date=None, schedule=None)


class TriggerStates:
    """Every stored trigger state, and its writes: each one stored, remembered and published."""

    def __init__(self, store: TriggerStateStore, events: EventBus) -> None:
        self._store = store
        self._events = events
        self._rows: dict[TriggerKey, TriggerRow] = {}

    async def load(self) -> None:
        """Read every stored trigger state."""
        self._rows = {key_of(row): row for row in await self._store.trigger_rows()}

    def get(self, key: TriggerKey) -> TriggerRow | None:
        """The trigger's stored state, or None."""
        return self._rows.get(key)

    async def save(self, found: LiveTrigger, row: TriggerRow) -> None:
        """Store the live trigger's new state."""
        await self._store.save_trigger(row)
        found.row = row
        self.written(found)

    def remember(self, found: LiveTrigger) -> None:
        """Take the live trigger's state as the stored one (its write is under way)."""
        self._rows[key_of(found.row)] = found.row

    def written(self, found: LiveTrigger) -> None:
        """The live trigger's state was stored (alone or with a fire)."""
        self.remember(found)
        self._events.publish(TriggerChanged(*key_of(found.row)))

    async def switch_stored(self, key: TriggerKey, enabled: bool) -> None:
        """Switch a trigger in the store alone, as `switched` describes (no scheduler runs)."""
        rows = {key_of(row): row for row in await self._store.trigger_rows()}
        row = rows.get(key) or TriggerRow(*key)
        if row.enabled != enabled:
            row = switched(row, enabled)
            await self._store.save_trigger(row)
            self._rows[key] = row


__all__ = [
    "BackfillProgress",
    "LiveTrigger",
    "SchedulerError",
    "TriggerKey",
    "TriggerState",
    "TriggerStates",
    "key_of",
    "switched",
]
