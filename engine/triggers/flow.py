"""Kestra's Flow trigger: start a flow when other executions change state.

Every persisted state change of an execution (an ExecutionChanged event) is tested against the
enabled Flow triggers of every other enabled flow, as Kestra's FlowTriggerService does: the trigger's
`states` (terminal states by default), then its `conditions`, then its `preconditions`. A flow never
triggers itself. Preconditions (upstream `flows` and `where` filters) may be met by different
executions within a time window; which of them were met is kept in the store, so a restart loses
nothing, and the window is cleared once the trigger fires (unless `resetOnSuccess: false`). The
windows' new state and the execution the trigger starts are written in one transaction.

One trigger failing (a bad expression, a store error) is reported as an EngineError and does not
keep the other triggers from being tested. A known limit: state changes received but not evaluated
yet when the process dies are not evaluated after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..events import EngineError, ExecutionChanged
from ..expressions import ExpressionError
from ..expressions.variables import build_context
from ..inputs import InputError
from ..labels import CORRELATION_ID, nested_labels
from ..mappings import deep_merge
from ..model import Execution, Flow, Label, StateType, TriggerSpec, iso, utcnow
from ..store import WindowsFire, WindowUpdate
from ..tasks.base import TaskFailure
from ..tasks.core import labels_of
from .conditions import ConditionContext, ConditionError, Render, conditions_hold
from .host import TriggerFire, TriggerHost
from .preconditions import is_multiple_condition, precondition_keys, precondition_results, window_bounds
from .types import FLOW

# Kestra's default `states`: every terminal state.
DEFAULT_STATES = frozenset(state.value for state in StateType if state.is_terminated)
# State changes remembered per execution, to react to transitions only.
_SEEN_EXECUTIONS = 10_000

_log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def trigger_variables(execution: Execution, outputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `trigger` variables of an execution started by a Flow trigger (Kestra's Flow.Output)."""
    failed = next((run.task_id for run in execution.task_runs if run.state.current is StateType.FAILED), None)
    return {
        "executionId": execution.id,
        "namespace": execution.namespace,
        "flowId": execution.flow_id,
        "flowRevision": execution.flow_revision,
        "state": execution.state.current.value,
        # Without the correlation id, which says nothing about the upstream execution itself.
        "executionLabels": nested_labels(label for label in execution.labels if label.key != CORRELATION_ID),
        "startDate": iso(execution.state.start_date),
        "endDate": iso(execution.state.end_date),
        "firstFailedTaskId": failed,
        "lastTaskId": execution.task_runs[-1].task_id if execution.task_runs else None,
        "outputs": dict(outputs if outputs is not None else execution.outputs or {}),
    }


@dataclass(frozen=True)
class _Windowed:
    """A set of conditions to meet within a time window, and which of them one execution meets."""

    condition_id: str
    time_window: Mapping[str, Any] | None
    reset: bool
    results: dict[str, bool]


@dataclass(frozen=True)
class _Plan:
    """What the windowed conditions decided: whether to fire, the outputs they gathered, and how
    the stored windows change if the trigger fires, or if it does not."""

    fire: bool
    outputs: dict[str, Any]
    on_fire: list[WindowUpdate]
    otherwise: list[WindowUpdate]


@dataclass(frozen=True)
class _Window:
    start: datetime
    end: datetime
    results: frozenset[str]
    outputs: Mapping[str, Any]

    def holds(self, now: datetime) -> bool:
        return self.start <= now <= self.end


class _Scope:
    """One trigger tested against one execution; the rendering context is built only when needed."""

    def __init__(
        self, flow: Flow, execution: Execution, now: datetime, variables: dict[str, Any], render: Render
    ) -> None:
        self.flow = flow
        self.execution = execution
        self.now = now
        self.variables = variables
        self.render = render
        self._context: dict[str, Any] | None = None

    def context(self) -> dict[str, Any]:
        """The upstream execution's context, with the owner flow and `trigger` variables."""
        if self._context is None:
            self._context = build_context(self.flow, self.execution)
            self._context["trigger"] = self.variables
        return self._context

    def checked(self) -> ConditionContext:
        return ConditionContext(self.flow, self.render, self.now, self.execution, self.context())

    def render_text(self, text: str) -> str:
        return self.render(text, self.context())


# ---------------------------------------------------------------------------------------------
# The trigger service
# ---------------------------------------------------------------------------------------------


