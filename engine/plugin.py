"""The task plugin API: everything a third-party task package imports, from one place.

A package declares an entry point in the `tiercel.tasks` group naming a callable that receives the
`Registry` and adds `TaskType`s; each runnable type has an async handler taking a `TaskContext` and
returning its outputs (or raising `TaskFailure`). A handler reaches the key-value store through
`context.kv` (a `KeyValueStore`, whose failures raise `StoreError`) and stored logs through
`context.log_reader` (a `LogReader`):

    from tiercel.engine.plugin import Kind, LogLevel, Registry, TaskContext, TaskType
"""

from __future__ import annotations

from .model import LogLevel
from .store.errors import StoreError
from .tasks.base import RunnableHandler, TaskContext, TaskFailure
from .tasks.registry import Registry
from .tasks.services import KeyValueStore, LogReader
from .tasks.types import Kind, TaskType

__all__ = [
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
]
