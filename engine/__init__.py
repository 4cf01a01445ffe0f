"""Tiercel's engine: a pure asyncio library that parses, stores and runs Kestra flows.

This package is its public API: the dashboard and the command line import from `tiercel.engine`
alone, never from its modules (tests/test_architecture.py keeps that true). Task plugins import from
`tiercel.engine.plugin`. docs/ARCHITECTURE.md describes the components behind it.

The names load on first use (PEP 562), so `tiercel validate` does not pay for the executor, and the
engine never imports textual, rich or the app package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `X as X`: an explicit re-export, for type checkers and linters
    from .access import (
        OWNER as OWNER,
        Access as Access,
        AccessDenied as AccessDenied,
        NamespaceChain as NamespaceChain,
        Permission as Permission,
        Principal as Principal,
    )
    from .cluster import (
        ClusterMembers as ClusterMembers,
        ServerInfo as ServerInfo,
        WorkerInfo as WorkerInfo,
        cluster_members as cluster_members,
        cluster_worker as cluster_worker,
        shared_worker_pool as shared_worker_pool,
    )
    from .commands import (
        AmbiguousExecutionIdError as AmbiguousExecutionIdError,
        BackfillAction as BackfillAction,
        Commands as Commands,
        EngineAbout as EngineAbout,
        ExecutionIds as ExecutionIds,
        parse_date as parse_date,
        parse_state as parse_state,
        resolve_execution_id as resolve_execution_id,
        trigger_json as trigger_json,
    )
    from .connection import ConnectError as ConnectError, NoEngineError as NoEngineError, connect as connect
    from .control import ControlClient as ControlClient
    from .db_target import (
        DbTarget as DbTarget,
        as_target as as_target,
        describe_target as describe_target,
        is_url as is_url,
        target_exists as target_exists,
    )
    from .durations import parse_duration as parse_duration
    from .engine import Engine as Engine
    from .errors import EngineCommandError as EngineCommandError
    from .evaluation import Evaluation as Evaluation
    from .events import (
        EngineError as EngineError,
        Event as Event,
        EventBus as EventBus,
        ExecutionChanged as ExecutionChanged,
        FlowsChanged as FlowsChanged,
        LogsAppended as LogsAppended,
        TaskRunChanged as TaskRunChanged,
        TriggerChanged as TriggerChanged,
    )
    from .flows.catalog import NAMESPACE_FILES_FOLDER as NAMESPACE_FILES_FOLDER, is_flow_file as is_flow_file
    from .flows.namespaces import NAMESPACE_FILES as NAMESPACE_FILES, Namespaces as Namespaces
    from .flows.table import FlowTable as FlowTable, FlowUid as FlowUid
    from .flows.writing import FlowChanges as FlowChanges, parsed_flow as parsed_flow
    from .flowtests import (
        CaseResult as CaseResult,
        FlowTestSummary as FlowTestSummary,
        find_suites as find_suites,
        is_passing as is_passing,
        is_test_file as is_test_file,
        load_summaries as load_summaries,
        read_suite as read_suite,
        run_suites as run_suites,
        save_results as save_results,
    )
    from .hosting import HostedEngine as HostedEngine
    from .httpmessages import (
        HttpHandler as HttpHandler,
        HttpRequest as HttpRequest,
        HttpResponse as HttpResponse,
    )
    from .inputs import InputError as InputError, resolve_inputs as resolve_inputs
    from .internal_storage import StorageError as StorageError
    from .labels import CORRELATION_ID as CORRELATION_ID
    from .model import (
        Execution as Execution,
        ExecutionSummary as ExecutionSummary,
        Flow as Flow,
        InputSpec as InputSpec,
        Label as Label,
        LogEntry as LogEntry,
        LogLevel as LogLevel,
        MetricEntry as MetricEntry,
        StateType as StateType,
        TaskRun as TaskRun,
        iso as iso,
        utcnow as utcnow,
    )
    from .model.resources import memory_text as memory_text
    from .parser import (
        FlowParseError as FlowParseError,
        parse_flow as parse_flow,
        parse_flow_file as parse_flow_file,
        validate_flows as validate_flows,
    )
    from .parser.schema import flow_schema as flow_schema
    from .secrets import Masker as Masker, SecretError as SecretError
    from .store import Store as Store, StoreError as StoreError
    from .store.copy import copy_files as copy_files, copy_store as copy_store
    from .tasks.namespace_store import namespace_files as namespace_files
    from .tasks.registry import registry as registry
    from .tasks.services import (
        Conflict as Conflict,
        FlowWriteError as FlowWriteError,
        NamespaceFiles as NamespaceFiles,
    )
    from .tasks.toolbox import warm_python as warm_python
    from .telemetry import Telemetry as Telemetry
    from .text import visible as visible
    from .triggers.state import (
        BackfillProgress as BackfillProgress,
        SchedulerError as SchedulerError,
        TriggerState as TriggerState,
    )
    from .triggers.types import SCHEDULE as SCHEDULE
    from .triggers.webhook import WebhookGate as WebhookGate, WebhookServer as WebhookServer
    from .wiring import WorkerPoolFactory as WorkerPoolFactory

# Each public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        [
            "AmbiguousExecutionIdError",
            "BackfillAction",
            "Commands",
            "EngineAbout",
            "ExecutionIds",
            "parse_date",
            "parse_state",
            "resolve_execution_id",
            "trigger_json",
        ],
        ".commands",
    ),
    **dict.fromkeys(
        [
            "ClusterMembers",
            "ServerInfo",
            "WorkerInfo",
            "cluster_members",
            "cluster_worker",
            "shared_worker_pool",
        ],
        ".cluster",
    ),
    "HostedEngine": ".hosting",
    **dict.fromkeys(["ConnectError", "NoEngineError", "connect"], ".connection"),
    "ControlClient": ".control",
    "EngineCommandError": ".errors",
    "Evaluation": ".evaluation",
    "Engine": ".engine",
    **dict.fromkeys(
        [
            "EngineError",
            "Event",
            "EventBus",
            "ExecutionChanged",
            "FlowsChanged",
            "LogsAppended",
            "TaskRunChanged",
            "TriggerChanged",
        ],
        ".events",
    ),
    **dict.fromkeys(["NAMESPACE_FILES_FOLDER", "is_flow_file"], ".flows.catalog"),
    **dict.fromkeys(["NAMESPACE_FILES", "Namespaces"], ".flows.namespaces"),
    **dict.fromkeys(["FlowTable", "FlowUid"], ".flows.table"),
    **dict.fromkeys(["FlowChanges", "parsed_flow"], ".flows.writing"),
    **dict.fromkeys(["InputError", "resolve_inputs"], ".inputs"),
    "CORRELATION_ID": ".labels",
    "memory_text": ".model.resources",
    **dict.fromkeys(
        ["OWNER", "Access", "AccessDenied", "NamespaceChain", "Permission", "Principal"], ".access"
    ),
    **dict.fromkeys(
        [
            "Execution",
            "ExecutionSummary",
            "Flow",
            "InputSpec",
            "Label",
            "LogEntry",
            "LogLevel",
            "MetricEntry",
            "StateType",
            "TaskRun",
            "iso",
            "utcnow",
        ],
        ".model",
    ),
    **dict.fromkeys(["FlowParseError", "parse_flow", "parse_flow_file", "validate_flows"], ".parser"),
    "flow_schema": ".parser.schema",
    **dict.fromkeys(["Masker", "SecretError"], ".secrets"),
    **dict.fromkeys(["Store", "StoreError"], ".store"),
    **dict.fromkeys(["copy_files", "copy_store"], ".store.copy"),
    **dict.fromkeys(["DbTarget", "as_target", "describe_target", "is_url", "target_exists"], ".db_target"),
    **dict.fromkeys(
        [
            "CaseResult",
            "FlowTestSummary",
            "find_suites",
            "is_passing",
            "is_test_file",
            "load_summaries",
            "read_suite",
            "run_suites",
            "save_results",
        ],
        ".flowtests",
    ),
    "registry": ".tasks.registry",
    "warm_python": ".tasks.toolbox",
    "visible": ".text",
    "SCHEDULE": ".triggers.types",
    **dict.fromkeys(["BackfillProgress", "SchedulerError", "TriggerState"], ".triggers.state"),
    "WebhookGate": ".triggers.webhook",
    "WebhookServer": ".triggers.webhook",
    **dict.fromkeys(["HttpHandler", "HttpRequest", "HttpResponse"], ".httpmessages"),
    **dict.fromkeys(["Conflict", "FlowWriteError", "NamespaceFiles"], ".tasks.services"),
    "namespace_files": ".tasks.namespace_store",
    "StorageError": ".internal_storage",
    "parse_duration": ".durations",
    "Telemetry": ".telemetry",
    "WorkerPoolFactory": ".wiring",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
