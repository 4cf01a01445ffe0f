"""Pure execution decisions: (flow, execution, now) -> the next execution and what to start.

This follows Kestra's ExecutorService and FlowableUtils: flowable tasks are resolved here (which
children to create next, and their own end state from their children's), runnable tasks are handed
to the runner, subflows to the engine. Nothing here does I/O, so every rule can be tested on plain
data.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from engine.context import add_output, build_context
from engine.expressions import ExpressionError, Renderer
from engine.inputs import InputError
from engine.model import (
    Attempt,
    Execution,
    Flow,
    Label,
    LogEntry,
    LogLevel,
    RetrySpec,
    State,
    StateType,
    TaskRun,
    TaskSpec,
    new_id,
)
from engine.tasks.registry import Kind, Registry

S = StateType
T = TypeVar("T")
# How long a Kestra state ranks when several children end differently (worst first).
_WORST_FIRST = (S.KILLED, S.FAILED, S.CANCELLED, S.WARNING, S.PAUSED)


# A step applies rules until nothing changes; a flow that never settles is a bug, not a workload.
MAX_PASSES = 100_000


class TaskError(Exception):
    """A task cannot go on; the message is logged at ERROR on its task run."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """A task to run under a parent, with the loop value it runs for."""

    task: TaskSpec
    value: str | None = None
    iteration: int | None = None


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """What running one attempt of a task run gave."""

    task_run_id: str
    state: StateType
    outputs: Mapping[str, Any] | None = None
    labels: tuple[Label, ...] = ()


@dataclass
class Outcome:
    """The result of one executor step."""

    execution: Execution
    dispatch: list[TaskRun] = field(default_factory=list)
    subflows: list[TaskRun] = field(default_factory=list)
    cancel: list[TaskRun] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)
    wake_at: datetime | None = None


class FlowableHandler(Protocol):
    """How one flowable task type creates its children and derives its own state."""

    def start(self, work: Work, task: TaskSpec, run: TaskRun) -> TaskRun: ...

    def nexts(self, work: Work, task: TaskSpec, run: TaskRun) -> list[Resolved]: ...

    def state(self, work: Work, task: TaskSpec, run: TaskRun) -> StateType | None: ...

    def outputs(self, work: Work, task: TaskSpec, run: TaskRun) -> Mapping[str, Any] | None: ...

    def on_due(self, work: Work, task: TaskSpec, run: TaskRun) -> TaskRun: ...


class Work:
    """A mutable working copy of one execution during one step; frozen again at the end."""

    def __init__(self, executor: Executor, flow: Flow, execution: Execution, now: datetime) -> None:
        self.executor = executor
        self.flow = flow
        self.now = now
        self.header = execution
        self.runs: list[TaskRun] = list(execution.task_runs)
        self.position = {run.id: index for index, run in enumerate(self.runs)}
        self._index()
        self.outcome = Outcome(execution)
        self._snapshot: Execution | None = execution
        self._memo: dict[tuple[str, str], tuple[TaskRun, Any]] = {}
        # The outputs tree of expressions, kept up to date as task runs change (built on first use).
        self._outputs: dict[str, Any] | None = None
        # Where each (task, loop values) lands in the outputs tree: the newest run of a key wins.
        self._latest_of_key: dict[tuple[str, tuple[str, ...]], int] = {}
        for index, run in enumerate(self.runs):
            self._latest_of_key[self._output_key(run)] = index

    def _index(self) -> None:
        # children by parent, and each parent's children by (task, value, iteration): the flowable
        # rules look runs up this way many times per step, so lookups must not scan.
        self.children: dict[str | None, list[str]] = {}
        self.keyed: dict[str | None, dict[tuple[str, str | None, int | None], str]] = {}
        for run in self.runs:
            self._add_to_index(run)

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

    # -- reading ---------------------------------------------------------------------------
    def run(self, run_id: str) -> TaskRun:
        return self.runs[self.position[run_id]]

    def children_of(self, parent_id: str | None) -> list[TaskRun]:
        return [self.runs[self.position[i]] for i in self.children.get(parent_id, ())]

    def task(self, run: TaskRun) -> TaskSpec:
        return self.flow.tasks_by_id[run.task_id]

    def snapshot(self) -> Execution:
        """The execution as it stands now (for rendering contexts)."""
        if self._snapshot is None:
            self._snapshot = dataclasses.replace(self.header, task_runs=tuple(self.runs))
        return self._snapshot

    @property
    def killing(self) -> bool:
        return self.header.state.current is S.KILLING

    # -- writing ---------------------------------------------------------------------------
    def put(self, run: TaskRun) -> TaskRun:
        index = self.position.get(run.id)
        if index is None:
            index = self.position[run.id] = len(self.runs)
            self.runs.append(run)
            self._add_to_index(run)
            self._latest_of_key[self._output_key(run)] = index
        else:
            previous = self.runs[index]
            self.runs[index] = run
            if self._outputs is not None and run.outputs is not previous.outputs:
                if run.outputs is not None and self._latest_of_key.get(self._output_key(run)) == index:
                    add_output(self._outputs, run, self._parents(run))
                else:
                    self._outputs = None  # an older run changed: rebuild when next needed
        self._snapshot = None
        return run

    def _output_key(self, run: TaskRun) -> tuple[str, tuple[str, ...]]:
        values = [p.value for p in self._parents(run) if p.value is not None]
        return run.task_id, (*values, *((run.value,) if run.value is not None else ()))

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
            self._outputs = {}
            for run in self.runs:
                if run.outputs is not None:
                    add_output(self._outputs, run, self._parents(run))
        return self._outputs

    def remove(self, run_ids: set[str]) -> None:
        self.runs = [run for run in self.runs if run.id not in run_ids]
        self.position = {run.id: index for index, run in enumerate(self.runs)}
        self._index()
        self._latest_of_key = {self._output_key(run): index for index, run in enumerate(self.runs)}
        self._outputs = None
        self._snapshot = None

    def set_header(self, execution: Execution) -> None:
        self.header = execution
        self._snapshot = None

    def create(self, resolved: Resolved, parent: TaskRun | None) -> TaskRun:
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
        functions = self.executor.functions
        outputs = self.outputs_tree() if self.runs else None
        parents = self._parents(run) if run else None
        context = build_context(
            self.flow, self.header, task, run, extra=extra, outputs=outputs, parents=parents
        )
        if functions is not None:
            context.update(functions(self.header, self.outcome.logs))
        return context

    def render(self, value: Any, run: TaskRun | None, extra: Mapping[str, Any] | None = None) -> Any:
        return self.executor.renderer.render_value(value, self.context(run, extra))

    def truthy(self, template: Any, run: TaskRun | None) -> bool:
        if isinstance(template, bool):
            return template
        return self.executor.renderer.is_truthy(str(template), self.context(run))

    # -- Kestra's FlowableUtils ------------------------------------------------------------
    def runs_for(self, parent: TaskRun | None, resolved: Sequence[Resolved]) -> list[TaskRun]:
        """Children of `parent` that run one of `resolved` (same task, value and iteration)."""
        keyed = self.keyed.get(parent.id if parent else None)
        if not keyed:
            return []
        found = (keyed.get((r.task.id, r.value, r.iteration)) for r in resolved)
        return [self.runs[self.position[run_id]] for run_id in found if run_id is not None]

    def run_of(self, parent: TaskRun | None, resolved: Resolved) -> TaskRun | None:
        found = self.runs_for(parent, [resolved])
        return found[-1] if found else None

    def is_terminated(self, parent: TaskRun | None, resolved: Sequence[Resolved]) -> bool:
        runs = self.runs_for(parent, resolved)
        return len(runs) >= len(resolved) and all(run.state.current.is_terminated for run in runs)

    def has_failed(self, parent: TaskRun | None, resolved: Sequence[Resolved]) -> bool:
        return any(run.state.current is S.FAILED for run in self.runs_for(parent, resolved))

    def has_active(self, parent: TaskRun | None, resolved: Sequence[Resolved]) -> bool:
        """Whether a child has not ended yet (a paused one included: it will end later)."""
        return any(not run.state.current.is_terminated for run in self.runs_for(parent, resolved))

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
        if not current or self.killing:
            return []
        runs = self.runs_for(parent, current)
        if not runs:
            return [current[0]]
        if any(not run.state.current.is_terminated for run in runs):
            return []
        done = {(run.task_id, run.value, run.iteration) for run in runs}
        for resolved in current:
            if (resolved.task.id, resolved.value, resolved.iteration) not in done:
                return [resolved]
        return []

    def parallel_nexts(
        self, parent: TaskRun | None, current: Sequence[Resolved], limit: int
    ) -> list[Resolved]:
        if not current or self.killing:
            return []
        runs = self.runs_for(parent, current)
        started = {(run.task_id, run.value, run.iteration) for run in runs}
        waiting = [r for r in current if (r.task.id, r.value, r.iteration) not in started]
        if limit > 0:
            active = sum(1 for run in runs if not run.state.current.is_terminated)
            waiting = waiting[: max(limit - active, 0)]
        return waiting

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
        attempts = (*attempts[:-1], Attempt(attempts[-1].state.to(attempt_state, now)))
    return dataclasses.replace(run, attempts=attempts, state=run.state.to(run_state, now))


def worst_state(runs: Iterable[TaskRun]) -> StateType:
    states = {run.state.current for run in runs}
    return next((state for state in _WORST_FIRST if state in states), S.SUCCESS)


def allowed(state: StateType, allow_failure: bool, allow_warning: bool) -> StateType:
    if state is S.FAILED and allow_failure:
        return S.SUCCESS if allow_warning else S.WARNING
    if state is S.WARNING and allow_warning:
        return S.SUCCESS
    return state


def resolve(
    tasks: Iterable[TaskSpec], value: str | None = None, iteration: int | None = None
) -> list[Resolved]:
    """Kestra's ResolvedTask list: disabled tasks are left out."""
    return [Resolved(task, value, iteration) for task in tasks if not task.disabled]


