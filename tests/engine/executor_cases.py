"""Drive the pure Executor on plain data: a flow, an execution, events in, the next execution out.

No store, no engine, no event loop, no sleeps: the clock is a value the test moves. A case is a row
of plain data (see `Case`): the flow's tasks as YAML, then steps, each an event and the actions the
executor asks for in answer, then the end states.

Events (one string each):
    start               the first step of a new execution
    ok a / fail a       the worker's result for the running attempt of task `a`
    warn a / killed a   (WARNING, KILLED); `ok a[2]` is task `a` for the loop value 2
    timeout a           the worker's result after the task's `timeout`: FAILED, like any failure
    wait 1.5            the clock moves 1.5 s and the executor takes a step (the engine's wake-up)
    lost a              the worker running task `a`'s attempt is gone (it stopped heartbeating)
    kill / restart      the user's commands
    resume              resume a paused execution

Actions (one string per step, parts joined with "; "):
    run a b             task runs handed to the worker
    cancel a            task runs whose processes the worker must stop
    subflow a           Subflow task runs the engine must start an execution for
    wake +2s            when the executor wants its next step (a retry, a delay)
    more                the step stopped at its fan-out share; another step follows
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tiercel.engine.executor.decisions import Executor
from tiercel.engine.executor.working_copy import Outcome
from tiercel.engine.expressions import Renderer
from tiercel.engine.messages import WorkerResult
from tiercel.engine.model import Execution, Flow, State, StateType, TaskRun
from tiercel.engine.parser import parse_flow
from tiercel.engine.tasks.registry import registry

S = StateType
T0 = datetime(2026, 1, 1, tzinfo=UTC)

# Short names for the task types the cases use; a name with a dot is taken as it is.
TYPES = {
    "Return": "io.kestra.plugin.core.debug.Return",
    "Log": "io.kestra.plugin.core.log.Log",
    "Fail": "io.kestra.plugin.core.execution.Fail",
    "Subflow": "io.kestra.plugin.core.flow.Subflow",
    **{
        name: f"io.kestra.plugin.core.flow.{name}"
        for name in (
            "Sequential",
            "Parallel",
            "If",
            "Switch",
            "ForEach",
            "EachSequential",
            "EachParallel",
            "Dag",
            "AllowFailure",
            "Pause",
            "WaitFor",
        )
    },
}
_SHORT_TYPE = re.compile(r"\btype: (\w+)\b(?!\.)")
_RESULTS = {"ok": S.SUCCESS, "fail": S.FAILED, "warn": S.WARNING, "killed": S.KILLED, "timeout": S.FAILED}


def flow_of(body: str, flow_id: str = "f") -> Flow:
    """A flow from the YAML of its body (tasks, errors, finally, retry ...) with short type names."""
    text = f"id: {flow_id}\nnamespace: company.team\n" + textwrap.dedent(body)
    text = _SHORT_TYPE.sub(lambda match: f"type: {TYPES.get(match[1], match[1])}", text)
    return parse_flow(text).with_revision(1)


def label(run: TaskRun) -> str:
    """How cases name a task run: its task id, with its loop value in brackets."""
    return run.task_id if run.value is None else f"{run.task_id}[{run.value}]"


def describe(outcome: Outcome, now: datetime) -> str:
    """The actions of one step, as cases write them (see the module docstring)."""
    parts = []
    for verb, runs in (("run", outcome.dispatch), ("cancel", outcome.cancel), ("subflow", outcome.subflows)):
        if runs:
            parts.append(" ".join([verb, *(label(run) for run in runs)]))
    if outcome.wake_at is not None:
        parts.append(f"wake +{(outcome.wake_at - now).total_seconds():g}s")
    if outcome.more:
        parts.append("more")
    return "; ".join(parts)


class Drive:
    """One execution of `flow`, moved on by events; the executor's last outcome is kept."""

    def __init__(self, flow: Flow, inputs: Mapping[str, Any] | None = None) -> None:
        self.flow = flow
        self.executor = Executor(registry(), Renderer())
        self.now = T0
        self.execution = Execution(
            "exec1", flow.namespace, flow.id, 1, State.new(S.CREATED, T0), inputs=dict(inputs or {})
        )
        self.outcome = Outcome(self.execution)
        self.logs: list[str] = []

    def _took(self, outcome: Outcome) -> str:
        self.outcome, self.execution = outcome, outcome.execution
        self.logs += [entry.message for entry in outcome.logs]
        return describe(outcome, self.now)

    def run(self, name: str) -> TaskRun:
        """The newest task run labelled `name` (see `label`)."""
        found = [run for run in self.execution.task_runs if label(run) == name]
        assert found, f"no task run {name!r} in {self.states()}"
        return found[-1]

    def states(self) -> dict[str, str]:
        """Every task run's state by label (the newest run of a label wins)."""
        return {label(run): run.state.current.name for run in self.execution.task_runs}

    def event(self, text: str) -> str:
        """Apply one event (see the module docstring); the actions the executor asked for."""
        verb, _, arg = text.partition(" ")
        executor, flow = self.executor, self.flow
        if verb == "start":
            return self._took(executor.advance(flow, self.execution, self.now))
        if verb in _RESULTS:
            result = WorkerResult(self.run(arg).id, _RESULTS[verb])
            return self._took(executor.apply_results(flow, self.execution, [result], self.now))
        if verb == "lost":
            run = self.run(arg)
            return self._took(executor.lost(flow, self.execution, self.now, run.id, len(run.attempts) - 1))
        if verb == "wait":
            self.now += timedelta(seconds=float(arg))
            return self._took(executor.advance(flow, self.execution, self.now))
        if verb == "kill":
            return self._took(executor.kill(flow, self.execution, self.now))
        if verb == "restart":
            return self._took(executor.restart(flow, self.execution, self.now))
        if verb == "resume":
            return self._took(executor.resume(flow, self.execution, self.now))
        raise ValueError(f"unknown event {text!r}")


@dataclass(frozen=True)
class Case:
    """One row: a flow, the steps (event, actions asked for), the end states.

    `states` lists the task runs that must be in a given state (by label); `attempts` the number of
    attempts of the task runs named.
    """

    id: str
    flow: str
    steps: tuple[tuple[str, str], ...]
    execution: str
    states: Mapping[str, str | None] = field(default_factory=dict)
    attempts: Mapping[str, int] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)


def play(case: Case) -> Drive:
    """Play a case's events and check every step's actions and the end states."""
    drive = Drive(flow_of(case.flow), case.inputs)
    for event, expected in case.steps:
        actions = drive.event(event)
        assert actions == expected, f"after {event!r}: {actions!r}, expected {expected!r}; {drive.states()}"
    assert drive.execution.state.current.name == case.execution, (drive.states(), drive.logs)
    states = drive.states()
    assert {name: states.get(name) for name in case.states} == dict(case.states), states
    attempts = {name: len(drive.run(name).attempts) for name in case.attempts}
    assert attempts == dict(case.attempts)
    return drive
