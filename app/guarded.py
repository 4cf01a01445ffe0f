"""The engine as one person at the dashboard may use it: their namespace permissions applied.

Every pane and screen reaches the engine through a `GuardedEngine`: what the person may not read is
not there (flows, executions, triggers, logs), and a command they may not give raises `AccessDenied`,
an `EngineCommandError` whose message names the permission and the namespace, shown where any refusal
is shown. The panes also ask it (`refusal`) before they offer a key or open a form, so a refusal
comes before the work; this layer holds whatever path an action takes (keys, the command palette).

The machine's owner holds everything: the guard then passes every call through unchanged.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tiercel.engine import (
    Access,
    BackfillAction,
    Evaluation,
    Execution,
    ExecutionSummary,
    Flow,
    FlowUid,
    Label,
    LogEntry,
    MetricEntry,
    Permission,
    Principal,
    StateType,
    TriggerState,
)

if TYPE_CHECKING:
    from tiercel.engine import Engine, Masker

    from .host import DashboardEngine, EngineFlows

READ, EXECUTE, OWNER = Permission.READ, Permission.EXECUTE, Permission.OWNER
# Execution ids whose namespace is remembered (an execution never changes namespace).
_KNOWN_NAMESPACES = 4096


def acting_as(principal: Principal) -> str:
    """Who the dashboard acts for, unless its owner with every permission: `as erin, read-only`."""
    limits = [] if principal.owner else [f"as {principal.name}"]
    if principal.most < OWNER:
        limits.append("read-only")
    return ", ".join(limits)


class ReadableFlows:
    """The engine's flows, without those of namespaces the person may not read."""

    def __init__(self, flows: EngineFlows, access: Access) -> None:
        self._flows, self._access = flows, access

    def _visible(self, uid: object) -> bool:
        return isinstance(uid, tuple) and bool(uid) and self._access.may(str(uid[0]), READ)

    def __getitem__(self, uid: FlowUid, /) -> Flow:
        if not self._visible(uid):
            raise KeyError(uid)
        return self._flows[uid]

    def __contains__(self, uid: object, /) -> bool:
        return self._visible(uid) and uid in self._flows

    def __iter__(self) -> Iterator[FlowUid]:
        return (uid for uid in self._flows if self._visible(uid))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def get(self, uid: FlowUid, /) -> Flow | None:
        return self._flows.get(uid) if self._visible(uid) else None

    def path(self, uid: FlowUid) -> str | None:
        return self._flows.path(uid) if self._visible(uid) else None

    def with_triggers(self, trigger_type: str | None = None) -> list[FlowUid]:
        return [uid for uid in self._flows.with_triggers(trigger_type) if self._visible(uid)]


