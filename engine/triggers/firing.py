"""Firing a Schedule trigger's due slots: its executions, its conditions, its fire records.

Each fire stores its execution together with a fire record keyed by (trigger, date) and the
trigger's new state, in one transaction: a date fires at most once, across crashes and restarts.
`trigger.date`, `trigger.next` and `trigger.previous` reach the execution; with conditions, next
and previous are the nearest slots where the conditions hold, and a slot where they do not hold
is skipped. Schedules do not overlap: a slot due while the trigger's previous execution still runs
waits for it to end (unless `allowConcurrent: true`); the same holds for backfills. A disabled
trigger lets its slots pass: enabling it again starts from now.

Fire records older than a day before the first slot of a group of fires are pruned in that group's
first fire: no slot that early can fire again (records of unfinished executions and of a backfill
under way are kept).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from ..expressions import ExpressionError
from ..expressions.variables import build_context
from ..inputs import InputError
from ..model import Execution, State, iso
from ..store import AlreadyFiredError, ScheduleFire, TriggerRow
from . import backfill as backfills
from .backfill import Backfill
from .clock import Clock
from .conditions import ConditionContext, ConditionError, conditions_hold
from .host import TriggerFire, TriggerHost
from .slots import Schedule
from .state import LiveTrigger, TriggerStates
from .types import SCHEDULE

# Slots fired in one group of transactions when a trigger allows concurrent executions.
MAX_BATCH = 256
# How far trigger.next / trigger.previous look for a slot where the conditions hold.
CONDITION_SEARCH = 1000
# After a failed write, wait this long before trying the same slot again.
RETRY_SECONDS = 1.0
# Fire records this much older than the slots being fired are deleted with the fire.
FIRE_RECORDS_KEPT = timedelta(days=1)


class SlotFiring:
    """Fires the due slots of one Schedule trigger at a time, for the scheduler.

    Args:
        host: The engine that builds, stores and starts the executions.
        states: Where the triggers' new states are stored.
        clock: The scheduler's clock (a failed slot is tried again by it).
        report: Publishes an error; firing goes on.
    """

    def __init__(
        self, host: TriggerHost, states: TriggerStates, clock: Clock, report: Callable[[str], None]
    ) -> None:
        self._host = host
        self._states = states
        self._clock = clock
        self._report = report

    async def fire_due(self, found: LiveTrigger, schedule: Schedule, now: datetime) -> None:
        """Fire the trigger's slots due by `now`, then those of its running backfill."""
        if not found.active:
            await self._let_pass(found, schedule, now)
            return
        limit = MAX_BATCH if schedule.allow_concurrent else (0 if found.running else 1)
        slots, following = schedule.due(found.row.next_date, now, limit)
        if slots:
            await self._fire(found, schedule, slots, following, None)
        data = found.row.backfill
        if data is None or not backfills.is_running(data):
            return
        limit = MAX_BATCH if schedule.allow_concurrent else (0 if found.running else 1)
        slots, following = backfills.due(schedule, data, limit)
        if slots:
            await self._fire(found, schedule, slots, following, data)

    async def _let_pass(self, found: LiveTrigger, schedule: Schedule, now: datetime) -> None:
        """A disabled trigger does not catch up later: its due slots pass."""
        if found.row.next_date is not None and found.row.next_date <= now:
            await self._states.save(found, dataclasses.replace(found.row, next_date=schedule.after(now)))

    async def _fire(
        self,
        found: LiveTrigger,
        schedule: Schedule,
        slots: list[datetime],
        following: datetime,
        backfill: Backfill | None,
    ) -> None:
        """Fire the slots (in order) in one group of transactions; conditions may skip some."""
        flow = found.flow
        row = found.row
        previous: datetime | None = None if schedule.conditions else schedule.previous(slots[0])
        submits: list[tuple[Execution, TriggerFire, TriggerRow]] = []
        before_slot: dict[str, TriggerRow] = {}
        # No slot before the first of this group can fire again (a failed one is retried, not skipped);
        # older fire records go with the group's first fire (once a group: a prune is a range scan).
        prune_before = slots[0] - FIRE_RECORDS_KEPT
        for index, slot in enumerate(slots):
            upcoming = slots[index + 1] if index + 1 < len(slots) else following
            after = upcoming
            if schedule.conditions:
                if not self._holds(found, schedule, slot):
                    row = _advance(row, slot, after, backfill, fired=False)
                    continue
                previous = self._matching(found, schedule, slot, forward=False)
                upcoming = self._matching(found, schedule, slot, forward=True) or upcoming
            execution = self._execution(found, schedule, slot, upcoming, previous, backfill)
            previous = slot
            if execution is None:
                row = _advance(row, slot, after, backfill, fired=False)
                continue
            before_slot[execution.id] = row
            row = _advance(row, slot, after, backfill)
            key = backfills.fire_key(slot, backfill)
            fire = ScheduleFire(row, key, execution.id, prune_before=None if submits else prune_before)
            submits.append((execution, fire, row))
        found.running.update(execution.id for execution, _, _ in submits)
        results = await asyncio.gather(
            *(self._host.submit(flow, execution, fire=fire) for execution, fire, _ in submits),
            return_exceptions=True,
        )
        failed = False
        for (execution, _, _), result in zip(submits, results, strict=True):
            if not isinstance(result, BaseException):
                continue
            found.running.discard(execution.id)
            if isinstance(result, AlreadyFiredError) or failed:
                continue
            # Go back to this slot and try again shortly; later slots that did fire are then
            # recognised by their fire record and skipped.
            failed = True
            self._report(f"Trigger `{found.spec.id}` of {flow.namespace}.{flow.id} could not fire: {result}")
            row = before_slot[execution.id]
            found.retry_at = self._clock.now() + timedelta(seconds=RETRY_SECONDS)
        found.row = row
        self._states.remember(found)
        if not submits or submits[-1][2] != row:
            await self._states.save(found, row)
        else:
            self._states.written(found)

    def _execution(
        self,
        found: LiveTrigger,
        schedule: Schedule,
        slot: datetime,
        upcoming: datetime | None,
        previous: datetime | None,
        backfill: Backfill | None,
    ) -> Execution | None:
        variables = {
            "date": schedule.format(slot),
            "next": schedule.format(upcoming),
            "previous": schedule.format(previous),
        }
        trigger = {"id": found.spec.id, "type": SCHEDULE, "variables": variables}
        inputs, labels = backfills.execution_values(schedule.inputs, schedule.labels, backfill)
        try:
            return self._host.new_execution(found.flow, inputs, labels, trigger=trigger)
        except (InputError, ExpressionError) as error:
            flow = found.flow
            self._report(f"Trigger `{found.spec.id}` of {flow.namespace}.{flow.id} at {iso(slot)}: {error}")
            return None

    # -- conditions ---------------------------------------------------------------------------------
    def _holds(self, found: LiveTrigger, schedule: Schedule, slot: datetime) -> bool:
        date = slot.astimezone(schedule.tz)
        stub = Execution("", found.flow.namespace, found.flow.id, found.flow.revision, State.new(at=slot))
        variables = build_context(found.flow, stub)
        variables.pop("execution", None)
        variables["trigger"] = {"date": schedule.format(slot)}
        ctx = ConditionContext(
            flow=found.flow, render=self._host.renderer.render, date=date, variables=variables
        )
        try:
            return conditions_hold(schedule.conditions, ctx)
        except (ConditionError, ExpressionError) as error:
            flow = found.flow
            self._report(f"Conditions of trigger `{found.spec.id}` of {flow.namespace}.{flow.id}: {error}")
            return False

    def _matching(
        self, found: LiveTrigger, schedule: Schedule, slot: datetime, *, forward: bool
    ) -> datetime | None:
        """The nearest slot after (or before) `slot` where the conditions hold."""
        date = slot
        for _ in range(CONDITION_SEARCH):
            try:
                date = schedule.after(date) if forward else schedule.before(date)
            except ValueError:
                return None
            if self._holds(found, schedule, date):
                return date
        return None


def _advance(
    row: TriggerRow, slot: datetime, upcoming: datetime, backfill: Backfill | None, *, fired: bool = True
) -> TriggerRow:
    """The trigger's state once `slot` fired (or was skipped)."""
    if backfill is None:
        return dataclasses.replace(row, last_date=slot if fired else row.last_date, next_date=upcoming)
    return dataclasses.replace(
        row, backfill=backfills.advanced(row.backfill or backfill, upcoming, fired=fired)
    )


__all__ = ["CONDITION_SEARCH", "FIRE_RECORDS_KEPT", "MAX_BATCH", "RETRY_SECONDS", "SlotFiring"]
