"""The command surface: what the CLI, the dashboard and the control channel ask of an engine.

`Commands` is implemented by the local `Engine` and by the control-channel client
(`control.ControlClient`) that reaches the engine another process runs on the same database;
`connection.connect(db)` hands out whichever applies. Callers hold a `Commands` and never know which.
Triggers and backfills are commands like the others: no caller reaches into the scheduler.

`COMMANDS` is the one dispatch table of the control channel: each command by name, with how its JSON
request becomes a call on a `Commands` and how the result becomes the answer. `answer` serves a
request by it; the client sends the requests it decodes. To add a command: a method here, its
implementation on the Engine, an entry in `COMMANDS`, and the matching method of `ControlClient`.
Two requests answer what only the engine knows: `wait` (an execution settled, asked again until it
is) and `about` (whether the engine watches a flows folder, so that it may be handed runs).

Execution ids typed by users are resolved here too (`resolve_execution_id`): a whole id or a unique
prefix, read from any `ExecutionIds` (the store, the control client) with an indexed range query.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from .errors import EngineCommandError
from .evaluation import Evaluation
from .inputs import InputError
from .model import Execution, ExecutionSummary, Label, LogEntry, MetricEntry, StateType, iso, parse_iso
from .triggers.state import BackfillProgress, SchedulerError, TriggerState

BackfillAction = Literal["pause", "resume", "cancel"]
BACKFILL_ACTIONS: tuple[BackfillAction, ...] = get_args(BackfillAction)


# How many of the ids an ambiguous prefix matches are named in the error (then "...").
SHOWN_MATCHES = 5


class AmbiguousExecutionIdError(EngineCommandError):
    """An execution id prefix that more than one execution id starts with: a usage error."""

    def __init__(self, prefix: str, matches: Sequence[str], more: bool) -> None:
        self.prefix, self.matches, self.more = prefix, tuple(matches), more
        listed = ", ".join(self.matches) + (", ..." if more else "")
        super().__init__(f"`{prefix}` is the start of several execution ids: {listed}; give more of it")


class ExecutionIds(Protocol):
    """Where the ids of a database's executions are looked up (a `Store`, a `ControlClient`)."""

    async def execution_ids(self, prefix: str, *, limit: int) -> list[str]: ...


async def resolve_execution_id(ids: ExecutionIds, text: str) -> str:
    """The execution id `text` names: itself, or the one id it is a unique prefix of.

    Text that no id starts with comes back unchanged, so the command refuses it with its usual
    "No execution" message.

    Raises:
        AmbiguousExecutionIdError: Several ids start with `text` and none is `text` itself.
    """
    try:
        text.encode()
    except UnicodeEncodeError:  # undecodable bytes from the command line: no id holds them
        return text
    found = await ids.execution_ids(text, limit=SHOWN_MATCHES + 1)
    if len(found) <= 1 or text in found:
        return found[0] if len(found) == 1 else text
    raise AmbiguousExecutionIdError(text, found[:SHOWN_MATCHES], len(found) > SHOWN_MATCHES)


def parse_state(text: Any) -> StateType:
    """A state name from a command (any case); EngineCommandError names the choices otherwise."""
    try:
        return StateType(str(text).upper())
    except ValueError:
        choices = ", ".join(s.value for s in StateType if s.is_terminated and s is not StateType.RETRIED)
        raise EngineCommandError(f"Unknown state `{text}`: use one of {choices}") from None


class Commands(Protocol):
    """Commands and queries on the executions and triggers of one database."""

    # -- executions ---------------------------------------------------------------------------
    async def trigger(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None = None,
        labels: Sequence[Label] = (),
        *,
        local_files: bool = False,
    ) -> str: ...

    async def kill(self, execution_id: str) -> None: ...

    async def resume(self, execution_id: str, inputs: Mapping[str, Any] | None = None) -> None: ...

    async def restart(self, execution_id: str) -> None: ...

    async def replay(
        self, execution_id: str, task_run_id: str | None = None, *, revision: int | None = None
    ) -> str: ...

    async def change_status(self, execution_id: str, state: StateType) -> None: ...

    async def wait(self, execution_id: str, *, until_paused: bool = False) -> Execution:
        """The execution once it ended (or, with `until_paused`, paused with nothing scheduled)."""
        ...

    # -- triggers -----------------------------------------------------------------------------
    async def trigger_states(self) -> list[TriggerState]: ...

    async def set_trigger_enabled(
        self, namespace: str, flow_id: str, trigger_id: str, enabled: bool
    ) -> None: ...

    async def start_backfill(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str,
        start: datetime,
        end: datetime | None = None,
        inputs: Mapping[str, Any] | None = None,
        labels: Sequence[Label] | Mapping[str, str] | None = None,
    ) -> str: ...

    async def change_backfill(
        self, namespace: str, flow_id: str, trigger_id: str, action: BackfillAction
    ) -> None: ...

    # -- queries ------------------------------------------------------------------------------
    async def execution(self, execution_id: str) -> Execution | None: ...

    async def list_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        state: str | Sequence[str] | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[ExecutionSummary]: ...

    async def logs(
        self,
        execution_id: str,
        *,
        level: str | None = None,
        task_id: str | None = None,
        after: int = 0,
        before: int | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[tuple[int, LogEntry]]: ...

    async def metrics(
        self, execution_id: str, *, task_run_id: str | None = None, task_id: str | None = None
    ) -> list[MetricEntry]:
        """The stored metrics of an execution (of one task run, or of one task's runs)."""
        ...

    async def evaluate(self, execution_id: str, task_run_id: str | None, expression: str) -> Evaluation:
        """An expression rendered against the execution (one of its task runs), or its error."""
        ...

    async def clear_task_cache(self, namespace: str, flow_id: str, task_id: str | None = None) -> int:
        """Forget what the flow's task caches keep (one task's only, when given); how many entries."""
        ...


# -- the dispatch table ------------------------------------------------------------------------------

Request = Mapping[str, Any]
Reply = dict[str, Any]
# Decodes a request, makes the call on the Commands, and encodes its result (without "ok").
Dispatch = Callable[[Commands, Request], Awaitable[Reply]]


def _text(request: Request, name: str) -> str:
    return str(request.get(name) or "")


def _trigger(request: Request) -> tuple[str, str, str]:
    return (str(request.get("namespace")), str(request.get("flowId")), str(request.get("triggerId")))


def _mapping(request: Request, name: str) -> dict[str, Any]:
    """An optional JSON object of a request (inputs, labels); anything else is refused by name."""
    value = request.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"`{name}` must be a JSON object of names to values, not {type(value).__name__}")
    return value


