"""What task handlers (plugins too) may use of the store and the engine: small protocols, one per need.

A handler never receives the Store nor the Engine: the KV tasks see a `KeyValueStore`, log.Fetch a
`LogReader`, execution.Count and the purge tasks `ExecutionRecords`, execution.Resume an
`ExecutionControl`, trigger.Toggle `TriggerSwitches`, the namespace.* tasks `NamespaceFiles`. The
SQLite store satisfies the store's protocols structurally; the engine's commands are passed through
the others (engine/wiring.py); another backend only has to provide these methods.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from ..model import Execution, LogEntry, LogLevel


class KeyValueStore(Protocol):
    """JSON values by namespace and key, with an optional time to live.

    Failures (a key that exists with `overwrite=False`, a full disk) raise `StoreError`
    (tiercel.engine.store).
    """

    async def kv_set(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        ttl: timedelta | None = None,
        overwrite: bool = True,
    ) -> None:
        """Set a key; with `overwrite` False, fail if the key holds a value that has not expired."""
        ...

    async def kv_get(self, namespace: str, key: str) -> tuple[bool, Any]:
        """The value of a key as (found, value); an expired key is not found."""
        ...

    async def kv_delete(self, namespace: str, key: str) -> bool:
        """Delete a key; return whether it held a value that had not expired."""
        ...

    async def kv_keys(self, namespace: str, prefix: str | None = None) -> list[str]:
        """The keys of a namespace that have not expired, sorted, optionally only those with a prefix."""
        ...


class LogReader(Protocol):
    """The stored log lines of executions."""

    async def flush(self) -> None:
        """Wait until every line written so far can be read."""
        ...

    async def logs(self, execution_id: str, *, level: str | None = None) -> list[tuple[int, LogEntry]]:
        """The lines of an execution at `level` or above, oldest first, as (row id, entry)."""
        ...


class ExecutionRecords(Protocol):
    """The stored history of executions, counted and purged (execution.Count, PurgeExecutions,
    log.PurgeLogs). Instants are aware datetimes."""

    async def count_executions_by_flow(
        self,
        *,
        flows: Sequence[tuple[str, str]],
        namespaces: Sequence[str],
        states: Sequence[str] | None,
        start: datetime,
        end: datetime,
    ) -> list[tuple[str, str, int]]:
        """(namespace, flow id, count) of the executions started within [start, end] of the given
        (namespace, flow id) pairs or of the given namespaces (exact), in `states` (None: any)."""
        ...

    async def ended_executions(
        self,
        *,
        namespace: str | None,
        flow_id: str | None,
        start: datetime | None,
        end: datetime,
        states: Sequence[str] | None,
    ) -> list[tuple[str, str, str]]:
        """(id, namespace, flow id) of the executions that ended at or before `end`, oldest first;
        the namespace is exact with a flow id, else it matches the namespaces below it too."""
        ...

    async def delete_executions(self, execution_ids: Sequence[str]) -> tuple[int, int]:
        """Delete executions and their task runs; return (executions, task runs with outputs) deleted."""
        ...

    async def delete_execution_logs(self, execution_ids: Sequence[str]) -> int:
        """Delete every log line of these executions; return how many went."""
        ...

    async def delete_execution_metrics(self, execution_ids: Sequence[str]) -> int:
        """Delete every metric of these executions; return how many went."""
        ...

    async def purge_logs(
        self,
        *,
        end: datetime,
        start: datetime | None = None,
        namespace: str | None = None,
        flow_id: str | None = None,
        execution_id: str | None = None,
        levels: Sequence[LogLevel] | None = None,
    ) -> int:
        """Delete the log lines written within [start, end] that match every filter given."""
        ...


class ExecutionControl(Protocol):
    """Commands on other executions (execution.Resume)."""

    async def execution(self, execution_id: str) -> Execution | None:
        """The execution as last stored, or None."""
        ...

    async def resume(self, execution_id: str, inputs: Mapping[str, Any] | None = None) -> None:
        """Resume a paused execution with its paused task's `onResume` inputs.

        Raises:
            EngineCommandError: The execution is not paused, or the inputs are refused.
        """
        ...


class TriggerSwitches(Protocol):
    """The on/off switches of the flows' triggers (trigger.Toggle)."""

    def trigger_ids(self, namespace: str, flow_id: str) -> Collection[str] | None:
        """The ids of the triggers of a flow's current revision; None when there is no such flow."""
        ...

    async def set_trigger_enabled(self, namespace: str, flow_id: str, trigger_id: str, enabled: bool) -> None:
        """Enable or disable a trigger; the choice is stored."""
        ...


