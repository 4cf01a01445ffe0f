"""The command surface: what the CLI, the dashboard and the control channel ask of an engine.

`Commands` is implemented by the local `Engine` and by the control-channel client
(`control.ControlClient`) that reaches the engine another process runs on the same database;
`connection.connect(db)` hands out whichever applies. Callers hold a `Commands` and never know which.
Triggers and backfills are commands like the others: no caller reaches into the scheduler.

`COMMANDS` is the one dispatch table of the control channel: each command by name, with how its JSON
request becomes a call on a `Commands` and how the result becomes the answer. `answer` serves a
request by it; the client sends the requests it decodes. To add a command: a method here, its
implementation on the Engine, an entry in `COMMANDS`, and the matching method of `ControlClient`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, Protocol, get_args

from .errors import EngineCommandError
from .inputs import InputError
from .model import Execution, ExecutionSummary, Label, LogEntry, StateType, iso, parse_iso
from .triggers.state import BackfillProgress, SchedulerError, TriggerState

BackfillAction = Literal["pause", "resume", "cancel"]
BACKFILL_ACTIONS: tuple[BackfillAction, ...] = get_args(BackfillAction)


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
        "triggers": _triggers,
        "set-trigger": _set_trigger,
        "backfill": _backfill,
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
