"""A worker of a cluster: claims task runs from the shared queue, runs them, reports their ends.

It registers in `workers` and heartbeats there every `heartbeat` seconds. Jobs are claimed up to its
concurrency (its group's only), oldest first, woken by a notification or, failing one, by polling.
Each claimed job's execution and flow revision are read from the store and its attempt runs on the
in-process runner, whose log lines go to the store (through the engine's log pipeline, which the
worker's owner starts and stops); the attempt's end is written with its job's
deletion once those lines are stored. A job whose kill is flagged is cancelled (notified, and seen
again at each heartbeat); a job the table says is the worker's but that it does not run (a claim
whose answer a lost connection cut) is given back.

A worker found declared gone at its heartbeat (it was silent too long: its task runs went to others)
abandons its attempts and registers again under a new id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import psycopg

from ..db_target import local_path
from ..logs import log_entry
from ..messages import ExecutorMessage, TaskRunResult, WorkerResult
from ..model import Flow, LogEntry, LogLevel, StateType
from ..processes.record import attempt_token_prefix
from ..wiring import build_runner, expression_functions
from . import jobs
from .connection import ClusterConnection, Listener, said
from .processes import LocalProcessBook

if TYPE_CHECKING:
    from ..wiring import EngineParts
    from ..worker.runner import LogSink, WorkerStore as RunnerStore

_log = logging.getLogger(__name__)
POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class _Job:
    id: int
    execution_id: str
    attempt: int


class WorkerStore:
    """The store as the worker's attempts use it, with its programs recorded on its machine."""

    def __init__(self, store: Any, book: LocalProcessBook) -> None:
        self._store = store
        self.record_process = book.record_process
        self.forget_process_nowait = book.forget_process_nowait

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class _ErrorLines:
    """The worker's log sink: lines go to the log pipeline, and each attempt's ERROR lines are kept
    for its report."""

    def __init__(self, pipeline: LogSink) -> None:
        self.pipeline = pipeline
        self._errors: dict[str, list[LogEntry]] = {}

    def append(self, entry: LogEntry) -> None:
        if entry.level is LogLevel.ERROR and entry.task_run_id is not None:
            self._errors.setdefault(entry.task_run_id, []).append(entry)
        self.pipeline.append(entry)

    async def drain(self) -> None:
        await self.pipeline.drain()

    async def flush(self) -> None:
        await self.pipeline.flush()

    def take(self, task_run_id: str) -> list[LogEntry]:
        return self._errors.pop(task_run_id, [])


