"""The Schedule trigger's scheduler: it fires cron slots, keeps trigger state, runs backfills.

The scheduler sleeps until the next due date (an injected clock decides what "now" and "sleep" mean),
then fires every due slot of every Schedule trigger of the engine's current flows. Its parts:
    slots       the schedule's time arithmetic, where a trigger goes on from after downtime
    state       trigger state for listings, and its persistence (switches, last and next dates)
    firing      firing due slots: executions, conditions, fire records, no overlap
    polling     the polling triggers (HTTP, and the plugins' in `plugins`), polled beside the schedules
    backfill    the rules of backfills (ranges, pause, resume, cancel, progress)
    clock       the system clock, or one a test drives

Kestra's rules followed here (see the parts for the others):
- `stopAfter` lists execution states; an execution of the trigger ending in one disables the trigger
  (schedules and polling triggers alike).
- A trigger disabled (by command or in the flow) lets its slots pass: enabling it again starts from now.

A store failure never stops the scheduler: the trigger (or the whole pass) is tried again after
ERROR_BACKOFF, and the failure is published as an EngineError.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..events import EngineError, ExecutionChanged, FlowsChanged
from ..model import Execution, Label
from ..store import TriggerRow
from ..tasks.core import labels_of
from . import backfill as backfills
from .backfill import BACKFILL_LABEL
from .clock import Clock, RealClock
from .firing import MAX_BATCH, SlotFiring
from .host import TriggerHost
from .http import poll_http
from .plugins import plugin_poll
from .polling import Poller, Polling
from .slots import Schedule, starting_row
from .state import (
    BackfillProgress,
    LiveTrigger,
    SchedulerError,
    TriggerKey,
    TriggerState,
    TriggerStates,
    switched,
)
from .types import ENGINE_TRIGGERS, HTTP, SCHEDULE


def _poller(trigger_type: str) -> Poller | None:
    """How a trigger type is polled: the HTTP trigger, or a plugin's (None: not a polling trigger).
    The scheduler follows the executions of schedules and polling triggers (no overlap, stopAfter)."""
    if trigger_type == HTTP:
        return Poller(poll_http)
    if trigger_type in ENGINE_TRIGGERS:  # the engine's own: no plugin to load for them
        return None
    found = plugin_poll(trigger_type)
    return None if found is None else Poller(found[0], timedelta(seconds=found[1]))


# After an unexpected failure (a store error while saving state ...), wait this long, by the clock.
ERROR_BACKOFF = timedelta(seconds=5)


class Scheduler:
    """Fires the Schedule triggers of an engine's flows; keeps trigger state and backfills."""

    def __init__(self, engine: TriggerHost, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or RealClock()
        self._triggers: dict[TriggerKey, LiveTrigger] = {}
        # Every stored trigger state, also of triggers whose flow is gone (it may come back).
        self._states = TriggerStates(engine.store, engine.events)
        self._firing = SlotFiring(engine, self._states, self.clock, self._error)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._polling = Polling(
            engine, self.clock, self._states, self._lock, self._triggers_get, self._error, _poller
        )
        self._stopping = False
        self._started = False
        self._tasks: list[asyncio.Task[None]] = []
        self._events: asyncio.Queue[Any] | None = None
        self._flows_dirty = False
        # Set while nothing is due: every due slot has fired (or waits for nothing but time).
        self._settled = asyncio.Event()
        # On a cluster's server whose scheduler does not run: carries the commands below over to the
        # server whose scheduler runs, and returns its answer (engine.cluster.server).
        # Called as elsewhere(command, (namespace, flow id, trigger id), **arguments).
        self.elsewhere: Callable[..., Awaitable[Any]] | None = None

    # -- life cycle -------------------------------------------------------------------------------
    async def load(self) -> None:
        """Read the stored trigger states, so that `is_enabled` knows the switched-off triggers
        before the scheduler starts (the Flow triggers start earlier)."""
        await self._states.load()

    async def start(self) -> None:
        """Load trigger state, recover missed schedules, and start firing."""
        self._stopping = False
        self._events = self.engine.events.subscribe()
        await self.load()
        self._triggers = {}
        running = await self.engine.store.running_trigger_executions()
        async with self._lock:
            await self._sync(recover=True)
            for namespace, flow_id, trigger_id, execution_id in running:
                found = self._triggers.get((namespace, flow_id, trigger_id))
                if found is not None:
                    found.running.add(execution_id)
            self._polling.sync(self._triggers.values())
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
            self._polling.cancel()
        await self._polling.wait_stopped()
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
        return [found.state() for _, found in sorted(self._triggers.items())]

    def followed(self) -> set[str]:
        """The executions whose end a trigger waits for (no overlap, stopAfter)."""
        return {execution_id for found in self._triggers.values() for execution_id in found.running}

    def _triggers_get(self, key: TriggerKey) -> LiveTrigger | None:
        return self._triggers.get(key)

    def is_enabled(self, namespace: str, flow_id: str, trigger_id: str) -> bool:
        """Whether a trigger is enabled by command (True for a trigger without stored state)."""
        key = (namespace, flow_id, trigger_id)
        found = self._triggers.get(key)
        if found is not None:
            return found.row.enabled
        row = self._states.get(key)
        return row.enabled if row is not None else True

    # -- commands -----------------------------------------------------------------------------------
    async def set_enabled(self, namespace: str, flow_id: str, trigger_id: str, enabled: bool) -> None:
        """Enable or disable a trigger; the choice is stored. Enabling a schedule starts from now.

        While the scheduler does not run (an engine started for one command), only the stored state
        changes, as `switched` describes: the next engine to run the triggers takes it up.

        Raises:
            SchedulerError: No such trigger in the current flows (while the scheduler runs).
        """
        if not self._started and self.elsewhere is not None:
            await self.elsewhere("enable", (namespace, flow_id, trigger_id), enabled=enabled)
            return
        if not self._started:
            await self._states.switch_stored((namespace, flow_id, trigger_id), enabled)
            return
        async with self._lock:
            found = self._require(namespace, flow_id, trigger_id)
            if found.row.enabled == enabled:
                return
            row = dataclasses.replace(found.row, enabled=enabled)
            if enabled and found.schedule is not None:
                row = dataclasses.replace(row, next_date=found.schedule.first_from(self.clock.now()))
            await self._states.save(found, row)
        self._wake.set()

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
        if not self._started and self.elsewhere is not None:
            trigger = (namespace, flow_id, trigger_id)
            answer = await self.elsewhere(
                "backfill", trigger, start=start, end=end, inputs=inputs, labels=labels
            )
            return str(answer)
        start, end = backfills.checked_range(start, end, self.clock.now())
        extra = labels_of(dict(labels)) if isinstance(labels, Mapping) else list(labels or ())
        async with self._lock:
            found = self._require(namespace, flow_id, trigger_id)
            if found.schedule is None:
                raise SchedulerError(f"trigger `{trigger_id}` is not a Schedule: only schedules backfill")
            data = backfills.new_backfill(
                trigger_id, found.schedule, found.row.backfill, start, end, inputs, extra
            )
            await self._states.save(found, dataclasses.replace(found.row, backfill=data))
        self._wake.set()
        return str(data["id"])

    async def pause_backfill(self, namespace: str, flow_id: str, trigger_id: str) -> None:
        """Pause the trigger's running backfill (its progress is kept)."""
        await self._backfill_status(namespace, flow_id, trigger_id, ("RUNNING",), "PAUSED")

    async def resume_backfill(self, namespace: str, flow_id: str, trigger_id: str) -> None:
        """Resume the trigger's paused backfill where it stopped."""
        await self._backfill_status(namespace, flow_id, trigger_id, ("PAUSED",), "RUNNING")

    async def cancel_backfill(self, namespace: str, flow_id: str, trigger_id: str) -> None:
        """Stop the trigger's backfill for good (executions already created go on)."""
        await self._backfill_status(namespace, flow_id, trigger_id, ("RUNNING", "PAUSED"), "CANCELLED")

    async def change_backfill(self, namespace: str, flow_id: str, trigger_id: str, action: str) -> None:
        """Pause, resume or cancel the trigger's backfill, by the action's name (a command's word)."""
        changes = {
            "pause": self.pause_backfill,
            "resume": self.resume_backfill,
            "cancel": self.cancel_backfill,
        }
        if action not in changes:
            raise SchedulerError(f"unknown backfill action `{action}`")
        if not self._started and self.elsewhere is not None:
            await self.elsewhere("change_backfill", (namespace, flow_id, trigger_id), action=action)
            return
        await changes[action](namespace, flow_id, trigger_id)

    async def _backfill_status(
        self, namespace: str, flow_id: str, trigger_id: str, allowed: tuple[str, ...], status: str
    ) -> None:
        async with self._lock:
            found = self._require(namespace, flow_id, trigger_id)
            data = backfills.with_status(trigger_id, found.row.backfill, allowed, status)
            await self._states.save(found, dataclasses.replace(found.row, backfill=data))
        self._wake.set()

    def _require(self, namespace: str, flow_id: str, trigger_id: str) -> LiveTrigger:
        found = self._triggers.get((namespace, flow_id, trigger_id))
        if found is None:
            raise SchedulerError(f"No trigger `{trigger_id}` in flow {namespace}.{flow_id}")
        return found

    # -- flows -> triggers --------------------------------------------------------------------------
    async def _sync(self, *, recover: bool) -> None:
        """Match the triggers to the engine's current flows (new ones start from now)."""
        now = self.clock.now()
        current: dict[TriggerKey, LiveTrigger] = {}
        flows = self.engine.flows
        for uid in flows.with_triggers():  # not every flow: most need not be parsed
            flow = flows.get(uid)
            if flow is None:
                continue
            for spec in flow.triggers:
                key = (flow.namespace, flow.id, spec.id)
                known = self._triggers.get(key)
                row = known.row if known is not None else self._states.get(key)
                try:
                    schedule = Schedule.of(spec) if spec.type == SCHEDULE else None
                    if schedule is not None:
                        schedule.after(now)
                except Exception as error:  # a flow the parser let through must not stop the others
                    self._error(
                        f"Schedule trigger `{spec.id}` of {flow.namespace}.{flow.id} is unusable: {error}"
                    )
                    continue
                new_row = starting_row(row or TriggerRow(*key), schedule, now, recover=recover)
                found = LiveTrigger(flow, spec, schedule, row or new_row, known.running if known else set())
                if new_row != row:
                    await self._states.save(found, new_row)
                current[key] = found
        self._triggers = current

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
            self._polling.sync(self._triggers.values())
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
            backfilling = backfills.is_running(found.row.backfill) and found.active
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
        stops: list[TriggerKey] = []
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

    def _ended(self, execution: Execution) -> TriggerKey | None:
        trigger = execution.trigger or {}
        kind = str(trigger.get("type"))
        if kind != SCHEDULE and _poller(kind) is None:
            return None
        key = (execution.namespace, execution.flow_id, str(trigger.get("id")))
        found = self._triggers.get(key)
        if found is None or execution.id not in found.running:
            return None
        found.running.discard(execution.id)
        self._wake.set()
        if execution.state.current.value in found.stop_after:
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
                await self._firing.fire_due(found, schedule, now)
            except Exception as error:  # one trigger's failure must not hold up the others
                flow = found.flow
                self._error(
                    f"Trigger `{found.spec.id}` of {flow.namespace}.{flow.id}: {type(error).__name__}: "
                    f"{error} (trying again shortly)"
                )
                found.retry_at = self.clock.now() + ERROR_BACKOFF

    def _error(self, message: str) -> None:
        self.engine.events.publish(EngineError(message))


__all__ = [
    "BACKFILL_LABEL",
    "ERROR_BACKOFF",
    "MAX_BATCH",
    "BackfillProgress",
    "Clock",
    "RealClock",
    "Scheduler",
    "SchedulerError",
    "TriggerState",
    "switched",
]
