"""The polling triggers plugins add (`TriggerType` with a `poll`), polled as the HTTP trigger is.

A plugin's poll receives a `TriggerContext`: the trigger's properties rendered with the flow's
variables, `trigger.date` and `secret()`, a place for the files it produces (the internal storage,
under the flow's executions, readable by the execution it starts), and the process log. It returns
the new execution's `trigger` variables, or None when there is nothing to start an execution for; a
`TaskFailure` is reported as the poll's error and polling goes on.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..ion import dumps
from ..model import LogLevel, new_id
from ..tasks.base import TaskContext, as_flag, readable_file
from ..tasks.registry import registry
from ..tasks.types import TaskType, TriggerType

if TYPE_CHECKING:  # a poll's request type only: the polling machinery loads with the scheduler
    from .polling import PollRequest


class TriggerContext:
    """One poll of one trigger, as a plugin's poll sees it (the subset of `TaskContext` a poll can
    have: no task run, so no metrics and no working directory of a parent)."""

    working_dir: Path | None = None
    kill_grace: float = 5.0

    def __init__(self, request: PollRequest) -> None:
        found = request.found
        self.namespace, self.flow_id, self.trigger_id = found.flow.namespace, found.flow.id, found.spec.id
        self.date: datetime = request.now
        self.variables: dict[str, Any] = request.context
        self._request = request
        self._files: str | None = None

    def render(self, value: Any) -> Any:
        return self._request.host.renderer.render_value(value, self.variables)

    def prop(self, name: str, default: Any = None) -> Any:
        """A property of the trigger, rendered."""
        value = self._request.found.spec.props.get(name, default)
        return self.render(value) if value is not None else default

    def flag(self, name: str, default: bool) -> bool:
        return as_flag(name, self.prop(name, default))

    def log(self, level: LogLevel, message: str) -> None:
        self._request.emit(level, message)

    def metric(self, kind: str, name: str, value: float, tags: Mapping[str, Any] | None = None) -> None:
        """Accepted and dropped: a poll has no task run to count against."""

    def put_file(self, name: str, source: Path) -> str:
        """Store a file this poll produced; return its kestra:// URI (one folder per poll)."""
        storage = self._request.host.storage
        if self._files is None:
            base = storage.execution_uri(self.namespace, self.flow_id, new_id())
            self._files = f"{base}/trigger/{self.trigger_id}"
        return storage.put_file(self._files, name, source)

    def stored_file(self, uri: str) -> Path:
        """The local file of a stored file of this namespace."""
        return readable_file(self._request.host.storage, uri, self.namespace)


def store_records(context: TaskContext | TriggerContext, name: str, records: Iterable[Any]) -> str:
    """Records stored as a file of Kestra's internal format (Ion, one per line); its kestra:// URI."""
    with tempfile.TemporaryDirectory(prefix="tiercel-records-") as folder:
        target = Path(folder) / name
        with target.open("w", encoding="utf-8", newline="\n") as out:
            for record in records:
                out.write(dumps(record))
                out.write("\n")
        return context.put_file(name, target)


Consume = Callable[[Mapping[str, Any]], Awaitable[Sequence[Any]]]


def consuming_trigger(
    name: str, consume: Consume, task: TaskType, count: str, *, aliases: tuple[str, ...] = ()
) -> TriggerType:
    """Kestra's polling trigger of a message broker: it consumes as the family's consuming task
    `task` does (same properties, rendered), and starts an execution when messages came, its
    `trigger` variables those of the task: `uri` (an Ion file of the messages) and the `count` name."""

    async def poll(context: TriggerContext) -> Mapping[str, Any] | None:
        settings = {key: context.prop(key) for key in task.properties}
        messages = await consume({key: value for key, value in settings.items() if value is not None})
        if not messages:
            return None
        return {count: len(messages), "uri": store_records(context, "messages.ion", messages)}

    return TriggerType(
        name,
        task.properties,
        task.required,
        poll=poll,
        aliases=aliases,
        requires=task.requires,
        extra=task.extra,
    )


def realtime_trigger(name: str, polling: str, aliases: tuple[str, ...] = ()) -> TriggerType:
    """A Kestra RealtimeTrigger, which this engine refuses with what to use instead."""
    return TriggerType(
        name,
        aliases=aliases,
        unsupported=(
            "realtime triggers (an execution per message, from a connection kept open) are not run "
            f"by this engine; use the polling `{polling}`, whose execution gets the messages "
            "that came since its last poll"
        ),
    )


def plugin_poll(trigger_type: str) -> tuple[Callable[[PollRequest], Awaitable[Any]], float] | None:
    """How a plugin's trigger type is polled, and its interval in seconds unless a flow sets one
    (None for a type no plugin polls)."""
    found = registry().lookup_trigger(trigger_type)
    if found is None or found.poll is None:
        return None
    plugin = found

    async def poll(request: PollRequest) -> Mapping[str, Any] | None:
        await request.host.renderer.prefetch(request.found.spec.props, request.context)
        variables: Mapping[str, Any] | None = await plugin.poll(TriggerContext(request))
        return variables

    return poll, found.default_interval


__all__ = ["TriggerContext", "consuming_trigger", "plugin_poll", "realtime_trigger", "store_records"]
