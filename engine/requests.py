"""Requests that other processes (`tiercel kill`, `replay`, `triggers` ...) send to the engine owning a
database, through its control channel: each maps to one Engine or Scheduler command."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from .inputs import InputError
from .model import iso
from .triggers.schedule import SchedulerError, TriggerState

if TYPE_CHECKING:
    from .engine import Engine


def trigger_json(state: TriggerState) -> dict[str, Any]:
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


def _mapping(request: dict[str, Any], name: str) -> dict[str, Any]:
    """An optional JSON object of a request (inputs, labels); anything else is refused by name."""
    value = request.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"`{name}` must be a JSON object of names to values, not {type(value).__name__}")
    return value


def parse_date(text: Any) -> datetime | None:
    """An ISO date from a request; naive dates are refused by the scheduler with a clear message."""
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None


async def handle(engine: Engine, request: dict[str, Any]) -> dict[str, Any]:
    """Carry out one request; the answer is {"ok": true, ...} or {"ok": false, "error": message}."""
    from .engine import EngineCommandError, parse_state

    command, execution_id = request.get("command"), str(request.get("executionId") or "")
    trigger = (str(request.get("namespace")), str(request.get("flowId")), str(request.get("triggerId")))
    scheduler = engine.scheduler
    try:
        if command == "kill":
            await engine.kill(execution_id)
        elif command == "resume":
            await engine.resume(execution_id, _mapping(request, "inputs"))
        elif command == "restart":
            await engine.restart(execution_id)
        elif command == "replay":
            new = await engine.replay(
                execution_id, request.get("taskRunId"), revision=request.get("revision")
            )
            return {"ok": True, "executionId": new}
        elif command == "change-status":
            await engine.change_status(execution_id, parse_state(request.get("state")))
        elif command == "triggers":
            return {"ok": True, "triggers": [trigger_json(state) for state in scheduler.triggers()]}
        elif command == "set-trigger":
            await scheduler.set_enabled(*trigger, bool(request.get("enabled")))
        elif command == "backfill":
            action = request.get("action") or "start"
            if action == "start":
                start = parse_date(request.get("start"))
                if start is None:
                    return {"ok": False, "error": "a backfill needs a start date"}
                backfill_id = await scheduler.backfill(
                    *trigger,
                    start,
                    parse_date(request.get("end")),
                    _mapping(request, "inputs"),
                    _mapping(request, "labels"),
                )
                return {"ok": True, "backfillId": backfill_id}
            actions = {
                "pause": scheduler.pause_backfill,
                "resume": scheduler.resume_backfill,
                "cancel": scheduler.cancel_backfill,
            }
            if action not in actions:
                return {"ok": False, "error": f"unknown backfill action `{action}`"}
            await actions[action](*trigger)
        else:
            return {"ok": False, "error": f"unknown command `{command}`"}
    except InputError as error:
        # The caller's own values are wrong (resume's onResume inputs): a usage error for the CLI.
        return {"ok": False, "error": str(error), "usage": True}
    except (EngineCommandError, SchedulerError, ValueError) as error:
        return {"ok": False, "error": str(error)}
    return {"ok": True}
