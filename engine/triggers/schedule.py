"""The Schedule trigger: cron fires, trigger state, recovery after downtime, backfills.

The scheduler sleeps until the next due date (an injected clock decides what "now" and "sleep" mean),
then fires every due slot of every Schedule trigger of the engine's current flows. Each fire stores
its execution together with a fire record keyed by (trigger, date) and the trigger's new state, in
one transaction: a date fires at most once, across crashes and restarts.

Kestra's rules followed here:
- Schedules do not overlap: a slot due while the trigger's previous execution still runs waits for
  it to end (unless `allowConcurrent: true`); the same holds for backfills.
- After downtime, `recoverMissedSchedules` decides: ALL fires every missed slot, LAST only the most
  recent one, NONE none of them (default ALL).
- `stopAfter` lists execution states; an execution of the trigger ending in one disables the trigger.
- A new trigger starts from now; a trigger whose cron changed continues from its last fired date.
- `trigger.date`, `trigger.next` and `trigger.previous` reach the execution; with conditions, next
  and previous are the nearest slots where the conditions hold.
- Backfill executions carry the label `system.backfill: true`.
A trigger disabled (by command or in the flow) lets its slots pass: enabling it again starts from now.
A cron edited since the last fire goes on from the last fired date, under `recoverMissedSchedules` too.

A store failure never stops the scheduler: the trigger (or the whole pass) is tried again after
ERROR_BACKOFF, and the failure is published as an EngineError. Fire records older than a day before
the first slot of a group of fires are pruned in that group's first fire: no slot that early can fire
again (records of unfinished executions and of a backfill under way are kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

from ..events import EngineError, ExecutionChanged, FlowsChanged, TriggerChanged
from ..executor.variables import build_context
from ..expressions import ExpressionError
from ..inputs import InputError
from ..model import Execution, Flow, Label, State, TriggerSpec, iso, new_id, parse_iso, utcnow
from ..store import AlreadyFiredError, Store, TriggerRow
from ..tasks.core import labels_of
from .conditions import ConditionContext, ConditionError, conditions_hold
from .cron import fires_after, next_fire, previous_fire, zone
from .host import TriggerHost, TriggerStore

SCHEDULE = "io.kestra.plugin.core.trigger.Schedule"
BACKFILL_LABEL = "system.backfill"
# Slots fired in one group of transactions when a trigger allows concurrent executions.
MAX_BATCH = 256
# How far trigger.next / trigger.previous look for a slot where the conditions hold.
CONDITION_SEARCH = 1000
# After a failed write, wait this long before trying the same slot again.
RETRY_SECONDS = 1.0
# After an unexpected failure (a store error while saving state ...), wait this long, by the clock.
ERROR_BACKOFF = timedelta(seconds=5)
# Fire records this much older than the slots being fired are deleted with the fire.
FIRE_RECORDS_KEPT = timedelta(days=1)
_TICK = timedelta(microseconds=1)


class Clock(Protocol):
    """Where the scheduler reads the time and sleeps; tests drive their own."""

    def now(self) -> datetime:
        """The current time, aware UTC."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return at `when` (or later)."""
        ...


class RealClock:
    """The system clock."""

    def now(self) -> datetime:
        return utcnow()

    async def sleep_until(self, when: datetime) -> None:
        # Bounded steps, so that a clock jump (suspend, NTP) is noticed within half a minute.
        while (delay := (when - utcnow()).total_seconds()) > 0:
            await asyncio.sleep(min(delay, 30.0))


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


