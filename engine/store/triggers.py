"""Triggers: each trigger's stored state, the dates it fired (one execution per date), and the time
windows of Flow trigger preconditions."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..model import iso, parse_iso, utcnow
from .codec import dumps, loads
from .errors import AlreadyFiredError
from .queries import Queries
from .table import Table
from .writer import statement

_SQL = Queries("triggers")

# ((namespace, flow id, trigger id, condition id), (start, end, condition keys, outputs) or None)
WindowUpdate = tuple[
    tuple[str, str, str, str], tuple[datetime, datetime, Sequence[str], Mapping[str, Any]] | None
]


@dataclass(frozen=True, slots=True)
class TriggerRow:
    """A trigger's stored state; dates are aware UTC datetimes, backfill a JSON-able mapping."""

    namespace: str
    flow_id: str
    trigger_id: str
    enabled: bool = True
    last_date: datetime | None = None
    next_date: datetime | None = None
    backfill: Mapping[str, Any] | None = None
    schedule: str | None = None


@dataclass(frozen=True, slots=True)
class ScheduleFire:
    """A trigger's date fired an execution: stored with that execution, with the trigger's new state.

    Storing it raises AlreadyFiredError when that date already fired, and then nothing of the
    execution is stored either. With `prune_before`, older fire records of the same series go too
    (see `TriggerTable.fire_write`).
    """

    row: TriggerRow
    date_key: str
    execution_id: str
    prune_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class WindowsFire:
    """A Flow trigger fired: its precondition windows are saved or reset with the execution it starts."""

    updates: tuple[WindowUpdate, ...]


# What a trigger records with the execution it starts, in the same transaction (`save_execution(fire=...)`).
TriggerFire = ScheduleFire | WindowsFire


def fire_record_write(fire: TriggerFire) -> Callable[[sqlite3.Connection], None]:
    """The write that stores a trigger's fire record (within an execution's transaction)."""
    if isinstance(fire, ScheduleFire):
        return TriggerTable.fire_write(
            fire.row, fire.date_key, fire.execution_id, prune_before=fire.prune_before
        )
    return TriggerTable.flow_trigger_windows_write(fire.updates)


def _trigger_params(row: TriggerRow) -> tuple[Any, ...]:
    backfill = dumps(row.backfill) if row.backfill is not None else None
    return (
        row.namespace,
        row.flow_id,
        row.trigger_id,
        1 if row.enabled else 0,
        iso(row.last_date),
        iso(row.next_date),
        backfill,
        row.schedule,
        iso(utcnow()),
    )


def _trigger_row(row: Sequence[Any]) -> TriggerRow:
    return TriggerRow(
        namespace=str(row[0]),
        flow_id=str(row[1]),
        trigger_id=str(row[2]),
        enabled=bool(row[3]),
        last_date=parse_iso(row[4]) if row[4] else None,
        next_date=parse_iso(row[5]) if row[5] else None,
        backfill=loads(row[6]) if row[6] else None,
        schedule=row[7],
    )