def parse_date(text: Any) -> datetime | None:
    """An ISO date from a request; naive dates are refused by the scheduler with a clear message.

    Raises:
        ValueError: Not an ISO 8601 date.
    """
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None


def trigger_json(state: TriggerState) -> dict[str, Any]:
    """A trigger's state as the control channel and `tiercel triggers --json` give it."""
    backfill = state.backfill
    return {
        "namespace": state.namespace,
        "flowId": state.flow_id,
        "triggerId": state.trigger_id,
        "type": state.type,
        "enabled": state.enabled,
        "disabled": state.disabled,
        "lastDate": iso(state.last_date) if state.last_date else None,
        "nextDate": iso(state.next_date) if state.next_date else None,
        "backfill": None
        if backfill is None
        else {
            "id": backfill.id,
            "start": iso(backfill.start),
            "end": iso(backfill.end),
            "current": iso(backfill.current) if backfill.current else None,
            "fired": backfill.fired,
            "skipped": backfill.skipped,
            "status": backfill.status,
        },
    }


def trigger_from_json(data: Mapping[str, Any]) -> TriggerState:
    """The inverse of `trigger_json`."""

    def date(value: Any) -> datetime | None:
        return parse_iso(str(value)) if value else None

    backfill = data.get("backfill")
    return TriggerState(
        namespace=str(data["namespace"]),
        flow_id=str(data["flowId"]),
        trigger_id=str(data["triggerId"]),
        type=str(data.get("type") or ""),
        enabled=bool(data.get("enabled")),
        disabled=bool(data.get("disabled")),
        last_date=date(data.get("lastDate")),
        next_date=date(data.get("nextDate")),
        backfill=None
        if not backfill
        else BackfillProgress(
            id=str(backfill["id"]),
            start=parse_iso(str(backfill["start"])),
            end=parse_iso(str(backfill["end"])),
            current=date(backfill.get("current")),
            fired=int(backfill.get("fired", 0)),
            skipped=int(backfill.get("skipped", 0)),
            status=str(backfill["status"]),
        ),
    )


async def _trigger_execution(commands: Commands, request: Request) -> Reply:
    labels = [Label(str(key), str(value)) for key, value in _mapping(request, "labels").items()]
    execution_id = await commands.trigger(
        _text(request, "namespace"),
        _text(request, "flowId"),
        _mapping(request, "inputs"),
        labels,
        local_files=bool(request.get("localFiles")),
    )
    return {"executionId": execution_id}


async def _kill(commands: Commands, request: Request) -> Reply:
    await commands.kill(_text(request, "executionId"))
    return {}


async def _resume(commands: Commands, request: Request) -> Reply:
    await commands.resume(_text(request, "executionId"), _mapping(request, "inputs"))
    return {}


async def _restart(commands: Commands, request: Request) -> Reply:
    await commands.restart(_text(request, "executionId"))
    return {}


async def _evaluate(commands: Commands, request: Request) -> Reply:
    task_run_id = request.get("taskRunId")
    evaluation = await commands.evaluate(
        _text(request, "executionId"), str(task_run_id) if task_run_id else None, _text(request, "expression")
    )
    return {"evaluation": evaluation.to_json()}


async def _clear_cache(commands: Commands, request: Request) -> Reply:
    task_id = request.get("taskId")
    cleared = await commands.clear_task_cache(
        _text(request, "namespace"), _text(request, "flowId"), str(task_id) if task_id else None
    )
    return {"cleared": cleared}