class GuardedEngine:
    """The dashboard's engine for one person (see the module's docstring)."""

    def __init__(self, engine: Engine, access: Access) -> None:
        self._engine, self.access = engine, access
        self._unlimited = access.principal.unlimited
        self._reads_everything = access.principal.owner  # read-only or not
        self._namespaces: OrderedDict[str, str] = OrderedDict()

    # -- what the person may see --------------------------------------------------------------------
    @property
    def masker(self) -> Masker:
        return self._engine.masker

    @property
    def flows(self) -> EngineFlows:
        flows = self._engine.flows
        return flows if self._reads_everything else ReadableFlows(flows, self.access)

    @property
    def flow_errors(self) -> Mapping[str, Sequence[object]]:
        """Broken files, to the owner only: a file that does not parse names no namespace to ask about."""
        return self._engine.flow_errors if self._reads_everything else {}

    @property
    def restricted(self) -> bool:
        return not self._unlimited

    def readable(self, namespace: str) -> bool:
        return self._reads_everything or self.access.may(namespace, READ)

    def refusal(self, namespace: str, needed: Permission) -> str | None:
        refused = self.access.refusal(namespace, needed)
        return str(refused) if refused is not None else None

    async def _namespace(self, execution_id: str) -> str | None:
        """The namespace of an execution (None: there is no such execution)."""
        if execution_id not in self._namespaces:
            execution = await self._engine.execution(execution_id)
            if execution is None:
                return None
            self._namespaces[execution_id] = execution.namespace
            if len(self._namespaces) > _KNOWN_NAMESPACES:
                self._namespaces.popitem(last=False)
        return self._namespaces[execution_id]

    async def _sees(self, execution_id: str) -> bool:
        if self._reads_everything:
            return True
        namespace = await self._namespace(execution_id)
        return namespace is not None and self.readable(namespace)

    async def _require(self, execution_id: str, needed: Permission) -> None:
        """Return if the person holds `needed` on the execution's namespace (or there is none: the
        command itself then says there is no such execution)."""
        if self._unlimited:
            return
        namespace = await self._namespace(execution_id)
        if namespace is not None:
            self.access.require(namespace, needed)

    # -- flows ------------------------------------------------------------------------------------
    async def sync_flows(self, paths: Iterable[Path] | None = None) -> None:
        await self._engine.sync_flows(paths)

    async def flow_revisions(self, namespace: str, flow_id: str) -> list[tuple[int, str, datetime]]:
        return await self._engine.flow_revisions(namespace, flow_id) if self.readable(namespace) else []

    async def flow_revision(self, namespace: str, flow_id: str, revision: int) -> Flow | None:
        if not self.readable(namespace):
            return None
        return await self._engine.flow_revision(namespace, flow_id, revision)

    async def last_states(self) -> dict[tuple[str, str], str]:
        states = await self._engine.last_states()
        return {uid: state for uid, state in states.items() if self.readable(uid[0])}

    # -- executions -------------------------------------------------------------------------------
    async def trigger(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None = None,
        labels: Sequence[Label] = (),
        *,
        local_files: bool = False,
    ) -> str:
        self.access.require(namespace, EXECUTE)
        return await self._engine.trigger(namespace, flow_id, inputs, labels, local_files=local_files)

    async def kill(self, execution_id: str) -> None:
        await self._require(execution_id, EXECUTE)
        await self._engine.kill(execution_id)

    async def resume(self, execution_id: str, inputs: Mapping[str, Any] | None = None) -> None:
        await self._require(execution_id, EXECUTE)
        await self._engine.resume(execution_id, inputs)

    async def restart(self, execution_id: str) -> None:
        await self._require(execution_id, EXECUTE)
        await self._engine.restart(execution_id)

    async def replay(
        self, execution_id: str, task_run_id: str | None = None, *, revision: int | None = None
    ) -> str:
        await self._require(execution_id, EXECUTE)
        return await self._engine.replay(execution_id, task_run_id, revision=revision)

    async def change_status(self, execution_id: str, state: StateType) -> None:
        await self._require(execution_id, EXECUTE)
        await self._engine.change_status(execution_id, state)

    async def wait(self, execution_id: str, *, until_paused: bool = False) -> Execution:
        await self._require(execution_id, READ)
        return await self._engine.wait(execution_id, until_paused=until_paused)

    async def evaluate(self, execution_id: str, task_run_id: str | None, expression: str) -> Evaluation:
        # EXECUTE, as on the API: an expression can read the namespace's secrets and keys.
        await self._require(execution_id, EXECUTE)
        return await self._engine.evaluate(execution_id, task_run_id, expression)

    async def execution(self, execution_id: str) -> Execution | None:
        execution = await self._engine.execution(execution_id)
        return execution if execution is not None and self.readable(execution.namespace) else None

    async def execution_ids(self, prefix: str, *, limit: int) -> list[str]:
        found = await self._engine.execution_ids(prefix, limit=limit)
        return [execution_id for execution_id in found if await self._sees(execution_id)]

    async def list_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        state: str | Sequence[str] | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[ExecutionSummary]:
        """A page of the executions the person may read. Outside the namespaces they may read whole,
        the pages of the outermost ones they are granted are merged (newest first, as one page
        is), a read per namespace granted rather than a scan of what they may not see."""
        if self._reads_everything or (namespace and self.readable(namespace)):  # a grant covers below
            return await self._engine.list_executions(
                namespace=namespace, flow_id=flow_id, state=state, limit=limit, before=before
            )
        pages = [
            await self._engine.list_executions(
                namespace=granted, flow_id=flow_id, state=state, limit=limit, before=before
            )
            for granted in self._granted(within=namespace or "")
        ]
        newest_first = heapq.merge(*pages, key=lambda row: -int(row.cursor))
        return list(itertools.islice(newest_first, limit))

    def _granted(self, within: str) -> list[str]:
        """The outermost namespaces (below `within`) where a grant names the person: what they may
        read is these and the namespaces below them."""
        declared = self._engine.catalog.namespaces.declared
        held = [name for name in declared if self.access.held(name) is not None]
        outermost = [name for name in held if not any(name.startswith(f"{other}.") for other in held)]
        return sorted(name for name in outermost if not within or name.startswith(f"{within}."))

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
    ) -> list[tuple[int, LogEntry]]:
        if not await self._sees(execution_id):
            return []
        return await self._engine.logs(
            execution_id,
            level=level,
            task_id=task_id,
            after=after,
            before=before,
            limit=limit,
            newest=newest,
        )

    async def metrics(
        self, execution_id: str, *, task_run_id: str | None = None, task_id: str | None = None
    ) -> list[MetricEntry]:
        if not await self._sees(execution_id):
            return []
        return await self._engine.metrics(execution_id, task_run_id=task_run_id, task_id=task_id)

    async def clear_task_cache(self, namespace: str, flow_id: str, task_id: str | None = None) -> int:
        self.access.require(namespace, EXECUTE)
        return await self._engine.clear_task_cache(namespace, flow_id, task_id)

    # -- triggers ---------------------------------------------------------------------------------
    async def trigger_states(self) -> list[TriggerState]:
        return [state for state in await self._engine.trigger_states() if self.readable(state.namespace)]

    async def set_trigger_enabled(self, namespace: str, flow_id: str, trigger_id: str, enabled: bool) -> None:
        self.access.require(namespace, EXECUTE)
        await self._engine.set_trigger_enabled(namespace, flow_id, trigger_id, enabled)

    async def start_backfill(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str,
        start: datetime,
        end: datetime | None = None,
        inputs: Mapping[str, Any] | None = None,
        labels: Sequence[Label] | Mapping[str, str] | None = None,
    ) -> str:
        self.access.require(namespace, EXECUTE)
        return await self._engine.start_backfill(namespace, flow_id, trigger_id, start, end, inputs, labels)

    async def change_backfill(
        self, namespace: str, flow_id: str, trigger_id: str, action: BackfillAction
    ) -> None:
        self.access.require(namespace, EXECUTE)
        await self._engine.change_backfill(namespace, flow_id, trigger_id, action)


if TYPE_CHECKING:  # the guard is what the panes know as the dashboard's engine
    _: type[DashboardEngine] = GuardedEngine
