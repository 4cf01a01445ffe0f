"""The executor loop: one asyncio task owns every live execution.

It takes its inbox in batches (commands, task run results, wake-ups), applies each execution's
messages through the pure `Executor`, commits the changes of the whole batch in one group of
transactions, and only then announces them and sends new work to the worker. So a task's success is
durable before its dependants start, and a restarted engine finds every execution where it was.

Around the executor's decisions, the loop keeps what only time or other executions decide:
- concurrency: a flow's limit admits, queues, cancels or fails an execution about to start;
- timers: an execution whose outcome asks to be woken later (retries, Pause, WaitFor);
- rests: an execution whose step was long waits as long before its next one, so others go first;
- the save-failure policy (see `_save_failed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import traceback
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, Protocol

from ..events import EngineError, EventBus, ExecutionChanged, LogsAppended, TaskRunChanged
from ..logs import LogPipeline, log_entry
from ..memory import LARGE_EXECUTION_RUNS, give_back
from ..messages import (
    CancelTaskRun,
    ExecutorMessage,
    KillExecution,
    LinkSubflow,
    RestartExecution,
    ResumeExecution,
    RunTaskRun,
    StartExecution,
    TaskRunLost,
    TaskRunResult,
    WakeExecution,
)
from ..model import Execution, Flow, LogEntry, LogLevel, StateType, TaskRun, utcnow
from ..queue import MessageQueue, WorkerQueue
from .concurrency import Admission, ConcurrencySlots, Slots, limit_of
from .decisions import Executor
from .replay import retried
from .working_copy import Outcome

_log = logging.getLogger(__name__)
# After a failed commit (disk full, I/O error) the same messages are applied again this much later,
# up to MAX_SAVE_FAILURES failures in a row; then the execution fails (see `_save_failed`).
SAVE_RETRY_SECONDS = 1.0
MAX_SAVE_FAILURES = 3
# An executor step longer than this is followed by a rest as long as the step (capped), during which
# the execution's messages wait and the others' go first (see `_rest`).
HEAVY_STEP_SECONDS = 0.02
MAX_REST_SECONDS = 2.0
GIVE_BACK_DELAY = 1.0
# How often `wait` reads the store for an execution another server of a cluster runs.
ELSEWHERE_POLL_SECONDS = 0.5


class ExecutionStore(Protocol):
    """The store as the loop uses it."""

    async def save_execution(
        self,
        execution: Execution,
        changed: Sequence[TaskRun] = (),
        logs: Sequence[LogEntry] = (),
        *,
        removed: Sequence[str] = (),
        also: Sequence[Execution] = (),
    ) -> None: ...

    async def get_execution(self, execution_id: str) -> Execution | None: ...


class SubflowWatch(Protocol):
    """What the loop asks of the subflows component (engine.executor.subflows)."""

    def launch(self, flow: Flow, parent: Execution, run: TaskRun) -> None: ...

    def waits_for_child(self, execution_id: str) -> bool: ...

    def ended(self, execution: Execution) -> None: ...


class StepPrefetch(Protocol):
    """Reads, off the loop's steps, what the executor's renders will ask for (kv() values)."""

    async def prefetch_step(self, flow: Flow, execution: Execution) -> None: ...

    def end_steps(self) -> None: ...


def grouped(batch: list[ExecutorMessage]) -> list[tuple[str, list[ExecutorMessage]]]:
    """Consecutive task results of one execution go together (one executor step for all);
    any other message is a group of its own. Order per execution is kept.

    Every step advances its execution as far as it goes, so a wake is dropped when the batch holds
    another message for the same execution (a large fan-out then takes one step per batch, not two).
    """
    groups: list[tuple[str, list[ExecutorMessage]]] = []
    last_result: dict[str, list[ExecutorMessage]] = {}
    stepped = {message.execution_id for message in batch if not isinstance(message, WakeExecution)}
    for message in batch:
        key = message.execution_id
        if isinstance(message, WakeExecution):
            if key in stepped:
                continue
            stepped.add(key)
        is_result = isinstance(message, TaskRunResult)
        if is_result and key in last_result:
            last_result[key].append(message)
            continue
        group = [message]
        groups.append((key, group))
        if is_result:
            last_result[key] = group
        else:
            last_result.pop(key, None)
    return groups


class ExecutorLoop:
    """Owns the live executions: applies messages, commits, announces, dispatches."""

    def __init__(
        self,
        *,
        store: ExecutionStore,
        executor: Executor,
        events: EventBus,
        inbox: MessageQueue[ExecutorMessage],
        worker: WorkerQueue,
        logs: LogPipeline,
        on_end: Callable[[Execution], None],
        prefetch: StepPrefetch | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.events = events
        self.inbox = inbox
        self.worker = worker
        self.logs = logs
        self.on_end = on_end
        self.prefetch = prefetch
        self.slots: Slots = ConcurrencySlots()  # a cluster's server shares its flows' slots
        self.subflows: SubflowWatch | None = None  # set once the subflows component is built
        self._live: dict[str, tuple[Flow, Execution]] = {}
        self._persisted: dict[str, Execution] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._waiters: dict[str, list[asyncio.Future[Execution]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Failed saves in a row per execution, and executions failed for it whose end is not stored yet.
        self._save_failures: dict[str, int] = {}
        self._unsaved: dict[str, Execution] = {}
        # New executions not stored yet, with what their submitter waits on (see `start_new`).
        self._unborn: dict[str, asyncio.Future[None]] = {}
        # Executions whose last step was long, with the messages held back meanwhile (see `_rest`).
        self._resting: dict[str, list[ExecutorMessage]] = {}
        # Set on a cluster's server: an unfinished execution not live here runs on another server.
        self.others_run = False
        self._rest_timers: dict[str, asyncio.TimerHandle] = {}

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tiercel-executor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for timer in [*self._timers.values(), *self._rest_timers.values()]:
            timer.cancel()

    @property
    def running(self) -> bool:
        """The loop is up (started and not stopped or crashed)."""
        return self._task is not None and not self._task.done()

    # -- the live executions ----------------------------------------------------------------------
    def post(self, message: ExecutorMessage) -> None:
        self.inbox.put(message)

    def live(self, execution_id: str) -> tuple[Flow, Execution] | None:
        """The flow and the working copy of a live execution (it may be a step ahead of the store)."""
        return self._live.get(execution_id)

    def live_ids(self) -> list[str]:
        return list(self._live)

    def stored(self, execution_id: str) -> Execution | None:
        """A live execution as last stored (or failed by the save-failure policy, not stored yet)."""
        return self._persisted.get(execution_id) or self._unsaved.get(execution_id)

    def adopt(self, flow: Flow, execution: Execution) -> None:
        """Take a stored execution in (a new one, a restart, one found unfinished at start)."""
        self._live[execution.id] = (flow, execution)
        self._persisted[execution.id] = execution

    def start_new(self, flow: Flow, execution: Execution) -> asyncio.Future[None]:
        """Take in a new execution that is not stored yet, and start it.

        Its creation is stored with its first step, in one write: the future is done once that
        write is durable. When the write fails, the execution is dropped as if it had never been
        submitted (nothing of it ran: work is sent out only after a step is stored), and the
        future raises the store's error.
        """
        self._live[execution.id] = (flow, execution)
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unborn[execution.id] = stored
        self.post(StartExecution(execution.id))
        return stored

    def is_idle(self) -> bool:
        return not self._live and self.inbox.empty()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine beside the loop, keeping a reference until it ends."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def command(self, message: ExecutorMessage) -> asyncio.Future[None]:
        """Post a command; the future is done once the loop has applied and stored it."""
        applied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.post(dataclasses.replace(message, applied=applied))
        return applied

    async def apply(self, message: ExecutorMessage) -> None:
        """Post a command and return once the loop has applied and stored it."""
        await self.command(message)

    async def wait(self, execution_id: str, *, until_paused: bool = False) -> Execution | None:
        """Wait for an execution to end (or to pause with nothing scheduled, when asked).

        None when no execution has that id.
        """
        while True:
            # Only stored states are reported: the loop's working copy may be ahead of the store.
            current = self._persisted.get(execution_id)
            if execution_id not in self._live or current is None:
                stored = self._unsaved.get(execution_id) or await self.store.get_execution(execution_id)
                if stored is None:
                    return None
                if stored.state.current.is_terminated:
                    return stored
                if execution_id not in self._live:
                    if not self.others_run or (until_paused and self.idle_paused(stored)):
                        return stored
                    await asyncio.sleep(ELSEWHERE_POLL_SECONDS)
                    continue
                current = stored
            if until_paused and self.idle_paused(current):
                return current
            future: asyncio.Future[Execution] = asyncio.get_running_loop().create_future()
            waiters = self._waiters.setdefault(execution_id, [])
            waiters.append(future)
            try:
                ended = await future
            finally:  # a waiter that gave up (a timeout, a client gone) leaves nothing behind
                if future in waiters:
                    waiters.remove(future)
            if ended.state.current.is_terminated:
                return ended  # as stored (or kept unsaved, see `_save_failed`): no need to read it back

    def waiting(self, execution_id: str) -> int:
        """How many callers of `wait` wait for an execution."""
        return len(self._waiters.get(execution_id, ()))

    def idle_paused(self, execution: Execution) -> bool:
        """Paused with nothing left to happen by itself: no timer, no task or subflow running."""
        if execution.state.current is not StateType.PAUSED or execution.id in self._timers:
            return False
        if any(self.worker.is_running(run.id) for run in execution.task_runs):
            return False
        return self.subflows is None or not self.subflows.waits_for_child(execution.id)

    # -- the loop -------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            batch = await self.inbox.take()
            try:
                await self._process(batch)
            except Exception as error:  # the loop must survive anything one execution does
                self.events.publish(EngineError(f"{type(error).__name__}: {error}"))
                traceback.print_exc()

    async def _process(self, batch: list[ExecutorMessage]) -> None:
        try:
            await self._process_batch(batch)
        finally:
            resting = {id(message) for messages in self._resting.values() for message in messages}
            for message in batch:
                if message.applied is not None and not message.applied.done() and id(message) not in resting:
                    message.applied.set_result(None)

    async def _process_batch(self, batch: list[ExecutorMessage]) -> None:
        outcomes: dict[str, list[Outcome]] = {}
        handled: dict[str, list[ExecutorMessage]] = {}
        heavy: dict[str, float] = {}  # executions whose step was long, with when it began
        began_from: dict[str, Execution] = {}  # the execution each one's first step started from
        groups = grouped(batch)
        await self._prefetch(groups)
        starts = (StartExecution, WakeExecution)
        await self.slots.prepare(
            self._live[i] for i, m in groups if i in self._live and isinstance(m[0], starts)
        )
        try:
            for execution_id, messages in groups:
                live = self._live.get(execution_id)
                if live is None:
                    continue
                resting = self._resting.get(execution_id)
                if resting is not None:
                    resting.extend(messages)
                    continue
                flow, execution = live
                began_from.setdefault(execution_id, execution)
                began = time.perf_counter()
                try:
                    outcome = self._step(flow, execution, messages)
                except Exception as error:  # one broken execution must not hold up the others
                    message = f"Internal error, the execution cannot go on: {type(error).__name__}: {error}"
                    outcome = self.executor.crash(flow, execution, utcnow(), message)
                    self.events.publish(EngineError(message, execution_id))
                if time.perf_counter() - began >= HEAVY_STEP_SECONDS:
                    heavy.setdefault(execution_id, began)
                self._live[execution_id] = (flow, outcome.execution)
                outcomes.setdefault(execution_id, []).append(outcome)
                handled.setdefault(execution_id, []).extend(messages)
        finally:
            if self.prefetch is not None:
                self.prefetch.end_steps()
        saves = []
        for execution_id, steps in outcomes.items():
            execution = steps[-1].execution
            before = self._persisted.get(execution_id)
            changed, removed = changes(before, execution, steps, began_from.get(execution_id))
            logs = [self.logs.masked(entry) for step in steps for entry in step.logs]
            for entry in logs:
                self.logs.remember_error(entry)
            if before is execution and not logs:
                continue
            retries = [retried(execution, step.retry_at) for step in steps if step.retry_at is not None]
            saves.append((execution, changed, logs, removed, retries))
        results = await asyncio.gather(
            *(self.store.save_execution(e, c, lg, removed=r, also=a) for e, c, lg, r, a in saves),
            return_exceptions=True,
        )
        for (execution, changed, logs, _, retries), result in zip(saves, results, strict=True):
            unborn = self._unborn.pop(execution.id, None)
            if isinstance(result, Exception):
                outcomes.pop(execution.id, None)
                if unborn is not None:
                    self._drop_unborn(execution.id, result, unborn)
                else:
                    self._save_failed(execution.id, result, handled.get(execution.id, []))
                continue
            self._save_failures.pop(execution.id, None)
            self._persisted[execution.id] = execution
            if unborn is not None and not unborn.done():
                unborn.set_result(None)
            for run in changed:
                self.events.publish(TaskRunChanged(execution.id, run))
            self.events.publish(ExecutionChanged(execution))
            if logs:
                self.events.publish(LogsAppended(tuple(logs)))
            for attempt in retries:  # stored with the RETRIED one: it starts when due
                self.adopt(self._live[execution.id][0], attempt)
                self.events.publish(ExecutionChanged(attempt))
                self.post(StartExecution(attempt.id))
        for execution_id, steps in outcomes.items():
            flow, execution = self._live[execution_id]
            for step in steps:
                for run in step.cancel:
                    self.worker.send(CancelTaskRun(execution_id, run.id))
                for run in step.dispatch:
                    self.worker.send(RunTaskRun(flow, execution, execution.task_run(run.id)))
                if step.subflows and self.subflows is not None:
                    for run in step.subflows:
                        self.subflows.launch(flow, execution, execution.task_run(run.id))
            self._schedule(execution_id, steps[-1].wake_at)
            if steps[-1].more and not execution.state.current.is_terminated:
                # A large fan-out goes on in the next batch, behind what others have queued meanwhile.
                self.post(WakeExecution(execution_id))
            self._notify(execution)
        for execution_id, began in heavy.items():
            if execution_id in self._live:
                self._rest(execution_id, time.perf_counter() - began)

    async def _prefetch(self, groups: list[tuple[str, list[ExecutorMessage]]]) -> None:
        """Read what the steps of this batch will render (best effort: a miss is read at render)."""
        if self.prefetch is None:
            return
        for execution_id in dict.fromkeys(execution_id for execution_id, _ in groups):
            live = self._live.get(execution_id)
            if live is None or execution_id in self._resting:
                continue
            try:
                await self.prefetch.prefetch_step(*live)
            except Exception as error:  # the step itself reports what is wrong
                _log.debug("prefetch for %s: %s", execution_id, error)

    def _step(self, flow: Flow, execution: Execution, messages: list[ExecutorMessage]) -> Outcome:
        now = utcnow()
        executor = self.executor
        message = messages[0]
        if isinstance(message, StartExecution | WakeExecution) and execution.state.current in (
            StateType.CREATED,
            StateType.QUEUED,
        ):
            if execution.due is not None and execution.due > now:
                return Outcome(execution, wake_at=execution.due)  # a retry's new attempt, not due yet
            held = self._held_back(flow, execution, now)
            if held is not None:
                return held
        if isinstance(message, TaskRunResult):
            results = [m.result for m in messages if isinstance(m, TaskRunResult)]
            return executor.apply_results(flow, execution, results, now)
        if isinstance(message, KillExecution):
            return executor.kill(flow, execution, now)
        if isinstance(message, ResumeExecution):
            return executor.resume(flow, execution, now, message.outputs)
        if isinstance(message, RestartExecution):
            return executor.restart(flow, execution, now)
        if isinstance(message, TaskRunLost):
            return executor.lost(flow, execution, now, message.task_run_id, message.attempt)
        if isinstance(message, LinkSubflow):
            return executor.link_subflow(flow, execution, now, message.task_run_id, message.child_id)
        return executor.advance(flow, execution, now)

    def _held_back(self, flow: Flow, execution: Execution, now: datetime) -> Outcome | None:
        """Apply the flow's concurrency limit to an execution about to start; None lets it start."""
        admission = self.slots.admit(flow, execution.id)
        if admission is Admission.RUN:
            return None
        if admission is Admission.QUEUE:
            queued = (
                execution
                if execution.state.current is StateType.QUEUED
                else execution.to(StateType.QUEUED, now)
            )
            return Outcome(queued)
        limit = limit_of(flow)
        if admission is Admission.CANCEL:
            message = f"Cancelled: the flow's concurrency limit ({limit}) is reached"
            return Outcome(
                execution.to(StateType.CANCELLED, now),
                logs=[log_entry(execution, None, message, LogLevel.WARN)],
            )
        message = f"Failed: the flow's concurrency limit ({limit}) is reached"
        return Outcome(execution.to(StateType.FAILED, now), logs=[log_entry(execution, None, message)])

    def _rest(self, execution_id: str, seconds: float) -> None:
        """Hold an execution's next messages back for as long as its last step took (with its save).

        A step costs time in proportion to the execution's task runs (a ForEach over 100,000 values);
        resting that long after it leaves every other execution at least half of the loop, so their
        tasks and webhooks are answered while the large one goes on.
        """
        self._resting[execution_id] = []
        self._rest_timers[execution_id] = asyncio.get_running_loop().call_later(
            min(seconds, MAX_REST_SECONDS), self._rested, execution_id
        )

    def _rested(self, execution_id: str) -> None:
        self._rest_timers.pop(execution_id, None)
        for message in self._resting.pop(execution_id, []):
            self.post(message)

    def _schedule(self, execution_id: str, wake_at: datetime | None) -> None:
        timer = self._timers.pop(execution_id, None)
        if timer is not None:
            timer.cancel()
        if wake_at is None or execution_id not in self._live:
            return
        delay = max((wake_at - utcnow()).total_seconds(), 0)
        loop = asyncio.get_running_loop()
        self._timers[execution_id] = loop.call_later(delay, self._wake, execution_id)

    def _wake(self, execution_id: str) -> None:
        self._timers.pop(execution_id, None)
        self.post(WakeExecution(execution_id))

    def _save_failed(self, execution_id: str, error: BaseException, messages: list[ExecutorMessage]) -> None:
        """A step of an execution could not be committed (disk full, I/O error): nothing of it happened.

        Policy: the execution goes back to its stored state and the same messages are applied again
        SAVE_RETRY_SECONDS later; after MAX_SAVE_FAILURES failures in a row it fails instead of
        retrying forever. Its running tasks are stopped, and its FAILED state and the storage error
        are announced at once (the dashboard shows them) and stored as soon as the store accepts
        writes again; until then `stored` and `wait` report them from memory.
        """
        flow, _ = self._live[execution_id]
        persisted = self._persisted[execution_id]
        self._live[execution_id] = (flow, persisted)
        failures = self._save_failures.get(execution_id, 0) + 1
        if failures < MAX_SAVE_FAILURES:
            self._save_failures[execution_id] = failures
            note = f"Could not save execution (attempt {failures} of {MAX_SAVE_FAILURES}): {error}"
            self.events.publish(EngineError(note, execution_id))
            asyncio.get_running_loop().call_later(SAVE_RETRY_SECONDS, self._repost, messages)
            return
        self._save_failures.pop(execution_id, None)
        message = (
            f"Storage error: the execution's state could not be saved {failures} times in a row ({error}); "
            "the execution failed. Free space (or fix the disk), then restart it"
        )
        outcome = self.executor.crash(flow, persisted, utcnow(), message)
        failed = outcome.execution
        for run in outcome.cancel:
            self.worker.send(CancelTaskRun(execution_id, run.id))
        known = persisted.task_runs_by_id
        changed = [run for run in failed.task_runs if known.get(run.id) is not run]
        logs = [self.logs.masked(entry) for entry in outcome.logs]
        self._unsaved[execution_id] = failed
        self._live[execution_id] = (flow, failed)
        self._schedule(execution_id, None)
        self.events.publish(EngineError(message, execution_id))
        for run in changed:
            self.events.publish(TaskRunChanged(execution_id, run))
        self.events.publish(ExecutionChanged(failed))
        if logs:
            self.events.publish(LogsAppended(tuple(logs)))
        self._notify(failed)
        self.spawn(self._store_failure(failed, changed, logs))

    def _drop_unborn(self, execution_id: str, error: Exception, stored: asyncio.Future[None]) -> None:
        """A new execution's first write failed: forget it, and tell its submitter why."""
        flow, _ = self._live.pop(execution_id)
        for queued_id in self.slots.release(flow, execution_id):
            self.post(StartExecution(queued_id))
        if not stored.done():
            stored.set_exception(error)

    async def _store_failure(self, failed: Execution, changed: list[TaskRun], logs: list[LogEntry]) -> None:
        """Store an execution failed by `_save_failed` once the store takes writes again."""
        while True:
            try:
                await self.store.save_execution(failed, changed, logs)
            except Exception:
                if not self.running:
                    return  # the engine stopped: a restart finds the execution unfinished and fails it
                await asyncio.sleep(SAVE_RETRY_SECONDS)
                continue
            self._unsaved.pop(failed.id, None)
            return

    def _repost(self, messages: list[ExecutorMessage]) -> None:
        for message in messages:
            self.post(message)

    def _notify(self, execution: Execution) -> None:
        ended = execution.state.current.is_terminated
        if ended:
            live = self._live.get(execution.id)
            if live is not None:
                for queued_id in self.slots.release(live[0], execution.id):
                    self.post(StartExecution(queued_id))
            self._live.pop(execution.id, None)
            self._persisted.pop(execution.id, None)
            self.logs.forget(execution.id)
            self.on_end(execution)
            if len(execution.task_runs) >= LARGE_EXECUTION_RUNS:
                # Once this step's references are gone too: the loop then holds none of it.
                asyncio.get_running_loop().call_later(GIVE_BACK_DELAY, give_back)
            if self.subflows is not None:
                self.subflows.ended(execution)
        if ended or self.idle_paused(execution):
            for future in self._waiters.pop(execution.id, []):
                if not future.done():
                    future.set_result(execution)


def changes(
    before: Execution | None, after: Execution, steps: Sequence[Outcome], began_from: Execution | None
) -> tuple[list[TaskRun], list[str]]:
    """The task runs to store and the ids of those to delete, going from the stored execution
    `before` to `after` through `steps`; new task runs come in the order they were created.

    When the steps started from the stored execution, they say what they changed; otherwise (after
    a failed save, or when a step removed task runs) the two executions are compared.
    """
    if before is not None and began_from is before and all(step.changed is not None for step in steps):
        ids = dict.fromkeys(run_id for step in steps for run_id in step.changed or ())
        now, then = after.task_runs_by_id, before.task_runs_by_id
        return [now[run_id] for run_id in ids if now[run_id] is not then.get(run_id)], []
    known = before.task_runs_by_id if before else {}
    changed = [run for run in after.task_runs if known.get(run.id) is not run]
    removed = [run_id for run_id in known if run_id not in after.task_runs_by_id]
    return changed, removed
