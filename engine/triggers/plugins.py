"""The polling triggers plugins add (`TriggerType` with a `poll`), polled as the HTTP trigger is.

A plugin's poll receives a `TriggerContext`: the trigger's properties rendered with the flow's
variables, `trigger.date` and `secret()`, a place for the files it produces (the internal storage,
under the flow's executions, readable by the execution it starts), and the process log. It returns
the new execution's `trigger` variables, or None when there is nothing to start an execution for; a
`TaskFailure` is reported as the poll's error and polling goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..internal_storage import StorageError
from ..model import LogLevel, new_id
from ..tasks.base import TaskFailure, as_flag
from ..tasks.registry import registry
from ..tasks.types import TriggerType
from .polling import Poller, PollRequest


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
        storage = self._request.host.storage
        try:
            storage.check_readable(uri, self.namespace)
            path = storage.path(uri)
        except StorageError as error:
            raise TaskFailure(str(error)) from None
        if not path.is_file():
            raise TaskFailure(f"File '{uri}' does not exist in the internal storage")
        return path


def plugin_poller(trigger_type: str) -> Poller | None:
    """How a plugin's trigger type is polled (None for a type no plugin polls)."""
    found = registry().lookup_trigger(trigger_type)
    if found is None or found.poll is None:
        return None
    return Poller(_poll_of(found), timedelta(seconds=found.default_interval))


def _poll_of(trigger_type: TriggerType) -> Any:
    async def poll(request: PollRequest) -> Mapping[str, Any] | None:
        await request.host.renderer.prefetch(request.found.spec.props, request.context)
        variables: Mapping[str, Any] | None = await trigger_type.poll(TriggerContext(request))
        return variables

    return poll


__all__ = ["TriggerContext", "plugin_poller"]
