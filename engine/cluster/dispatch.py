"""The executor's side of the shared worker queue: jobs out as rows, results back into its inbox.

`send` queues a job and a background task writes the queued ones in one transaction, then notifies
the workers; kills withdraw a job no worker took or flag it for its worker. The results are read in
id order, handed to the inbox, then deleted; an attempt's result is taken once (a result read again
after a cut delete, or one of an attempt no longer outstanding, is dropped). Every `heartbeat`
seconds, workers silent for longer than the timeout are declared gone and each task run they held is
posted as a `TaskRunLost`, so that the executor applies the crash-recovery policy to it.

Task runs that share a working folder with a WorkingDirectory (a temporary folder of one machine),
and tasks that command the engine (execution.Resume, trigger.Toggle), run on the server's in-process
runner: they need that folder, or the engine, not any worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence

from ..logs import LogPipeline
from ..messages import (
    ExecutorMessage,
    RunTaskRun,
    TaskRunLost,
    TaskRunResult,
    WorkerJob,
    WorkerResult,
)
from ..model import StateType
from ..queue import MessageSink
from ..worker.runner import Runner
from . import jobs
from .connection import ClusterConnection, Listener, said
from .processes import LocalProcessBook
from .worker import ClusterWorker

_log = logging.getLogger(__name__)
POLL_SECONDS = 1.0
RESULTS_PAGE = 1000


def worker_group(job: RunTaskRun) -> str | None:
    """The group of workers a task run goes to (Kestra's `workerGroup.key`), or None for any."""
    spec = job.flow.tasks_by_id[job.task_run.task_id]
    group = spec.props.get("workerGroup")
    key = group.get("key") if isinstance(group, Mapping) else None
    return str(key) if key else None


class SharedWorkerQueue:
    """The `WorkerQueue` of a server whose workers claim task runs from a PostgreSQL table."""

    def __init__(
        self,
        url: str,
        inbox: MessageSink[ExecutorMessage],
        local: Runner,
        logs: LogPipeline,
        *,
        server_id: str,
        heartbeat_timeout: float,
        worker: ClusterWorker | None = None,
        book: LocalProcessBook | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.server_id = server_id  # the jobs it sends and the results it reads name it
        self.inbox = inbox
        self.local = local
        self.logs = logs  # the workers' ERROR lines are kept for errorLogs(), as the local worker's
        self.heartbeat_timeout = heartbeat_timeout
        self.worker = worker  # the worker of this process (`tiercel server` without --no-worker)
        self.book = book  # where the programs of `local` are recorded
        self.on_error = on_error or (lambda message: _log.error("%s", message))
        self.connection = ClusterConnection(url, "executor")
        self.listener = Listener(url, "executor", ["results"])
        # task run id -> the attempt sent out and not reported yet
        self._outstanding: dict[str, int] = {}
        self._to_send: list[tuple[str, str, int, str | None]] = []
        self._to_cancel: list[tuple[str, str]] = []
        self._wake = asyncio.Event()
        # Results are read once recovery has said which attempts it waits for (see `held`): read
        # before, a result of an attempt a previous server sent out would be dropped.
        self._recovered = asyncio.Event()
        # Held while executions of a server gone are adopted, until recovery has said which of their
        # attempts it waits for: a result read meanwhile would be dropped as no one's.
        self.adopting = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        if self.book is not None:
            self.book.open()
            killed = await self.book.kill_leftovers()
            if killed:
                _log.warning(
                    "killed %d processes left by servers and workers of this machine that died", killed
                )
        await self.connection.open()
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="tiercel-job-sender"),
            asyncio.create_task(self._result_loop(), name="tiercel-result-reader"),
            asyncio.create_task(self._reap_loop(), name="tiercel-worker-reaper"),
        ]
        if self.worker is not None:
            await self.worker.start()

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.local.stop()
        await self.listener.close()
        await self.connection.close()
        if self.book is not None:
            self.book.close()

    # -- the WorkerQueue protocol -----------------------------------------------------------------
    def send(self, job: WorkerJob) -> None:
        if isinstance(job, RunTaskRun):
            if self.local.must_run_here(job.flow, job.execution, job.task_run):
                self.local.send(job)
                return
            attempt = len(job.task_run.attempts) - 1
            self._outstanding[job.task_run.id] = attempt
            self._to_send.append((job.execution.id, job.task_run.id, attempt, worker_group(job)))
        elif self.local.is_running(job.task_run_id):
            self.local.send(job)
            return
        else:
            self._to_cancel.append((job.execution_id, job.task_run_id))
        self._wake.set()

    def is_running(self, task_run_id: str) -> bool:
        return task_run_id in self._outstanding or self.local.is_running(task_run_id)

    async def held(self, attempts: Sequence[tuple[str, int]]) -> set[str]:
        """Of these (task run, attempt) pairs, the task runs a worker still holds or has reported
        on: a server starting again waits for them instead of running them again."""
        wanted = dict(attempts)
        rows = await self.connection.fetch(jobs.HELD, {"runs": list(wanted)})
        found = {run_id for run_id, attempt in rows if wanted.get(run_id) == attempt}
        for run_id in found:
            self._outstanding[run_id] = wanted[run_id]
        self._recovered.set()
        return found

    # -- background work ---------------------------------------------------------------------
    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            sending, self._to_send = self._to_send, []
            cancelling, self._to_cancel = self._to_cancel, []
            try:
                if sending:
                    await self._enqueue(sending)
                for execution_id, task_run_id in cancelling:
                    await self._cancel(execution_id, task_run_id)
            except Exception as exc:  # not a lost connection (those are retried): the loop goes on
                self.on_error(f"the worker queue refused a write: {said(exc)}")

    async def _enqueue(self, rows: list[tuple[str, str, int, str | None]]) -> None:
        columns = [list(column) for column in zip(*rows, strict=True)]
        channel = self.connection.channel("jobs")
        await self.connection.fetch(jobs.ENQUEUE, [self.server_id, *columns, channel])

    async def _cancel(self, execution_id: str, task_run_id: str) -> None:
        withdrawn = await self.connection.fetch(jobs.WITHDRAW, [task_run_id])
        flagged = [] if withdrawn else await self.connection.fetch(jobs.FLAG_CANCEL, [task_run_id])
        if flagged:
            await self.connection.notify("cancel", task_run_id)
        elif task_run_id in self._outstanding:
            # Withdrawn (maybe by a delete whose answer a lost connection cut, hence no job either):
            # nothing runs it, and no one else will say so.
            self._report(execution_id, task_run_id, WorkerResult(task_run_id, StateType.KILLED))

    def _report(self, execution_id: str, task_run_id: str, result: WorkerResult) -> None:
        self._outstanding.pop(task_run_id, None)
        self.inbox.put(TaskRunResult(execution_id, result))

    async def _result_loop(self) -> None:
        await self._recovered.wait()
        while True:
            try:
                async with self.adopting:
                    while await self._take_results():
                        pass
            except Exception as exc:  # the loop must outlive a bad row or a refused statement
                self.on_error(f"cannot read the workers' results: {said(exc)}")
            await self.listener.wait(POLL_SECONDS)

    async def _take_results(self) -> bool:
        rows = await self.connection.fetch(jobs.RESULTS, [self.server_id, RESULTS_PAGE])
        for _, execution_id, task_run_id, attempt, text in rows:
            if self._outstanding.get(task_run_id) == attempt:
                result, errors = jobs.decode_result(task_run_id, text)
                for entry in errors:
                    self.logs.remember_error(entry)
                self._report(execution_id, task_run_id, result)
        if rows:
            await self.connection.fetch(jobs.FORGET_RESULTS, [[row[0] for row in rows]])
        return len(rows) == RESULTS_PAGE

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(min(POLL_SECONDS, self.heartbeat_timeout / 4))
            try:
                await self._reap()
            except Exception as exc:  # the loop must go on
                self.on_error(f"cannot look for lost workers: {said(exc)}")

    async def _reap(self) -> None:
        """Declare silent workers gone; their jobs' attempts are posted as lost, then the jobs go
        (read, posted, then deleted: a delete cut by a lost connection is done at the next pass)."""
        dead = await self.connection.fetch(jobs.DEAD_WORKERS, [self.heartbeat_timeout])
        for worker_id, host, pid in dead:
            _log.warning("worker %s (pid %s on %s) stopped heartbeating: its task runs go to others",
                         worker_id, pid, host)  # fmt: skip
        lost = await self.connection.fetch(jobs.LOST_JOBS, [self.server_id])
        for _, execution_id, task_run_id, attempt, _ in lost:
            if self._outstanding.get(task_run_id) == attempt:
                del self._outstanding[task_run_id]
                self.inbox.put(TaskRunLost(execution_id, task_run_id, attempt))
        for job_id, *_, worker_id in lost:
            await self.connection.fetch(jobs.FORGET_JOB, [job_id, worker_id])
