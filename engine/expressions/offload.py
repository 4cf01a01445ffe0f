"""Costly filter operations run in worker processes, under the render's time limit, off the event loop.

A jq program or a regular expression can run for minutes in C code, and a thread running it cannot be
stopped: each such :class:`~.costly.Job` goes to a small pool of worker processes, and a worker that
outlives the time limit is killed (a new one starts on the next job). The render then fails with
"the expression took longer than N s".

Filters are synchronous, so waiting for a worker inside a render would still hold the event loop. The
engine therefore calls :func:`collect` (through ``Renderer.prefetch``) before it renders the properties
that use such filters: ``collect`` renders on the loop with jobs *deferred* (a filter that needs a worker
raises :class:`Deferred` instead of waiting), awaits each job in a thread, keeps its outcome in a memo of
the current asyncio task, and renders again until the render needs no more jobs. The render proper then
finds every outcome in the memo. A render that was not prefetched waits for its worker in place, still
bounded by the limit.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final

from ..processes.tree import spawning
from .core import LimitExceeded, RenderFailure, RenderState
from .costly import Job, Outcome, describe, is_cheap, perform

__all__ = ["Deferred", "WorkerPool", "collect", "run", "shared_pool"]

# Outcomes kept per asyncio task, and jobs one template may defer before the rest wait in place.
MEMO_ENTRIES: Final = 256
MAX_DEFERRED_JOBS: Final = 100

_MEMO: ContextVar[dict[Job, Outcome] | None] = ContextVar("tiercel_costly_outcomes", default=None)
_DEFERRING: ContextVar[bool] = ContextVar("tiercel_costly_deferring", default=False)


class Deferred(BaseException):
    """A render inside :func:`collect` reached a job that must run in a worker first.

    A BaseException, so that the ``except Exception`` of the renderer and of handlers lets it through.
    """

    def __init__(self, job: Job) -> None:
        super().__init__(job.op)
        self.job = job


def _value(outcome: Outcome) -> Any:
    if outcome.kind == "ok":
        return outcome.value
    if outcome.kind == "limit":
        raise LimitExceeded(outcome.value)
    raise RenderFailure(outcome.value)


def run(job: Job, state: RenderState) -> Any:
    """The result of a job inside a render: in place when cheap, else from the memo or a worker.

    Raises:
        Deferred: The job needs a worker and :func:`collect` is rendering.
        LimitExceeded: The job outlived the render's time limit, or built too much.
        RenderFailure: The job failed (an invalid program, a worker that died ...).
    """
    if is_cheap(job):
        return _value(perform(job))
    if state.renderer is None:
        # Jinja folds filter calls on constants while compiling: this one waits for the render.
        raise RenderFailure(f"{describe(job)} is evaluated when the expression renders")
    memo = _MEMO.get()
    if memo is not None:
        found = memo.get(job)
        if found is not None:
            return _value(found)
    if _DEFERRING.get():
        raise Deferred(job)
    state.check_time()
    return _value(shared_pool().outcome(job, state.deadline - time.monotonic(), state.timeout_s))


async def collect(render: Callable[[], object], timeout_s: float) -> None:
    """Run the worker jobs of a render off the event loop, so that the same render later finds them done.

    The outcomes stay in a memo of the calling asyncio task. Errors of the render itself are left to the
    render proper, which reports them with their context.

    Args:
        render: Renders the template (synchronously, on the loop).
        timeout_s: The time limit of the template's jobs, all together.
    """
    memo = _MEMO.get()
    if memo is None or len(memo) >= MEMO_ENTRIES:
        memo = {}
        _MEMO.set(memo)
    deadline = time.monotonic() + timeout_s
    for _ in range(MAX_DEFERRED_JOBS):
        token = _DEFERRING.set(True)
        try:
            render()
            return
        except Deferred as deferred:
            job = deferred.job
        except Exception:
            return
        finally:
            _DEFERRING.reset(token)
        memo[job] = await shared_pool().outcome_async(job, deadline - time.monotonic(), timeout_s)


# What a worker keeps of the engine's environment: enough to start Python, and no secrets (jq's $ENV).
_WORKER_ENV: Final = ("PATH", "PYTHONPATH", "PYTHONHOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
_WORKER_MODULE: Final = __name__.rpartition(".")[0] + ".worker"


@dataclass(eq=False, slots=True)
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection


def _spawn() -> _Worker:
    # A fresh interpreter rather than a fork: forking a threaded asyncio process is unsafe, and
    # multiprocessing's spawn would import the engine's main script again in the worker.
    ours, theirs = socket.socketpair()
    # Registered as the engine's own child: never taken for a task program's orphan.
    with ours, theirs, spawning() as spawn:
        process = subprocess.Popen(
            [sys.executable, "-m", _WORKER_MODULE, str(theirs.fileno())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            env={name: os.environ[name] for name in _WORKER_ENV if name in os.environ},
            start_new_session=True,  # the terminal's Ctrl+C is the engine's to handle
        )
        spawn.started(process.pid)
        return _Worker(process, Connection(ours.detach()))


class WorkerPool:
    """Up to ``size`` worker processes, started on demand, each running one job at a time.

    Args:
        size: The most jobs that run at once (callers beyond wait, within their time limit).
    """

    def __init__(self, size: int) -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()

    def pids(self) -> list[int]:
        """The process ids of the live workers."""
        with self._lock:
            return [worker.process.pid for worker in self._live]

    def outcome(self, job: Job, timeout_s: float, limit_s: float) -> Outcome:
        """Run a job in a worker, blocking the calling thread for at most ``timeout_s``.

        Args:
            job: The operation.
            timeout_s: How long it may take (waiting for a free worker included).
            limit_s: The time limit to name in the message when it takes longer.

        Returns:
            The outcome; a worker that outlives ``timeout_s`` is killed and the outcome says so.
        """
        deadline = time.monotonic() + timeout_s
        if timeout_s <= 0 or not self._slots.acquire(timeout=timeout_s):
            return self._too_long(job, limit_s)
        try:
            for _ in range(2):  # a worker found dead while idle is replaced once
                try:
                    worker = self._take()
                except OSError as exc:
                    return Outcome("failure", f"{describe(job)}: cannot start a worker process: {exc}")
                try:
                    worker.conn.send(tuple(job))
                except (OSError, ValueError):
                    self._discard(worker)
                    continue
                if not worker.conn.poll(max(deadline - time.monotonic(), 0)):
                    self._discard(worker)
                    return self._too_long(job, limit_s)
                try:
                    kind, value = worker.conn.recv()
                except (EOFError, OSError):
                    code = self._discard(worker)
                    message = f"{describe(job)} stopped its worker process (exit code {code})"
                    return Outcome("failure", message)
                self._give_back(worker)
                return Outcome(kind, value)
            return Outcome("failure", f"{describe(job)}: the worker processes keep stopping")
        finally:
            self._slots.release()

    async def outcome_async(self, job: Job, timeout_s: float, limit_s: float) -> Outcome:
        """:meth:`outcome`, awaited in a thread so that the event loop goes on meanwhile."""
        return await asyncio.to_thread(self.outcome, job, timeout_s, limit_s)

    def close(self) -> None:
        """Kill every worker (a later job starts new ones)."""
        with self._lock:
            workers = list(self._live)
        for worker in workers:
            self._discard(worker)

    @staticmethod
    def _too_long(job: Job, limit_s: float) -> Outcome:
        message = f"the expression took longer than {limit_s:g} s ({describe(job)} was stopped)"
        return Outcome("limit", message)

    def _take(self) -> _Worker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        worker = _spawn()
        with self._lock:
            self._live.add(worker)
        return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._live:
                self._idle.append(worker)

    def _discard(self, worker: _Worker) -> int | None:
        with self._lock:
            self._live.discard(worker)
            if worker in self._idle:
                self._idle.remove(worker)
        worker.process.kill()
        worker.conn.close()
        try:
            return worker.process.wait(5)
        except subprocess.TimeoutExpired:
            return None


_POOL: WorkerPool | None = None
_POOL_LOCK: Final = threading.Lock()


def shared_pool() -> WorkerPool:
    """The process's pool of expression workers (as many as cores, at least 2), made on first use."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = WorkerPool(max(2, min(os.cpu_count() or 2, 4)))
            atexit.register(_POOL.close)
        return _POOL