async def _replay(commands: Commands, request: Request) -> Reply:
    task_run_id, revision = request.get("taskRunId"), request.get("revision")
    new = await commands.replay(
        _text(request, "executionId"),
        str(task_run_id) if task_run_id else None,
        revision=int(revision) if revision is not None else None,
    )
    return {"executionId": new}


async def _change_status(commands: Commands, request: Request) -> Reply:
    await commands.change_status(_text(request, "executionId"), parse_state(request.get("state")))
    return {}


# The longest one `wait` request holds its connection: a caller waiting longer asks again, so an
# engine that stops is noticed within this time.
MAX_WAIT_SECONDS = 10.0


async def _wait(commands: Commands, request: Request) -> Reply:
    """The execution once it settles within `seconds`, else {"execution": null}: ask again."""
    execution_id = _text(request, "executionId")
    seconds = min(max(float(request.get("seconds") or 0), 0.0), MAX_WAIT_SECONDS)
    settled = commands.wait(execution_id, until_paused=bool(request.get("untilPaused")))
    try:
        execution = await asyncio.wait_for(settled, seconds)
    except TimeoutError:
        return {"execution": None}
    # The logs query stores the lines still buffered first: a caller that reads the execution's
    # logs after this answer finds every line.
    await commands.logs(execution_id, newest=True, limit=1)
    return {"execution": execution.to_json()}


@runtime_checkable
class _FollowsFlows(Protocol):
    """An engine with a flows folder, which it may watch (the Engine)."""

    flows_dir: Path | None

    @property
    def watcher(self) -> object | None: ...


@dataclass(frozen=True, slots=True)
class EngineAbout:
    """What the engine owning a database is, as its control channel says.

    `watching`: it follows its flows folder and runs until stopped (the dashboard, `tiercel
    server`); a one-off engine (`tiercel run`, a backfill) stops once its own work is done.
    """

    pid: int | None
    flows_dir: Path | None
    watching: bool

    def to_json(self) -> dict[str, Any]:
        folder = str(self.flows_dir) if self.flows_dir is not None else None
        return {"pid": self.pid, "flowsDir": folder, "watching": self.watching}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> EngineAbout:
        pid, folder = data.get("pid"), data.get("flowsDir")
        return EngineAbout(
            pid=int(pid) if pid is not None else None,
            flows_dir=Path(str(folder)) if folder else None,
            watching=bool(data.get("watching")),
        )


async def _about(commands: Commands, request: Request) -> Reply:
    folder, watching = None, False
    if isinstance(commands, _FollowsFlows):
        folder = commands.flows_dir.resolve() if commands.flows_dir is not None else None
        watching = commands.watcher is not None
    return EngineAbout(os.getpid(), folder, watching).to_json()


async def _triggers(commands: Commands, request: Request) -> Reply:
    return {"triggers": [trigger_json(state) for state in await commands.trigger_states()]}


async def _set_trigger(commands: Commands, request: Request) -> Reply:
    await commands.set_trigger_enabled(*_trigger(request), bool(request.get("enabled")))
    return {}


async def _backfill(commands: Commands, request: Request) -> Reply:
    """`action` start (the default) needs `start`; pause, resume and cancel act on the one under way."""
    action = request.get("action") or "start"
    if action == "start":
        start = parse_date(request.get("start"))
        if start is None:
            raise EngineCommandError("a backfill needs a start date")
        backfill_id = await commands.start_backfill(
            *_trigger(request),
            start,
            parse_date(request.get("end")),
            _mapping(request, "inputs"),
            _mapping(request, "labels"),
        )
        return {"backfillId": backfill_id}
    if action not in BACKFILL_ACTIONS:
        raise EngineCommandError(f"unknown backfill action `{action}`")
    await commands.change_backfill(*_trigger(request), action)
    return {}


COMMANDS: Mapping[str, Dispatch] = MappingProxyType(
    {
        "trigger": _trigger_execution,
        "kill": _kill,
        "resume": _resume,
        "restart": _restart,
        "replay": _replay,
        "change-status": _change_status,
        "wait": _wait,
        "about": _about,
        "triggers": _triggers,
        "set-trigger": _set_trigger,
        "backfill": _backfill,
        "evaluate": _evaluate,
        "clear-cache": _clear_cache,
    }
)


async def answer(commands: Commands, request: Request) -> Reply:
    """Carry out one request; the answer is {"ok": true, ...} or {"ok": false, "error": message}.

    An answer with "usage": true says the caller's own values were wrong (resume's onResume inputs).
    Any other exception is the caller's to report (the control server answers it as a failure).
    """
    command = request.get("command")
    dispatch = COMMANDS.get(command) if isinstance(command, str) else None
    if dispatch is None:
        return {"ok": False, "error": f"unknown command `{command}`"}
    try:
        result = await dispatch(commands, request)
    except InputError as error:
        return {"ok": False, "error": str(error), "usage": True}
    except (EngineCommandError, SchedulerError, ValueError) as error:
        return {"ok": False, "error": str(error)}
    return {"ok": True, **result}
