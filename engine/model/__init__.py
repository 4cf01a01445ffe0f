"""The engine's data model: flows as parsed, executions as run.

Everything here is a frozen dataclass: the executor derives a new execution from the old one, and
the store persists what changed (compared by identity). Field names follow Kestra's so that the JSON
form (`Execution.to_json`) is what Kestra tooling reads. The parts: `states` (states and their
history, time helpers), `flows` (a flow and what it is made of), `executions` (task runs, executions,
log lines).
"""

from __future__ import annotations

from .executions import Attempt, Execution, ExecutionSummary, LogEntry, LogLevel, TaskRun
from .flows import (
    DagNode,
    Flow,
    InputSpec,
    Label,
    NamespacePermission,
    NamespaceSpec,
    OutputSpec,
    PluginDefault,
    Position,
    RetrySpec,
    SlaSpec,
    TaskCacheSpec,
    TaskSpec,
    TriggerSpec,
)
from .metrics import Metric, MetricEntry, MetricError, Metrics
from .states import History, State, StateType, iso, new_id, parse_iso, utcnow

__all__ = [
    "Attempt",
    "DagNode",
    "Execution",
    "ExecutionSummary",
    "Flow",
    "History",
    "InputSpec",
    "Label",
    "LogEntry",
    "LogLevel",
    "Metric",
    "MetricEntry",
    "MetricError",
    "Metrics",
    "NamespacePermission",
    "NamespaceSpec",
    "OutputSpec",
    "PluginDefault",
    "Position",
    "RetrySpec",
    "SlaSpec",
    "State",
    "StateType",
    "TaskCacheSpec",
    "TaskRun",
    "TaskSpec",
    "TriggerSpec",
    "iso",
    "new_id",
    "parse_iso",
    "utcnow",
]
