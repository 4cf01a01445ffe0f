"""One execution's working copy during an executor step, and Kestra's rules for flowables.

`Work` is what flowable handlers (engine.tasks.flow, through engine.tasks.flowable.WorkingCopy) and
the executor read and change: the task runs indexed by parent and by (task, loop value, iteration),
the expression context, and Kestra's FlowableUtils rules (which branch runs, what comes next, how a
parent ends). It is mutable for the length of one step; the executor freezes it back into an
Execution at the end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, TypeVar

from ..expressions import Renderer
from ..expressions.variables import add_output, build_context, share_outputs
from ..model import (
    Execution,
    Flow,
    LogEntry,
    LogLevel,
    State,
    StateType,
    TaskRun,
    TaskSpec,
    new_id,
)
from ..model.resources import ResourceUsage
from ..tasks.flowable import Resolved, allowed, worst_state
from ..triggers.conditions import ConditionContext, conditions_hold
from .tallies import Key, Tally, key_of

S = StateType
# How a task waited for (`dependsOn`) must have ended for its dependents to start.
_WENT_WELL = frozenset({S.SUCCESS, S.WARNING, S.SKIPPED})
T = TypeVar("T")
# At most this many task runs are created in one executor step; a larger fan-out (a ForEach over
# 100,000 values) goes on in later steps, so other executions' messages are handled in between and
# no single step holds the event loop for long.
FANOUT_SLICE = 1_000
# Tallies kept per parent: the branches of its task, plus lists resolved again after it changed.
TALLIES_PER_PARENT = 8
# Expression functions that read engine state (kv, secret, read), given the execution being rendered
# and the step's log entries (to which they may add).
Functions = Callable[[Execution, list[LogEntry]], dict[str, Any]]


@dataclass
class Outcome:
    """The result of one executor step."""

    execution: Execution
    dispatch: list[TaskRun] = field(default_factory=list)
    subflows: list[TaskRun] = field(default_factory=list)
    cancel: list[TaskRun] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)
    wake_at: datetime | None = None
    # The execution ended RETRIED: a new attempt of it (a replay from the start) starts at this date.
    retry_at: datetime | None = None
    # The step stopped creating task runs at FANOUT_SLICE: take the next step soon, after others.
    more: bool = False
    # The ids of the task runs this step created or changed, as they were (so new ones in creation
    # order); None when unknown (it removed some, or no working copy made the outcome): then only a
    # comparison with the stored execution tells.
    changed: dict[str, None] | None = None


class Work:
    """A mutable working copy of one execution during one step; frozen again at the end.

    Its indexes are kept up to date as task runs change, never rebuilt, so that the executor can
    keep a working copy from one step to the next (see `begin_step`) and a step costs what it
    changes, not what the execution holds.
    """

    def __init__(
        self,
        renderer: Renderer,
        functions: Functions | None,
        flow: Flow,
        execution: Execution,
        now: datetime,
    ) -> None:
        self.renderer = renderer
        self.functions = functions
        self.flow = flow
        self.now = now
        self.header = execution
        self.runs: list[TaskRun] = list(execution.task_runs)
        self.position = {run.id: index for index, run in enumerate(self.runs)}
        self._index()
        self.outcome = Outcome(execution, changed={})
        self._snapshot: Execution | None = execution
        # Task runs this step may still create (see FANOUT_SLICE).
        self.room = FANOUT_SLICE
        self._memo: dict[tuple[str, str], tuple[TaskRun, Any]] = {}
        # Counts every change of a task run in this step (see `memo_live`).
        self.version = 0
        self._live_memo: dict[tuple[str, str], tuple[int, Any]] = {}
        # The outputs tree of expressions, kept up to date as task runs change (built on first use).
        self._outputs: dict[str, Any] | None = None
        # Once handed to a snapshot, the tree is copied on write (the top level, and each nested
        # node not in `_fresh`), so the snapshot's tree stays as it was.
        self._outputs_shared = False
        self._fresh: dict[int, Any] = {}
        # Where each (task, loop values) lands in the outputs tree: the newest run of a key wins.
        # Built with the tree: a step that renders nothing does not pay for it.
        self._latest_of_key: dict[tuple[str, tuple[str, ...]], int] | None = None

    def begin_step(self, now: datetime) -> None:
        """Take another step from the execution this working copy froze last (`snapshot()`)."""
        self.now = now
        self.outcome = Outcome(self.snapshot(), changed={})
        self.room = FANOUT_SLICE

    def _index(self) -> None:
        # children by parent, and each parent's children by (task, value, iteration): the flowable
        # rules look runs up this way many times per step, so lookups must not scan.
        self.children: dict[str | None, list[str]] = {}
        self.keyed: dict[str | None, dict[Key, str]] = {}
        # The task runs not ended yet, and every task run by id, as the executor scans them.
        self.unfinished: dict[str, None] = {}
        self.by_id: dict[str, TaskRun] = {}
        self.tallies: dict[str | None, dict[int, Tally]] = {}
        for run in self.runs:
            self._add_to_index(run)
            self.by_id[run.id] = run
            if not run.state.current.is_terminated:
                self.unfinished[run.id] = None

    def _add_to_index(self, run: TaskRun) -> None:
        parent = run.parent_task_run_id
        self.children.setdefault(parent, []).append(run.id)
        self.keyed.setdefault(parent, {})[(run.task_id, run.value, run.iteration)] = run.id

    def memo(self, run: TaskRun, what: str, compute: Callable[[], T]) -> T:
        """`compute()` once per version of `run` in this step (task runs are replaced on change)."""
        key = (run.id, what)
        found = self._memo.get(key)
        if found is None or found[0] is not run:
            found = (run, compute())
            self._memo[key] = found
        value: T = found[1]
        return value

    def memo_live(self, run: TaskRun, what: str, compute: Callable[[], T]) -> T:
        """`compute()` again only once any task run changed: for what depends on a run's children."""
        key = (run.id, what)
        found = self._live_memo.get(key)
        if found is None or found[0] != self.version:
            found = (self.version, compute())
            self._live_memo[key] = found
        value: T = found[1]
        return value

    # -- reading ---------------------------------------------------------------------------
    def run(self, run_id: str) -> TaskRun:
        return self.runs[self.position[run_id]]

    def unfinished_runs(self) -> list[TaskRun]:
        """The task runs not ended yet, in creation order."""
        position = self.position
        return [self.runs[i] for i in sorted(position[run_id] for run_id in self.unfinished)]

    def children_of(self, parent_id: str | None) -> list[TaskRun]:
        return [self.runs[self.position[i]] for i in self.children.get(parent_id, ())]

    def task(self, run: TaskRun) -> TaskSpec:
        return self.flow.tasks_by_id[run.task_id]

    def snapshot(self) -> Execution:
        """The execution as it stands now, frozen."""
        if self._snapshot is None:
            snapshot = dataclasses.replace(self.header, task_runs=tuple(self.runs))
            # Its index by id is a copy of ours, and its outputs tree ours: built from the runs, each
            # would cost a Python loop over every task run at every step.
            vars(snapshot)["task_runs_by_id"] = dict(self.by_id)
            if self.runs:
                share_outputs(snapshot, self.outputs_tree())
                self._outputs_shared = True
            self._snapshot = snapshot
        return self._snapshot

    @property
    def killing(self) -> bool:
        return self.header.state.current is S.KILLING

    # -- writing ---------------------------------------------------------------------------
    def put(self, run: TaskRun) -> TaskRun:
        self.version += 1
        if self.outcome.changed is not None:
            self.outcome.changed[run.id] = None
        self.by_id[run.id] = run
        if run.state.current.is_terminated:
            self.unfinished.pop(run.id, None)
        else:
            self.unfinished[run.id] = None
        index = self.position.get(run.id)
        tallies = self.tallies.get(run.parent_task_run_id)
        if tallies:
            self._count(run, index, tallies.values())
        if index is None:
            index = self.position[run.id] = len(self.runs)
            self.runs.append(run)
            self._add_to_index(run)
            if self._latest_of_key is not None:
                self._latest_of_key[self._output_key(run)] = index
        else:
            previous = self.runs[index]
            self.runs[index] = run
            latest = self._latest_of_key
            if self._outputs is not None and latest is not None and run.outputs is not previous.outputs:
                if run.outputs is not None and latest.get(self._output_key(run)) == index:
                    self._add_output(run)
                else:
                    self._outputs = None  # an older run changed: rebuild when next needed
        self._snapshot = None
        return run

    def _count(self, run: TaskRun, index: int | None, tallies: Iterable[Tally]) -> None:
        """Move `run` in its parent's tallies (before it is stored at `index`, None when new)."""
        key: Key = (run.task_id, run.value, run.iteration)
        keyed_id = self.keyed.get(run.parent_task_run_id, {}).get(key)
        if index is None:  # a new child: it becomes the one its key finds
            before = self.run(keyed_id).state.current if keyed_id is not None else None
        elif keyed_id == run.id:
            before = self.runs[index].state.current
        else:
            return  # an older child of the same key: the tallies count the newest
        after = run.state.current
        if before is after:
            return
        for tally in tallies:
            if key in tally.positions:
                tally.count(before, after)

    def _tally(self, parent: TaskRun | None, resolved: Sequence[Resolved]) -> Tally | None:
        """The tally of `parent`'s children for `resolved`, made on first use and kept up to date."""
        parent_id = parent.id if parent else None
        tallies = self.tallies.setdefault(parent_id, {})
        tally = tallies.get(id(resolved))
        if tally is not None and tally.resolved is resolved:
            return tally
        tally = Tally.of(resolved)
        if tally is None:
            return None
        keyed = self.keyed.get(parent_id, {})
        for key in tally.positions:
            run_id = keyed.get(key)
            if run_id is not None:
                tally.count(None, self.run(run_id).state.current)
        if len(tallies) >= TALLIES_PER_PARENT:
            tallies.clear()  # lists resolved for an older version of the parent
        tallies[id(resolved)] = tally
        return tally

    def _output_key(self, run: TaskRun) -> tuple[str, tuple[str, ...]]:
        values = [p.value for p in self._parents(run) if p.value is not None]
        return run.task_id, (*values, *((run.value,) if run.value is not None else ()))

    def parents(self, run: TaskRun) -> list[TaskRun]:
        """The chain of parent task runs, nearest first (read from the live runs, no snapshot)."""
        return self._parents(run)

    def _parents(self, run: TaskRun) -> list[TaskRun]:
        chain: list[TaskRun] = []
        parent_id = run.parent_task_run_id
        while parent_id is not None:
            parent = self.run(parent_id)
            chain.append(parent)
            parent_id = parent.parent_task_run_id
        return chain

    def outputs_tree(self) -> dict[str, Any]:
        if self._outputs is None:
            self._latest_of_key = {self._output_key(run): index for index, run in enumerate(self.runs)}
            self._outputs, self._outputs_shared, self._fresh = {}, False, {}
            for run in self.runs:
                if run.outputs is not None:
                    add_output(self._outputs, run, self._parents(run))
        return self._outputs

    def _add_output(self, run: TaskRun) -> None:
        assert self._outputs is not None
        if self._outputs_shared:
            self._outputs, self._outputs_shared, self._fresh = dict(self._outputs), False, {}
        add_output(self._outputs, run, self._parents(run), self._fresh)

    def remove(self, run_ids: set[str]) -> None:
        self.version += 1
        self.outcome.changed = None
        self.runs = [run for run in self.runs if run.id not in run_ids]
        self.position = {run.id: index for index, run in enumerate(self.runs)}
        self._index()
        self._latest_of_key = None
        self._outputs = None
        self._snapshot = None

    def set_header(self, execution: Execution) -> None:
        self.header = execution
        self._snapshot = None

    def create(self, resolved: Resolved, parent: TaskRun | None) -> TaskRun:
        self.room -= 1
        run = TaskRun(
            id=new_id(),
            execution_id=self.header.id,
            namespace=self.header.namespace,
            flow_id=self.header.flow_id,
            task_id=resolved.task.id,
            state=State.new(S.CREATED, self.now),
            parent_task_run_id=parent.id if parent else None,
            value=resolved.value,
            iteration=resolved.iteration,
        )
        return self.put(run)

    def log(self, level: LogLevel, message: str, run: TaskRun | None = None) -> None:
        self.outcome.logs.append(
            LogEntry(
                execution_id=self.header.id,
                namespace=self.header.namespace,
                flow_id=self.header.flow_id,
                timestamp=self.now,
                level=level,
                message=message,
                task_id=run.task_id if run else None,
                task_run_id=run.id if run else None,
                attempt=len(run.attempts) - 1 if run and run.attempts else None,
            )
        )

    # -- rendering -------------------------------------------------------------------------
    def context(self, run: TaskRun | None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        task = self.task(run) if run else None
        # The header and the live outputs tree, not a snapshot: building one costs O(task runs).
        functions = self.functions
        outputs = self.outputs_tree() if self.runs else None
        parents = self._parents(run) if run else None
        context = build_context(
            self.flow, self.header, task, run, extra=extra, outputs=outputs, parents=parents
        )
        if functions is not None:
            context.update(functions(self.header, self.outcome.logs))
        return context

    def render(self, value: Any, run: TaskRun | None, extra: Mapping[str, Any] | None = None) -> Any:
        return self.renderer.render_value(value, self.context(run, extra))

    def truthy(self, template: Any, run: TaskRun | None) -> bool:
        if isinstance(template, bool):
            return template
        return self.renderer.is_truthy(str(template), self.context(run))

    def conditions_hold(self, conditions: Sequence[Mapping[str, Any]], run: TaskRun) -> bool:
        """Whether a task's `conditions` all hold: rendered with its variables, dates tested on now.

        Raises:
            ConditionError, ExpressionError: A condition could not be tested.
        """
        if not conditions:
            return True
        tested = ConditionContext(self.flow, self.renderer.render, self.now, variables=self.context(run))
        return conditions_hold(conditions, tested)

    # -- Kestra's FlowableUtils ------------------------------------------------------------
    def runs_for(self, parent: TaskRun | None, resolved: Sequence[Resolved]) -> list[TaskRun]:
        """Children of `parent` that run one of `resolved` (same task, value and iteration)."""
        keyed = self.keyed.get(parent.id if parent else None)
        if not keyed:
            return []
        found = (keyed.get((r.task.id, r.value, r.iteration)) for r in resolved)
        return [self.runs[self.position[run_id]] for run_id in found if run_id is not None]

    def is_terminated(self, parent: TaskRun | None, resolved: Sequence[Resolved]) -> bool:
        tally = self._tally(parent, resolved)
        if tally is not None:
            return tally.terminated
        runs = self.runs_for(parent, resolved)
        return len(runs) >= len(resolved) and all(run.state.current.is_terminated for run in runs)

    def has_failed(self, parent: TaskRun | None, resolved: Sequence[Resolved]) -> bool:
        tally = self._tally(parent, resolved)
        if tally is not None:
            return tally.failed > 0
        return any(run.state.current is S.FAILED for run in self.runs_for(parent, resolved))

    def has_active(self, parent: TaskRun | None, resolved: Sequence[Resolved]) -> bool:
        """Whether a child has not ended yet (a paused one included: it will end later)."""
        tally = self._tally(parent, resolved)
        if tally is not None:
            return tally.active > 0
        return any(not run.state.current.is_terminated for run in self.runs_for(parent, resolved))

    def _first_not_started(self, tally: Tally, keyed: Mapping[Key, str]) -> int:
        """Where the first entry of the tally's list without a task run is (its length if none)."""
        resolved = tally.resolved
        while tally.cursor < len(resolved) and key_of(resolved[tally.cursor]) in keyed:
            tally.cursor += 1
        return tally.cursor

    def current_branch(
        self,
        parent: TaskRun | None,
        tasks: Sequence[Resolved],
        errors: Sequence[Resolved],
        finally_: Sequence[Resolved],
    ) -> Sequence[Resolved]:
        """Which list runs now: the tasks, the error branch once one failed, then finally."""
        if self.runs_for(parent, errors) or self.has_failed(parent, tasks):
            # Siblings still running (parallel branches, retries) finish before errors start.
            if self.has_active(parent, tasks):
                return []
            if finally_ and (not errors or self.is_terminated(parent, errors)):
                return finally_
            return errors
        if finally_ and self.is_terminated(parent, tasks):
            return finally_
        return tasks

    def sequential_nexts(self, parent: TaskRun | None, current: Sequence[Resolved]) -> list[Resolved]:
        """The first task of `current` not started yet, once every started one has ended (the
        tasks whose siblings have ended well when the list has `dependsOn`)."""
        if not current or self.killing:
            return []
        tally = self._tally(parent, current)
        if self._dependent(tally, current):
            return self.dependency_nexts(parent, current, 0)
        keyed = self.keyed.get(parent.id if parent else None)
        if not keyed:
            return [current[0]]
        if tally is not None:
            if tally.active:
                return []
            first = self._first_not_started(tally, keyed)
            return [current[first]] if first < len(current) else []
        first_missing: Resolved | None = None
        for resolved in current:  # one pass: this runs at every step of a long sequence
            run_id = keyed.get((resolved.task.id, resolved.value, resolved.iteration))
            if run_id is None:
                if first_missing is None:
                    first_missing = resolved
            elif not self.runs[self.position[run_id]].state.current.is_terminated:
                return []
        return [first_missing] if first_missing is not None else []

    def parallel_nexts(
        self, parent: TaskRun | None, current: Sequence[Resolved], limit: int
    ) -> list[Resolved]:
        if not current or self.killing:
            return []
        tally = self._tally(parent, current)
        if self._dependent(tally, current):
            return self.dependency_nexts(parent, current, limit)
        if tally is not None:
            keyed = self.keyed.get(parent.id if parent else None, {})
            free = len(current) if limit <= 0 else max(limit - tally.active, 0)
            waiting: list[Resolved] = []
            for resolved in islice(current, self._first_not_started(tally, keyed), None):
                if len(waiting) >= free:
                    break
                if key_of(resolved) not in keyed:
                    waiting.append(resolved)
            return waiting
        runs = self.runs_for(parent, current)
        started = {(run.task_id, run.value, run.iteration) for run in runs}
        waiting = [r for r in current if (r.task.id, r.value, r.iteration) not in started]
        if limit > 0:
            active = sum(1 for run in runs if not run.state.current.is_terminated)
            waiting = waiting[: max(limit - active, 0)]
        return waiting

    @staticmethod
    def _dependent(tally: Tally | None, current: Sequence[Resolved]) -> bool:
        if tally is not None:
            return tally.dependent
        return any(resolved.task.depends_on for resolved in current)

    def dependency_nexts(
        self, parent: TaskRun | None, current: Sequence[Resolved], limit: int
    ) -> list[Resolved]:
        """The tasks of `current` not started yet whose `dependsOn` siblings (of the same loop value
        and iteration) have ended; a sibling left out of the list (disabled) is not waited for.
        One that ended neither well nor FAILED (a failure ends the list first) makes its dependants
        CANCELLED when they start (`blocked_by`). `limit` > 0 caps how many run at once."""
        if not current or self.killing:
            return []
        keyed = self.keyed.get(parent.id if parent else None, {})
        listed = {key_of(resolved) for resolved in current}
        ready: list[Resolved] = []
        active = 0
        for resolved in current:
            run_id = keyed.get(key_of(resolved))
            if run_id is not None:
                active += not self.runs[self.position[run_id]].state.current.is_terminated
                continue
            waits_for = ((name, resolved.value, resolved.iteration) for name in resolved.task.depends_on)
            if all(key not in listed or self._ended(keyed.get(key)) for key in waits_for):
                ready.append(resolved)
        return ready[: max(limit - active, 0)] if limit > 0 else ready

    def _ended(self, run_id: str | None) -> bool:
        return run_id is not None and self.runs[self.position[run_id]].state.current.is_terminated

    def blocked_by(self, run: TaskRun, task: TaskSpec) -> TaskRun | None:
        """The first task run `run` waits for (`dependsOn`) that ended neither SUCCESS, WARNING nor
        SKIPPED (CANCELLED, KILLED ...): `run` must not start."""
        keyed = self.keyed.get(run.parent_task_run_id, {})
        for name in task.depends_on:
            run_id = keyed.get((name, run.value, run.iteration))
            if (
                run_id is not None
                and (found := self.runs[self.position[run_id]]).state.current not in _WENT_WELL
            ):
                return found
        return None

    def resolve_state(
        self,
        parent: TaskRun | None,
        tasks: Sequence[Resolved],
        errors: Sequence[Resolved],
        finally_: Sequence[Resolved],
        *,
        allow_failure: bool = False,
        allow_warning: bool = False,
    ) -> StateType | None:
        """The parent's end state once its current branch is done, else None."""
        if not tasks and not errors and not finally_:
            return S.SUCCESS
        current = self.current_branch(parent, tasks, errors, finally_)
        if current:
            if not self.is_terminated(parent, current):
                return None
        elif not (self.has_failed(parent, tasks) and not self.has_active(parent, tasks)):
            return None if tasks else S.SUCCESS
        # The error branch runs but does not change the end state; a failing `finally` does.
        state = worst_state(self.runs_for(parent, [*tasks, *finally_]))
        return allowed(state, allow_failure, allow_warning)


def close_attempt(run: TaskRun, attempt_state: StateType, run_state: StateType, now: datetime) -> TaskRun:
    """End the open attempt with its own state, and move the task run to `run_state`."""
    attempts = run.attempts
    if attempts and not attempts[-1].state.current.is_terminated:
        attempts = (*attempts[:-1], attempts[-1].to(attempt_state, now))
    return dataclasses.replace(run, attempts=attempts, state=run.state.to(run_state, now))


def with_usage(run: TaskRun, usage: ResourceUsage | None) -> TaskRun:
    """The open attempt with what its programs used."""
    if usage is None or not attempt_open(run):
        return run
    last = dataclasses.replace(run.attempts[-1], usage=usage)
    return dataclasses.replace(run, attempts=(*run.attempts[:-1], last))


def attempt_open(run: TaskRun) -> bool:
    return bool(run.attempts) and not run.attempts[-1].state.current.is_terminated


def descendants(work: Work, run: TaskRun) -> set[str]:
    found = {run.id}
    for child in work.children_of(run.id):
        found |= descendants(work, child)
    return found
