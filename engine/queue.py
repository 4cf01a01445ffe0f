"""The queues between the engine's components, and their in-process implementations.

The executor loop reads its inbox as a `MessageQueue` of executor messages and sends jobs to a
`WorkerQueue`; the worker reports into the same inbox. In one process the inbox is an asyncio queue
(`InProcessQueue`) and the worker queue is the local `Runner` itself, which starts each job as it
arrives. A PostgreSQL queue (rows claimed with SKIP LOCKED) and remote workers implement the same
two protocols, without a change to the executor or to the tasks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from .messages import WorkerJob

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class MessageSink(Protocol[T_contra]):
    """Where a component puts messages for another (the worker's results, for instance)."""

    def put(self, message: T_contra) -> None: ...


class MessageQueue(MessageSink[T], Protocol[T]):
    """A queue read in batches by one consumer."""

    async def take(self) -> list[T]:
        """Wait for a message, then return it with every other one already queued, in order."""
        ...

    def empty(self) -> bool: ...


class WorkerQueue(Protocol):
    """The executor's way to the worker: jobs out, and whether a task run is still running."""

    def send(self, job: WorkerJob) -> None: ...

    def is_running(self, task_run_id: str) -> bool: ...


class WorkerPool(WorkerQueue, Protocol):
    """The engine's workers as it starts and stops them: the in-process runner, or a shared queue."""

    async def open(self) -> None: ...

    async def stop(self) -> None: ...

    async def held(self, attempts: Sequence[tuple[str, int]]) -> set[str]:
        """Of these (task run id, attempt) pairs found running at start, the task runs whose attempt
        still runs (or has ended and will be reported): recovery leaves them alone."""
        ...


class InProcessQueue(Generic[T]):
    """A `MessageQueue` on an asyncio queue: messages stay in this process, in order."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[T] = asyncio.Queue()

    def put(self, message: T) -> None:
        self._queue.put_nowait(message)

    async def take(self) -> list[T]:
        batch = [await self._queue.get()]
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    def empty(self) -> bool:
        return self._queue.empty()
