"""Crash recovery at start: the procedure that applies engine.executor.recovery's rules.

A starting engine first kills the task programs a previous engine on the same database left running
(they are recorded in the store while they run), then carries on with every unfinished execution:
- a runnable task run that was running gets a note "engine stopped while the task was running" and
  runs again as a new attempt, or fails when its flow marks it not idempotent or it used its
  attempts (its retry policy then applies);
- a Subflow task run waits for its child again (and hears of it at once if the child ended), and a
  ForEachItem's `_items` task run for its children (counting those that ended, starting the
  batches it had not started yet);
- everything else resumes where the store says it was, under its flow's concurrency limit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol

from ..events import EventBus, LogsAppended
from ..logs import LogPipeline, log_entry
from ..messages import ExecutorMessage, RunTaskRun, StartExecution, TaskRunResult, WakeExecution, WorkerResult
from ..model import Execution, Flow, StateType, TaskRun, utcnow
from ..processes.leftovers import kill_leftovers
from ..processes.record import ProcessRecord, attempt_token_prefix
from ..queue import WorkerPool
from ..tasks.for_each_item import EXECUTABLE
from ..tasks.registry import Registry
from ..tasks.types import Kind
from .loop import ExecutionStore, ExecutorLoop
from .recovery import INTERRUPTED_MESSAGE, rerun, runs_again
from .subflows import Subflows

_log = logging.getLogger(__name__)


class RecoveryStore(ExecutionStore, Protocol):
    """The store as recovery uses it."""

    async def recorded_processes(self) -> list[ProcessRecord]: ...

    async def forget_processes(self, records: Sequence[ProcessRecord]) -> None: ...

    async def unfinished_executions(self) -> list[Execution]: ...


def closing(run: TaskRun) -> bool:
    """A flowable whose closing work (a WorkingDirectory's output files) runs in the worker."""
    return bool(run.attempts) and not run.attempts[-1].state.current.is_terminated


def with_descendants(roots: Collection[str], executions: Sequence[Execution]) -> set[str]:
    """`roots` and every execution among `executions` whose chain of parents leads to one of them."""
    children: dict[str, list[str]] = {}
    for execution in executions:
        if execution.parent_id is not None:
            children.setdefault(execution.parent_id, []).append(execution.id)
    found = set(roots)
    waiting = list(roots)
    while waiting:
        for child_id in children.get(waiting.pop(), ()):
            if child_id not in found:
                found.add(child_id)
                waiting.append(child_id)
    return found


async def kill_leftover_processes(store: RecoveryStore) -> None:
    """Kill the task programs a previous engine on this database left running, then forget them."""
    recorded = await store.recorded_processes()
    if recorded:
        await kill_leftovers(recorded)
        await store.forget_processes(recorded)


class CrashRecovery:
    """Carries on with the executions a previous engine left unfinished."""

    def __init__(
        self,
        *,
        store: RecoveryStore,
        registry: Registry,
        loop: ExecutorLoop,
        worker: WorkerPool,
        subflows: Subflows,
        logs: LogPipeline,
        events: EventBus,
        flow_revision: Callable[[str, str, int], Awaitable[Flow | None]],
    ) -> None:
        self.store = store
        self.registry = registry
        self.loop = loop
        self.worker = worker
        self.subflows = subflows
        self.logs = logs
        self.events = events
        self.flow_revision = flow_revision

    async def recover(self, only: Collection[str] | None = None) -> None:
        """Resume the unfinished executions (only those of `only` and their subflows, when given)."""
        waiting_on: list[tuple[str, TaskRun]] = []
        following: list[tuple[str, TaskRun]] = []
        starts: list[tuple[Flow, Execution, TaskRun]] = []
        posts: list[ExecutorMessage] = []
        attempts_cut: list[str] = []
        unfinished = await self.store.unfinished_executions()
        if only is not None:
            # With the subflow executions below them: a parent waits for its children, and a kill
            # must reach them (`tiercel kill` with no engine running).
            only = with_descendants(only, unfinished)
        if only is not None:
            unfinished = [execution for execution in unfinished if execution.id in only]
        if unfinished:
            _log.info("carrying on with %d unfinished executions", len(unfinished))
        # Attempts a worker of a cluster still runs (or has reported on) are waited for, not rerun.
        held = await self.worker.held(
            [
                (run.id, len(run.attempts) - 1)
                for execution in unfinished
                for run in execution.task_runs
                if run.state.current.is_running and run.attempts
            ]
        )
        for execution in unfinished:
            flow = await self.flow_revision(execution.namespace, execution.flow_id, execution.flow_revision)
            if flow is None:
                failed = execution.to(StateType.FAILED)
                entry = log_entry(execution, None, "the flow revision of this execution cannot be loaded")
                await self.store.save_execution(failed, (), [entry])
                continue
            again = []
            notes = []
            for run in execution.task_runs:
                if not run.state.current.is_running or run.id in held:
                    continue
                task_type = self.registry.lookup(flow.tasks_by_id[run.task_id].type)
                kind = task_type.kind if task_type else Kind.RUNNABLE
                if kind is Kind.SUBFLOW and run.child_execution_id:
                    waiting_on.append((execution.id, run))
                elif kind is Kind.SUBFLOW and flow.tasks_by_id[run.task_id].type == EXECUTABLE:
                    following.append((execution.id, run))
                elif kind is not Kind.FLOWABLE or closing(run):
                    notes.append(log_entry(execution, run, INTERRUPTED_MESSAGE))
                    attempts_cut.append(attempt_token_prefix(run.id, len(run.attempts) - 1))
                    if kind is not Kind.SUBFLOW and runs_again(flow, execution, run):
                        again.append(rerun(run, utcnow()))
                    else:
                        posts.append(TaskRunResult(execution.id, WorkerResult(run.id, StateType.FAILED)))
            if notes:
                # Stored with the new attempts, before they start and before the failures are decided:
                # an engine killed again at once must not lose the reason.
                execution = execution.with_task_runs(again)
                await self.store.save_execution(execution, again, notes)
            self.loop.adopt(flow, execution)
            for note in notes:
                self.logs.remember_error(note)
            if notes:
                self.events.publish(LogsAppended(tuple(notes)))
            if execution.state.current is StateType.QUEUED:
                self.loop.slots.waiting(flow, execution.id)
            elif execution.state.current is not StateType.CREATED:
                self.loop.slots.holding(flow, execution.id)
            starts.extend((flow, execution, run) for run in again)
            posts.append(WakeExecution(execution.id))
        # A program started just before the crash may not be recorded yet: its token names its attempt.
        await kill_leftovers((), token_prefixes=attempts_cut)
        for flow, execution, run in starts:
            self.worker.send(RunTaskRun(flow, execution, run))
        for message in posts:
            self.loop.post(message)
        self._fill_freed_slots()
        for parent_id, run in waiting_on:
            child_id = run.child_execution_id or ""
            child = None if self.loop.live(child_id) else await self.store.get_execution(child_id)
            self.subflows.wait_again(parent_id, run, child)
        for parent_id, run in following:
            live = self.loop.live(parent_id)
            if live is not None:
                self.subflows.follow_again(live[0], live[1], run)

    def _fill_freed_slots(self) -> None:
        """Slots freed while no engine ran go to the queued executions now."""
        queued_flows: dict[tuple[str, str], Flow] = {}
        for execution_id in self.loop.live_ids():
            live = self.loop.live(execution_id)
            if live is not None and live[1].state.current is StateType.QUEUED:
                queued_flows[live[0].uid] = live[0]
        for flow in queued_flows.values():
            for queued_id in self.loop.slots.fill(flow):
                self.loop.post(StartExecution(queued_id))