class FlowTriggers:
    """Fires the Flow triggers of an engine's flows on execution state changes.

    Args:
        engine: The engine whose events are watched and whose flows are started.
        clock: Now, as an aware datetime (injectable for tests of time windows).
    """

    def __init__(self, engine: TriggerHost, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        self._queue: asyncio.Queue[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._seen: OrderedDict[str, StateType] = OrderedDict()

    async def start(self) -> None:
        # Triggers switched off by command must be known before the first state change is tested.
        await self.engine.trigger_switches.load()
        self._queue = self.engine.events.subscribe()
        self._task = asyncio.create_task(self._run(), name="tiercel-flow-triggers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue is not None:
            self.engine.events.unsubscribe(self._queue)
            self._queue = None

    async def settled(self) -> None:
        """Wait until every event published so far has been evaluated."""
        if self._queue is not None:
            await self._queue.join()

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                # An execution of another server fires its flow triggers there.
                if (
                    isinstance(event, ExecutionChanged)
                    and not event.elsewhere
                    and self._transition(event.execution)
                ):
                    await self.evaluate(event.execution)
            except Exception as error:  # the service must outlive any one evaluation
                self._report(f"Flow triggers: {type(error).__name__}: {error}")
            finally:
                self._queue.task_done()

    def _transition(self, execution: Execution) -> bool:
        """Whether this snapshot is a new state of its execution (saves without a change are not)."""
        current = execution.state.current
        previous = self._seen.get(execution.id)
        self._seen[execution.id] = current
        self._seen.move_to_end(execution.id)
        if len(self._seen) > _SEEN_EXECUTIONS:
            self._seen.popitem(last=False)
        return previous is not current and current is not StateType.CREATED

    async def evaluate(self, execution: Execution) -> list[str]:
        """Test every Flow trigger against one execution state; return the ids of executions started."""
        started: list[str] = []
        now = self.clock()
        variables = trigger_variables(execution)
        flows = self.engine.flows
        for uid in flows.with_triggers(FLOW):  # the flows with a Flow trigger, not every flow
            flow = flows.get(uid)
            if flow is None or flow.disabled or flow.uid == (execution.namespace, execution.flow_id):
                continue  # Kestra never lets a flow trigger itself
            for trigger in flow.triggers:
                if trigger.type != FLOW or trigger.disabled:
                    continue
                if not self.engine.trigger_switches.is_enabled(flow.namespace, flow.id, trigger.id):
                    continue  # switched off by command (the dashboard, `tiercel triggers --disable`)
                scope = _Scope(flow, execution, now, dict(variables), self._render)
                try:
                    started_id = await self._evaluate(trigger, scope)
                except (ConditionError, ExpressionError, InputError, TaskFailure, ValueError) as error:
                    self._report(f"Flow trigger `{trigger.id}` of {flow.namespace}.{flow.id}: {error}")
                    continue
                except Exception as error:  # one broken trigger must not silence the others
                    self._report(
                        f"Flow trigger `{trigger.id}` of {flow.namespace}.{flow.id}: "
                        f"{type(error).__name__}: {error}"
                    )
                    continue
                if started_id is not None:
                    started.append(started_id)
        return started

    async def _evaluate(self, trigger: TriggerSpec, scope: _Scope) -> str | None:
        props = trigger.props
        states = props.get("states") or DEFAULT_STATES
        if scope.execution.state.current.value not in states:
            return None
        conditions = [c for c in props.get("conditions") or () if not is_multiple_condition(c)]
        if conditions and not conditions_hold(conditions, scope.checked()):
            return None
        windowed = self._windowed_conditions(trigger, scope)
        if not windowed:
            return await self._fire(scope.flow, trigger, scope.execution, scope.context())
        plan = await self._windows_met(scope.flow, trigger, windowed, scope.execution, scope.now)
        if plan is None:
            return None
        store = self.engine.store
        if not plan.fire:
            await store.update_flow_trigger_windows(plan.otherwise)
            return None
        scope.variables["outputs"] = plan.outputs
        try:
            return await self._fire(
                scope.flow,
                trigger,
                scope.execution,
                scope.context(),
                WindowsFire(tuple(plan.on_fire)),
            )
        except Exception:
            # Not fired: keep what this execution met, so the next matching one fires instead.
            try:
                await store.update_flow_trigger_windows(plan.otherwise)
            except Exception as error:
                self._report(
                    f"Flow trigger `{trigger.id}` of {scope.flow.namespace}.{scope.flow.id}: {error}"
                )
            raise

    def _windowed_conditions(self, trigger: TriggerSpec, scope: _Scope) -> list[_Windowed]:
        """The trigger's `preconditions` and legacy MultipleConditions, tested on this execution."""
        found: list[_Windowed] = []
        for condition in trigger.props.get("conditions") or ():
            if not is_multiple_condition(condition):
                continue
            members = condition.get("conditions") or {}
            legacy = {"window": condition.get("window"), "windowAdvance": condition.get("windowAdvance")}
            found.append(
                _Windowed(
                    str(condition.get("id") or trigger.id),
                    condition.get("timeWindow") or condition.get("sla") or legacy,
                    condition.get("resetOnSuccess", True) is not False,
                    {key: conditions_hold([member], scope.checked()) for key, member in members.items()},
                )
            )
        preconditions = trigger.props.get("preconditions")
        if preconditions and precondition_keys(preconditions):
            found.append(
                _Windowed(
                    str(preconditions.get("id") or trigger.id),
                    preconditions.get("timeWindow"),
                    preconditions.get("resetOnSuccess", True) is not False,
                    precondition_results(preconditions, scope.execution, scope.render_text),
                )
            )
        return found

    async def _windows_met(
        self, flow: Flow, trigger: TriggerSpec, windowed: list[_Windowed], execution: Execution, now: datetime
    ) -> _Plan | None:
        """Record this execution in the windows of the condition sets; None when it meets none.

        The trigger fires when this execution satisfied at least one condition and every set is
        complete; then the sets that reset on success start over. Nothing is written here: the
        caller writes the plan, with the execution it starts when it fires.
        """
        if not any(any(item.results.values()) for item in windowed):
            return None  # this execution satisfies none of them: nothing to record, nothing to fire
        await self.engine.store.purge_flow_trigger_windows(now)
        complete_all = True
        outputs: dict[str, Any] = {}
        on_fire: list[WindowUpdate] = []
        otherwise: list[WindowUpdate] = []
        for item in windowed:
            matched = {key for key, ok in item.results.items() if ok}
            key = (flow.namespace, flow.id, trigger.id, item.condition_id)
            window = await self._window(key, item.time_window, now)
            if window is None:
                complete_all = False
                continue
            if matched:
                window = _Window(
                    window.start,
                    window.end,
                    window.results | matched,
                    deep_merge(window.outputs, execution.outputs or {}),
                )
                saved = (window.start, window.end, sorted(window.results), window.outputs)
                otherwise.append((key, saved))
                if not item.reset:
                    on_fire.append((key, saved))
            if item.reset:
                on_fire.append((key, None))
            complete_all = complete_all and set(item.results) <= window.results
            outputs = deep_merge(outputs, window.outputs)
        return _Plan(complete_all, outputs, on_fire, otherwise)

    async def _window(
        self, key: tuple[str, str, str, str], time_window: Mapping[str, Any] | None, now: datetime
    ) -> _Window | None:
        """The stored window if `now` is inside it, else a new one (None when `now` is outside it)."""
        stored = await self.engine.store.flow_trigger_window(*key)
        if stored is not None:
            window = _Window(stored[0], stored[1], frozenset(stored[2]), stored[3])
            if window.holds(now):
                return window
        start, end = window_bounds(time_window, now)
        window = _Window(start, end, frozenset(), {})
        return window if window.holds(now) else None

    async def _fire(
        self,
        flow: Flow,
        trigger: TriggerSpec,
        upstream: Execution,
        context: Mapping[str, Any],
        fire: TriggerFire | None = None,
    ) -> str:
        props = trigger.props
        renderer = self.engine.renderer
        inputs = renderer.render_value(props.get("inputs") or {}, context)
        labels = labels_of(renderer.render_value(props["labels"], context)) if props.get("labels") else []
        correlation = upstream.labels_map().get(CORRELATION_ID)
        if correlation is not None:
            labels.append(Label(CORRELATION_ID, correlation))
        spec = {"id": trigger.id, "type": trigger.type, "variables": dict(context["trigger"])}
        try:
            execution = self.engine.new_execution(flow, inputs, labels, trigger=spec)
        except InputError as error:
            # As Kestra: the execution is created, and FAILED with the reason, rather than not at all.
            execution = self.engine.new_execution(flow, {}, labels, trigger=spec, check_inputs=False)
            return str(await self.engine.submit(flow, execution, fire=fire, failure=str(error)))
        return str(await self.engine.submit(flow, execution, fire=fire))

    def _render(self, text: str, variables: Mapping[str, Any]) -> str:
        return str(self.engine.renderer.render(text, variables))

    def _report(self, message: str) -> None:
        _log.error(message)
        self.engine.events.publish(EngineError(message))


__all__ = [
    "DEFAULT_STATES",
    "FlowTriggers",
    "is_multiple_condition",
    "precondition_keys",
    "precondition_results",
    "trigger_variables",
    "window_bounds",
]