class ClusterWorker:
    """Runs the task runs of a PostgreSQL store's queue on this machine."""

    def __init__(
        self,
        engine: EngineParts,
        url: str,
        *,
        concurrency: int,
        group: str | None = None,
        heartbeat: float = 2.0,
        kill_grace: float = 5.0,
        load_namespaces: bool = False,
    ) -> None:
        self.engine = engine
        self.url = url
        self.concurrency = concurrency
        self.group = group
        self.heartbeat = heartbeat
        self.load_namespaces = load_namespaces
        self.id = _new_id()
        self.book = LocalProcessBook(local_path(url).parent / "workers", self.id)
        self.connection = ClusterConnection(url, "worker")
        self.listener = Listener(url, "worker", ["jobs", "cancel"])
        self._ended: list[TaskRunResult] = []
        store = cast("RunnerStore", WorkerStore(engine.store, self.book))
        self.errors = _ErrorLines(engine.log_pipeline)
        self.runner = build_runner(engine, expression_functions(engine), self, kill_grace, store, self.errors)
        self._jobs: dict[str, _Job] = {}  # by task run id: the jobs this worker runs
        self._claiming: set[int] = set()  # ids of jobs claimed and not started yet
        self._error_readers: dict[tuple[str, str, int, str], bool] = {}
        self._wake = asyncio.Event()
        self._ended_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.book.open()
        killed = await self.book.kill_leftovers()
        if killed:
            _log.warning("killed %d processes left by workers of this machine that died", killed)
        if self.load_namespaces and self.engine.flows_dir is not None:
            # The `_namespace.yaml` declarations only (their plugin defaults shape the flows parsed
            # from the store, their variables the tasks' renders); the flows come from the store.
            self.engine.folder.read_on_demand()
            await self.engine.folder.start(watch=False)
        await self.connection.open()
        await self._register()
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="tiercel-worker-claims"),
            asyncio.create_task(self._listen_loop(), name="tiercel-worker-listener"),
            asyncio.create_task(self._heartbeat_loop(), name="tiercel-worker-heartbeat"),
            asyncio.create_task(self._report_loop(), name="tiercel-worker-reports"),
        ]

    async def stop(self) -> None:
        """Stop claiming, abandon the attempts and leave the cluster: the executor's policy for a
        lost worker applies to what ran (a new attempt elsewhere, or FAILED)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.runner.stop()
        with contextlib.suppress(psycopg.Error):
            await self.connection.fetch(jobs.UNREGISTER, [self.id])
        await self.engine.log_pipeline.flush()
        await self.listener.close()
        await self.connection.close()
        self.book.close()

    async def _register(self) -> None:
        host, pid = socket.gethostname(), os.getpid()
        await self.connection.fetch(jobs.REGISTER, [self.id, host, pid, self.group, self.concurrency])

    # -- the runner's results (a MessageSink) ---------------------------------------------------
    def put(self, message: ExecutorMessage) -> None:
        if isinstance(message, TaskRunResult):
            self._ended.append(message)
            self._ended_event.set()

    # -- claims ------------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        while True:
            free = self.concurrency - len(self._jobs)
            claimed = 0
            if free > 0:
                try:
                    claimed = await self._claim(free)
                except Exception as exc:  # the loop must go on; unstarted claims are given back
                    _log.error("cannot claim task runs: %s", said(exc))
            if claimed and claimed == free:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _claim(self, limit: int) -> int:
        rows = await self.connection.fetch(
            jobs.CLAIM, {"worker": self.id, "group": self.group, "limit": limit}
        )
        self._claiming.update(row[0] for row in rows)
        try:
            for job_id, execution_id, task_run_id, attempt, cancel in rows:
                await self._start(_Job(job_id, execution_id, attempt), task_run_id, cancel)
        finally:
            self._claiming.difference_update(row[0] for row in rows)
        return len(rows)

    async def _start(self, job: _Job, task_run_id: str, cancel: bool) -> None:
        execution = await self.engine.store.get_execution(job.execution_id)
        run = execution.task_runs_by_id.get(task_run_id) if execution is not None else None
        if (
            execution is None
            or run is None
            or run.state.current.is_terminated
            or len(run.attempts) - 1 != job.attempt
        ):
            await self.connection.fetch(jobs.FINISH, [job.id, self.id])  # no one waits for it any more
            return
        self._jobs[task_run_id] = job
        flow = await self.engine.flow_revision(
            execution.namespace, execution.flow_id, execution.flow_revision
        )
        if cancel or flow is None:
            if flow is None:
                self.engine.log_pipeline.append(
                    log_entry(execution, run, "the flow revision of this execution cannot be loaded")
                )
            state = StateType.KILLED if cancel else StateType.FAILED
            self.put(TaskRunResult(execution.id, WorkerResult(task_run_id, state)))
            return
        if self._uses_error_logs(flow, run.task_id):  # its renders ask for the execution's errors
            found = await self.engine.store.logs(execution.id, level="ERROR")
            self.engine.log_pipeline.keep_errors(execution.id, [entry for _, entry in found])
        self.book.note_attempt(attempt_token_prefix(task_run_id, job.attempt))
        self.runner.start(flow, execution, run)

    def _uses_error_logs(self, flow: Flow, task_id: str) -> bool:
        """Whether a task's properties call errorLogs() (the worker then reads the errors first)."""
        key = (flow.namespace, flow.id, flow.revision, task_id)
        uses = self._error_readers.get(key)
        if uses is None:
            uses = self._error_readers[key] = "errorLogs" in repr(flow.tasks_by_id[task_id].props)
        return uses

    async def _listen_loop(self) -> None:
        while True:
            for payload in await self.listener.wait(POLL_SECONDS * 5):
                if payload:
                    self.runner.cancel(payload)  # a kill: the payload names the task run
                else:
                    self._wake.set()

    # -- reports -----------------------------------------------------------------------------------
    async def _report_loop(self) -> None:
        while True:
            await self._ended_event.wait()
            self._ended_event.clear()
            ended, self._ended = self._ended, []
            reports = []
            try:
                # The attempt's log lines are stored before the executor hears of its end.
                await self.engine.log_pipeline.flush()
                for message in ended:
                    run_id = message.result.task_run_id
                    errors = self.errors.take(run_id)
                    job = self._jobs.get(run_id)
                    if job is not None:
                        reports.append((job, run_id, jobs.encode_result(message.result, errors)))
                if reports:
                    await self._report(reports)
            except Exception as exc:  # the loop must go on: a job not reported is given back
                _log.error("cannot report %d ends of task runs: %s", len(ended), said(exc))
            finally:
                # Only now: until its row is gone, a job must stay known as this worker's (else a
                # heartbeat would give it back, and another worker would run it again). One whose
                # report failed is given back at the next heartbeat: it runs again elsewhere.
                gone = [
                    (message.result.task_run_id, self._jobs.pop(message.result.task_run_id, None))
                    for message in ended
                ]
                running = {job.execution_id for job in self._jobs.values()}
                for run_id, job in gone:
                    if job is None:
                        continue
                    self.book.forget_attempt(attempt_token_prefix(run_id, job.attempt))  # its programs ended
                    if job.execution_id not in running:
                        self.engine.log_pipeline.forget(job.execution_id)
            self._wake.set()

    async def _report(self, reports: list[tuple[_Job, str, str]]) -> None:
        columns = [
            [job.id for job, _, _ in reports],
            [job.execution_id for job, _, _ in reports],
            [task_run_id for _, task_run_id, _ in reports],
            [job.attempt for job, _, _ in reports],
            [text for _, _, text in reports],
        ]
        await self.connection.fetch(jobs.REPORT, [*columns, self.id, self.connection.channel("results")])

    # -- heartbeats --------------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self._beat()
            except Exception as exc:  # the loop must go on
                _log.error("cannot heartbeat: %s", said(exc))

    async def _beat(self) -> None:
        if not await self.connection.fetch(jobs.HEARTBEAT, [self.id]):
            _log.warning("worker %s was declared gone (silent too long): it joins again", self.id)
            await self.runner.abandon()
            self._jobs.clear()
            self.id = _new_id()
            await self._register()
            return
        claimed = await self.connection.fetch(jobs.CLAIMED, [self.id])
        # Compared with what runs now, after the read (not before it: a job claimed meanwhile
        # would look like one this worker does not run).
        by_job = {job.id: run_id for run_id, job in self._jobs.items()}
        foreign = []
        for job_id, cancel in claimed:
            run_id = by_job.get(job_id)
            if run_id is None and job_id not in self._claiming:
                foreign.append(job_id)
            elif run_id is not None and cancel:
                self.runner.cancel(run_id)
        if foreign:
            await self.connection.fetch(jobs.GIVE_BACK, [foreign, self.id])


def _new_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
