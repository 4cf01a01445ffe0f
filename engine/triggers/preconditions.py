"""Kestra's Flow trigger preconditions: which upstream executions meet which conditions, and the
time windows within which the conditions of a set must all be met.

Pure rules, no state: the Flow trigger service keeps the windows (see `flow`).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Mapping
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

from ..durations import parse_duration
from ..expressions import is_truthy
from ..model import Execution

# ---------------------------------------------------------------------------------------------
# Time windows
# ---------------------------------------------------------------------------------------------


def _zone(spec: Mapping[str, Any]) -> tzinfo:
    name = spec.get("timezone")
    if name:
        return zoneinfo.ZoneInfo(str(name))
    local = datetime.now().astimezone().tzinfo
    assert local is not None
    return local


def parse_local_time(value: Any) -> time:
    """A Java LocalTime such as `09:00`, `09:00:00` or `09:00:00.5`."""
    if isinstance(value, int) and not isinstance(value, bool):  # YAML 1.1 reads 09:00:00 as seconds
        return time(value // 3600 % 24, value // 60 % 60, value % 60)
    return time.fromisoformat(str(value).strip())


def window_bounds(spec: Mapping[str, Any] | None, now: datetime) -> tuple[datetime, datetime]:
    """The (start, end) of the window a precondition set opens at `now`; both inclusive.

    DURATION_WINDOW: consecutive windows of `window` (default one day) laid from local midnight
    shifted by `windowAdvance`; the one holding `now`. SLIDING_WINDOW: `window` from `now`.
    DAILY_TIME_WINDOW: today from `startTime` to `endTime`. DAILY_TIME_DEADLINE: today from
    midnight to `deadline`. Daily times are read in `timezone` (default: the local zone).
    """
    spec = spec or {}
    kind = spec.get("type") or "DURATION_WINDOW"
    zone = _zone(spec)
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date(), time(0), zone)
    window = parse_duration(str(spec["window"])) if spec.get("window") else timedelta(days=1)
    if kind == "SLIDING_WINDOW":
        return now, now + window
    if kind == "DAILY_TIME_WINDOW":
        start = datetime.combine(local.date(), parse_local_time(spec["startTime"]), zone)
        return start, datetime.combine(local.date(), parse_local_time(spec["endTime"]), zone)
    if kind == "DAILY_TIME_DEADLINE":
        return midnight, datetime.combine(local.date(), parse_local_time(spec["deadline"]), zone)
    advance = parse_duration(str(spec["windowAdvance"])) if spec.get("windowAdvance") else timedelta(0)
    origin = midnight + advance
    start = origin + window * ((local - origin) // window)
    return start, start + window - timedelta(milliseconds=1)


# ---------------------------------------------------------------------------------------------
# Preconditions
# ---------------------------------------------------------------------------------------------


def _upstream_matches(upstream: Mapping[str, Any], execution: Execution) -> bool:
    """Kestra's UpstreamFlowCondition: namespace, flowId, states and labels all match."""
    if upstream.get("namespace") is not None and execution.namespace != upstream["namespace"]:
        return False
    if upstream.get("flowId") is not None and execution.flow_id != upstream["flowId"]:
        return False
    states = upstream.get("states")
    if states is not None and execution.state.current.value not in states:
        return False
    labels = upstream.get("labels") or {}
    present = {(label.key, label.value) for label in execution.labels}
    return all((str(key), _java_text(value)) in present for key, value in labels.items())


def _java_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _filter_matches(item: Mapping[str, Any], execution: Execution, render: Callable[[str], str]) -> bool:
    """Kestra's Flow.Filter: the field's value compared by `type` with `value` or `values`."""
    field_name, kind = item.get("field"), item.get("type")
    value = None if item.get("value") is None else _java_text(item["value"])
    values = [_java_text(v) for v in item.get("values") or ()]
    actual: str | None
    if field_name == "FLOW_ID":
        actual = execution.flow_id
    elif field_name == "NAMESPACE":
        actual = execution.namespace
    elif field_name == "STATE":
        actual = execution.state.current.value
    else:
        actual = render(value or "")
    tests: dict[str, Callable[[], bool]] = {
        "EQUAL_TO": lambda: value == actual,
        "NOT_EQUAL_TO": lambda: value != actual,
        "IN": lambda: actual in values,
        "NOT_IN": lambda: actual not in values,
        "IS_TRUE": lambda: is_truthy(actual),
        "IS_FALSE": lambda: not is_truthy(actual),
        "IS_NULL": lambda: actual is None,
        "IS_NOT_NULL": lambda: actual is not None,
        "STARTS_WITH": lambda: actual is not None and actual.startswith(value or ""),
        "ENDS_WITH": lambda: actual is not None and actual.endswith(value or ""),
        "REGEX": lambda: actual is not None and re.fullmatch(value or "", actual) is not None,
        "CONTAINS": lambda: actual is not None and (value or "") in actual,
    }
    return tests[str(kind)]()


def _where_matches(where: Mapping[str, Any], execution: Execution, render: Callable[[str], str]) -> bool:
    filters = where.get("filters") or ()
    results = (_filter_matches(item, execution, render) for item in filters)
    return any(results) if where.get("operand") == "OR" else all(results)


def precondition_keys(preconditions: Mapping[str, Any]) -> list[str]:
    """Kestra's condition keys: `condition_N` per upstream flow, `condition_N_<id>` per filter."""
    keys = [f"condition_{n}" for n in range(1, len(preconditions.get("flows") or ()) + 1)]
    offset = len(keys)
    for n, where in enumerate(preconditions.get("where") or (), start=offset + 1):
        keys.append(f"condition_{n}_{where.get('id')}")
    return keys


def precondition_results(
    preconditions: Mapping[str, Any], execution: Execution, render: Callable[[str], str]
) -> dict[str, bool]:
    """Which preconditions this one execution satisfies, by condition key."""
    results = [_upstream_matches(upstream, execution) for upstream in preconditions.get("flows") or ()]
    results += [_where_matches(where, execution, render) for where in preconditions.get("where") or ()]
    return dict(zip(precondition_keys(preconditions), results, strict=True))


def is_multiple_condition(condition: Any) -> bool:
    """Kestra's deprecated MultipleCondition, a `preconditions` written among the conditions."""
    return isinstance(condition, Mapping) and str(condition.get("type", "")).endswith(".MultipleCondition")


__all__ = [
    "is_multiple_condition",
    "parse_local_time",
    "precondition_keys",
    "precondition_results",
    "window_bounds",
]
