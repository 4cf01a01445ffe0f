"""Metrics that task runs report: Kestra's counters and timers.

A task reports a `Metric` (a name, a value, tags) while it runs: a script through the
``::{"metrics": [...]}::`` protocol line or Python's ``Kestra.counter()``/``Kestra.timer()``, a
handler through `TaskContext.metric`. Within one attempt, metrics of the same type, name and tags
add up (a counter's counts, a timer's durations), as Kestra's run context does. Each one left at the
attempt's end is stored as a `MetricEntry`, the shape Kestra's metrics API serves: a timer's value
in milliseconds there, a counter's as counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .states import iso

__all__ = ["COUNTER", "TIMER", "Metric", "MetricEntry", "MetricError", "Metrics"]

COUNTER = "counter"
TIMER = "timer"
_TYPES = (COUNTER, TIMER)


class MetricError(ValueError):
    """A reported metric that cannot be kept (its type, name, value or tags), with the reason."""


@dataclass(frozen=True)
class Metric:
    """One report of a metric: a counter's count, or a timer's duration in seconds."""

    type: str
    name: str
    value: float
    tags: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, type_: Any, name: Any, value: Any, tags: Any = None) -> Metric:
        """A metric from loosely typed parts (a protocol line's JSON).

        Raises:
            MetricError: The type is neither counter nor timer, the name is empty, the value is not
                a finite number, or the tags are not a map.
        """
        kind = str(type_ or "").lower()
        if kind not in _TYPES:
            raise MetricError(f"metric type must be `counter` or `timer`, not `{type_}`")
        if not isinstance(name, str) or not name.strip():
            raise MetricError("a metric needs a name")
        if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(kind, value):
            raise MetricError(f"metric `{name}`: the value must be a finite number, not `{value}`")
        if tags is None:
            tags = {}
        if not isinstance(tags, Mapping):
            raise MetricError(f"metric `{name}`: tags must be a map of names to values")
        pairs = tuple(sorted((str(key), _tag_text(tag)) for key, tag in tags.items()))
        return cls(kind, name, float(value), pairs)


def _finite(kind: str, value: float) -> bool:
    """Whether the value, as stored (a timer's in milliseconds), is a finite number."""
    try:
        return math.isfinite(float(value) * (1000.0 if kind == TIMER else 1.0))
    except OverflowError:  # an integer too large for a float
        return False


def _tag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class Metrics:
    """The metrics of one attempt, added up by (type, name, tags) in the order first reported."""

    def __init__(self) -> None:
        self._totals: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[float, datetime]] = {}

    def add(self, metric: Metric, now: datetime) -> None:
        """Add a report to its total.

        Raises:
            MetricError: The total would no longer be a finite number.
        """
        key = (metric.type, metric.name, metric.tags)
        total, first = self._totals.get(key, (0.0, now))
        if not _finite(metric.type, total + metric.value):
            raise MetricError(f"metric `{metric.name}`: the total is too large")
        self._totals[key] = (total + metric.value, first)

    def __bool__(self) -> bool:
        return bool(self._totals)

    def entries(
        self,
        *,
        execution_id: str,
        namespace: str,
        flow_id: str,
        task_id: str | None,
        task_run_id: str | None,
    ) -> list[MetricEntry]:
        """What is stored of them: one entry per (type, name, tags)."""
        return [
            MetricEntry(
                execution_id=execution_id,
                namespace=namespace,
                flow_id=flow_id,
                task_id=task_id,
                task_run_id=task_run_id,
                type=kind,
                name=name,
                # Kestra's entries hold a timer's duration in milliseconds.
                value=total * 1000.0 if kind == TIMER else total,
                timestamp=first,
                tags=dict(tags),
            )
            for (kind, name, tags), (total, first) in self._totals.items()
        ]


@dataclass(frozen=True)
class MetricEntry:
    """A stored metric of a task run (Kestra's `MetricEntry`)."""

    execution_id: str
    namespace: str
    flow_id: str
    task_id: str | None
    task_run_id: str | None
    type: str
    name: str
    value: float  # a counter's count; a timer's duration in milliseconds
    timestamp: datetime
    tags: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "taskId": self.task_id,
            "executionId": self.execution_id,
            "taskRunId": self.task_run_id,
            "type": self.type,
            "name": self.name,
            "value": self.value,
            "timestamp": iso(self.timestamp),
            "tags": dict(self.tags),
        }

    def shown(self) -> str:
        """The value as a person reads it: a count, or a duration."""
        if self.type == TIMER:
            seconds = self.value / 1000.0
            if abs(self.value) < 1000:
                return f"{self.value:.3g} ms"
            if abs(seconds) < 60:
                return f"{seconds:.3f} s"
            return f"{seconds / 60:.1f} min" if abs(seconds) < 3600 else f"{seconds / 3600:.6g} h"
        whole = self.value.is_integer() and abs(self.value) < 1e15
        return str(int(self.value)) if whole else f"{self.value:.6g}"