class TriggerTable(Table):
    """The `triggers`, `trigger_fires` and `flow_trigger_windows` tables."""

    # -- triggers ------------------------------------------------------------------------------

    async def trigger_rows(self) -> list[TriggerRow]:
        """The stored state of every trigger."""
        return [_trigger_row(row) for row in await self._db.fetchall(_SQL["select_triggers"])]

    async def save_trigger(self, row: TriggerRow) -> None:
        """Insert or replace one trigger's state."""
        await self._db.write(statement(_SQL["upsert_trigger"], _trigger_params(row)))

    @staticmethod
    def fire_write(
        row: TriggerRow, date_key: str, execution_id: str, *, prune_before: datetime | None = None
    ) -> Callable[[sqlite3.Connection], None]:
        """A write recording that `date_key` of a trigger fired `execution_id`, and its new state.

        Written by `save_execution(fire=ScheduleFire(...))`: it raises AlreadyFiredError when that date
        already fired, so the execution is not stored either. With `prune_before`, older fire records
        of the same series (the schedule, or this backfill) are deleted, except those of unfinished
        executions and, for the schedule, those of a backfill still under way: the caller vouches
        that no date before it can be fired again.
        """
        fire = (row.namespace, row.flow_id, row.trigger_id, date_key, execution_id)
        state = _trigger_params(row)
        prune: tuple[str, tuple[Any, ...]] | None = None
        if prune_before is not None:
            where = (row.namespace, row.flow_id, row.trigger_id, iso(prune_before))
            if "#" in date_key:
                prune = (_SQL["prune_backfill_fires"], (*where, date_key[date_key.index("#") :]))
            else:
                backfill = row.backfill or {}
                active = backfill.get("status") in ("RUNNING", "PAUSED")
                prune = (_SQL["prune_fires"], (*where, f"#backfill:{backfill['id']}" if active else ""))
        insert_fire, upsert_trigger = _SQL["insert_fire"], _SQL["upsert_trigger"]

        def write(conn: sqlite3.Connection) -> None:
            if conn.execute(insert_fire, fire).rowcount == 0:
                where = f"{row.namespace}.{row.flow_id} trigger {row.trigger_id}"
                raise AlreadyFiredError(f"{where} already fired at {date_key}")
            conn.execute(upsert_trigger, state)
            if prune is not None:
                conn.execute(*prune)

        return write

    async def trigger_fires(self, namespace: str, flow_id: str, trigger_id: str) -> list[tuple[str, str]]:
        """Every (date key, execution id) a trigger fired, by date."""
        rows = await self._db.fetchall(_SQL["select_fires"], (namespace, flow_id, trigger_id))
        return [(str(row[0]), str(row[1])) for row in rows]

    async def running_trigger_executions(self) -> list[tuple[str, str, str, str]]:
        """(namespace, flow id, trigger id, execution id) of every unfinished execution a trigger fired."""
        rows = await self._db.fetchall(_SQL["select_running_fires"])
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    # -- flow trigger windows --------------------------------------------------------------------
    # A Flow trigger's preconditions: the condition keys satisfied within the current time window,
    # and the merged outputs of the executions that satisfied them. Keyed by the flow, the trigger
    # and the preconditions id; `end` is inclusive.

    async def flow_trigger_window(
        self, namespace: str, flow_id: str, trigger_id: str, condition_id: str
    ) -> tuple[datetime, datetime, list[str], dict[str, Any]] | None:
        """The stored window as (start, end, satisfied condition keys, merged outputs), or None."""
        rows = await self._db.fetchall(_SQL["select_window"], (namespace, flow_id, trigger_id, condition_id))
        if not rows:
            return None
        start, end, results, outputs = rows[0]
        return parse_iso(start), parse_iso(end), list(loads(results)), dict(loads(outputs))

    async def save_flow_trigger_window(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str,
        condition_id: str,
        window: tuple[datetime, datetime, Sequence[str], Mapping[str, Any]],
    ) -> None:
        """Create or replace a window (start, end, satisfied condition keys, merged outputs)."""
        await self.update_flow_trigger_windows([((namespace, flow_id, trigger_id, condition_id), window)])

    async def delete_flow_trigger_window(
        self, namespace: str, flow_id: str, trigger_id: str, condition_id: str
    ) -> None:
        await self.update_flow_trigger_windows([((namespace, flow_id, trigger_id, condition_id), None)])

    async def update_flow_trigger_windows(self, updates: Sequence[WindowUpdate]) -> None:
        """Save or delete (window None) several windows in one transaction."""
        if updates:
            await self._db.write(self.flow_trigger_windows_write(updates))

    @staticmethod
    def flow_trigger_windows_write(updates: Sequence[WindowUpdate]) -> Callable[[sqlite3.Connection], None]:
        """A write saving or deleting (window None) windows; `save_execution(fire=WindowsFire(...))`
        writes it too, so that a fire and the reset of its windows commit together."""
        saves: list[tuple[Any, ...]] = []
        deletes: list[tuple[str, str, str, str]] = []
        for key, window in updates:
            if window is None:
                deletes.append(key)
                continue
            start, end, results, outputs = window
            saves.append(
                (
                    *key,
                    iso(start),
                    iso(end),
                    dumps(sorted(results)),
                    dumps(dict(outputs)),
                    iso(utcnow()),
                )
            )
        delete_window, save_window = _SQL["delete_window"], _SQL["save_window"]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(delete_window, deletes)
            conn.executemany(save_window, saves)

        return write

    async def purge_flow_trigger_windows(self, now: datetime) -> None:
        """Delete every window that ended before `now`."""
        await self._db.write(statement(_SQL["purge_windows"], (iso(now),)))
