"""The executor component as the engine's commands reach it: submit, kill, resume, restart, replay.

It builds the executor loop with the subflows and crash recovery around it, and turns each command
into a message for the loop (engine.messages), returning once the loop has applied and stored it.
Commands are checked here first (the execution exists, is live, is in a state the command applies
to), with an EngineCommandError saying why not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from ..errors import EngineCommandError
from ..events import EventBus, ExecutionChanged
from ..inputs import input_json_value, resolve_inputs
from ..logs import LogPipeline, log_entry
from ..messages import ExecutorMessage, KillExecution, RestartExecution, ResumeExecution, StartExecution
from ..model import Execution, Flow, LogEntry, LogLevel, StateType, TaskRun, utcnow
from ..queue import MessageQueue, WorkerPool
from ..store import TriggerFire
from ..tasks.registry import Registry
from .decisions import Executor
from .functions import ExpressionFunctions
from .loop import ExecutorLoop
from .replay import ReplayError, replayed
from .startup import CrashRecovery, RecoveryStore, kill_leftover_processes
from .subflows import SubflowHost, Subflows


class ExecutionsStore(RecoveryStore, Protocol):
    """The store as the executor component uses it."""

    async def save_execution(
        self,
        execution: Execution,
        changed: Sequence[TaskRun] = (),
        logs: Sequence[LogEntry] = (),
        *,
        removed: Sequence[str] = (),
        fire: TriggerFire | None = None,
        also: Sequence[Execution] = (),
    ) -> None: ...


class StoreInputFile(Protocol):
    """Stores a FILE input's value (a local path, or a kestra:// URI it checks) for an execution."""

    def __call__(
        self, flow: Flow, execution_id: str, input_id: str, value: str, *, local_files: bool = False
    ) -> str: ...


