"""The task plugin API: everything a third-party task package imports, from one place.

A package declares an entry point in the `tiercel.tasks` group naming a callable that receives the
`Registry` and adds `TaskType`s; each runnable type has an async handler taking a `TaskContext` and
returning its outputs (or raising `TaskFailure`):

    from tiercel.engine.plugin import Kind, LogLevel, Registry, TaskContext, TaskType
"""

from __future__ import annotations

from .model import LogLevel
from .tasks.base import RunnableHandler, TaskContext, TaskFailure
from .tasks.registry import Registry
from .tasks.types import Kind, TaskType

__all__ = ["Kind", "LogLevel", "Registry", "RunnableHandler", "TaskContext", "TaskFailure", "TaskType"]