def retry_delay(retry: RetrySpec, attempt: int) -> timedelta:
    """The wait before attempt number `attempt + 1` (attempt counts from 1)."""
    if retry.type == "exponential":
        base = retry.interval or timedelta(seconds=1)
        factor = retry.delay_factor or 2.0
        delay = base * (factor ** (attempt - 1))
        return min(delay, retry.max_interval) if retry.max_interval else delay
    if retry.type == "random":
        low = retry.min_interval or timedelta(0)
        high = retry.max_interval or low
        return low + (high - low) * random.random()
    return retry.interval or timedelta(0)


def may_retry(
    retry: RetrySpec | None, attempts: int, first_start: datetime, now: datetime
) -> timedelta | None:
    """The delay before the next attempt, or None when the policy is exhausted."""
    if retry is None:
        return None
    if retry.max_attempt is not None and attempts >= retry.max_attempt:
        return None
    if retry.max_attempt is None and retry.max_duration is None:
        return None
    delay = retry_delay(retry, attempts)
    if retry.max_duration is not None and (now + delay) - first_start > retry.max_duration:
        return None
    return delay


class Executor:
    """Kestra's execution semantics over immutable executions."""

    def __init__(
        self,
        registry: Registry,
        renderer: Renderer,
        functions: Callable[[Execution, list[LogEntry]], dict[str, Any]] | None = None,
    ) -> None:
        self.registry = registry
        self.renderer = renderer
        self.functions = functions

    def flowable(self, task: TaskSpec) -> FlowableHandler:
        task_type = self.registry.lookup(task.type)
        assert task_type is not None and task_type.kind is Kind.FLOWABLE
        handler: FlowableHandler = task_type.handler
        return handler

    def kind(self, task: TaskSpec) -> Kind:
        task_type = self.registry.lookup(task.type)
        assert task_type is not None, task.type
        return task_type.kind

    # -- commands ------------------------------------------------------------------------------
    def apply_results(
        self, flow: Flow, execution: Execution, results: Sequence[WorkerResult], now: datetime
    ) -> Outcome:
        """Record what attempts gave, then take the next step."""
        work = Work(self, flow, execution, now)
        for result in results:
            if result.task_run_id in work.position:
                self._apply(work, result)
        return self._step(work)

    def advance(self, flow: Flow, execution: Execution, now: datetime) -> Outcome:
        return self._step(Work(self, flow, execution, now))

    def kill(self, flow: Flow, execution: Execution, now: datetime) -> Outcome:
        work = Work(self, flow, execution, now)
        if not execution.state.current.is_terminated and execution.state.current is not S.KILLING:
            work.set_header(execution.to(S.KILLING, now))
        return self._step(work)

    def resume(
        self, flow: Flow, execution: Execution, now: datetime, outputs: Mapping[str, Any] | None = None
    ) -> Outcome:
        """Resume every paused task run (Pause tasks), with the onResume inputs as outputs."""
        work = Work(self, flow, execution, now)
        if execution.state.current is not S.PAUSED:
            return self._step(work)
        for run in list(work.runs):
            if run.state.current is S.PAUSED:
                resumed = dataclasses.replace(run.to(S.RUNNING, now), due=None)
                if outputs:
                    resumed = dataclasses.replace(resumed, outputs={"onResume": dict(outputs)})
                work.put(resumed)
        if execution.state.current is S.PAUSED:
            work.set_header(execution.to(S.RUNNING, now))
        return self._step(work)

    def crash(self, flow: Flow, execution: Execution, now: datetime, message: str) -> Outcome:
        """End an execution the engine cannot go on with: FAILED, its running tasks stopped."""
        work = Work(self, flow, execution, now)
        work.log(LogLevel.ERROR, message)
        for run in list(work.runs):
            if run.state.current.is_terminated:
                continue
            if _attempt_open(run) or (
                run.state.current is S.RUNNING and self.kind(work.task(run)) is not Kind.FLOWABLE
            ):
                work.outcome.cancel.append(run)
            work.put(dataclasses.replace(close_attempt(run, S.FAILED, S.FAILED, now), due=None))
        if not execution.state.current.is_terminated:
            work.set_header(work.header.to(S.FAILED, now))
        return self._finish(work)

    def link_subflow(
        self, flow: Flow, execution: Execution, now: datetime, task_run_id: str, child_id: str
    ) -> Outcome:
        """Remember which execution a Subflow task run started (to wait for it across restarts)."""
        work = Work(self, flow, execution, now)
        if task_run_id in work.position:
            work.put(dataclasses.replace(work.run(task_run_id), child_execution_id=child_id))
        return self._step(work)

    def restart(self, flow: Flow, execution: Execution, now: datetime) -> Outcome:
        """Kestra's restart: failed task runs run again (new attempt) in the same execution."""
        work = Work(self, flow, execution, now)
        failed = [run for run in work.runs if run.state.current in (S.FAILED, S.KILLED)]
        if not execution.state.current.is_terminated or not failed:
            return self._step(work)
        self._restart_failed(work)
        labels = (
            *(label for label in execution.labels if label.key != "system.restarted"),
            Label("system.restarted", "true"),
        )
        header = dataclasses.replace(
            execution.to(S.RESTARTED, now), outputs=None, after_execution_state=None, labels=labels
        )
        work.set_header(header.to(S.RUNNING, now))
        return self._step(work)

    # -- one step --------------------------------------------------------------------------------
    def _step(self, work: Work) -> Outcome:
        header = work.header
        if header.state.current.is_terminated:
            return self._finish(work)
        if header.state.current in (S.CREATED, S.RESTARTED, S.QUEUED):
            work.set_header(header.to(S.RUNNING, work.now))
        if work.killing:
            self._kill_pass(work)
            return self._finish(work)
        for _ in range(MAX_PASSES):
            if work.header.state.current.is_terminated or not self._pass(work):
                break
        else:
            raise RuntimeError(f"the execution did not settle after {MAX_PASSES} passes of one step")
        self._sync_paused(work)
        return self._finish(work)

    def _pass(self, work: Work) -> bool:
        changed = False
        for run in list(work.runs):
            state = run.state.current
            if state is S.CREATED:
                self._start(work, run)
                changed = True
            elif run.due is not None and run.due <= work.now and state in (S.RETRYING, S.PAUSED, S.RUNNING):
                self._due(work, run)
                changed = True
        # Deepest flowables first, so that a parent sees its children's end states in the same pass.
        for run in reversed([r for r in work.runs if r.state.current is S.RUNNING]):
            task = work.task(run)
            if self.kind(task) is not Kind.FLOWABLE or run.due is not None or _attempt_open(run):
                continue
            handler = self.flowable(task)
            try:
                for resolved in handler.nexts(work, task, run):
                    work.create(resolved, run)
                    changed = True
                end = handler.state(work, task, run)
            except (TaskError, ExpressionError) as error:
                work.log(LogLevel.ERROR, str(error), run)
                end = S.FAILED
            if end is not None:
                if hasattr(handler, "finish"):
                    # Its own closing work (WorkingDirectory's output files) runs in the runner.
                    work.outcome.dispatch.append(work.put(work.run(run.id).with_new_attempt(work.now)))
                else:
                    self._end_flowable(work, task, work.run(run.id), end)
                changed = True
        return self._root(work) or changed

    def _root(self, work: Work) -> bool:
        """The execution itself behaves as a Sequential over the flow's tasks."""
        flow, header = work.flow, work.header
        if header.after_execution_state is not None:
            after = resolve(flow.after_execution)
            created = [work.create(r, None) for r in work.sequential_nexts(None, after)]
            if not created and work.is_terminated(None, after):
                work.set_header(header.to(header.after_execution_state, work.now))
            return bool(created)
        tasks, errors, finally_ = resolve(flow.tasks), resolve(flow.errors), resolve(flow.finally_)
        current = work.current_branch(None, tasks, errors, finally_)
        created = [work.create(r, None) for r in work.sequential_nexts(None, current)]
        if created:
            return True
        end = work.resolve_state(None, tasks, errors, finally_)
        if end is None or any(not r.state.current.is_terminated for r in work.children_of(None)):
            return False
        self._end_execution(work, end)
        return True

    def _end_execution(self, work: Work, end: StateType) -> None:
        header = work.header
        if work.flow.outputs:
            # Kestra renders the flow outputs whatever the end state.
            try:
                header = dataclasses.replace(header, outputs=self._flow_outputs(work))
            except (ExpressionError, ValueError, InputError) as error:
                work.log(LogLevel.ERROR, f"Failed to render the flow outputs: {error}")
                end = S.FAILED if end in (S.SUCCESS, S.WARNING) else end
        if resolve(work.flow.after_execution):
            work.set_header(dataclasses.replace(header, after_execution_state=end))
            return
        work.set_header(header.to(end, work.now))

    def _flow_outputs(self, work: Work) -> dict[str, Any]:
        from engine.inputs import coerce_input, input_json_value
        from engine.model import InputSpec

        values: dict[str, Any] = {}
        for output in work.flow.outputs:
            rendered = work.render(output.value, None)
            spec = InputSpec(id=output.id, type=output.type, required=output.required)
            values[output.id] = input_json_value(coerce_input(spec, rendered))
        return values

    # -- task runs ---------------------------------------------------------------------------
    def _start(self, work: Work, run: TaskRun) -> None:
        task = work.task(run)
        if work.killing:
            work.put(run.to(S.KILLED, work.now))
            return
        if task.run_if is not None:
            try:
                if not work.truthy(task.run_if, run):
                    work.put(run.to(S.SKIPPED, work.now))
                    return
            except ExpressionError as error:
                work.log(LogLevel.ERROR, str(error), run)
                work.put(run.to(S.FAILED, work.now))
                return
        kind = self.kind(task)
        if kind is Kind.RUNNABLE:
            work.outcome.dispatch.append(work.put(run.with_new_attempt(work.now)))
        elif kind is Kind.SUBFLOW:
            work.outcome.subflows.append(work.put(run.with_new_attempt(work.now)))
        else:
            running = work.put(run.to(S.RUNNING, work.now))
            try:
                work.put(self.flowable(task).start(work, task, running))
            except (TaskError, ExpressionError) as error:
                work.log(LogLevel.ERROR, str(error), running)
                work.put(work.run(run.id).to(S.FAILED, work.now))

    def _due(self, work: Work, run: TaskRun) -> None:
        task = work.task(run)
        kind = self.kind(task)
        if run.state.current is S.RETRYING:
            again = work.put(run.with_new_attempt(work.now))
            (work.outcome.subflows if kind is Kind.SUBFLOW else work.outcome.dispatch).append(again)
            return
        if kind is Kind.FLOWABLE:
            try:
                work.put(self.flowable(task).on_due(work, task, run))
            except (TaskError, ExpressionError) as error:
                work.log(LogLevel.ERROR, str(error), run)
                work.put(dataclasses.replace(run.to(S.FAILED, work.now), due=None))

    def _end_flowable(self, work: Work, task: TaskSpec, run: TaskRun, end: StateType) -> None:
        try:
            outputs = self.flowable(task).outputs(work, task, run)
        except (TaskError, ExpressionError) as error:
            work.log(LogLevel.ERROR, str(error), run)
            outputs, end = run.outputs, S.FAILED
        if end is S.FAILED:
            end = allowed(end, task.allow_failure, task.allow_warning)
        elif end is S.WARNING and task.allow_warning:
            end = S.SUCCESS
        work.put(dataclasses.replace(run.to(end, work.now), outputs=outputs, due=None))

    def _apply(self, work: Work, result: WorkerResult) -> None:
        run = work.run(result.task_run_id)
        if run.state.current.is_terminated:
            return
        task = work.task(run)
        outputs = result.outputs if result.outputs is not None else run.outputs
        run = dataclasses.replace(run, outputs=outputs)
        if self.kind(task) is Kind.FLOWABLE:
            # A flowable's closing work ended: its state is its children's, or worse.
            end = self.flowable(task).state(work, task, run) or S.FAILED
            if result.state in (S.FAILED, S.KILLED):
                end = result.state
            attempts = close_attempt(run, result.state, run.state.current, work.now).attempts
            self._end_flowable(work, task, dataclasses.replace(run, attempts=attempts), end)
            return
        if result.labels:
            merged = {label.key: label.value for label in work.header.labels}
            merged.update({label.key: label.value for label in result.labels})
            work.set_header(
                dataclasses.replace(work.header, labels=tuple(Label(k, v) for k, v in merged.items()))
            )
        state = result.state
        if run.state.current is S.KILLING or work.killing:
            state = S.KILLED if state is S.FAILED or not state.is_terminated else state
        if state is S.FAILED:
            first = run.attempts[0].state.start_date if run.attempts else run.state.start_date
            delay = may_retry(self._retry_for(work, run), len(run.attempts), first, work.now)
            if delay is not None:
                retrying = close_attempt(run, S.FAILED, S.RETRYING, work.now)
                work.put(dataclasses.replace(retrying, due=work.now + delay))
                return
            final = allowed(state, task.allow_failure, task.allow_warning)
        else:
            final = state
            retry = self._retry_for(work, run)
            if state is S.SUCCESS and retry and retry.warning_on_retry and len(run.attempts) > 1:
                final = S.WARNING
            final = allowed(final, False, task.allow_warning)
        work.put(close_attempt(run, state, final, work.now))

    @staticmethod
    def _retry_for(work: Work, run: TaskRun) -> RetrySpec | None:
        """The task's own retry, else its nearest parent's, else the flow's (Kestra's fallback)."""
        task = work.task(run)
        if task.retry is not None:
            return task.retry
        for parent in work.snapshot().parents_of(run):
            retry = work.task(parent).retry
            if retry is not None:
                return retry
        return work.flow.retry

    def _restart_failed(self, work: Work) -> None:
        """Kestra's restart: failed task runs go back to CREATED (a new attempt follows), their
        ancestors back to RUNNING; the errors, finally and afterExecution branches that already
        ran are dropped, so that they run again when their turn comes."""
        flow = work.flow
        drop: set[str] = set()
        for run in work.runs:
            if run.parent_task_run_id is None:
                branches = [*flow.errors, *flow.finally_, *flow.after_execution]
            else:
                props = work.task(work.run(run.parent_task_run_id)).props
                branches = [*(props.get("errors") or ()), *(props.get("finally") or ())]
            if any(task.id == run.task_id for task in branches):
                drop |= _descendants(work, run)
        failed = [r for r in work.runs if r.id not in drop and r.state.current in (S.FAILED, S.KILLED)]
        has_failed_child = {r.parent_task_run_id for r in failed}
        ancestors: set[str] = set()
        for run in failed:
            if run.id in has_failed_child:
                continue  # a flowable that failed because a child did: it becomes RUNNING below
            work.put(dataclasses.replace(run.to(S.CREATED, work.now), due=None))
            ancestors.update(parent.id for parent in work.snapshot().parents_of(run))
        for run_id in ancestors:
            parent = work.run(run_id)
            if parent.state.current is not S.RUNNING:
                work.put(dataclasses.replace(parent.to(S.RUNNING, work.now), due=None))
        if drop:
            work.remove(drop)

    # -- kill --------------------------------------------------------------------------------
    def _kill_pass(self, work: Work) -> None:
        busy = False
        for run in list(work.runs):
            state = run.state.current
            if state.is_terminated:
                continue
            kind = self.kind(work.task(run))
            if kind is Kind.FLOWABLE and not _attempt_open(run):
                continue
            if state is S.RUNNING:
                work.outcome.cancel.append(work.put(run.to(S.KILLING, work.now)))
                busy = True
            elif state is S.KILLING:
                busy = True
            else:
                work.put(dataclasses.replace(run.to(S.KILLED, work.now), due=None))
        if busy:
            return
        for run in list(work.runs):
            if not run.state.current.is_terminated:
                work.put(dataclasses.replace(run.to(S.KILLED, work.now), due=None))
        work.set_header(work.header.to(S.KILLED, work.now))

    # -- wrapping up ---------------------------------------------------------------------------
    def _sync_paused(self, work: Work) -> None:
        header = work.header
        if header.state.current.is_terminated:
            return
        paused = any(run.state.current is S.PAUSED for run in work.runs)
        if paused and header.state.current is S.RUNNING:
            work.set_header(header.to(S.PAUSED, work.now))
        elif not paused and header.state.current is S.PAUSED:
            work.set_header(header.to(S.RUNNING, work.now))

    def _finish(self, work: Work) -> Outcome:
        outcome = work.outcome
        outcome.execution = work.snapshot()
        dues = [run.due for run in work.runs if run.due is not None and not run.state.current.is_terminated]
        outcome.wake_at = min(dues) if dues else None
        return outcome


def _attempt_open(run: TaskRun) -> bool:
    return bool(run.attempts) and not run.attempts[-1].state.current.is_terminated


def _descendants(work: Work, run: TaskRun) -> set[str]:
    found = {run.id}
    for child in work.children_of(run.id):
        found |= _descendants(work, child)
    return found
