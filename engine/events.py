"""Engine -> UI events: frozen snapshots on an in-process bus that never blocks the engine."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .model import Execution, LogEntry, TaskRun


@dataclass(frozen=True, slots=True)
class FlowsChanged:
    """The set of flows (or of flow files in error) changed."""


@dataclass(frozen=True, slots=True)
class ExecutionChanged:
    execution: Execution
    # Run by another server of the cluster, as the store has it: shown, never acted upon here.
    elsewhere: bool = False


@dataclass(frozen=True, slots=True)
class TaskRunChanged:
    execution_id: str
    task_run: TaskRun


@dataclass(frozen=True, slots=True)
class LogsAppended:
    entries: tuple[LogEntry, ...]


@dataclass(frozen=True, slots=True)
class TriggerChanged:
    """A trigger's state (enabled, last or next date, backfill) changed."""

    namespace: str
    flow_id: str
    trigger_id: str


@dataclass(frozen=True, slots=True)
class EngineError:
    message: str
    execution_id: str | None = None


Event = FlowsChanged | ExecutionChanged | TaskRunChanged | LogsAppended | TriggerChanged | EngineError


class EventBus:
    """Fan-out of events to subscribers; each subscriber drains its own queue at its own pace."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[Event]] = []

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    def publish(self, event: Event) -> None:
        for queue in self._queues:
            queue.put_nowait(event)

    @staticmethod
    def drain(queue: asyncio.Queue[Event]) -> list[Event]:
        """Everything queued right now, without waiting."""
        events: list[Event] = []
        while not queue.empty():
            events.append(queue.get_nowait())
        return events
