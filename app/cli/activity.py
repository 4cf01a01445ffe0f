"""What `tiercel server` logs on stderr: a timestamped line per execution that starts or ends, and per
flow file added, changed, removed or in error; with `--log-format json`, one JSON object a line
(time, level, event, message and the event's fields: executionId, namespace, flowId, state ...).

Read from the engine's event bus, so nothing is polled: executions from the engine's own ExecutionChanged
snapshots, flows by comparing the flows folder's view before and after each FlowsChanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import TYPE_CHECKING

from .common import log_record, say
from .progress import seconds_text

if TYPE_CHECKING:
    from tiercel.engine import Engine, Event, Execution, FlowUid, StateType

# Executions that ended, remembered to tell a restart from a start and to say an end once.
REMEMBERED_ENDS = 10_000
REMEMBERED_ERRORS = 256


def log_line(text: str, event: str = "message", **fields: object) -> None:
    """One line of the server's log, on stderr, after the time it is written (UTC)."""
    say(log_record("INFO", event, text, fields), err=True)


def trigger_text(execution: Execution) -> str:
    """What started an execution: its trigger (type:id), a replay, or a user (manual)."""
    trigger = execution.trigger
    if trigger:
        kind = str(trigger.get("type") or "").rsplit(".", 1)[-1]
        return f"{kind}:{trigger.get('id')}" if kind else str(trigger.get("id"))
    return f"replay:{execution.original_id}" if execution.original_id else "manual"


class ServerActivity:
    """Follows one engine's events and logs what happens to its executions and flow files."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._live: set[str] = set()
        self._ended: OrderedDict[str, StateType] = OrderedDict()
        self._flows = self._flow_files()
        self._errors = self._error_texts()
        self._events = engine.events.subscribe()
        self._task: asyncio.Task[None] | None = None
        self._lines: list[str] | None = None  # while a batch of events is shown
        # Errors the engine reported (a failing trigger poll, ...), each said once: a poll that fails
        # every second must not flood the log.
        self._said: OrderedDict[str, None] = OrderedDict()

    def start(self) -> None:
        """Log the files in error the engine started with, then follow its events."""
        for path, text in self._errors.items():
            log_line(f"flow error    {text}", "flow.error", path=path)
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        """Log what the engine announced up to now, and stop following it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for event in self.engine.events.drain(self._events):
            self._show(event)
        self.engine.events.unsubscribe(self._events)

    async def _follow(self) -> None:
        while True:
            # What was announced together is written together: under load, one write for many lines.
            self._lines = []
            for event in [await self._events.get(), *self.engine.events.drain(self._events)]:
                self._show(event)
            lines, self._lines = self._lines, None
            if lines:
                say("\n".join(lines), err=True)

    def _line(self, text: str, event: str, fields: dict[str, object]) -> None:
        if self._lines is None:
            log_line(text, event, **fields)
        else:
            self._lines.append(log_record("INFO", event, text, fields))

    def _show(self, event: Event) -> None:
        from tiercel.engine import EngineError, ExecutionChanged, FlowsChanged

        if isinstance(event, ExecutionChanged):
            self._execution(event.execution)
        elif isinstance(event, FlowsChanged):
            self._flows_changed()
        elif isinstance(event, EngineError) and event.message not in self._said:
            self._said[event.message] = None
            while len(self._said) > REMEMBERED_ERRORS:
                self._said.popitem(last=False)
            self._line(f"error    {event.message}", "engine.error", {"message": event.message})

    # -- executions ---------------------------------------------------------------------------------
    def _execution(self, execution: Execution) -> None:
        state = execution.state.current
        trigger = trigger_text(execution)
        about = f"{execution.id} {execution.namespace}.{execution.flow_id}  trigger={trigger}"
        fields: dict[str, object] = {
            "executionId": execution.id,
            "namespace": execution.namespace,
            "flowId": execution.flow_id,
            "trigger": trigger,
        }
        if not state.is_terminated:
            if execution.id not in self._live:
                self._live.add(execution.id)
                verb = "restarted" if self._ended.pop(execution.id, None) is not None else "started"
                self._line(f"{verb}  {about}", f"execution.{verb}", fields)
            return
        if self._ended.get(execution.id) is state:
            return
        self._live.discard(execution.id)
        self._ended[execution.id] = state
        self._ended.move_to_end(execution.id)
        while len(self._ended) > REMEMBERED_ENDS:
            self._ended.popitem(last=False)
        seconds = execution.state.duration().total_seconds()
        fields |= {"state": state.value, "durationSeconds": round(seconds, 3)}
        self._line(f"ended    {about}  {state.value} in {seconds_text(seconds)}", "execution.ended", fields)

    # -- flow files ---------------------------------------------------------------------------------
    def _flow_files(self) -> dict[FlowUid, tuple[str | None, str | None]]:
        """Each current flow's (path, source), read without parsing any flow."""
        flows = self.engine.flows
        return {uid: (flows.path(uid), flows.source(uid)) for uid in flows}

    def _error_texts(self) -> dict[str, str]:
        """Each file in error's first error (it names the file, line and column)."""
        texts = {}
        for path, errors in self.engine.flow_errors.items():
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            texts[path] = (str(errors[0]) if errors else path) + more
        return texts

    def _flows_changed(self) -> None:
        before, after = self._flows, self._flow_files()
        for uid, (path, source) in after.items():
            known = before.get(uid)
            flow = {"namespace": uid[0], "flowId": uid[1], "path": path}
            if known is None:
                log_line(f"flow added    {'.'.join(uid)}  {path}", "flow.added", **flow)
            elif known[1] != source or known[0] != path:
                log_line(f"flow changed  {'.'.join(uid)}  {path}", "flow.changed", **flow)
        for uid in before.keys() - after.keys():
            gone = before[uid][0]
            log_line(
                f"flow removed  {'.'.join(uid)}  {gone}",
                "flow.removed",
                namespace=uid[0],
                flowId=uid[1],
                path=gone,
            )
        errors = self._error_texts()
        for path, text in errors.items():
            if self._errors.get(path) != text:
                log_line(f"flow error    {text}", "flow.error", path=path)
        self._flows, self._errors = after, errors
