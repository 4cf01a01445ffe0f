"""The command surface: what the CLI, the dashboard and the control channel ask of an engine.

`Commands` is implemented by the local `Engine` and by the control-channel client that reaches the
engine another process runs on the same database. Callers hold a `Commands` and never know which.
Triggers and backfills are commands like the others: no caller reaches into the scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from .model import Execution, ExecutionSummary, Label, LogEntry, StateType
from .triggers.schedule import TriggerState

BackfillAction = Literal["pause", "resume", "cancel"]


class Commands(Protocol):
    """Commands and queries on the executions and triggers of one database."""

    # -- executions ---------------------------------------------------------------------------
    async def trigger(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None = None,
        labels: Sequence[Label] = (),
        *,
        local_files: bool = False,
    ) -> str: ...

    async def kill(self, execution_id: str) -> None: ...

    async def resume(self, execution_id: str, inputs: Mapping[str, Any] | None = None) -> None: ...

    async def restart(self, execution_id: str) -> None: ...

    async def replay(
        self, execution_id: str, task_run_id: str | None = None, *, revision: int | None = None
    ) -> str: ...

    async def change_status(self, execution_id: str, state: StateType) -> None: ...

    # -- triggers -----------------------------------------------------------------------------
    async def trigger_states(self) -> list[TriggerState]: ...

    async def set_trigger_enabled(
        self, namespace: str, flow_id: str, trigger_id: str, enabled: bool
    ) -> None: ...

    async def start_backfill(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str,
        start: datetime,
        end: datetime | None = None,
        inputs: Mapping[str, Any] | None = None,
        labels: Sequence[Label] | Mapping[str, str] | None = None,
    ) -> str: ...

    async def change_backfill(
        self, namespace: str, flow_id: str, trigger_id: str, action: BackfillAction
    ) -> None: ...

    # -- queries ------------------------------------------------------------------------------
    async def execution(self, execution_id: str) -> Execution | None: ...

    async def list_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        state: str | Sequence[str] | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[ExecutionSummary]: ...

    async def logs(
        self,
        execution_id: str,
        *,
        level: str | None = None,
        task_id: str | None = None,
        after: int = 0,
        before: int | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[tuple[int, LogEntry]]: ...
