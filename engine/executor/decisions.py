"""Pure execution decisions: (flow, execution, now) -> the next execution and what to start.

This follows Kestra's ExecutorService: task runs are started, retried, ended, killed, restarted
and resumed here; flowable tasks answer through the working copy (Kestra's FlowableUtils rules,
engine.executor.working_copy), runnable tasks are handed to the worker, subflows to the engine.
Nothing here does I/O, so every rule can be tested on plain data (tests/engine/test_executor_*.py).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..expressions import ExpressionError, Renderer
from ..inputs import InputError, coerce_input, input_json_value
from ..messages import WorkerResult
from ..model import (
    Execution,
    Flow,
    InputSpec,
    Label,
    LogLevel,
    RetrySpec,
    StateType,
    TaskRun,
    TaskSpec,
)
from ..tasks.failures import fatal_entry
from ..tasks.flowable import FlowableHandler, Resolved, TaskError, allowed, resolve
from ..tasks.registry import Registry
from ..tasks.types import Kind
from ..triggers.conditions import ConditionError
from .recovery import WORKER_LOST_MESSAGE, rerun, runs_again
from .sla import check_slas, next_deadline
from .working_copy import Functions, Outcome, Work, attempt_open, close_attempt, descendants, with_usage

S = StateType


# A step applies rules until nothing changes; a flow that never settles is a bug, not a workload.
MAX_PASSES = 100_000
# Working copies kept between steps, one per live execution (beyond this, the oldest is rebuilt
# from its execution when next needed).
KEPT_WORKING_COPIES = 4_096


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
        functions: Functions | None = None,
    ) -> None:
        self.registry = registry
        self.renderer = renderer
        self.functions = functions
        # The root branches of each recent flow revision, resolved once: every pass of every step
        # needs them, and resolving a flow of n tasks builds n objects.
        self._roots: dict[int, tuple[Flow, tuple[list[Resolved], list[Resolved], list[Resolved]]]] = {}
        # The working copy of each live execution as its last step left it, by execution id: the
        # next step starts from it when it is given that very execution (see `_work`).
        self._kept: dict[str, Work] = {}

    def _root_branches(self, flow: Flow) -> tuple[list[Resolved], list[Resolved], list[Resolved]]:
        found = self._roots.get(id(flow))
        if found is None or found[0] is not flow:
            if len(self._roots) >= 64:
                self._roots.clear()
            found = (flow, (resolve(flow.tasks), resolve(flow.errors), resolve(flow.finally_)))
            self._roots[id(flow)] = found
        return found[1]

    def _work(self, flow: Flow, execution: Execution, now: datetime) -> Work:
        """A working copy of `execution`: the one its last step left when `execution` is the very
        result of that step (immutable, so nothing changed since), else one built from it."""
        kept = self._kept.pop(execution.id, None)
        if kept is not None and kept.flow is flow and kept.snapshot() is execution:
            kept.begin_step(now)
            return kept
        return Work(self.renderer, self.functions, flow, execution, now)

    def _keep(self, work: Work, execution: Execution) -> None:
        if execution.state.current.is_terminated:
            return
        if len(self._kept) >= KEPT_WORKING_COPIES:
            del self._kept[next(iter(self._kept))]
        self._kept[execution.id] = work

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
        work = self._work(flow, execution, now)
        for result in results:
            if result.task_run_id in work.position:
                self._apply(work, result)
        return self._step(work)

    def advance(self, flow: Flow, execution: Execution, now: datetime) -> Outcome:
        return self._step(self._work(flow, execution, now))

    def kill(self, flow: Flow, execution: Execution, now: datetime) -> Outcome:
        work = self._work(flow, execution, now)
        if not execution.state.current.is_terminated and execution.state.current is not S.KILLING:
            work.set_header(execution.to(S.KILLING, now))
        return self._step(work)

    def resume(
        self, flow: Flow, execution: Execution, now: datetime, outputs: Mapping[str, Any] | None = None
    ) -> Outcome:
        """Resume every paused task run (Pause tasks), with the onResume inputs as outputs."""
        work = self._work(flow, execution, now)
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
        work = self._work(flow, execution, now)
        work.log(LogLevel.ERROR, message)
        for run in list(work.runs):
            if run.state.current.is_terminated:
                continue
            if attempt_open(run) or (
                run.state.current is S.RUNNING and self.kind(work.task(run)) is not Kind.FLOWABLE
            ):
                work.outcome.cancel.append(run)
            work.put(dataclasses.replace(close_attempt(run, S.FAILED, S.FAILED, now), due=None))
        if not execution.state.current.is_terminated:
            work.set_header(work.header.to(S.FAILED, now))
        return self._finish(work)

    def lost(
        self, flow: Flow, execution: Execution, now: datetime, task_run_id: str, attempt: int
    ) -> Outcome:
        """The worker running an attempt is gone: the attempt FAILED, and a new one is sent out or
        the task run fails, by crash recovery's rules (engine.executor.recovery)."""
        work = self._work(flow, execution, now)
        run = work.run(task_run_id) if task_run_id in work.position else None
        if run is None or run.state.current.is_terminated or len(run.attempts) - 1 != attempt:
            return self._step(work)
        work.log(LogLevel.ERROR, WORKER_LOST_MESSAGE, run)
        if runs_again(flow, work.snapshot(), run):
            work.outcome.dispatch.append(work.put(rerun(run, now)))
        else:
            end = S.KILLED if work.killing else S.FAILED
            self._apply(work, WorkerResult(run.id, end))
        return self._step(work)

    def link_subflow(
        self, flow: Flow, execution: Execution, now: datetime, task_run_id: str, child_id: str
    ) -> Outcome:
        """Remember which execution a Subflow task run started (to wait for it across restarts)."""
        work = self._work(flow, execution, now)
        if task_run_id in work.position:
            work.put(dataclasses.replace(work.run(task_run_id), child_execution_id=child_id))
        return self._step(work)

    def restart(self, flow: Flow, execution: Execution, now: datetime) -> Outcome:
        """Kestra's restart: failed task runs run again (new attempt) in the same execution."""
        work = self._work(flow, execution, now)
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
            work.set_header(dataclasses.replace(header.to(S.RUNNING, work.now), due=None))
        check_slas(work)
        if work.header.state.current.is_terminated:
            return self._finish(work)
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
        running: list[TaskRun] = []
        # One scan over the task runs not ended: start, wake, and note the running.
        for run in work.unfinished_runs():
            state = run.state.current
            if state is S.CREATED:
                self._start(work, run)
                changed = True
                run = work.run(run.id)
            elif run.due is not None and run.due <= work.now and state in (S.RETRYING, S.PAUSED, S.RUNNING):
                self._due(work, run)
                changed = True
                run = work.run(run.id)
            if run.state.current is S.RUNNING:
                running.append(run)
        # Deepest flowables first, so that a parent sees its children's end states in the same pass.
        for run in reversed(running):
            task = work.task(run)
            if self.kind(task) is not Kind.FLOWABLE or run.due is not None or attempt_open(run):
                continue
            if work.room <= 0:
                work.outcome.more = True  # this step created its share: the next one goes on
                continue
            handler = self.flowable(task)
            try:
                nexts = handler.nexts(work, task, run)
                if len(nexts) > work.room:
                    work.outcome.more = True
                    nexts = nexts[: work.room]
                for resolved in nexts:
                    work.create(resolved, run)
                    changed = True
                # A flowable that just created a child cannot end in this pass: the child has not run.
                end = None if nexts else handler.state(work, task, run)
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
        tasks, errors, finally_ = self._root_branches(flow)
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
        if task.depends_on and (blocker := work.blocked_by(run, task)) is not None:
            ended = blocker.state.current.value
            work.log(LogLevel.WARN, f"Not run: `{blocker.task_id}`, which it waits for, ended {ended}", run)
            work.put(run.to(S.CANCELLED, work.now))
            return
        if task.run_if is not None or task.conditions:
            try:
                wanted = task.run_if is None or work.truthy(task.run_if, run)
                if not (wanted and work.conditions_hold(task.conditions, run)):
                    work.put(run.to(S.SKIPPED, work.now))
                    return
            except (ExpressionError, ConditionError) as error:
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
        fatal = work.flow.has_fatal_errors and any(
            work.run(found).fatal for found in descendants(work, run) - {run.id}
        )
        if fatal:  # a fatal error below fails every flowable on its way up, allowFailure or not
            end = S.FAILED
        elif end is S.FAILED:
            end = allowed(end, task.allow_failure, task.allow_warning)
        elif end is S.WARNING and task.allow_warning:
            end = S.SUCCESS
        work.put(dataclasses.replace(run.to(end, work.now), outputs=outputs, due=None, fatal=fatal))

    def _apply(self, work: Work, result: WorkerResult) -> None:
        run = work.run(result.task_run_id)
        if run.state.current.is_terminated:
            return
        task = work.task(run)
        outputs = result.outputs if result.outputs is not None else run.outputs
        run = dataclasses.replace(run, outputs=outputs)
        if not result.state.is_terminated:  # outputs while it runs (a ForEachItem's `iterations`)
            work.put(run)
            return
        # What a previous attempt (before a restart) left is not this one's: cached, fatal.
        run = with_usage(dataclasses.replace(run, cached_from=result.cached_from, fatal=False), result.usage)
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
        if state is S.FAILED and self._fatal(work, task, run, result):
            work.put(dataclasses.replace(close_attempt(run, state, S.FAILED, work.now), fatal=True))
            return
        if state is S.FAILED:
            retry = self._retry_for(work, run)
            if retry is not None and retry.behavior == "CREATE_NEW_EXECUTION":
                if self._retry_as_new_execution(work, run, retry):
                    return
                retry = None
            first = run.attempts[0].state.start_date if run.attempts else run.state.start_date
            delay = may_retry(retry, len(run.attempts), first, work.now)
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
    def _fatal(work: Work, task: TaskSpec, run: TaskRun, result: WorkerResult) -> bool:
        """Whether the attempt failed with an error the task's `fatalError` names: it is not retried
        and fails the task even under allowFailure."""
        failure = result.failure
        if not task.fatal_errors or failure is None:
            return False
        entry = fatal_entry(task.fatal_errors, failure.code, failure.message)
        if entry is None:
            return False
        work.log(
            LogLevel.ERROR,
            f"Fatal error ({failure.code}, named by `{entry}` in fatalError): not retried, and the task "
            "fails the flow even under allowFailure",
            run,
        )
        return True

    @staticmethod
    def _retry_as_new_execution(work: Work, run: TaskRun, retry: RetrySpec) -> bool:
        """Kestra's CREATE_NEW_EXECUTION retry: the failed task run and the execution end RETRIED, and
        a new attempt of the whole execution starts after the retry's delay. Attempts are counted
        by execution (`attempt_number`) and `maxDuration` from the first attempt's creation."""
        header = work.header
        first = header.original_created or header.state.start_date
        delay = may_retry(retry, header.attempt_number, first, work.now)
        if delay is None:
            return False
        work.put(close_attempt(run, S.FAILED, S.RETRIED, work.now))
        for other in list(work.runs):  # what else was under way belongs to the abandoned attempt
            if not other.state.current.is_terminated:
                if attempt_open(other):
                    work.outcome.cancel.append(other)
                work.put(dataclasses.replace(close_attempt(other, S.KILLED, S.RETRIED, work.now), due=None))
        work.set_header(header.to(S.RETRIED, work.now))
        work.outcome.retry_at = work.now + delay
        return True

    @staticmethod
    def _retry_for(work: Work, run: TaskRun) -> RetrySpec | None:
        """The task's own retry, else its nearest parent's, else the flow's (Kestra's fallback)."""
        task = work.task(run)
        if task.retry is not None:
            return task.retry
        for parent in work.parents(run):
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
                drop |= descendants(work, run)
        failed = [r for r in work.runs if r.id not in drop and r.state.current in (S.FAILED, S.KILLED)]
        has_failed_child = {r.parent_task_run_id for r in failed}
        ancestors: set[str] = set()
        for run in failed:
            if run.id in has_failed_child:
                continue  # a flowable that failed because a child did: it becomes RUNNING below
            work.put(dataclasses.replace(run.to(S.CREATED, work.now), due=None))
            ancestors.update(parent.id for parent in work.parents(run))
        for run_id in ancestors:
            parent = work.run(run_id)
            if parent.state.current is not S.RUNNING:
                work.put(dataclasses.replace(parent.to(S.RUNNING, work.now), due=None))
        if drop:
            work.remove(drop)

    # -- kill --------------------------------------------------------------------------------
    def _kill_pass(self, work: Work) -> None:
        busy = False
        for run in work.unfinished_runs():
            state = run.state.current
            kind = self.kind(work.task(run))
            if kind is Kind.FLOWABLE and not attempt_open(run):
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
        for run in work.unfinished_runs():
            work.put(dataclasses.replace(run.to(S.KILLED, work.now), due=None))
        work.set_header(work.header.to(S.KILLED, work.now))

    # -- wrapping up ---------------------------------------------------------------------------
    def _sync_paused(self, work: Work) -> None:
        header = work.header
        if header.state.current.is_terminated:
            return
        paused = any(run.state.current is S.PAUSED for run in work.unfinished_runs())
        if paused and header.state.current is S.RUNNING:
            work.set_header(header.to(S.PAUSED, work.now))
        elif not paused and header.state.current is S.PAUSED:
            work.set_header(header.to(S.RUNNING, work.now))

    def _finish(self, work: Work) -> Outcome:
        outcome = work.outcome
        outcome.execution = work.snapshot()
        self._keep(work, outcome.execution)
        dues = [run.due for run in work.unfinished_runs() if run.due is not None]
        deadline = next_deadline(work) if not outcome.execution.state.current.is_terminated else None
        dues += [deadline] if deadline is not None else []
        outcome.wake_at = min(dues) if dues else None
        return outcome
