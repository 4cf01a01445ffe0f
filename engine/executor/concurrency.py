"""A flow's `concurrency.limit`: how many of its executions may be started and not yet ended.

Started means anything after admission up to a terminal state, so a PAUSED execution holds its slot.
Over the limit, the flow's `behavior` decides: QUEUE (wait in the QUEUED state, first come first
started), CANCEL (end CANCELLED) or FAIL (end FAILED). A freed slot goes to the head of the queue at
once, and is reserved for it so that a newer execution cannot take it first.

`ConcurrencySlots` counts the executions of one engine; the servers of a cluster share theirs
through the store (engine.cluster.slots), behind the same `Slots` interface.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from enum import Enum
from typing import Protocol

from ..model import Execution, Flow

FlowUid = tuple[str, str]


class Admission(Enum):
    RUN = "RUN"
    QUEUE = "QUEUE"
    CANCEL = "CANCEL"
    FAIL = "FAIL"


def limit_of(flow: Flow) -> int | None:
    if not flow.concurrency or flow.concurrency.get("limit") is None:
        return None
    return int(flow.concurrency["limit"])


class Slots(Protocol):
    """The executor loop's view of its flows' slots."""

    async def prepare(self, starting: Iterable[tuple[Flow, Execution]]) -> None:
        """Read what `admit` will answer for these executions about to start (or to be woken)."""
        ...

    def admit(self, flow: Flow, execution_id: str) -> Admission: ...

    def holding(self, flow: Flow, execution_id: str) -> None: ...

    def waiting(self, flow: Flow, execution_id: str) -> None: ...

    def release(self, flow: Flow, execution_id: str) -> list[str]: ...

    def fill(self, flow: Flow) -> list[str]: ...


class ConcurrencySlots:
    """Which executions hold a slot of their flow, and which wait for one, in order."""

    async def prepare(self, starting: Iterable[tuple[Flow, Execution]]) -> None:
        """Nothing to read: every answer is here."""

    def __init__(self) -> None:
        self._holders: dict[FlowUid, set[str]] = {}
        self._queues: dict[FlowUid, deque[str]] = {}

    def admit(self, flow: Flow, execution_id: str) -> Admission:
        """Whether an execution about to start may run now; a RUN answer takes the slot."""
        limit = limit_of(flow)
        holders = self._holders.setdefault(flow.uid, set())
        if limit is None or execution_id in holders:
            return Admission.RUN
        queue = self._queues.setdefault(flow.uid, deque())
        if execution_id in queue:
            return Admission.QUEUE  # still waiting for its turn
        if len(holders) < limit and not queue:
            holders.add(execution_id)
            return Admission.RUN
        behavior = str((flow.concurrency or {}).get("behavior") or "QUEUE")
        if behavior == "QUEUE":
            queue.append(execution_id)
            return Admission.QUEUE
        return Admission.CANCEL if behavior == "CANCEL" else Admission.FAIL

    def holding(self, flow: Flow, execution_id: str) -> None:
        """An execution found started after a restart keeps its slot."""
        if limit_of(flow) is not None:
            self._holders.setdefault(flow.uid, set()).add(execution_id)

    def waiting(self, flow: Flow, execution_id: str) -> None:
        """An execution found QUEUED after a restart waits again, behind those found before it."""
        queue = self._queues.setdefault(flow.uid, deque())
        if execution_id not in queue:
            queue.append(execution_id)

    def release(self, flow: Flow, execution_id: str) -> list[str]:
        """An execution ended: free its slot (or its place in the queue); return whom to start now."""
        holders = self._holders.get(flow.uid)
        if holders is not None:
            holders.discard(execution_id)
        queue = self._queues.get(flow.uid)
        if queue is not None and execution_id in queue:
            queue.remove(execution_id)
        return self.fill(flow)

    def fill(self, flow: Flow) -> list[str]:
        """Hand free slots to the head of the queue; return the executions that may start now."""
        limit = limit_of(flow)
        queue = self._queues.get(flow.uid)
        if not queue:
            return []
        holders = self._holders.setdefault(flow.uid, set())
        started: list[str] = []
        while queue and (limit is None or len(holders) < limit):
            head = queue.popleft()
            holders.add(head)
            started.append(head)
        return started

    def running(self, flow: Flow) -> int:
        return len(self._holders.get(flow.uid, ()))
