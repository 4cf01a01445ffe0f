"""The Engine facade: it wires Kestra's components and answers the `Commands` protocol (engine.commands).

Components: executor/ (the loop owning live executions around the pure decisions, with new executions,
subflows and crash recovery), worker/ (task runs; cluster/ shares them through PostgreSQL), connected by
wiring.py through messages.py and the log pipeline of logs.py; flows/, triggers/ (schedules, flow
triggers, backfills), control.py (the channel other processes send commands through).

Guarantees: every state change is stored before it is announced, an unsaved step fails (executor/loop.py);
after a crash the next engine kills what the crashed one left running and carries on (executor/startup.py).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .commands import BackfillAction, Commands, answer
from .control import ControlServer
from .events import EventBus
from .executor.new_executions import NewExecutions
from .expressions import Renderer
from .flows.folder import FlowFolder
from .flows.view import FlowsView
from .flows.watcher import FlowWatcher
from .internal_storage import open_storage
from .logs import LogPipeline
from .model import Execution, ExecutionSummary, Flow, Label, LogEntry, StateType
from .parser import FlowError
from .processes.run import prefer_pidfd_child_watcher
from .secrets import Secrets, configured_secrets, masking
from .store import Store, TriggerFire
from .tasks.registry import Registry, registry
from .triggers.flow import FlowTriggers
from .triggers.schedule import Clock, Scheduler, TriggerState
from .wiring import WorkerPoolFactory, build_executor_and_worker, expression_console

KILL_GRACE_SECONDS = 5.0
_log = logging.getLogger(__name__)


class Engine:
    """Runs flows from a folder against one store (SQLite, or PostgreSQL)."""

    def __init__(
        self,
        store: Store,
        *,
        flows_dir: Path | None = None,
        task_registry: Registry | None = None,
        renderer: Renderer | None = None,
        secrets: Secrets | None = None,
        kill_grace: float = KILL_GRACE_SECONDS,
        clock: Clock | None = None,
        subflow_depth: int | None = None,
        workers: WorkerPoolFactory | None = None,
    ) -> None:
        self.store = store
        # Straight from the store: each flow's newest state (one query), the metrics, execution ids
        # by prefix (see `resolve_execution_id`), and clearing the tasks' caches.
        self.last_states, self.metrics = store.last_states, store.metrics
        self.execution_ids, self.clear_task_cache = store.execution_ids, store.clear_task_cache
        self.flows_dir = flows_dir
        self.storage = open_storage(store.path, store.shared_files)  # kestra:// files
        self.secrets = secrets or configured_secrets()
        self.masker = masking(self.secrets)
        self.registry = task_registry or registry()
        self.renderer = renderer or Renderer()
        self.events = EventBus()
        self.folder = FlowFolder(store, flows_dir, self.events, self.storage)
        self.catalog = self.folder.catalog
        self.log_pipeline = LogPipeline(store, self.events, self.masker, is_live=self.is_live)
        self.new_executions = NewExecutions(self.renderer, self.storage, self.masker)
        self.workers, self.executions = build_executor_and_worker(self, kill_grace, subflow_depth, workers)
        self.loop = self.executions.loop
        self._control: ControlServer | None = None
        self.flow_triggers = FlowTriggers(self)
        self.scheduler = Scheduler(self, clock)
        self.trigger_switches = self.scheduler  # kept by the scheduler for every trigger type
        self.evaluate = expression_console(self).evaluate  # renders for the expression console

    # -- life cycle -------------------------------------------------------------------------
    @classmethod
    async def open(cls, db: Path | str, *, flows_dir: Path | None = None) -> Engine:
        return cls(await Store.open(db), flows_dir=flows_dir)

    async def start(
        self,
        *,
        control: bool = True,
        watch: bool = False,
        triggers: bool = True,
        schedule: bool = True,
        recover: Collection[str] | None = None,
    ) -> None:
        """Load flows, start the loop, resume the unfinished executions (only those of `recover`, when
        given), open the control channel. With `watch`, flow files are picked up as they change; without
        `triggers` (one-off commands) no trigger fires, without `schedule` no schedule (a cluster
        server's waits for the cluster's lock)."""
        prefer_pidfd_child_watcher()
        await self.folder.start(watch=watch)
        if triggers:
            await self.flow_triggers.start()
        self.log_pipeline.start()
        await self.executions.start(recover)
        if control:
            self._control = ControlServer(self.store.path, functools.partial(answer, self))
            await self._control.start()
        if triggers and schedule:
            await self.scheduler.start()

    async def stop(self) -> None:
        """Stop everything the engine started; one part failing to stop does not keep the others up."""
        steps: list[Callable[[], Awaitable[None]]] = [self.scheduler.stop, self.flow_triggers.stop]
        steps += [self.folder.stop, *([self._control.stop] if self._control else [])]
        steps += [self.workers.stop, self.executions.stop, self.log_pipeline.stop, self.log_pipeline.flush]
        for step in steps:
            try:
                await step()
            except Exception as error:  # each part must get its chance to stop
                _log.error("while stopping the engine: %s: %s", type(error).__name__, error)
        await self.store.close()

    # -- flows (engine.flows.folder) --------------------------------------------------------
    @property
    def flows(self) -> FlowsView:
        """The current revision of every flow, by (namespace, flow id), each parsed on first use."""
        return self.folder.flows

    @property
    def flow_errors(self) -> dict[str, list[FlowError]]:
        """The errors of every broken flow or namespace file, by path."""
        return self.folder.errors

    @property
    def watcher(self) -> FlowWatcher | None:
        """What follows the flows folder, once started with `watch`."""
        return self.folder.watcher

    async def sync_flows(self, paths: Iterable[Path] | None = None) -> None:
        """Bring the flows in step with their files (the given ones, or all); announce any change."""
        await self.folder.sync(paths)

    async def load_flow_file(self, path: Path) -> Flow:
        return await self.folder.load_file(path)

    async def flow_revisions(self, namespace: str, flow_id: str) -> list[tuple[int, str, datetime]]:
        return await self.folder.history(namespace, flow_id)

    async def flow_revision(self, namespace: str, flow_id: str, revision: int) -> Flow | None:
        return await self.folder.revision(namespace, flow_id, revision)

    # -- commands (engine.executor.executions) ----------------------------------------------
    async def trigger(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None = None,
        labels: Sequence[Label] = (),
        *,
        parent_id: str | None = None,
        trigger: Mapping[str, Any] | None = None,
        local_files: bool = False,
    ) -> str:
        """Create an execution of the latest revision of a flow; return its id.

        `local_files` lets a FILE input name a local file to copy in; only the user's own commands
        (`tiercel run`, the dashboard's run form) set it. Otherwise only kestra:// URIs are taken.
        """
        flow = self.folder.runnable(namespace, flow_id)
        execution = self.new_execution(
            flow, inputs or {}, labels, parent_id=parent_id, trigger=trigger, local_files=local_files
        )
        return await self.submit(flow, execution)

    def new_execution(
        self,
        flow: Flow,
        inputs: Mapping[str, Any],
        labels: Sequence[Label] = (),
        *,
        parent_id: str | None = None,
        trigger: Mapping[str, Any] | None = None,
        local_files: bool = False,
        check_inputs: bool = True,
    ) -> Execution:
        """Validate inputs and build a CREATED execution (raises InputError); see `NewExecutions`."""
        return self.new_executions.new_execution(
            flow, inputs, labels, parent_id=parent_id, trigger=trigger, local_files=local_files,
            check_inputs=check_inputs,
        )  # fmt: skip

    async def submit(
        self, flow: Flow, execution: Execution, *, fire: TriggerFire | None = None, failure: str | None = None
    ) -> str:
        """Store a CREATED execution (and a trigger's fire) and start it; see `Executions.submit`."""
        return await self.executions.submit(flow, execution, fire=fire, failure=failure)

    async def kill(self, execution_id: str) -> None:
        """Kill an execution and every subflow execution it waits for, however deep the tree."""
        await self.executions.kill(execution_id)

    async def resume(self, execution_id: str, inputs: Mapping[str, Any] | None = None) -> None:
        await self.executions.resume(execution_id, inputs)

    async def restart(self, execution_id: str) -> None:
        await self.executions.restart(execution_id)

    async def replay(
        self, execution_id: str, task_run_id: str | None = None, *, revision: int | None = None
    ) -> str:
        """Start a new execution from a chosen task run of an ended one (or from the start); its id."""
        return await self.executions.replay(execution_id, task_run_id, revision)

    async def change_status(self, execution_id: str, state: StateType) -> None:
        await self.executions.change_status(execution_id, state)

    # -- trigger commands (engine.triggers.schedule) --------------------------------------------
    async def trigger_states(self) -> list[TriggerState]:
        return self.scheduler.triggers()

    async def set_trigger_enabled(self, namespace: str, flow_id: str, trigger_id: str, enabled: bool) -> None:
        await self.scheduler.set_enabled(namespace, flow_id, trigger_id, enabled)

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
        return await self.scheduler.backfill(namespace, flow_id, trigger_id, start, end, inputs, labels)

    async def change_backfill(
        self, namespace: str, flow_id: str, trigger_id: str, action: BackfillAction
    ) -> None:
        await self.scheduler.change_backfill(namespace, flow_id, trigger_id, action)

    # -- queries --------------------------------------------------------------------------------
    async def wait(self, execution_id: str, *, until_paused: bool = False) -> Execution:
        """Wait for an execution to end (or to pause with nothing scheduled, when asked)."""
        return await self.executions.wait(execution_id, until_paused=until_paused)

    async def execution(self, execution_id: str) -> Execution | None:
        """The execution as last stored (the loop's working copy may be a step ahead)."""
        return await self.executions.execution(execution_id)

    async def flush_logs(self) -> None:  # store every log line announced so far
        await self.log_pipeline.flush()

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
        """A page of an execution's log lines as (row id, entry); see `LogPipeline.read`."""
        return await self.log_pipeline.read(
            execution_id, level=level, task_id=task_id, after=after, before=before, limit=limit, newest=newest
        )

    async def list_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        state: str | Sequence[str] | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[ExecutionSummary]:
        """A page of executions, newest first (see Store.list_executions)."""
        return await self.store.list_executions(
            namespace=namespace, flow_id=flow_id, state=state, limit=limit, before=before
        )

    def live_execution_ids(self) -> list[str]:
        return self.loop.live_ids()

    def is_live(self, execution_id: str) -> bool:
        return self.loop.live(execution_id) is not None

    def is_idle(self) -> bool:
        return self.loop.is_idle()


if TYPE_CHECKING:  # the Engine is the local implementation of the command surface
    _: type[Commands] = Engine
