"""Tasks over other executions and over triggers: execution.Count, execution.PurgeExecutions,
log.PurgeLogs, execution.Resume and trigger.Toggle, with Kestra's properties and outputs.

They see the history through `ExecutionRecords`, the engine's commands through `ExecutionControl`
and `TriggerSwitches` (engine.tasks.services), never the store or the engine themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import EngineCommandError
from ..expressions import to_text
from ..internal_storage.purge import purge_execution
from ..model import LogLevel, StateType, utcnow
from .base import TaskContext, TaskFailure
from .services import ExecutionRecords

CORE = "io.kestra.plugin.core"
_STATES = {state.value for state in StateType}


def _records(context: TaskContext) -> ExecutionRecords:
    if context.records is None:
        raise TaskFailure(f"{context.task.type} needs the executions' store, which needs a database")
    return context.records


def _text(context: TaskContext, name: str) -> str | None:
    value = context.prop(name)
    return None if value is None else to_text(value)


def parse_date(text: str, name: str) -> datetime:
    """An ISO 8601 date with an offset (Java's ZonedDateTime.parse, a `[zone]` suffix allowed)."""
    cleaned = text.strip()
    bracket = cleaned.find("[")
    if bracket > 0:
        cleaned = cleaned[:bracket]
    try:
        moment = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        raise TaskFailure(f"`{name}` is `{text}`, which is not an ISO 8601 date") from None
    if moment.tzinfo is None:
        raise TaskFailure(f"`{name}` is `{text}`: give the date an offset, e.g. `{text}Z`")
    return moment.astimezone(UTC)


def _date(context: TaskContext, name: str) -> datetime | None:
    text = _text(context, name)
    return parse_date(text, name) if text else None


def _required_date(context: TaskContext, name: str) -> datetime:
    moment = _date(context, name)
    if moment is None:
        raise TaskFailure(f"`{name}` is required")
    return moment


def _list(context: TaskContext, name: str) -> list[Any] | None:
    """A list property: a YAML list, or an expression rendering to a JSON list."""
    value = context.prop(name)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [value]
    if not isinstance(value, list):
        raise TaskFailure(f"`{name}` must be a list")
    return value


def _states(context: TaskContext) -> list[str] | None:
    states = _list(context, "states")
    if states is None:
        return None
    names = [to_text(state).strip() for state in states]
    wrong = [state for state in names if state not in _STATES]
    if wrong:
        raise TaskFailure(f"`states`: unknown state `{wrong[0]}` (states: {', '.join(sorted(_STATES))})")
    return names


def _flows(context: TaskContext) -> list[tuple[str, str]] | None:
    """Count's `flows`: a list of {namespace, flowId}, read as written (not rendered, as in Kestra)."""
    flows = context.task.props.get("flows")
    if flows is None:
        return None
    if not isinstance(flows, list) or not all(
        isinstance(item, Mapping) and item.get("namespace") and item.get("flowId") for item in flows
    ):
        raise TaskFailure("`flows` must be a list of {namespace, flowId}")
    return [(str(item["namespace"]), str(item["flowId"])) for item in flows]


# -- execution.Count ----------------------------------------------------------------------------------


async def count(context: TaskContext) -> Mapping[str, Any] | None:
    """Executions by flow started within [startDate, endDate], kept where `expression` renders `true`."""
    flows = _flows(context)
    namespaces = _list(context, "namespaces")
    if flows is None and namespaces is None:
        raise TaskFailure("You must provide a list of flows or namespaces.")
    namespace_list = [to_text(namespace) for namespace in namespaces or ()]
    expression = context.task.props.get("expression")
    if not isinstance(expression, str):
        raise TaskFailure("`expression` is required, e.g. `{{ count == 0 }}`")
    rows = await _records(context).count_executions_by_flow(
        flows=flows or [],
        namespaces=namespace_list,
        states=_states(context),
        start=_required_date(context, "startDate"),
        end=_date(context, "endDate") or utcnow(),
    )
    counted: list[dict[str, Any]] = []
    if flows:  # every flow asked for, with 0 when it has no execution
        found = {(namespace, flow_id): number for namespace, flow_id, number in rows}
        counted += [
            {"namespace": ns, "flowId": flow_id, "count": found.get((ns, flow_id), 0)}
            for ns, flow_id in flows
        ]
    if namespace_list:  # a line per namespace that has executions, without a flow id
        by_namespace: dict[str, int] = {}
        for namespace, _flow_id, number in rows:
            by_namespace[namespace] = by_namespace.get(namespace, 0) + number
        counted += [{"namespace": ns, "count": number} for ns, number in by_namespace.items()]
    context.log(LogLevel.TRACE, f"{len(counted)} flows matching filters")
    kept = [
        item
        for item in counted
        if context.renderer.render(expression, {**context.variables, "count": item["count"]}) == "true"
    ]
    context.log(LogLevel.DEBUG, f"{len(kept)} flows matching the expression")
    return {"results": kept, "total": sum(item["count"] for item in kept)}


# -- execution.PurgeExecutions ------------------------------------------------------------------------


def _batch_size(context: TaskContext, default: int | None) -> int | None:
    value = context.prop("batchSize", default)
    if value is None:
        return None
    try:
        size = int(to_text(value))
    except ValueError:
        raise TaskFailure(f"`batchSize` must be a whole number, got `{value}`") from None
    if size < 1:
        raise TaskFailure(f"`batchSize` must be at least 1, got {size}")
    return size


async def purge_executions(context: TaskContext) -> Mapping[str, Any] | None:
    """Delete the executions that ended by `endDate` (and their logs and files), as Kestra's
    ExecutionService.purge does: an execution still running has no end date, so it stays."""
    records = _records(context)
    namespace, flow_id = _text(context, "namespace"), _text(context, "flowId")
    purge_execution_rows = context.flag("purgeExecution", True)
    purge_log, purge_storage = context.flag("purgeLog", True), context.flag("purgeStorage", True)
    purge_metric = context.flag("purgeMetric", True)
    size = _batch_size(context, 100) or 100
    found = await records.ended_executions(
        namespace=namespace,
        flow_id=flow_id,
        start=_date(context, "startDate"),
        end=_required_date(context, "endDate"),
        states=_states(context),
    )
    if purge_log and context.flush_logs is not None:
        await context.flush_logs()  # lines still buffered are deleted with the others
    totals = {
        "executionsCount": 0,
        "taskOutputsCount": 0,
        "logsCount": 0,
        "storagesCount": 0,
        "metricsCount": 0,
    }
    for index in range(0, len(found), size):
        batch = found[index : index + size]
        ids = [execution_id for execution_id, _namespace, _flow_id in batch]
        if purge_execution_rows:
            executions, outputs = await records.delete_executions(ids)
            totals["executionsCount"] += executions
            totals["taskOutputsCount"] += outputs
        if purge_log:
            totals["logsCount"] += await records.delete_execution_logs(ids)
        if purge_metric:
            totals["metricsCount"] += await records.delete_execution_metrics(ids)
        if purge_storage:
            storage = context.require_storage()
            for execution_id, execution_namespace, execution_flow in batch:
                deleted = purge_execution(storage, execution_namespace, execution_flow, execution_id)
                totals["storagesCount"] += len(deleted)
    return totals


# -- log.PurgeLogs ------------------------------------------------------------------------------------


def _levels(context: TaskContext) -> list[LogLevel] | None:
    levels = _list(context, "logLevels")
    if not levels:
        return None
    try:
        return [LogLevel(to_text(level).strip().upper()) for level in levels]
    except ValueError:
        raise TaskFailure(
            f"`logLevels` holds an unknown level: {levels} (TRACE, DEBUG, INFO, WARN, ERROR)"
        ) from None


async def purge_logs(context: TaskContext) -> Mapping[str, Any] | None:
    """Delete log lines in bulk by date, namespace (exact), flow, execution and levels."""
    records = _records(context)
    execution_logs = context.flag("purgeExecutionLogs", True)
    other_logs = context.flag("purgeNonExecutionLogs", True)
    _batch_size(context, None)  # Kestra batches only on MySQL: checked, not needed
    levels = _levels(context)
    start, end = _date(context, "startDate"), _required_date(context, "endDate")
    deleted = 0
    # Every log line here belongs to an execution: there are no trigger logs to purge apart.
    if execution_logs:
        if context.flush_logs is not None:
            await context.flush_logs()
        deleted = await records.purge_logs(
            end=end,
            start=start,
            namespace=_text(context, "namespace"),
            flow_id=_text(context, "flowId"),
            execution_id=_text(context, "executionId"),
            levels=levels,
        )
    # As Kestra counts them: one DELETE for both kinds cannot tell them apart.
    return {
        "count": deleted,
        "executionLogsCount": deleted if execution_logs else 0,
        "nonExecutionLogsCount": deleted if other_logs and not execution_logs else 0,
    }


# -- execution.Resume ---------------------------------------------------------------------------------


def _inputs(context: TaskContext) -> dict[str, Any] | None:
    value = context.prop("inputs")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise TaskFailure("`inputs` must be a map of input ids to values") from None
    if not isinstance(value, Mapping):
        raise TaskFailure("`inputs` must be a map of input ids to values")
    return dict(value) or None


async def resume(context: TaskContext) -> Mapping[str, Any] | None:
    """Resume a paused execution: `executionId` (this execution by default), with `onResume` inputs."""
    if context.control is None:
        raise TaskFailure(
            "execution.Resume needs the engine's commands, which this worker was started without"
        )
    namespace, flow_id = _text(context, "namespace"), _text(context, "flowId")
    execution_id = _text(context, "executionId")
    if execution_id is None:
        if namespace is not None or flow_id is not None:
            raise TaskFailure("`namespace` and `flowId` should only be set when `executionId` is set.")
        execution_id = context.execution.id
    elif (namespace is None) != (flow_id is None):
        raise TaskFailure("Both `namespace` and `flowId` must be set when `executionId` is set.")
    inputs = _inputs(context)
    if await context.control.execution(execution_id) is None:
        raise TaskFailure(f"No execution found for execution id {execution_id}")
    try:
        await context.control.resume(execution_id, inputs)
    except EngineCommandError as error:
        raise TaskFailure(str(error)) from None
    return None


# -- trigger.Toggle -----------------------------------------------------------------------------------


async def toggle(context: TaskContext) -> Mapping[str, Any] | None:
    """Enable or disable a trigger of a flow (this flow by default); `enabled` defaults to false."""
    switches = context.trigger_switches
    if switches is None:
        raise TaskFailure("trigger.Toggle needs the engine's commands, which this worker was started without")
    namespace = _text(context, "namespace") or context.flow.namespace
    flow_id = _text(context, "flowId") or context.flow.id
    trigger = _text(context, "trigger")
    if not trigger:
        raise TaskFailure("`trigger` is required")
    enabled = context.task.props.get("enabled", False)
    if not isinstance(enabled, bool):
        raise TaskFailure(f"`enabled` must be true or false, got `{enabled}`")
    triggers = switches.trigger_ids(namespace, flow_id)
    if triggers is None:
        raise TaskFailure(
            f"Unable to find flow {namespace}.{flow_id}. "
            "Make sure the flow exists and the current execution is authorized to access it."
        )
    if trigger not in triggers:
        raise TaskFailure(f"Unable to find trigger {trigger} for the flow {namespace}.{flow_id}")
    await switches.set_trigger_enabled(namespace, flow_id, trigger, enabled)
    return None


HANDLERS: dict[str, Any] = {
    f"{CORE}.execution.Count": count,
    f"{CORE}.execution.PurgeExecutions": purge_executions,
    f"{CORE}.log.PurgeLogs": purge_logs,
    f"{CORE}.execution.Resume": resume,
    f"{CORE}.trigger.Toggle": toggle,
}

__all__ = ["HANDLERS", "parse_date"]
