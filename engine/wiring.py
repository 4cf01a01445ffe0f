"""How the executor and the worker are built and connected around the engine's shared parts.

They share one inbox (the worker's results and the commands go to the executor loop) and the
expression functions (kv, secret, read ...), which the worker's task contexts get too. An execution's
end releases what was held for it: its secret inputs and its cached rendering context. The tasks
that act on other executions and on triggers (execution.Resume, trigger.Toggle) reach the engine's
commands through `TaskCommands`, never the engine itself.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Protocol

from .errors import EngineCommandError
from .evaluation import ExpressionConsole
from .events import EventBus
from .executor.decisions import Executor
from .executor.executions import Executions
from .executor.functions import ExpressionFunctions
from .executor.new_executions import NewExecutions
from .executor.subflows import SubflowHost, max_subflow_depth
from .expressions import Renderer
from .expressions.variables import release as release_context
from .flows.folder import FlowFolder
from .flows.view import FlowsView
from .internal_storage import Storage
from .logs import LogPipeline
from .messages import ExecutorMessage
from .model import Execution, Flow, StateType
from .queue import InProcessQueue, MessageSink, WorkerPool
from .secrets import Masker, Secrets
from .store import Store
from .tasks.namespace_store import namespace_files
from .tasks.registry import Registry
from .worker.runner import LogSink, Runner, WorkerStore

# Builds the engine's worker pool from its parts, its inbox and a builder of its in-process runner
# (given where the runner records its programs): engine.cluster's shared queue.
RunnerBuilder = Callable[[WorkerStore], Runner]
WorkerPoolFactory = Callable[["EngineParts", MessageSink[ExecutorMessage], RunnerBuilder], WorkerPool]


class EngineParts(SubflowHost, Protocol):
    """The engine's shared parts the executor and the worker are built on (the Engine holds them)."""

    store: Store
    flows_dir: Path | None
    registry: Registry
    renderer: Renderer
    secrets: Secrets
    masker: Masker
    storage: Storage
    events: EventBus
    folder: FlowFolder
    log_pipeline: LogPipeline
    new_executions: NewExecutions

    @property
    def flows(self) -> FlowsView: ...

    async def execution(self, execution_id: str) -> Execution | None: ...

    async def flow_revision(self, namespace: str, flow_id: str, revision: int) -> Flow | None: ...

    async def resume(self, execution_id: str, inputs: Mapping[str, Any] | None = None) -> None: ...

    async def set_trigger_enabled(
        self, namespace: str, flow_id: str, trigger_id: str, enabled: bool
    ) -> None: ...


class TaskCommands:
    """The engine's commands as task handlers may use them (the worker's `WorkerCommands`)."""

    def __init__(self, parts: EngineParts) -> None:
        self.parts = parts

    async def execution(self, execution_id: str) -> Execution | None:
        return await self.parts.execution(execution_id)

    async def resume(self, execution_id: str, inputs: Mapping[str, Any] | None = None) -> None:
        """Resume as the user's command does, except that a FILE input takes stored files only (a
        kestra:// URI): a flow never copies a file of the engine's machine in."""
        execution = await self.parts.execution(execution_id)
        if execution is not None and inputs:
            flow = await self.parts.flow_revision(
                execution.namespace, execution.flow_id, execution.flow_revision
            )
            paused = [run.task_id for run in execution.task_runs if run.state.current is StateType.PAUSED]
            for task_id in paused:
                spec = flow.tasks_by_id.get(task_id) if flow is not None else None
                for item in (spec.props.get("onResume") or ()) if spec is not None else ():
                    value = inputs.get(item.id)
                    if item.type == "FILE" and value is not None and not str(value).startswith("kestra://"):
                        raise EngineCommandError(f"Input `{item.id}` is a FILE: give it a kestra:// URI")
        await self.parts.resume(execution_id, inputs)

    def trigger_ids(self, namespace: str, flow_id: str) -> Collection[str] | None:
        flow = self.parts.flows.get((namespace, flow_id))
        return None if flow is None else [trigger.id for trigger in flow.triggers]

    async def set_trigger_enabled(self, namespace: str, flow_id: str, trigger_id: str, enabled: bool) -> None:
        await self.parts.set_trigger_enabled(namespace, flow_id, trigger_id, enabled)


def build_runner(
    parts: EngineParts,
    functions: ExpressionFunctions,
    results: MessageSink[ExecutorMessage],
    kill_grace: float,
    store: WorkerStore | None = None,
    logs: LogSink | None = None,
    results_follow_metrics: bool = False,
) -> Runner:
    """The in-process worker: its results go to `results`, its programs are recorded in `store`,
    its log lines go to `logs` (by default, the engine's log pipeline). With
    `results_follow_metrics`, whatever stores its results writes them through `store`'s own queue."""
    return Runner(
        parts.registry,
        parts.renderer,
        results=results,
        logs=logs or parts.log_pipeline,
        context_extra=lambda execution: functions(execution, []),
        prefetch=functions.prefetch_kv,
        store=store or parts.store,
        storage=parts.storage,
        namespace_files=namespace_files(parts.storage, parts.flows_dir),
        commands=TaskCommands(parts),
        flows=parts.folder.files if parts.flows_dir is not None else None,
        kill_grace=kill_grace,
        results_follow_metrics=results_follow_metrics,
    )


def expression_functions(parts: EngineParts) -> ExpressionFunctions:
    """The expression functions (kv, secret, read ...) of the executor's and the worker's renders."""
    return ExpressionFunctions(
        renderer=parts.renderer,
        registry=parts.registry,
        kv=parts.store,
        secrets=parts.secrets,
        masker=parts.masker,
        storage=parts.storage,
        namespace_files=namespace_files(parts.storage, parts.flows_dir),
        namespaces=parts.folder.catalog.namespaces,
        errors_of=parts.log_pipeline.errors_of,
        clear_inputs=parts.new_executions.clear_inputs,
    )


def expression_console(parts: EngineParts) -> ExpressionConsole:
    """Renders of expressions against stored executions, with the renders' functions and masking."""
    return ExpressionConsole(
        parts.store, parts.flow_revision, parts.renderer, expression_functions(parts), parts.masker
    )


def build_executor_and_worker(
    parts: EngineParts, kill_grace: float, subflow_depth: int | None, workers: WorkerPoolFactory | None = None
) -> tuple[WorkerPool, Executions]:
    """The worker (the in-process runner, or `workers` around it) and the executor component; the
    engine is the subflows' host."""
    functions = expression_functions(parts)
    inbox: InProcessQueue[ExecutorMessage] = InProcessQueue()

    def runner_on(store: WorkerStore) -> Runner:
        # Its results go to the executor in this process, which stores them through the same store.
        return build_runner(parts, functions, inbox, kill_grace, store, results_follow_metrics=True)

    pool: WorkerPool = workers(parts, inbox, runner_on) if workers is not None else runner_on(parts.store)

    def ended(execution: Execution) -> None:
        parts.new_executions.release(execution.id)
        release_context(execution.id)

    executions = Executions(
        store=parts.store,
        executor=Executor(parts.registry, parts.renderer, functions=functions),
        registry=parts.registry,
        events=parts.events,
        inbox=inbox,
        worker=pool,
        logs=parts.log_pipeline,
        functions=functions,
        host=parts,
        store_input_file=parts.new_executions.store_input_file,
        max_subflow_depth=subflow_depth or max_subflow_depth(),
        on_end=ended,
    )
    return pool, executions