@dataclass(frozen=True, slots=True)
class _Schedule:
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
    signature: str

    @staticmethod
    def of(spec: TriggerSpec) -> _Schedule:
        props = spec.props
        cron = str(props.get("cron") or "")
        timezone = str(props.get("timezone") or "UTC")
        with_seconds = bool(props.get("withSeconds", False))
        conditions = [*(props.get("conditions") or ()), *(props.get("scheduleConditions") or ())]
        return _Schedule(
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
        return next_fire(self.cron, self.tz, moment, with_seconds=self.with_seconds)

    def before(self, moment: datetime) -> datetime:
        return previous_fire(self.cron, self.tz, moment, with_seconds=self.with_seconds)

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


@dataclass
class _Trigger:
    """A trigger of a current flow and its state (the last state written to the store)."""

    flow: Flow
    spec: TriggerSpec
    schedule: _Schedule | None
    row: TriggerRow
    running: set[str] = field(default_factory=set)
    retry_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.row.enabled and not self.spec.disabled and not self.flow.disabled

    def blocked(self) -> bool:
        """A non-concurrent schedule waits for its running execution."""
        return bool(self.running) and not (self.schedule is not None and self.schedule.allow_concurrent)


def _key(namespace: str, flow_id: str, trigger_id: str) -> tuple[str, str, str]:
    return (namespace, flow_id, trigger_id)


def _format(moment: datetime | None, tz: tzinfo) -> str | None:
    """A trigger date as Kestra shows it: ISO 8601 in the schedule's time zone."""
    if moment is None:
        return None
    text = moment.astimezone(tz).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _progress(data: Mapping[str, Any] | None) -> BackfillProgress | None:
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


class Scheduler:
    """Fires the Schedule triggers of an engine's flows; keeps trigger state and backfills."""

    def __init__(self, engine: TriggerHost, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or RealClock()
        self._triggers: dict[tuple[str, str, str], _Trigger] = {}
        # Every stored trigger state, also of triggers whose flow is gone (it may come back).
        self._rows: dict[tuple[str, str, str], TriggerRow] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopping = False
        self._started = False
        self._tasks: list[asyncio.Task[None]] = []
        self._events: asyncio.Queue[Any] | None = None
        self._flows_dirty = False
        # Set while nothing is due: every due slot has fired (or waits for nothing but time).
        self._settled = asyncio.Event()

    @property
    def _store(self) -> TriggerStore:
        return self.engine.store

    # -- life cycle -------------------------------------------------------------------------------
    async def load(self) -> None:
        """Read the stored trigger states, so that `is_enabled` knows the switched-off triggers
        before the scheduler starts (the Flow triggers start earlier)."""
        self._rows = {_key(r.namespace, r.flow_id, r.trigger_id): r for r in await self._store.trigger_rows()}

    async def start(self) -> None:
        """Load trigger state, recover missed schedules, and start firing."""
        self._stopping = False
        self._events = self.engine.events.subscribe()
        await self.load()
        self._triggers = {}
        running = await self._store.running_trigger_executions()
        async with self._lock:
            await self._sync(recover=True)
            for namespace, flow_id, trigger_id, execution_id in running:
                found = self._triggers.get(_key(namespace, flow_id, trigger_id))
                if found is not None:
                    found.running.add(execution_id)
        self._started = True
        self._tasks = [
            asyncio.create_task(self._run(), name="tiercel-scheduler"),
            asyncio.create_task(self._consume(), name="tiercel-scheduler-events"),
        ]

    async def stop(self) -> None:
        """Stop firing; a group of fires under way is finished first (it is one transaction each)."""
        if not self._started:
            return
        self._stopping = True
        self._started = False
        async with self._lock:
            for task in self._tasks:
                task.cancel()
        for task in self._tasks:
            # A task that died of an error was reported then; stopping must go on regardless.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._events is not None:
            self.engine.events.unsubscribe(self._events)
            self._events = None

    async def settled(self) -> None:
        """Wait until every slot due by the clock's current time has fired, and every running
        backfill is done or paused (executions they started may still run)."""
        while self._events is not None and not self._events.empty():
            await asyncio.sleep(0)  # let flow changes and ended executions be taken into account
        self._settled.clear()
        self._wake.set()
        await self._settled.wait()

    def flows_changed(self) -> None:
        """Take the engine's current flows into account (the scheduler also reacts to FlowsChanged)."""
        self._flows_dirty = True
        self._wake.set()

    # -- queries ------------------------------------------------------------------------------------
    def triggers(self) -> list[TriggerState]:
        """Every trigger of the current flows with its state, sorted by namespace, flow and id."""
        states = []
        for (namespace, flow_id, trigger_id), found in sorted(self._triggers.items()):
            row = found.row
            states.append(
                TriggerState(
                    namespace=namespace,
                    flow_id=flow_id,
                    trigger_id=trigger_id,
                    type=found.spec.type,
                    enabled=row.enabled,
                    disabled=found.spec.disabled or found.flow.disabled,
                    last_date=row.last_date,
                    next_date=row.next_date if found.schedule is not None else None,
                    backfill=_progress(row.backfill),
                )
            )
        return states

    def is_enabled(self, namespace: str, flow_id: str, trigger_id: str) -> bool:
        """Whether a trigger is enabled by command (True for a trigger without stored state)."""
        key = _key(namespace, flow_id, trigger_id)
        found = self._triggers.get(key)
        if found is not None:
            return found.row.enabled
        row = self._rows.get(key)
        return row.enabled if row is not None else True

    # -- commands -----------------------------------------------------------------------------------
    async def set_enabled(self, namespace: str, flow_id: str, trigger_id: str, enabled: bool) -> None:
        """Enable or disable a trigger; the choice is stored. Enabling a schedule starts from now.

        While the scheduler does not run (an engine started for one command), only the stored state
        changes, as `switched` describes: the next engine to run the triggers takes it up.

        Raises:
            SchedulerError: No such trigger in the current flows (while the scheduler runs).
        """
        if not self._started:
            await self._switch_stored(namespace, flow_id, trigger_id, enabled)
            return
        async with self._lock:
            found = self._require(namespace, flow_id, trigger_id)
            if found.row.enabled == enabled:
                return
            row = dataclasses.replace(found.row, enabled=enabled)
            if enabled and found.schedule is not None:
                row = dataclasses.replace(row, next_date=self._first_from(found.schedule, self.clock.now()))
            await self._save(found, row)
        self._wake.set()

    async def _switch_stored(self, namespace: str, flow_id: str, trigger_id: str, enabled: bool) -> None:
        key = _key(namespace, flow_id, trigger_id)
        rows = {_key(r.namespace, r.flow_id, r.trigger_id): r for r in await self._store.trigger_rows()}
        row = rows.get(key) or TriggerRow(*key)
        if row.enabled != enabled:
            row = switched(row, enabled)
            await self._store.save_trigger(row)
            self._rows[key] = row

    async def backfill(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str,
        start: datetime,
        end: datetime | None = None,
        inputs: Mapping[str, Any] | None = None,
        labels: Sequence[Label] | Mapping[str, str] | None = None,
    ) -> str:
        """Fire every slot of a Schedule trigger in [start, end] (end: now); return the backfill id.

        Raises:
            SchedulerError: Unknown trigger, not a Schedule, a backfill already under way, bad range.
        """
        if start.tzinfo is None or (end is not None and end.tzinfo is None):
            raise SchedulerError("backfill dates need a time zone, e.g. 2025-01-01T00:00:00Z")
        end = end or self.clock.now()
        if end < start:
            raise SchedulerError(f"backfill end {iso(end)} is before its start {iso(start)}")
        extra = labels_of(dict(labels)) if isinstance(labels, Mapping) else list(labels or ())
        async with self._lock:
            found = self._require(namespace, flow_id, trigger_id)
            if found.schedule is None:
                raise SchedulerError(f"trigger `{trigger_id}` is not a Schedule: only schedules backfill")
            current = _progress(found.row.backfill)
            if current is not None and current.status in ("RUNNING", "PAUSED"):
                raise SchedulerError(
                    f"trigger `{trigger_id}` already has a backfill under way ({current.fired} fired): "
                    "cancel it first"
                )
            first = found.schedule.after(start - _TICK)
            backfill_id = new_id()
            data = {
                "id": backfill_id,
                "start": iso(start),
                "end": iso(end),
                "current": iso(first) if first <= end else None,
                "fired": 0,
                "skipped": 0,
                "status": "RUNNING" if first <= end else "DONE",
                "inputs": dict(inputs or {}),
                "labels": [{"key": label.key, "value": label.value} for label in extra],
            }
            await self._save(found, dataclasses.replace(found.row, backfill=data))
        self._wake.set()
        return backfill_id

    async def pause_backfill(self, namespace: str, flow_id: str, trigger_id: str) -> None:
        """Pause the trigger's running backfill (its progress is kept)."""
        await self._backfill_status(namespace, flow_id, trigger_id, ("RUNNING",), "PAUSED")

    async def resume_backfill(self, namespace: str, flow_id: str, trigger_id: str) -> None:
        """Resume the trigger's paused backfill where it stopped."""
        await self._backfill_status(namespace, flow_id, trigger_id, ("PAUSED",), "RUNNING")

    async def cancel_backfill(self, namespace: str, flow_id: str, trigger_id: str) -> None:
        """Stop the trigger's backfill for good (executions already created go on)."""
        await self._backfill_status(namespace, flow_id, trigger_id, ("RUNNING", "PAUSED"), "CANCELLED")

    async def _backfill_status(
        self, namespace: str, flow_id: str, trigger_id: str, allowed: tuple[str, ...], status: str
    ) -> None:
        async with self._lock:
            found = self._require(namespace, flow_id, trigger_id)
            data = found.row.backfill
            if not data or data.get("status") not in allowed:
                now = data.get("status", "").lower() if data else "none"
                raise SchedulerError(
                    f"trigger `{trigger_id}` has no backfill to {status.lower()} (it is {now})"
                )
            await self._save(found, dataclasses.replace(found.row, backfill={**data, "status": status}))
        self._wake.set()

    def _require(self, namespace: str, flow_id: str, trigger_id: str) -> _Trigger:
        found = self._triggers.get(_key(namespace, flow_id, trigger_id))
        if found is None:
            raise SchedulerError(f"No trigger `{trigger_id}` in flow {namespace}.{flow_id}")
        return found

    # -- flows -> triggers --------------------------------------------------------------------------
    async def _sync(self, *, recover: bool) -> None:
        """Match the triggers to the engine's current flows (new ones start from now)."""
        now = self.clock.now()
        current: dict[tuple[str, str, str], _Trigger] = {}
        flows = self.engine.flows
        for uid in flows.with_triggers():  # not every flow: most need not be parsed
            flow = flows.get(uid)
            if flow is None:
                continue
            for spec in flow.triggers:
                key = _key(flow.namespace, flow.id, spec.id)
                known = self._triggers.get(key)
                row = known.row if known is not None else self._rows.get(key)
                try:
                    schedule = _Schedule.of(spec) if spec.type == SCHEDULE else None
                    if schedule is not None:
                        schedule.after(now)
                except Exception as error:  # a flow the parser let through must not stop the others
                    self._error(
                        f"Schedule trigger `{spec.id}` of {flow.namespace}.{flow.id} is unusable: {error}"
                    )
                    continue
                new_row = self._row_for(key, row, schedule, now, recover)
                found = _Trigger(flow, spec, schedule, row or new_row, known.running if known else set())
                if new_row != row:
                    await self._save(found, new_row)
                current[key] = found
        self._triggers = current

    def _row_for(
        self,
        key: tuple[str, str, str],
        row: TriggerRow | None,
        schedule: _Schedule | None,
        now: datetime,
        recover: bool,
    ) -> TriggerRow:
        if row is None:
            row = TriggerRow(*key)
        if schedule is None:
            return row
        if row.next_date is None or row.schedule != schedule.signature:
            # New: from now. Changed cron: from the last fired date, missed slots as the policy says.
            anchor = row.last_date if row.last_date is not None and row.schedule is not None else None
            if anchor is None:
                start = self._first_from(schedule, now)
            else:
                start = self._recovered(schedule, schedule.after(anchor), now)
            return dataclasses.replace(row, next_date=start, schedule=schedule.signature)
        if recover:
            next_date = self._recovered(schedule, row.next_date, now)
            if next_date != row.next_date:
                return dataclasses.replace(row, next_date=next_date)
        return row

    def _recovered(self, schedule: _Schedule, next_date: datetime, now: datetime) -> datetime:
        """The next slot to fire once `recoverMissedSchedules` is applied to the missed ones."""
        if next_date >= now:
            return next_date
        if schedule.recover == "NONE":
            return self._first_from(schedule, now)
        if schedule.recover == "LAST":
            return max(schedule.before(now), next_date)
        return next_date

    @staticmethod
    def _first_from(schedule: _Schedule, now: datetime) -> datetime:
        """The first slot at or after `now`."""
        return schedule.after(now - _TICK)

    # -- the loop -----------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                async with self._lock:
                    if self._stopping:
                        return
                    await self._pass()
            except Exception as error:  # a failing store must not stop the schedules for good
                self._error(f"Scheduler: {type(error).__name__}: {error} (trying again shortly)")
                await self._back_off()
                continue
            when, pending = self._next_wake()
            if not pending:
                self._settled.set()
            await self._sleep(when)
            self._settled.clear()

    async def _pass(self) -> None:
        if self._flows_dirty:
            self._flows_dirty = False
            try:
                await self._sync(recover=False)
            except BaseException:
                self._flows_dirty = True
                raise
        await self._fire_due()

    async def _back_off(self) -> None:
        await self.clock.sleep_until(self.clock.now() + ERROR_BACKOFF)

    async def _sleep(self, when: datetime | None) -> None:
        waiters: list[asyncio.Task[Any]] = [asyncio.create_task(self._wake.wait())]
        if when is not None:
            waiters.append(asyncio.create_task(self.clock.sleep_until(when)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def _next_wake(self) -> tuple[datetime | None, bool]:
        """When to look again, and whether some due slot waits (for an execution or a retry)."""
        now = self.clock.now()
        times: list[datetime] = []
        pending = False
        for found in self._triggers.values():
            if found.schedule is None:
                continue
            if found.retry_at is not None:
                times.append(found.retry_at)
                pending = True
                continue
            due = found.row.next_date is not None and found.row.next_date <= now
            backfill = found.row.backfill or {}
            backfilling = backfill.get("status") == "RUNNING" and found.active
            pending = pending or (found.active and due) or backfilling
            if found.row.next_date is not None and not (found.active and found.blocked()):
                times.append(found.row.next_date)
            if backfilling and not found.blocked():
                times.append(now)
        return (min(times) if times else None), pending

    async def _consume(self) -> None:
        """Follow executions the triggers fired (overlap, stopAfter) and flow changes."""
        assert self._events is not None
        queue = self._events
        # Triggers to disable (stopAfter); kept until the disable is stored.
        stops: list[tuple[str, str, str]] = []
        while True:
            events = self.engine.events.drain(queue) if stops else [await queue.get()]
            events += self.engine.events.drain(queue)
            try:
                for event in events:
                    if isinstance(event, FlowsChanged):
                        self._flows_dirty = True
                        self._wake.set()
                    elif isinstance(event, ExecutionChanged) and event.execution.state.current.is_terminated:
                        stop = self._ended(event.execution)
                        if stop is not None:
                            stops.append(stop)
                while stops:
                    with contextlib.suppress(SchedulerError):
                        await self.set_enabled(*stops[0], False)
                    stops.pop(0)
            except Exception as error:  # a failing store must not stop following executions
                self._error(f"Scheduler: {type(error).__name__}: {error} (trying again shortly)")
                await self._back_off()

    def _ended(self, execution: Execution) -> tuple[str, str, str] | None:
        trigger = execution.trigger or {}
        if trigger.get("type") != SCHEDULE:
            return None
        key = _key(execution.namespace, execution.flow_id, str(trigger.get("id")))
        found = self._triggers.get(key)
        if found is None or execution.id not in found.running:
            return None
        found.running.discard(execution.id)
        self._wake.set()
        if found.schedule is not None and execution.state.current.value in found.schedule.stop_after:
            return key
        return None

    # -- firing -------------------------------------------------------------------------------------
    async def _fire_due(self) -> None:
        now = self.clock.now()
        for found in list(self._triggers.values()):
            if self._stopping:
                return
            schedule = found.schedule
            if schedule is None or (found.retry_at is not None and found.retry_at > now):
                continue
            found.retry_at = None
            try:
                if not found.active:
                    await self._let_pass(found, schedule, now)
                    continue
                await self._fire_schedule(found, schedule, now)
                await self._fire_backfill(found, schedule)
            except Exception as error:  # one trigger's failure must not hold up the others
                flow = found.flow
                self._error(
                    f"Trigger `{found.spec.id}` of {flow.namespace}.{flow.id}: {type(error).__name__}: "
                    f"{error} (trying again shortly)"
                )
                found.retry_at = self.clock.now() + ERROR_BACKOFF

    async def _let_pass(self, found: _Trigger, schedule: _Schedule, now: datetime) -> None:
        """A disabled trigger does not catch up later: its due slots pass."""
        if found.row.next_date is not None and found.row.next_date <= now:
            await self._save(found, dataclasses.replace(found.row, next_date=schedule.after(now)))

    async def _fire_schedule(self, found: _Trigger, schedule: _Schedule, now: datetime) -> None:
        limit = MAX_BATCH if schedule.allow_concurrent else (0 if found.running else 1)
        slots, following = schedule.due(found.row.next_date, now, limit)
        if slots:
            await self._fire(found, schedule, slots, following, None)

    async def _fire_backfill(self, found: _Trigger, schedule: _Schedule) -> None:
        data = found.row.backfill
        if not data or data.get("status") != "RUNNING":
            return
        current = parse_iso(data["current"]) if data.get("current") else None
        limit = MAX_BATCH if schedule.allow_concurrent else (0 if found.running else 1)
        slots, following = schedule.due(current, parse_iso(data["end"]), limit)
        if slots:
            await self._fire(found, schedule, slots, following, data)

    async def _fire(
        self,
        found: _Trigger,
        schedule: _Schedule,
        slots: list[datetime],
        following: datetime,
        backfill: Mapping[str, Any] | None,
    ) -> None:
        """Fire the slots (in order) in one group of transactions; conditions may skip some."""
        flow = found.flow
        row = found.row
        previous: datetime | None = None if schedule.conditions else self._previous(schedule, slots[0])
        submits: list[tuple[Execution, Any, TriggerRow]] = []
        before_slot: dict[str, TriggerRow] = {}
        # No slot before the first of this group can fire again (a failed one is retried, not skipped);
        # older fire records go with the group's first fire (once a group: a prune is a range scan).
        prune_before = slots[0] - FIRE_RECORDS_KEPT
        for index, slot in enumerate(slots):
            upcoming = slots[index + 1] if index + 1 < len(slots) else following
            after = upcoming
            if schedule.conditions:
                if not self._holds(found, schedule, slot):
                    row = self._advance(row, slot, after, backfill, fired=False)
                    continue
                previous = self._matching(found, schedule, slot, forward=False)
                upcoming = self._matching(found, schedule, slot, forward=True) or upcoming
            execution = self._execution(found, schedule, slot, upcoming, previous, backfill)
            previous = slot
            if execution is None:
                row = self._advance(row, slot, after, backfill, fired=False)
                continue
            before_slot[execution.id] = row
            row = self._advance(row, slot, after, backfill)
            key = iso(slot) or ""
            if backfill is not None:
                key = f"{key}#backfill:{backfill['id']}"
            write = Store.fire_write(row, key, execution.id, prune_before=None if submits else prune_before)
            submits.append((execution, write, row))
        found.running.update(execution.id for execution, _, _ in submits)
        results = await asyncio.gather(
            *(self.engine.submit(flow, execution, also=write) for execution, write, _ in submits),
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
            self._error(f"Trigger `{found.spec.id}` of {flow.namespace}.{flow.id} could not fire: {result}")
            row = before_slot[execution.id]
            found.retry_at = self.clock.now() + timedelta(seconds=RETRY_SECONDS)
        found.row = row
        self._rows[_key(row.namespace, row.flow_id, row.trigger_id)] = row
        if not submits or submits[-1][2] != row:
            await self._save(found, row)
        else:
            self._publish(found)

    def _advance(
        self,
        row: TriggerRow,
        slot: datetime,
        upcoming: datetime,
        backfill: Mapping[str, Any] | None,
        *,
        fired: bool = True,
    ) -> TriggerRow:
        """The trigger's state once `slot` fired (or was skipped)."""
        if backfill is None:
            return dataclasses.replace(row, last_date=slot if fired else row.last_date, next_date=upcoming)
        data = dict(row.backfill or backfill)
        end = parse_iso(data["end"])
        data["current"] = iso(upcoming) if upcoming <= end else None
        data["fired" if fired else "skipped"] = int(data.get("fired" if fired else "skipped", 0)) + 1
        if upcoming > end:
            data["status"] = "DONE"
        return dataclasses.replace(row, backfill=data)

    def _execution(
        self,
        found: _Trigger,
        schedule: _Schedule,
        slot: datetime,
        upcoming: datetime | None,
        previous: datetime | None,
        backfill: Mapping[str, Any] | None,
    ) -> Execution | None:
        variables = {
            "date": _format(slot, schedule.tz),
            "next": _format(upcoming, schedule.tz),
            "previous": _format(previous, schedule.tz),
        }
        trigger = {"id": found.spec.id, "type": SCHEDULE, "variables": variables}
        inputs = dict(schedule.inputs)
        labels = list(schedule.labels)
        if backfill is not None:
            inputs.update(backfill.get("inputs") or {})
            labels.extend(Label(item["key"], item["value"]) for item in backfill.get("labels") or ())
            labels.append(Label(BACKFILL_LABEL, "true"))
        try:
            return self.engine.new_execution(found.flow, inputs, labels, trigger=trigger)
        except (InputError, ExpressionError) as error:
            flow = found.flow
            self._error(f"Trigger `{found.spec.id}` of {flow.namespace}.{flow.id} at {iso(slot)}: {error}")
            return None

    def _previous(self, schedule: _Schedule, slot: datetime) -> datetime | None:
        try:
            return schedule.before(slot)
        except ValueError:
            return None

    # -- conditions ---------------------------------------------------------------------------------
    def _holds(self, found: _Trigger, schedule: _Schedule, slot: datetime) -> bool:
        date = slot.astimezone(schedule.tz)
        stub = Execution("", found.flow.namespace, found.flow.id, found.flow.revision, State.new(at=slot))
        variables = build_context(found.flow, stub)
        variables.pop("execution", None)
        variables["trigger"] = {"date": _format(slot, schedule.tz)}
        ctx = ConditionContext(
            flow=found.flow, render=self.engine.renderer.render, date=date, variables=variables
        )
        try:
            return conditions_hold(schedule.conditions, ctx)
        except (ConditionError, ExpressionError) as error:
            flow = found.flow
            self._error(f"Conditions of trigger `{found.spec.id}` of {flow.namespace}.{flow.id}: {error}")
            return False

    def _matching(
        self, found: _Trigger, schedule: _Schedule, slot: datetime, *, forward: bool
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

    # -- state --------------------------------------------------------------------------------------
    async def _save(self, found: _Trigger, row: TriggerRow) -> None:
        await self._store.save_trigger(row)
        found.row = row
        self._rows[_key(row.namespace, row.flow_id, row.trigger_id)] = row
        self._publish(found)

    def _publish(self, found: _Trigger) -> None:
        row = found.row
        self.engine.events.publish(TriggerChanged(row.namespace, row.flow_id, row.trigger_id))

    def _error(self, message: str) -> None:
        self.engine.events.publish(EngineError(message))


__all__ = [
    "BACKFILL_LABEL",
    "SCHEDULE",
    "BackfillProgress",
    "Clock",
    "RealClock",
    "Scheduler",
    "SchedulerError",
    "TriggerState",
]


def switched(row: TriggerRow, enabled: bool) -> TriggerRow:
    """A trigger's stored state after a command that ran while no engine did.

    Switched on, a schedule starts again from the first slot after the next engine starts, as
    `Scheduler.set_enabled` does, rather than catching up from its last fire.
    """
    if not enabled:
        return dataclasses.replace(row, enabled=False)
    return dataclasses.replace(row, enabled=True, next_date=None, schedule=None)
