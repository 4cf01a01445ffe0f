"""The plugin API: everything a third-party task or trigger package imports, from one place.

A package declares an entry point in the `tiercel.tasks` group naming a callable that receives the
`Registry` and adds `TaskType`s; each runnable type has an async handler taking a `TaskContext` and
returning its outputs (or raising `TaskFailure`). A handler reaches the key-value store through
`context.kv` (a `KeyValueStore`, whose failures raise `StoreError`), stored logs through
`context.log_reader` (a `LogReader`), and the flows folder's flows through `context.flows` (a
`FlowSources`: read, saved and deleted as their files, `FlowWriteError` when refused), and the
namespaces' files through `context.namespace_store` (a `NamespaceFiles`; a write says what to do on a
`Conflict`).

A polling trigger is a `TriggerType` (`registry.add_trigger`) whose `poll` takes a `TriggerContext`
and returns the new execution's `trigger` variables, or None; `consuming_trigger` makes one of a
broker's consume function, `realtime_trigger` refuses a Kestra realtime trigger clearly, and
`store_records` stores records as an Ion file.

Kestra's internal file format, Amazon Ion text with one value per line, is read and written as
Kestra's own tasks write it by `ion_loads`, `ion_dumps`, `ion_lines` and `ion_record_writer` (many
records of the same fields); `ion_records` reads a file's values, naming a bad line; `java_iso` writes
a date-time as Java's ISO formatters do. A task that takes `inputFiles` or `outputFiles` as the
script tasks do uses `write_input_files` and `collect_output_files`. Values as Kestra's plugins read
and write them come from one place:
`java_text`, `json_default` and `java_json` write a value as Java and Jackson do, `seconds` and
`whole_number` read a duration or a whole number of a property, `glob_matches` tests a path against
a Java `glob:`, and `settings_of` gathers a task's rendered settings:

    from tiercel.engine.plugin import Kind, LogLevel, Registry, TaskContext, TaskType
"""

from __future__ import annotations

from .ion import (
    IonError,
    dumps as ion_dumps,
    iter_lines as ion_lines,
    java_iso,
    loads as ion_loads,
    record_writer as ion_record_writer,
)
from .model import LogLevel
from .store.errors import StoreError
from .tasks.base import RunnableHandler, TaskContext, TaskFailure
from .tasks.plugin_values import (
    glob_matches,
    ion_records,
    java_json,
    java_text,
    json_default,
    seconds,
    settings_of,
    whole_number,
)
from .tasks.registry import Registry
from .tasks.scripts import collect_output_files, write_input_files
from .tasks.services import (
    Conflict,
    FlowSource,
    FlowSources,
    FlowWriteError,
    KeyValueStore,
    LogReader,
    NamespaceFiles,
)
from .tasks.types import Kind, TaskType, TriggerType
from .triggers.plugins import TriggerContext, consuming_trigger, realtime_trigger, store_records

__all__ = [
    "Conflict",
    "FlowSource",
    "FlowSources",
    "FlowWriteError",
    "IonError",
    "KeyValueStore",
    "Kind",
    "LogLevel",
    "LogReader",
    "NamespaceFiles",
    "Registry",
    "RunnableHandler",
    "StoreError",
    "TaskContext",
    "TaskFailure",
    "TaskType",
    "TriggerContext",
    "TriggerType",
    "collect_output_files",
    "consuming_trigger",
    "glob_matches",
    "ion_dumps",
    "ion_lines",
    "ion_loads",
    "ion_record_writer",
    "ion_records",
    "java_iso",
    "java_json",
    "java_text",
    "json_default",
    "realtime_trigger",
    "seconds",
    "settings_of",
    "store_records",
    "whole_number",
    "write_input_files",
]