class Conflict(Enum):
    """What writing a namespace file that exists does (Kestra's Namespace.Conflicts)."""

    OVERWRITE = "OVERWRITE"
    ERROR = "ERROR"
    SKIP = "SKIP"


class NamespaceFileExistsError(Exception):
    """A namespace file exists and the conflict behaviour is ERROR."""


class NamespaceFiles(Protocol):
    """Kestra's namespace files, by namespace; paths are relative, with `/` between folders.

    Failures (a name reaching outside its namespace, a full disk) raise `StorageError`
    (engine.internal_storage).
    """

    def list_files(self, namespace: str) -> list[str]:
        """Every file of a namespace, sorted."""
        ...

    def read_file(self, namespace: str, path: str) -> bytes: ...

    def write_file(self, namespace: str, path: str, data: bytes, conflict: Conflict) -> bool:
        """Write a file; return False when it existed and `conflict` is SKIP (nothing written).

        Raises:
            NamespaceFileExistsError: It exists and `conflict` is ERROR.
        """
        ...

    def delete_file(self, namespace: str, path: str) -> bool:
        """Delete a file; return whether it existed."""
        ...

    def delete_empty_folder(self, namespace: str, path: str) -> bool:
        """Delete a folder if it is empty; return whether it was deleted."""
        ...

    def local_path(self, namespace: str, path: str) -> Path:
        """Where the file is on this machine (it may not exist), for reading it in place."""
        ...

    def local_folder(self, namespace: str) -> Path | None:
        """A folder of this machine holding the namespace's files, None when it has none."""
        ...


class FlowWriteError(Exception):
    """A flow write refused: the problems, each with where it is (a YAML path, or `flow`); `invalid`
    is false when the flow is fine but cannot be written here (no flows folder)."""

    def __init__(self, problems: list[tuple[str, str]], invalid: bool = True) -> None:
        super().__init__("; ".join(f"{where}: {message}" for where, message in problems))
        self.problems = problems
        self.invalid = invalid


@dataclass(frozen=True)
class NamespaceDeclared:
    """What a namespace declaration write did: its file, whether it created it, whether it changed."""

    path: str
    created: bool
    changed: bool


@dataclass(frozen=True)
class FlowSource:
    """A flow as its file holds it."""

    namespace: str
    id: str
    source: str


class FlowSources(Protocol):
    """The flows of the flows folder as their files hold them, read and written (the git tasks that
    keep flows in a repository; engine.flows.writing)."""

    def flow_sources(self, namespace: str, children: bool = False) -> list[FlowSource]:
        """The flows of a namespace (and of its children), by namespace and id."""
        ...

    async def save_flow(self, source: str) -> FlowSource:
        """Create or update the flow a source holds (raises FlowWriteError when refused)."""
        ...

    async def delete_flow(self, namespace: str, flow_id: str) -> bool:
        """Delete a flow's file; False when there is none."""
        ...

    async def declare_namespace(
        self, namespace: str, settings: Mapping[str, Any], *, only_new: bool, written_by: str
    ) -> NamespaceDeclared:
        """Merge settings (description, variables, pluginDefaults ...) into the namespace's
        `_namespace.yaml`, creating it when missing; with `only_new`, leave an existing one alone.
        Raises FlowWriteError when the result is not a valid declaration."""
        ...
