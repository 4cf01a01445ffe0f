"""The task plugin API: everything a third-party task package imports, from one place.

A package declares an entry point in the `tiercel.tasks` group naming a callable that receives the
`Registry` and adds `TaskType`s; each runnable type has an async handler taking a `TaskContext` and
returning its outputs (or raising `TaskFailure`). A handler reaches the key-value store through
`context.kv` (a `KeyValueStore`, whose failures raise `StoreError`) and stored logs through
`context.log_reader` (a `LogReader`). Kestra's internal file format, Amazon Ion text one value per line,
is read and written by `ion_loads`, `ion_dumps` and `ion_lines` as Kestra's own tasks write it (and
`java_iso` writes a date-time or time as Java's ISO formatters do; `ion_record_writer` writes many
records of the same fields quickly); a task
that takes `inputFiles` or `outputFiles` as the script tasks do uses `write_input_files` and
`collect_output_files`:

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
from .tasks.registry import Registry
from .tasks.scripts import collect_output_files, write_input_files
from .tasks.services import KeyValueStore, LogReader
from .tasks.types import Kind, TaskType

__all__ = [
    "IonError",
    "KeyValueStore",
    "Kind",
    "LogLevel",
    "LogReader",
    "Registry",
    "RunnableHandler",
    "StoreError",
    "TaskContext",
    "TaskFailure",
    "TaskType",
    "collect_output_files",
    "ion_dumps",
    "ion_lines",
    "ion_loads",
    "ion_record_writer",
    "java_iso",
    "write_input_files",
]
