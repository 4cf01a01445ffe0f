"""Kestra's polling triggers: the HTTP trigger and every plugin's `TriggerType` with a `poll`.

Every polling trigger of an enabled flow is polled every `interval` (PT60S unless its type says
otherwise), as Kestra's scheduler evaluates a PollingTriggerInterface: at once when it appears, then an
interval after each poll ends. One poll:
- A trigger disabled in the flow, switched off by command, or blocked is not polled: a trigger whose
  execution still runs is not polled until it ends, unless `allowConcurrent: true`.
- The generic `conditions` are tested first (with `trigger.date`, the poll's date); when they do not
  hold, nothing is asked of the outside world.
- The type's poll runs (`Poll`): it returns the new execution's `trigger` variables, or None when
  there is nothing to start an execution for.
- Then an execution starts with those variables and the trigger's `labels`, stored with a fire record
  and the trigger's last date, in one transaction, under the scheduler's lock (so that a switch by
  command is never overwritten): after a restart the scheduler knows which of its executions still run.
  `stopAfter` is the scheduler's, as for schedules.

A poll that fails (a connection refused, a bad template, a store error) is reported as an EngineError
and polling goes on at the next interval; each trigger polls in its own task, so one broken trigger
never holds up another. Stopping cancels every poll at once, requests and queries included.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ..durations import parse_duration
from ..expressions import ExpressionError
from ..expressions.variables import build_context
from ..inputs import InputError
from ..model import Execution, LogLevel, State, iso, new_id
from ..secrets import SecretError
from ..store import AlreadyFiredError, ScheduleFire
from ..tasks.base import TaskFailure
from ..tasks.core import labels_of
from .clock import Clock
from .conditions import ConditionContext, ConditionError, conditions_hold
from .firing import FIRE_RECORDS_KEPT
from .host import TriggerHost
from .state import LiveTrigger, TriggerKey, TriggerStates
from .types import HTTP

DEFAULT_INTERVAL = timedelta(seconds=60)

_log = logging.getLogger(__name__)

Lookup = Callable[[TriggerKey], LiveTrigger | None]
Emit = Callable[[LogLevel, str], None]


@dataclasses.dataclass(frozen=True)
class PollRequest:
    """What one poll is given: the trigger, the engine, the variables its properties are rendered
    with (the flow's, `trigger.date`, `secret()`), the poll's date and where its log lines go."""

    found: LiveTrigger
    host: TriggerHost
    context: dict[str, Any]
    now: datetime
    emit: Emit


# A trigger type's poll: the execution's `trigger` variables, or None (nothing to start).
Poll = Callable[[PollRequest], Awaitable[Mapping[str, Any] | None]]


def interval_of(props: Mapping[str, Any], default: timedelta = DEFAULT_INTERVAL) -> timedelta:
    """The trigger's `interval` (raises ValueError unless it is a positive duration)."""
    value = props.get("interval")
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        interval = timedelta(seconds=value)
    else:
        interval = parse_duration(str(value))
    if interval <= timedelta(0):
        raise ValueError(f"`interval` must be a positive duration, not `{value}`")
    return interval


@dataclasses.dataclass(frozen=True)
class Poller:
    """How triggers of one type are polled: their poll, and their interval unless they set one."""

    poll: Poll
    interval: timedelta = DEFAULT_INTERVAL


class Polling:
    """Polls the polling triggers of the scheduler's live triggers, one task per trigger.

    Args:
        host: The engine that renders, builds, stores and starts the executions.
        clock: The scheduler's clock (polls are dated and spaced by it).
        states: Where the triggers' new states are remembered and announced.
        lock: The scheduler's lock, held while a fire is stored.
        lookup: The scheduler's live trigger for a key (None once it is gone).
        report: Publishes an error; polling goes on.
        pollers: The poller of a trigger type (None: not a polling trigger).
    """

    def __init__(
        self,
        host: TriggerHost,
        clock: Clock,
        states: TriggerStates,
        lock: asyncio.Lock,
        lookup: Lookup,
        report: Callable[[str], None],
        pollers: Callable[[str], Poller | None],
    ) -> None:
        self._host = host
        self._clock = clock
        self._states = states
        self._lock = lock
        self._lookup = lookup
        self._report = report
        self._pollers = pollers
        # The poll task of each trigger, and what it was started for (its properties).
        self._tasks: dict[TriggerKey, tuple[str, asyncio.Task[None]]] = {}
        self._retired: set[asyncio.Task[None]] = set()
        self._warned: set[tuple[TriggerKey, str]] = set()

    def sync(self, triggers: Iterable[LiveTrigger]) -> None:
        """Poll the polling triggers among `triggers`: start new ones, restart changed ones, stop the rest."""
        wanted: dict[TriggerKey, tuple[str, LiveTrigger, Poller]] = {}
        for found in triggers:
            poller = self._pollers(found.spec.type)
            if poller is None or found.spec.disabled or found.flow.disabled:
                continue
            key = (found.flow.namespace, found.flow.id, found.spec.id)
            wanted[key] = (json.dumps(found.spec.props, sort_keys=True, default=str), found, poller)
        for key in list(self._tasks):
            signature, task = self._tasks[key]
            if key not in wanted or wanted[key][0] != signature:
                self._retire(key)
        for key, (signature, found, poller) in wanted.items():
            if key in self._tasks:
                continue
            try:
                interval = interval_of(found.spec.props, poller.interval)
            except ValueError as error:  # a flow the parser let through must not stop the others
                self._report(f"{_name(found)} is unusable: {error}")
                continue
            name = f"tiercel-polling-trigger-{'.'.join(key)}"
            task = asyncio.create_task(self._poll_forever(key, poller.poll, interval), name=name)
            self._tasks[key] = (signature, task)

    def cancel(self) -> None:
        """Stop every poll now (under the scheduler's lock, so that no fire is cut halfway)."""
        for key in list(self._tasks):
            self._retire(key)

    async def wait_stopped(self) -> None:
        """Wait for the cancelled polls to end."""
        for task in list(self._retired):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _retire(self, key: TriggerKey) -> None:
        _, task = self._tasks.pop(key)
        task.cancel()
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    # -- one trigger ------------------------------------------------------------------------------
    async def _poll_forever(self, key: TriggerKey, poll: Poll, interval: timedelta) -> None:
        while True:
            try:
                await self._poll(key, poll)
            except Exception as error:  # a failed poll is reported; the next one comes all the same
                found = self._lookup(key)
                where = _name(found) if found is not None else f"trigger `{key[2]}` of {key[0]}.{key[1]}"
                self._report(self._host.masker.mask(f"{where}: {_reason(error)}"))
            await self._clock.sleep_until(self._clock.now() + interval)

    async def _poll(self, key: TriggerKey, poll: Poll) -> None:
        found = self._lookup(key)
        if found is None or not found.active or found.blocked():
            return
        now = self._clock.now()
        context = self._context(found, now)
        conditions = found.spec.props.get("conditions") or ()
        if conditions:
            checked = ConditionContext(found.flow, self._render, now, variables=context)
            if not conditions_hold(conditions, checked):
                return
        variables = await poll(PollRequest(found, self._host, context, now, self._emitter(key)))
        if variables is not None:
            await self._fire(key, variables, now)

    async def _fire(self, key: TriggerKey, outputs: Mapping[str, Any], now: datetime) -> None:
        """Start the execution, its fire recorded with it; the trigger may have changed meanwhile."""
        async with self._lock:
            found = self._lookup(key)
            if found is None or not found.active or found.blocked():
                return
            host, flow = self._host, found.flow
            spec = {"id": found.spec.id, "type": found.spec.type, "variables": dict(outputs)}
            raw_labels = found.spec.props.get("labels")
            labels = labels_of(raw_labels) if raw_labels else []
            failure: str | None = None
            try:
                execution = host.new_execution(flow, {}, labels, trigger=spec)
            except InputError as error:
                # As for the other triggers: the execution is stored FAILED with the reason.
                execution = host.new_execution(flow, {}, labels, trigger=spec, check_inputs=False)
                failure = str(error)
            row = dataclasses.replace(found.row, last_date=now)
            fire = ScheduleFire(row, iso(now) or "", execution.id, prune_before=now - FIRE_RECORDS_KEPT)
            found.running.add(execution.id)
            try:
                await host.submit(flow, execution, fire=fire, failure=failure)
            except AlreadyFiredError:  # a clock that did not move between two polls
                found.running.discard(execution.id)
                return
            except BaseException:
                found.running.discard(execution.id)
                raise
            found.row = row
            self._states.written(found)

    # -- helpers ------------------------------------------------------------------------------------
    def _context(self, found: LiveTrigger, now: datetime) -> dict[str, Any]:
        """What the trigger's properties are rendered with: the flow's variables, `trigger.date`, secrets."""
        flow = found.flow
        stub = Execution(new_id(), flow.namespace, flow.id, flow.revision, State.new(at=now))
        context = build_context(flow, stub)
        context.pop("execution", None)
        context["trigger"] = {"date": iso(now)}
        host = self._host

        def secret(name: str) -> str:
            try:
                value: str = host.secrets.get(str(name))
            except SecretError as error:
                raise ExpressionError(str(error)) from None
            host.masker.add(value)
            return value

        context["secret"] = secret
        return context

    def _render(self, text: str, variables: Mapping[str, Any]) -> str:
        return str(self._host.renderer.render(text, variables))

    def _emitter(self, key: TriggerKey) -> Emit:
        """Where a poll's log lines go: the process log (warnings once per trigger)."""

        def emit(level: LogLevel, message: str) -> None:
            if level.rank < LogLevel.WARN.rank:
                _log.debug("Trigger %s: %s", ".".join(key), message)
            elif (key, message) not in self._warned:
                self._warned.add((key, message))
                _log.warning("Trigger %s: %s", ".".join(key), message)

        return emit


def _name(found: LiveTrigger) -> str:
    kind = "HTTP trigger" if found.spec.type == HTTP else ".".join(found.spec.type.rsplit(".", 2)[-2:])
    return f"{kind} `{found.spec.id}` of {found.flow.namespace}.{found.flow.id}"


def _reason(error: Exception) -> str:
    if isinstance(error, TaskFailure | ExpressionError | ConditionError | InputError | SecretError):
        return str(error)
    return f"{type(error).__name__}: {error}"


__all__ = ["DEFAULT_INTERVAL", "Poll", "PollRequest", "Poller", "Polling", "interval_of"]
