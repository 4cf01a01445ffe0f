"""The Engine facade: it wires Kestra's components and answers the `Commands` protocol (engine.commands).

- executor/: the loop owning live executions (loop.py) around the pure executor (decisions.py), with
  admission, subflows, crash recovery at start (startup.py) and the commands on executions;
- worker/: runs task runs (runner.py) and the log pipeline (logs.py); messages.py and queue.py are
  what the executor and the worker exchange; flows/: the flows folder; triggers/: schedules, flow
  triggers, backfills.

Guarantees: every state change is stored, with its history, before it is announced, so a task's
success is durable before its dependants start; a step that cannot be saved is retried, then fails
its execution (`ExecutorLoop._save_failed`). After a crash, the next engine kills the task programs
the crashed one left running, then carries on: a task that was running runs again as a new attempt,
or fails with "engine stopped while the task was running" when the flow's label
`tiercel.notIdempotent: "task_a,task_b"` (or `"*"`) names it; a task run never gets more than
maxAttempt + 1 attempts (engine.executor.recovery).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .commands import BackfillAction, Commands, EngineCommandError, answer
from .control import ControlServer
from .events import EventBus, FlowsChanged
from .executor.admission import Admitter
from .executor.decisions import Executor
from .executor.executions import Executions
from .executor.functions import ExpressionFunctions
from .executor.loop import MAX_SAVE_FAILURES, SAVE_RETRY_SECONDS
from .executor.subflows import max_subflow_depth
from .executor.variables import release as release_context
from .expressions import Renderer
from .flows.catalog import NAMESPACE_FILES_FOLDER, FlowCatalog
from .flows.revisions import FlowRevisions
from .flows.view import FlowsView
from .flows.watcher import FlowWatcher
from .inputs import InputError
from .internal_storage import Storage
from .messages import ExecutorMessage
from .model import Execution, ExecutionSummary, Flow, Label, LogEntry, StateType
from .parser import FlowError, FlowParseError
from .queue import InProcessQueue
from .secrets import Masker, Secrets
from .store import Store, TriggerFire
from .tasks.registry import Registry, registry
from .triggers.flow import FlowTriggers
from .triggers.schedule import Clock, Scheduler, TriggerState
from .worker.logs import LogPipeline
from .worker.process import prefer_pidfd_child_watcher
from .worker.runner import Runner

KILL_GRACE_SECONDS = 5.0
_log = logging.getLogger(__name__)


def _secrets_file() -> Path | None:
    """TIERCEL_SECRETS_FILE names a KEY=VALUE file of plain secrets (beside SECRET_* variables)."""
    name = os.environ.get("TIERCEL_SECRETS_FILE")
    return Path(name) if name else None


class Engine:
    """Runs flows from a folder against one SQLite store."""

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
    ) -> None:
        self.store = store
        self.flows_dir = flows_dir
        # Execution files (kestra:// URIs) live in a folder beside the database.
        self.storage = Storage(store.path.parent / "storage")
        self.secrets = secrets or Secrets(file=_secrets_file())
        # Every configured secret is masked in what is shown, even one no task of this process used.
        self.masker = Masker()
        self.masker.add_all(self.secrets.values())
        self.registry = task_registry or registry()
        self.renderer = renderer or Renderer()
        self.events = EventBus()
        self.catalog = FlowCatalog(store, flows_dir)
        self.revisions = FlowRevisions(self.catalog, store)
        self._flows = FlowsView(self.catalog.flows)
        self.watcher: FlowWatcher | None = None
        self.log_pipeline = LogPipeline(store, self.events, self.masker, is_live=self._is_live)
        self.admission = Admitter(self.renderer, self.storage, self.masker)
        self.functions = ExpressionFunctions(
            renderer=self.renderer,
            registry=self.registry,
            kv=store,
            secrets=self.secrets,
            masker=self.masker,
            storage=self.storage,
            flows_dir=flows_dir,
            namespaces=self.catalog.namespaces,
            errors_of=self.log_pipeline.errors_of,
            clear_inputs=self.admission.clear_inputs,
        )
        inbox: InProcessQueue[ExecutorMessage] = InProcessQueue()
        self.runner = Runner(
            self.registry,
            self.renderer,
            results=inbox,
            logs=self.log_pipeline,
            context_extra=lambda execution: self.functions(execution, []),
            prefetch=self.functions.prefetch_kv,
            store=store,
            storage=self.storage,
            namespace_files=flows_dir / NAMESPACE_FILES_FOLDER if flows_dir else None,
            kill_grace=kill_grace,
        )
        self.executions = Executions(
            store=store,
            executor=Executor(self.registry, self.renderer, functions=self.functions),
            registry=self.registry,
            events=self.events,
            inbox=inbox,
            worker=self.runner,
            logs=self.log_pipeline,
            functions=self.functions,
            host=self,
            max_subflow_depth=subflow_depth or max_subflow_depth(),
            on_end=self._ended,
        )
        self.loop = self.executions.loop
        self._control: ControlServer | None = None
        self.flow_triggers = FlowTriggers(self)
        self.scheduler = Scheduler(self, clock)

    def _is_live(self, execution_id: str) -> bool:
        return self.loop.live(execution_id) is not None

    def _ended(self, execution: Execution) -> None:
        """An execution ended: what was held for it goes."""
        self.admission.release(execution.id)
        release_context(execution.id)

    # -- life cycle -------------------------------------------------------------------------
    @classmethod
    async def open(cls, db: Path, *, flows_dir: Path | None = None) -> Engine:
        store = await Store.open(db)
        return cls(store, flows_dir=flows_dir)

    async def start(
        self,
        *,
        control: bool = True,
        watch: bool = False,
        triggers: bool = True,
        recover: Collection[str] | None = None,
    ) -> None:
        """Load flows, start the loop, resume unfinished executions, open the control channel.

        With `watch`, flow files saved, added or deleted later are picked up as they change. Without
        `triggers` (one-off commands such as `tiercel run`), no schedule or flow trigger fires. With
        `recover`, only those unfinished executions are resumed: a one-off command that stops again
        soon must not rerun (and use up the attempts of) tasks it has nothing to do with.
        """
        prefer_pidfd_child_watcher()
        if self.flows_dir is not None:
            await self.sync_flows()
            if watch:
                self.watcher = FlowWatcher(self.flows_dir, self.sync_flows)
                await self.watcher.start()
        if triggers:
            await self.flow_triggers.start()
        self.log_pipeline.start()
        await self.executions.start(recover)
        if control:
            self._control = ControlServer(self.store.path, functools.partial(answer, self))
            await self._control.start()
        if triggers:
            await self.scheduler.start()

    async def stop(self) -> None:
        """Stop everything the engine started; one part failing to stop does not keep the others up."""
        steps: list[Callable[[], Awaitable[None]]] = [self.scheduler.stop, self.flow_triggers.stop]
        if self.watcher is not None:
            steps.append(self.watcher.stop)
        if self._control is not None:
            steps.append(self._control.stop)
        steps += [self.runner.stop, self.executions.stop, self.log_pipeline.stop, self.log_pipeline.flush]
        for step in steps:
            try:
                await step()
            except Exception as error:  # each part must get its chance to stop
                _log.error("while stopping the engine: %s: %s", type(error).__name__, error)
        await self.store.close()

    # -- flows ------------------------------------------------------------------------------
    @property
    def flows(self) -> FlowsView:
        """The current revision of every flow, by (namespace, flow id), each parsed on first use."""
        return self._flows

    @property
    def flow_errors(self) -> dict[str, list[FlowError]]:
        """The errors of every broken flow or namespace file, by path."""
        return {**self.catalog.namespaces.errors, **self.catalog.errors}

    async def sync_flows(self, paths: Iterable[Path] | None = None) -> None:
        """Bring the flows in step with their files (the given ones, or all); announce any change."""
        if await self.catalog.sync(paths):
            self.events.publish(FlowsChanged())

    async def load_flows(self, folder: Path) -> None:
        """Read every flow file under `folder` (which becomes the flows folder)."""
        if self.catalog.folder is None or self.catalog.folder.resolve() != folder.resolve():
            self.catalog.folder = folder
        await self.sync_flows()

    async def load_flow_file(self, path: Path) -> Flow:
        """Parse one file and make it the current revision of its flow (raises FlowParseError)."""
        flow = await self.catalog.add_file(path)
        self.events.publish(FlowsChanged())
        return flow

    def with_flow(self, flow: Flow) -> None:
        """Register a flow parsed elsewhere (tests, one-off files)."""
        self.catalog.flows[flow.uid] = flow
        self.events.publish(FlowsChanged())

    async def flow_revisions(self, namespace: str, flow_id: str) -> list[tuple[int, str, datetime]]:
        """Every stored revision of a flow, oldest first, as (revision, source, created)."""
        return await self.store.flow_revisions(namespace, flow_id)

    async def flow_revision(self, namespace: str, flow_id: str, revision: int) -> Flow | None:
        """A given revision of a flow, parsed from the store (cached)."""
        return await self.revisions.get(namespace, flow_id, revision)

    # -- commands -----------------------------------------------------------------------------
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
        flow = self.flows.get((namespace, flow_id))
        if flow is None:
            raise EngineCommandError(f"No flow `{flow_id}` in namespace `{namespace}`")
        if flow.disabled:
            raise EngineCommandError(f"Flow {namespace}.{flow_id} is disabled")
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
    ) -> Execution:
        """Validate inputs and build a CREATED execution (raises InputError); see `Admitter`."""
        return self.admission.new_execution(
            flow, inputs, labels, parent_id=parent_id, trigger=trigger, local_files=local_files
        )

    async def submit(self, flow: Flow, execution: Execution, *, fire: TriggerFire | None = None) -> str:
        """Store a CREATED execution (with a trigger's fire in the same transaction) and start it."""
        return await self.executions.submit(flow, execution, fire=fire)

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
        """Set the state of an ended execution by hand (Kestra's change status), with a log line."""
        await self.executions.change_status(execution_id, state)

    # -- trigger commands -----------------------------------------------------------------------
    async def trigger_states(self) -> list[TriggerState]:
        """Every trigger of the current flows with its state."""
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
        changes = {
            "pause": self.scheduler.pause_backfill,
            "resume": self.scheduler.resume_backfill,
            "cancel": self.scheduler.cancel_backfill,
        }
        if action not in changes:
            raise EngineCommandError(f"unknown backfill action `{action}`")
        await changes[action](namespace, flow_id, trigger_id)

    # -- queries --------------------------------------------------------------------------------
    async def wait(self, execution_id: str, *, until_paused: bool = False) -> Execution:
        """Wait for an execution to end (or to pause with nothing scheduled, when asked)."""
        return await self.executions.wait(execution_id, until_paused=until_paused)

    async def execution(self, execution_id: str) -> Execution | None:
        """The execution as last stored (the loop's working copy may be a step ahead)."""
        return await self.executions.execution(execution_id)

    async def flush_logs(self) -> None:
        """Store every log line announced so far (the `logs` query does it first)."""
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
        """A page of an execution's log lines as (row id, entry), including every line already announced.

        See `Store.logs`: pass a `limit` (with `newest` for the tail) for logs that may be large.
        """
        await self.log_pipeline.flush()
        return await self.store.logs(
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

    def is_idle(self) -> bool:
        return self.loop.is_idle()


__all__ = [
    "MAX_SAVE_FAILURES",
    "SAVE_RETRY_SECONDS",
    "Engine",
    "EngineCommandError",
    "FlowParseError",
    "InputError",
]


if TYPE_CHECKING:  # the Engine is the local implementation of the command surface
    _: type[Commands] = Engine