class Executions:
    """The live executions behind their commands: the loop, subflows and recovery."""

    def __init__(
        self,
        *,
        store: ExecutionsStore,
        executor: Executor,
        registry: Registry,
        events: EventBus,
        inbox: MessageQueue[ExecutorMessage],
        worker: WorkerPool,
        logs: LogPipeline,
        functions: ExpressionFunctions,
        host: SubflowHost,
        store_input_file: StoreInputFile,
        max_subflow_depth: int,
        on_end: Callable[[Execution], None],
    ) -> None:
        self.store = store
        self.worker = worker
        self.events = events
        self.store_input_file = store_input_file
        self.flow_revision: Callable[[str, str, int], Awaitable[Flow | None]] = host.flow_revision
        self.loop = ExecutorLoop(
            store=store,
            executor=executor,
            events=events,
            inbox=inbox,
            worker=worker,
            logs=logs,
            on_end=on_end,
            prefetch=functions,
        )
        self.subflows = Subflows(
            host,
            self.loop,
            executor.renderer,
            functions=functions,
            prefetch=functions.prefetch_kv,
            log=logs.append,
            max_depth=max_subflow_depth,
            storage=functions.storage,
        )
        self.loop.subflows = self.subflows
        # Executions whose restart command is under way, before the loop has adopted them.
        self._restarting: set[str] = set()
        # On a cluster's server: carries a command over to the server that runs the execution, when
        # another does; False when none does (engine.cluster.server).
        self.elsewhere: Callable[[str, str, dict[str, Any]], Awaitable[bool]] | None = None
        self.recovery = CrashRecovery(
            store=store,
            registry=registry,
            loop=self.loop,
            worker=worker,
            subflows=self.subflows,
            logs=logs,
            events=events,
            flow_revision=host.flow_revision,
        )

    async def start(self, recover: Collection[str] | None = None) -> None:
        """Start the loop, kill what a crashed engine left running, resume the unfinished executions."""
        self.loop.start()
        await self.worker.open()
        await kill_leftover_processes(self.store)
        await self.recovery.recover(recover)

    async def stop(self) -> None:
        await self.loop.stop()

    # -- commands -------------------------------------------------------------------------------
    async def submit(
        self, flow: Flow, execution: Execution, *, fire: TriggerFire | None = None, failure: str | None = None
    ) -> str:
        """Persist a new execution and start it; return once it is stored (its first step with it,
        or, with a trigger's `fire`, as CREATED with the fire in the same transaction).

        With a `failure` (a trigger's execution whose inputs are invalid), the execution is stored
        FAILED with that message as its ERROR log line, and not started: as Kestra does, the user
        sees the execution and why it failed.

        When the fire cannot be stored (AlreadyFiredError: that date already fired), nothing is stored
        or started and the exception propagates.
        """
        if failure is not None:
            failed = execution.to(StateType.FAILED)
            line = log_entry(failed, None, failure)
            await self.store.save_execution(failed, (), (line,), fire=fire)
            self.events.publish(ExecutionChanged(failed))
            return failed.id
        if fire is None:  # stored with its first step, in one write
            await self.loop.start_new(flow, execution)
            return execution.id
        await self.store.save_execution(execution, execution.task_runs, fire=fire)
        self.loop.adopt(flow, execution)
        self.events.publish(ExecutionChanged(execution))
        self.loop.post(StartExecution(execution.id))
        return execution.id

    async def kill(self, execution_id: str) -> None:
        """Kill an execution and every subflow execution it waits for, however deep the tree.

        The kills are posted together and applied in one batch: a tree of thousands of executions is
        walked with a queue, not with a call per level.
        """
        if await self._sent_elsewhere("kill", execution_id, {}):
            return
        await self.require(execution_id)
        # A descendant may have ended meanwhile.
        targets = [target for target in self.subflows.tree(execution_id) if self.loop.live(target)]
        await asyncio.gather(*[self.loop.command(KillExecution(target)) for target in targets])

    async def resume(self, execution_id: str, inputs: Mapping[str, Any] | None = None) -> None:
        if await self._sent_elsewhere("resume", execution_id, {"inputs": dict(inputs or {})}):
            return
        flow, execution = await self.require(execution_id)
        if execution.state.current is not StateType.PAUSED:
            raise EngineCommandError(f"Execution {execution_id} is {execution.state.current}, not PAUSED")
        outputs = None
        for run in execution.task_runs:
            if run.state.current is StateType.PAUSED:
                specs = flow.tasks_by_id[run.task_id].props.get("onResume") or ()
                if specs:
                    outputs = resolve_inputs(specs, inputs or {})
                    outputs = {key: input_json_value(value) for key, value in outputs.items()}
                    for spec in specs:  # a FILE goes into the execution's storage, as a flow input's
                        if spec.type == "FILE" and outputs.get(spec.id) is not None:
                            outputs[spec.id] = self.store_input_file(
                                flow, execution_id, spec.id, str(outputs[spec.id]), local_files=True
                            )
        await self.loop.apply(ResumeExecution(execution_id, outputs))

    async def restart(self, execution_id: str) -> None:
        # Two restarts at once (the dashboard and a command): the second is refused before either
        # reads the store, however long the reads take.
        if execution_id in self._restarting:
            raise EngineCommandError(f"Execution {execution_id} is already restarting")
        self._restarting.add(execution_id)
        try:
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
            if self.loop.live(execution_id):
                raise EngineCommandError(f"Execution {execution_id} is already restarting")
            self.loop.adopt(flow, execution)
        finally:
            self._restarting.discard(execution_id)
        await self.loop.apply(RestartExecution(execution_id))

    async def replay(self, execution_id: str, task_run_id: str | None, revision: int | None) -> str:
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

    async def _sent_elsewhere(self, command: str, execution_id: str, args: dict[str, Any]) -> bool:
        if self.elsewhere is None or self.loop.live(execution_id) is not None:
            return False
        return await self.elsewhere(command, execution_id, args)

    async def require(self, execution_id: str) -> tuple[Flow, Execution]:
        """A live execution with its flow; EngineCommandError says why there is none."""
        live = self.loop.live(execution_id)
        if live is None:
            stored = await self.store.get_execution(execution_id)
            if stored is None:
                raise EngineCommandError(f"No execution {execution_id}")
            raise EngineCommandError(f"Execution {execution_id} is {stored.state.current}")
        return live

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
