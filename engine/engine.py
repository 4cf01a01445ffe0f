"""The Engine facade: flows in, executions out; commands, queries and events.

The Engine wires Kestra's components and answers the `Commands` protocol (engine.commands):
- the executor loop (engine.executor.loop): one asyncio task owns every live execution; each batch of
  messages is applied through the pure executor, committed in one group of transactions, and only then
  announced and turned into new work. So a task's success is durable before its dependants start, and
  a restarted engine finds every execution where it was. A step that cannot be saved is retried, then
  fails its execution (the save-failure policy, see `ExecutorLoop._save_failed`);
- admission (engine.executor.admission): a flow, inputs and labels become a CREATED execution;
- subflows (engine.executor.subflows): child executions, their depth limit, their ends reported back;
- the worker (engine.worker.runner) runs task runs and reports results and logs as messages
  (engine.messages) through in-process queues (engine.queue);
- the log pipeline (engine.worker.logs) and the expression functions (engine.executor.functions);
- the trigger sources (engine.triggers): schedules, backfills, flow triggers.

After a crash, the next engine first kills the task programs the crashed one left running (they are
recorded in the store while they run), then carries on: a task that was running runs again as a new
attempt, or fails with "engine stopped while the task was running" when the flow's label
`tiercel.notIdempotent: "task_a,task_b"` (or `"*"`) names it; a task run never gets more than
maxAttempt + 1 attempts (engine.executor.recovery; the procedure: engine.executor.startup).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .commands import BackfillAction, Commands, EngineCommandError, answer
from .control import ControlServer
from .events import EventBus, ExecutionChanged, FlowsChanged
from .executor.admission import Admitter
from .executor.decisions import Executor
from .executor.functions import ExpressionFunctions
from .executor.loop import MAX_SAVE_FAILURES, SAVE_RETRY_SECONDS, ExecutorLoop
from .executor.replay import ReplayError, replayed
from .executor.startup import CrashRecovery, kill_leftover_processes
from .executor.subflows import Subflows, max_subflow_depth
from .executor.variables import release as release_context
from .expressions import Renderer
from .flows.catalog import NAMESPACE_FILES_FOLDER, FlowCatalog
from .flows.revisions import FlowRevisions
from .flows.view import FlowsView
from .flows.watcher import FlowWatcher
from .inputs import InputError, input_json_value, resolve_inputs
from .internal_storage import Storage
from .messages import ExecutorMessage, KillExecution, RestartExecution, ResumeExecution, StartExecution
from .model import Execution, ExecutionSummary, Flow, Label, LogEntry, LogLevel, StateType, utcnow
from .parser import FlowError, FlowParseError
from .queue import InProcessQueue
from .secrets import Masker, Secrets
from .store import Store
from .tasks.registry import Registry, registry
from .tasks.types import Kind
from .triggers.flow import FlowTriggers
from .triggers.schedule import Clock, Scheduler, TriggerState
from .worker.logs import LogPipeline, log_entry
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
        self.watcher: FlowWatcher | None = None
        self.log_pipeline = LogPipeline(store, self.events, self.masker, is_live=self._is_live)
        self.admission = Admitter(self.renderer, self.storage, self.masker)
        self.functions = ExpressionFunctions(
            renderer=self.renderer,
            is_flowable=self._is_flowable,
            kv=store,
            secrets=self.secrets,
            masker=self.masker,
            storage=self.storage,
            flows_dir=flows_dir,
            namespaces=self.catalog.namespaces,
            errors_of=self.log_pipeline.errors_of,
            clear_inputs=self.admission.clear_inputs,
        )
        self.executor = Executor(self.registry, self.renderer, functions=self.functions)
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
        self.loop = ExecutorLoop(
            store=store,
            executor=self.executor,
            events=self.events,
            inbox=inbox,
            worker=self.runner,
            logs=self.log_pipeline,
            on_end=self._ended,
            prefetch=self.functions,
        )
        self.subflows = Subflows(
            self,
            self.loop,
            self.renderer,
            functions=self.functions,
            prefetch=self.functions.prefetch_kv,
            log=self.log_pipeline.append,
            max_depth=subflow_depth or max_subflow_depth(),
        )
        self.loop.subflows = self.subflows
        self.recovery = CrashRecovery(
            store=store,
            registry=self.registry,
            loop=self.loop,
            worker=self.runner,
            subflows=self.subflows,
            logs=self.log_pipeline,
            events=self.events,
            flow_revision=self.flow_revision,
        )
        self._control: ControlServer | None = None
        self.flow_triggers = FlowTriggers(self)
        self.scheduler = Scheduler(self, clock)

    def _is_live(self, execution_id: str) -> bool:
        return self.loop.live(execution_id) is not None

    def _is_flowable(self, task_type: str) -> bool:
        found = self.registry.lookup(task_type)
        return found is not None and found.kind is Kind.FLOWABLE

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
        self.loop.start()
        self.log_pipeline.start()
        await kill_leftover_processes(self.store)
        await self.recovery.recover(recover)
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
        steps += [self.runner.stop, self.loop.stop, self.log_pipeline.stop, self.log_pipeline.flush]
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
        return FlowsView(self.catalog.flows)

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

    async def submit(self, flow: Flow, execution: Execution, *, also: Any = None) -> str:
        """Persist a CREATED execution (with `also` in the same transaction) and start it.

        When `also` raises (a trigger date that already fired), nothing is stored or started and the
        exception propagates.
        """
        await self.store.save_execution(execution, execution.task_runs, also=also)
        self.loop.adopt(flow, execution)
        self.events.publish(ExecutionChanged(execution))
        self.loop.post(StartExecution(execution.id))
        return execution.id

    async def kill(self, execution_id: str) -> None:
        """Kill an execution and every subflow execution it waits for, however deep the tree.

        The kills are posted together and applied in one batch: a tree of thousands of executions is
        walked with a queue, not with a call per level.
        """
        await self._require(execution_id)
        # A descendant may have ended meanwhile.
        targets = [target for target in self.subflows.tree(execution_id) if self.loop.live(target)]
        await asyncio.gather(*[self.loop.command(KillExecution(target)) for target in targets])

    async def resume(self, execution_id: str, inputs: Mapping[str, Any] | None = None) -> None:
        flow, execution = await self._require(execution_id)
        if execution.state.current is not StateType.PAUSED:
            raise EngineCommandError(f"Execution {execution_id} is {execution.state.current}, not PAUSED")
        outputs = None
        for run in execution.task_runs:
            if run.state.current is StateType.PAUSED:
                specs = flow.tasks_by_id[run.task_id].props.get("onResume") or ()
                if specs:
                    outputs = resolve_inputs(specs, inputs or {})
                    outputs = {key: input_json_value(value) for key, value in outputs.items()}
        await self.loop.apply(ResumeExecution(execution_id, outputs))

    async def restart(self, execution_id: str) -> None:
        execution = await self.store.get_execution(execution_id)
        if execution is None:
            raise EngineCommandError(f"No execution {execution_id}")
        if execution.state.current not in (StateType.FAILED, StateType.KILLED):
            raise EngineCommandError(
                f"Execution {execution_id} is {execution.state.current}: "
                "only FAILED or KILLED executions restart"
            )
        flow = await self.flow_revision(execution.namespace, execution.flow_id, execution.flow_revision)
        if flow is None:
            raise EngineCommandError(f"The flow of execution {execution_id} is gone")
        if self.loop.live(execution_id):  # restarted meanwhile (the dashboard and a command at once)
            raise EngineCommandError(f"Execution {execution_id} is already restarting")
        self.loop.adopt(flow, execution)
        await self.loop.apply(RestartExecution(execution_id))

    async def replay(
        self, execution_id: str, task_run_id: str | None = None, *, revision: int | None = None
    ) -> str:
        """Start a new execution from a chosen task run of an ended one (or from the start); its id."""
        source = await self.execution(execution_id)
        if source is None:
            raise EngineCommandError(f"No execution {execution_id}")
        wanted = revision or source.flow_revision
        flow = await self.flow_revision(source.namespace, source.flow_id, wanted)
        if flow is None:
            raise EngineCommandError(f"Flow {source.namespace}.{source.flow_id} has no revision {wanted}")
        try:
            execution = replayed(source, task_run_id, utcnow(), flow.revision)
        except ReplayError as error:
            raise EngineCommandError(str(error)) from None
        return await self.submit(flow, execution)

    async def change_status(self, execution_id: str, state: StateType) -> None:
        """Set the state of an ended execution by hand (Kestra's change status), with a log line."""
        if not state.is_terminated or state is StateType.RETRIED:
            raise EngineCommandError(
                f"An execution can be set to SUCCESS, WARNING, FAILED, KILLED or CANCELLED, not {state}"
            )
        execution = await self.execution(execution_id)
        if execution is None:
            raise EngineCommandError(f"No execution {execution_id}")
        if self.loop.live(execution_id) or not execution.state.current.is_terminated:
            raise EngineCommandError(
                f"Execution {execution_id} is {execution.state.current}: only ended executions change status"
            )
        if execution.state.current is state:
            return
        changed = execution.to(state)
        note = f"Status changed by hand from {execution.state.current} to {state}"
        await self.store.save_execution(changed, (), [log_entry(execution, None, note, LogLevel.INFO)])
        self.events.publish(ExecutionChanged(changed))

    async def _require(self, execution_id: str) -> tuple[Flow, Execution]:
        """A live execution with its flow; EngineCommandError says why there is none."""
        live = self.loop.live(execution_id)
        if live is None:
            stored = await self.store.get_execution(execution_id)
            if stored is None:
                raise EngineCommandError(f"No execution {execution_id}")
            raise EngineCommandError(f"Execution {execution_id} is {stored.state.current}")
        return live

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
        found = await self.loop.wait(execution_id, until_paused=until_paused)
        if found is None:
            raise EngineCommandError(f"No execution {execution_id}")
        return found

    async def execution(self, execution_id: str) -> Execution | None:
        """The execution as last stored (the loop's working copy may be a step ahead)."""
        stored = self.loop.stored(execution_id)
        return stored if stored is not None else await self.store.get_execution(execution_id)

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
