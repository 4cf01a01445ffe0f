"""The Engine facade: flows in, executions out; commands, queries and events.

One loop owns every live execution. Commands and task results arrive as messages; each batch of
messages is applied through the executor, the resulting changes are committed in one group of
transactions, and only then are events published and new work dispatched. So a task's success is
durable before its dependants start, and a restarted engine finds every execution where it was.

After a crash, the next engine first kills the task programs the crashed one left running (they are
recorded in the store while they run), then carries on: a task that was running runs again as a new
attempt, or fails with "engine stopped while the task was running" when the flow's label
`tiercel.notIdempotent: "task_a,task_b"` (or `"*"`) names it; a task run never gets more than
maxAttempt + 1 attempts (see engine.recovery).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .commands import BackfillAction, Commands, EngineCommandError, answer
from .control import ControlServer
from .events import EngineError, EventBus, ExecutionChanged, FlowsChanged, LogsAppended, TaskRunChanged
from .executor.concurrency import Admission, ConcurrencySlots, limit_of
from .executor.decisions import Executor, WorkerResult
from .executor.recovery import INTERRUPTED_MESSAGE, rerun, runs_again
from .executor.replay import ReplayError, replayed
from .executor.variables import build_context
from .executor.variables import release as release_context
from .executor.working_copy import Outcome
from .expressions import ExpressionError, Renderer
from .flows.catalog import NAMESPACE_FILES_FOLDER, FlowCatalog
from .flows.table import FlowTable
from .flows.watcher import FlowWatcher
from .inputs import InputError, input_json_value, resolve_inputs
from .internal_storage import Storage, StorageError, safe_relative
from .memory import LARGE_EXECUTION_RUNS, give_back
from .model import (
    Execution,
    ExecutionSummary,
    Flow,
    Label,
    LogEntry,
    LogLevel,
    State,
    StateType,
    TaskRun,
    new_id,
    utcnow,
)
from .parser import FlowError, FlowParseError, parse_flow
from .secrets import Masker, SecretError, Secrets
from .store import Store
from .tasks.core import labels_of
from .tasks.registry import Registry, registry
from .tasks.types import Kind
from .triggers.flow import FlowTriggers
from .triggers.schedule import Clock, Scheduler, TriggerState
from .worker.process import kill_leftovers, prefer_pidfd_child_watcher
from .worker.runner import Runner, attempt_token_prefix

LOG_FLUSH_SECONDS = 0.05
# A task that logs faster than the store writes waits once this many lines (or characters) are
# buffered, so that a task printing gigabytes cannot grow the engine's memory.
LOG_BUFFER_LINES = 10_000
LOG_BUFFER_CHARS = 8 * 1024 * 1024
KILL_GRACE_SECONDS = 5.0
# Older flow revisions kept parsed, for the executions that still run them.
OLD_REVISIONS_CACHED = 256
_log = logging.getLogger(__name__)
# After a failed commit (disk full, I/O error) the same messages are applied again this much later,
# up to MAX_SAVE_FAILURES failures in a row; then the execution fails (see `_save_failed`).
SAVE_RETRY_SECONDS = 1.0
MAX_SAVE_FAILURES = 3
# An executor step longer than this is followed by a rest as long as the step (capped), during which
# the execution's messages wait and the others' go first (see `Engine._rest`).
HEAVY_STEP_SECONDS = 0.02
MAX_REST_SECONDS = 2.0
GIVE_BACK_DELAY = 1.0
# How many Subflow calls may nest below a root execution. A flow that calls itself (directly, through
# other flows, or through an expression no check can follow) then fails at this depth instead of
# growing without end. TIERCEL_MAX_SUBFLOW_DEPTH overrides it.
MAX_SUBFLOW_DEPTH = 10


def max_subflow_depth() -> int:
    """How deep Subflow calls may nest: TIERCEL_MAX_SUBFLOW_DEPTH, else MAX_SUBFLOW_DEPTH."""
    text = os.environ.get("TIERCEL_MAX_SUBFLOW_DEPTH", "").strip()
    if not text:
        return MAX_SUBFLOW_DEPTH
    try:
        depth = int(text)
    except ValueError:
        depth = 0
    if depth < 1:
        _log.warning(
            "TIERCEL_MAX_SUBFLOW_DEPTH=%r is not a positive integer: %d is used", text, MAX_SUBFLOW_DEPTH
        )
        return MAX_SUBFLOW_DEPTH
    return depth


def _secrets_file() -> Path | None:
    """TIERCEL_SECRETS_FILE names a KEY=VALUE file of plain secrets (beside SECRET_* variables)."""
    name = os.environ.get("TIERCEL_SECRETS_FILE")
    return Path(name) if name else None


@dataclass(frozen=True)
class _Message:
    execution_id: str
    kind: str  # start | result | wake | kill | resume | restart | link
    payload: Any = None
    # Commands resolve this once their effect is in the store.
    applied: asyncio.Future[None] | None = None


def _closing(run: TaskRun) -> bool:
    """A flowable whose closing work (a WorkingDirectory's output files) runs in the runner."""
    return bool(run.attempts) and not run.attempts[-1].state.current.is_terminated


def namespace_file(flows_dir: Path | None, namespace: str, name: str) -> Path:
    """The path of a namespace file, refusing anything outside the namespace's folder."""
    if flows_dir is None:
        raise StorageError("namespace files need a flows folder")
    folder = flows_dir / NAMESPACE_FILES_FOLDER / namespace
    path = (folder / safe_relative(name)).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise StorageError(f"no namespace file `{name}` in namespace `{namespace}`")
    return path


def _with_descendants(roots: Collection[str], executions: Sequence[Execution]) -> set[str]:
    """`roots` and every execution among `executions` whose chain of parents leads to one of them."""
    children: dict[str, list[str]] = {}
    for execution in executions:
        if execution.parent_id is not None:
            children.setdefault(execution.parent_id, []).append(execution.id)
    found = set(roots)
    waiting = list(roots)
    while waiting:
        for child_id in children.get(waiting.pop(), ()):
            if child_id not in found:
                found.add(child_id)
                waiting.append(child_id)
    return found


def _grouped(batch: list[_Message]) -> list[tuple[str, list[_Message]]]:
    """Consecutive task results of one execution go together (one executor step for all);
    any other message is a group of its own. Order per execution is kept.

    Every step advances its execution as far as it goes, so a wake is dropped when the batch holds
    another message for the same execution (a large fan-out then takes one step per batch, not two).
    """
    groups: list[tuple[str, list[_Message]]] = []
    last_result: dict[str, list[_Message]] = {}
    stepped = {message.execution_id for message in batch if message.kind != "wake"}
    for message in batch:
        key = message.execution_id
        if message.kind == "wake":
            if key in stepped:
                continue
            stepped.add(key)
        if message.kind == "result" and key in last_result:
            last_result[key].append(message)
            continue
        group = [message]
        groups.append((key, group))
        if message.kind == "result":
            last_result[key] = group
        else:
            last_result.pop(key, None)
    return groups


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
        self.max_subflow_depth = subflow_depth or max_subflow_depth()
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
        self.slots = ConcurrencySlots()
        self.watcher: FlowWatcher | None = None
        self.executor = Executor(self.registry, self.renderer, functions=self._functions)
        self.runner = Runner(
            self.registry,
            self.renderer,
            on_result=self._on_result,
            on_log=self._on_log,
            context_extra=lambda execution: self._functions(execution, []),
            store=store,
            storage=self.storage,
            namespace_files=flows_dir / NAMESPACE_FILES_FOLDER if flows_dir else None,
            kill_grace=kill_grace,
            drain=self._drain_logs,
            flush_logs=self._flush_logs,
        )
        self._inbox: asyncio.Queue[_Message] = asyncio.Queue()
        self._live: dict[str, tuple[Flow, Execution]] = {}
        self._persisted: dict[str, Execution] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._waiters: dict[str, list[asyncio.Future[Execution]]] = {}
        self._subflow_parents: dict[str, tuple[str, str]] = {}
        self._errors: dict[str, list[LogEntry]] = {}
        self._log_buffer: list[LogEntry] = []
        self._log_buffer_chars = 0
        self._log_lock = asyncio.Lock()
        self._revisions: dict[tuple[str, str, int], Flow] = {}
        # SECRET inputs are stored masked; their values live here while the execution runs.
        self._secret_inputs: dict[str, dict[str, Any]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._control: ControlServer | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Failed saves in a row per execution, and executions failed for it whose end is not stored yet.
        self._save_failures: dict[str, int] = {}
        self._unsaved: dict[str, Execution] = {}
        # Executions whose last step was long, with the messages held back meanwhile (see `_rest`).
        self._resting: dict[str, list[_Message]] = {}
        self._rest_timers: dict[str, asyncio.TimerHandle] = {}
        self.flow_triggers = FlowTriggers(self)
        self.scheduler = Scheduler(self, clock)

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
        self._loop_task = asyncio.create_task(self._loop(), name="tiercel-executor")
        self._flush_task = asyncio.create_task(self._flush_logs_forever(), name="tiercel-logs")
        await self._kill_leftover_processes()
        await self._recover(recover)
        if control:
            self._control = ControlServer(self.store.path, self._on_control)
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
        steps += [self.runner.stop, self._stop_loops, self._flush_logs]
        for step in steps:
            try:
                await step()
            except Exception as error:  # each part must get its chance to stop
                _log.error("while stopping the engine: %s: %s", type(error).__name__, error)
        await self.store.close()

    async def _stop_loops(self) -> None:
        for task in (self._loop_task, self._flush_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for timer in [*self._timers.values(), *self._rest_timers.values()]:
            timer.cancel()

    async def _kill_leftover_processes(self) -> None:
        """Kill the task programs a previous engine on this database left running, then forget them."""
        recorded = await self.store.recorded_processes()
        if recorded:
            await kill_leftovers(recorded)
            await self.store.forget_processes(recorded)

    async def _recover(self, only: Collection[str] | None = None) -> None:
        """Carry on with executions a previous engine left unfinished.

        Policy (engine.recovery): a runnable task that was running when the engine stopped runs again
        as a new attempt, or fails with "engine stopped while the task was running" when its flow marks
        it not idempotent or it has used its attempts (its retry policy then applies); a subflow task
        waits for its child again; everything else resumes where the store says it was.
        """
        waiting_on: list[tuple[str, TaskRun]] = []
        starts: list[tuple[Flow, Execution, TaskRun]] = []
        posts: list[_Message] = []
        attempts_cut: list[str] = []
        unfinished = await self.store.unfinished_executions()
        if only is not None:
            # With the subflow executions below them: a parent waits for its children, and a kill
            # must reach them (`tiercel kill` with no engine running).
            only = _with_descendants(only, unfinished)
        for execution in unfinished:
            if only is not None and execution.id not in only:
                continue
            flow = await self.flow_revision(execution.namespace, execution.flow_id, execution.flow_revision)
            if flow is None:
                failed = execution.to(StateType.FAILED)
                entry = self._entry(execution, None, "the flow revision of this execution cannot be loaded")
                await self.store.save_execution(failed, (), [entry])
                continue
            again = []
            notes = []
            for run in execution.task_runs:
                if not run.state.current.is_running:
                    continue
                task_type = self.registry.lookup(flow.tasks_by_id[run.task_id].type)
                kind = task_type.kind if task_type else Kind.RUNNABLE
                if kind is Kind.SUBFLOW and run.child_execution_id:
                    waiting_on.append((execution.id, run))
                elif kind is not Kind.FLOWABLE or _closing(run):
                    notes.append(self._entry(execution, run, INTERRUPTED_MESSAGE))
                    attempts_cut.append(attempt_token_prefix(run.id, len(run.attempts) - 1))
                    if kind is not Kind.SUBFLOW and runs_again(flow, execution, run):
                        again.append(rerun(run, utcnow()))
                    else:
                        posts.append(_Message(execution.id, "result", WorkerResult(run.id, StateType.FAILED)))
            if notes:
                # Stored with the new attempts, before they start and before the failures are decided:
                # an engine killed again at once must not lose the reason.
                execution = execution.with_task_runs(again)
                await self.store.save_execution(execution, again, notes)
            self._live[execution.id] = (flow, execution)
            self._persisted[execution.id] = execution
            for note in notes:
                self._remember_error(note)
            if notes:
                self.events.publish(LogsAppended(tuple(notes)))
            if execution.state.current is StateType.QUEUED:
                self.slots.waiting(flow, execution.id)
            elif execution.state.current is not StateType.CREATED:
                self.slots.holding(flow, execution.id)
            starts.extend((flow, execution, run) for run in again)
            posts.append(_Message(execution.id, "wake"))
        # A program started just before the crash may not be recorded yet: its token names its attempt.
        await kill_leftovers((), token_prefixes=attempts_cut)
        for flow, execution, run in starts:
            self.runner.start(flow, execution, run)
        for message in posts:
            self._post(message)
        # Slots freed while no engine ran go to the queued executions now.
        queued_flows = {
            flow.uid: flow for flow, e in self._live.values() if e.state.current is StateType.QUEUED
        }
        for flow in queued_flows.values():
            for queued_id in self.slots.fill(flow):
                self._post(_Message(queued_id, "start"))
        for parent_id, run in waiting_on:
            child_id = run.child_execution_id or ""
            self._subflow_parents[child_id] = (parent_id, run.id)
            if child_id not in self._live:
                child = await self.store.get_execution(child_id)
                if child is not None and child.state.current.is_terminated:
                    self._subflow_parents.pop(child_id, None)
                    self._spawn(self._subflow_ended((parent_id, run.id), child))

    # -- flows ------------------------------------------------------------------------------
    @property
    def flows(self) -> FlowTable:
        """The current revision of every flow, by (namespace, flow id), each parsed on first use."""
        return self.catalog.flows

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

    async def flow_revisions(self, namespace: str, flow_id: str) -> list[tuple[int, str, datetime]]:
        """Every stored revision of a flow, oldest first, as (revision, source, created)."""
        return await self.store.flow_revisions(namespace, flow_id)

    async def flow_revision(self, namespace: str, flow_id: str, revision: int) -> Flow | None:
        """A given revision of a flow, parsed from the store (cached)."""
        current = self.flows.get((namespace, flow_id))
        if current is not None and current.revision == revision:
            return current
        key = (namespace, flow_id, revision)
        cached = self._revisions.pop(key, None)
        if cached is None:
            found = await self.store.flow_source(namespace, flow_id, revision)
            if found is None:
                return None
            try:
                parsed = parse_flow(found[1], defaults=self.catalog.namespaces.plugin_defaults)
            except FlowParseError:
                return None
            cached = parsed.with_revision(found[0])
        self._revisions[key] = cached  # most recently used last; the oldest go past the limit
        while len(self._revisions) > OLD_REVISIONS_CACHED:
            del self._revisions[next(iter(self._revisions))]
        return cached

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

    async def submit(
        self, flow: Flow, execution: Execution, *, also: Callable[[sqlite3.Connection], None] | None = None
    ) -> str:
        """Persist a CREATED execution (with `also` in the same transaction) and start it.

        When `also` raises (a trigger date that already fired), nothing is stored or started and the
        exception propagates.
        """
        await self.store.save_execution(execution, execution.task_runs, also=also)
        self._persisted[execution.id] = execution
        self._live[execution.id] = (flow, execution)
        self.events.publish(ExecutionChanged(execution))
        self._post(_Message(execution.id, "start"))
        return execution.id

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
        """Validate inputs and build a CREATED execution (raises InputError).

        A FILE input may name a local file only when `local_files` is set (see `trigger`).
        """
        execution_id = new_id()
        stub = Execution(execution_id, flow.namespace, flow.id, flow.revision, State.new())

        def render_default(value: Any) -> Any:
            return self.renderer.render_value(value, build_context(flow, stub))

        typed = resolve_inputs(flow.inputs, inputs, render=render_default)
        stored = {key: input_json_value(value) for key, value in typed.items()}
        secret_values: dict[str, Any] = {}
        try:
            for spec in flow.inputs:
                value = stored.get(spec.id)
                if value is None:
                    continue
                if spec.type == "FILE":
                    stored[spec.id] = self._store_input_file(
                        flow, execution_id, spec.id, str(value), local_files=local_files, trigger=trigger
                    )
                elif spec.type == "SECRET":
                    # Held for this execution only: released when it ends (see _notify).
                    self.masker.add(str(value), owner=execution_id)
                    secret_values[spec.id] = value
                    stored[spec.id] = self.masker.mask(str(value))
        except BaseException:
            self.masker.release(execution_id)
            raise
        if secret_values:
            self._secret_inputs[execution_id] = secret_values
        merged = {label.key: label.value for label in flow.labels}
        merged.update({label.key: label.value for label in labels})
        return Execution(
            id=execution_id,
            namespace=flow.namespace,
            flow_id=flow.id,
            flow_revision=flow.revision,
            state=State.new(),
            inputs=stored,
            labels=tuple(Label(k, v) for k, v in merged.items()),
            parent_id=parent_id,
            trigger=trigger,
        )

    def _store_input_file(
        self,
        flow: Flow,
        execution_id: str,
        input_id: str,
        value: str,
        *,
        local_files: bool = False,
        trigger: Mapping[str, Any] | None = None,
    ) -> str:
        """A FILE input given as a local path is copied into the storage; a kestra:// URI stays."""
        if value.startswith("kestra://"):
            try:  # only a file this execution may read (see Storage.check_readable)
                self.storage.check_readable(value, flow.namespace, trigger)
                found = self.storage.exists(value)
            except StorageError as error:
                raise InputError([f"Invalid value for input `{input_id}`. Cause: {error}"]) from None
            if not found:
                raise InputError([f"Invalid value for input `{input_id}`. Cause: no file at {value}"])
            return value
        if not local_files:
            # A trigger's values come from outside (a webhook body): a path would copy any file the
            # engine can read into the execution.
            raise InputError(
                [
                    f"Invalid value for input `{input_id}`. Cause: a local file path is only accepted from "
                    "`tiercel run` or the dashboard's run form; a trigger must pass a kestra:// URI"
                ]
            )
        source = Path(value).expanduser()
        if not source.is_file():
            raise InputError([f"Invalid value for input `{input_id}`. Cause: no such file {value}"])
        base = self.storage.input_uri(flow.namespace, flow.id, execution_id, input_id)
        return self.storage.put_file(base, source.name, source)

    async def kill(self, execution_id: str) -> None:
        """Kill an execution and every subflow execution it waits for, however deep the tree.

        The kills are posted together and applied in one batch: a tree of thousands of executions is
        walked with a queue, not with a call per level.
        """
        await self._require(execution_id)
        waits_for: dict[str, list[str]] = {}
        for child_id, (parent_id, _) in self._subflow_parents.items():
            waits_for.setdefault(parent_id, []).append(child_id)
        tree = [execution_id]
        seen = {execution_id}
        for current in tree:  # breadth first; the list grows while it is walked
            for child_id in waits_for.get(current, ()):
                if child_id not in seen:
                    seen.add(child_id)
                    tree.append(child_id)
        loop = asyncio.get_running_loop()
        applied = []
        for target in tree:
            if target in self._live:  # a descendant may have ended meanwhile
                future: asyncio.Future[None] = loop.create_future()
                self._post(_Message(target, "kill", applied=future))
                applied.append(future)
        await asyncio.gather(*applied)

    async def resume(self, execution_id: str, inputs: Mapping[str, Any] | None = None) -> None:
        execution = await self._require(execution_id)
        if execution.state.current is not StateType.PAUSED:
            raise EngineCommandError(f"Execution {execution_id} is {execution.state.current}, not PAUSED")
        flow, _ = self._live[execution_id]
        outputs = None
        for run in execution.task_runs:
            if run.state.current is StateType.PAUSED:
                specs = flow.tasks_by_id[run.task_id].props.get("onResume") or ()
                if specs:
                    outputs = resolve_inputs(specs, inputs or {})
                    outputs = {key: input_json_value(value) for key, value in outputs.items()}
        await self._apply_command(_Message(execution_id, "resume", outputs))

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
        if execution_id in self._live:  # restarted meanwhile (the dashboard and a command at once)
            raise EngineCommandError(f"Execution {execution_id} is already restarting")
        self._live[execution_id] = (flow, execution)
        self._persisted[execution_id] = execution
        await self._apply_command(_Message(execution_id, "restart"))

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
        if execution_id in self._live or not execution.state.current.is_terminated:
            raise EngineCommandError(
                f"Execution {execution_id} is {execution.state.current}: only ended executions change status"
            )
        if execution.state.current is state:
            return
        changed = execution.to(state)
        note = f"Status changed by hand from {execution.state.current} to {state}"
        await self.store.save_execution(changed, (), [self._entry(execution, None, note, LogLevel.INFO)])
        self.events.publish(ExecutionChanged(changed))

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

    async def _require(self, execution_id: str) -> Execution:
        live = self._live.get(execution_id)
        if live is None:
            stored = await self.store.get_execution(execution_id)
            if stored is None:
                raise EngineCommandError(f"No execution {execution_id}")
            raise EngineCommandError(f"Execution {execution_id} is {stored.state.current}")
        return live[1]

    async def _command(self, execution_id: str, kind: str) -> None:
        await self._require(execution_id)
        await self._apply_command(_Message(execution_id, kind))

    async def _apply_command(self, message: _Message) -> None:
        """Post a command and return once the loop has applied and stored it."""
        applied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._post(dataclasses.replace(message, applied=applied))
        await applied

    async def wait(self, execution_id: str, *, until_paused: bool = False) -> Execution:
        """Wait for an execution to end (or to pause with nothing scheduled, when asked)."""
        while True:
            # Only stored states are reported: the loop's working copy may be ahead of the store.
            current = self._persisted.get(execution_id)
            if execution_id not in self._live or current is None:
                stored = self._unsaved.get(execution_id) or await self.store.get_execution(execution_id)
                if stored is None:
                    raise EngineCommandError(f"No execution {execution_id}")
                if stored.state.current.is_terminated or execution_id not in self._live:
                    return stored
                current = stored
            if until_paused and self._idle_paused(current):
                return current
            future: asyncio.Future[Execution] = asyncio.get_running_loop().create_future()
            waiters = self._waiters.setdefault(execution_id, [])
            waiters.append(future)
            try:
                await future
            finally:  # a waiter that gave up (a timeout, a client gone) leaves nothing behind
                if future in waiters:
                    waiters.remove(future)

    def _idle_paused(self, execution: Execution) -> bool:
        """Paused with nothing left to happen by itself: no timer, no task or subflow running."""
        if execution.state.current is not StateType.PAUSED or execution.id in self._timers:
            return False
        if any(self.runner.is_running(run.id) for run in execution.task_runs):
            return False
        return not any(parent == execution.id for parent, _ in self._subflow_parents.values())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine beside the loop, keeping a reference until it ends."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- the loop -------------------------------------------------------------------------------
    def _post(self, message: _Message) -> None:
        self._inbox.put_nowait(message)

    def _on_result(self, execution_id: str, result: WorkerResult) -> None:
        # Outputs keep their real values (later tasks read them, as in Kestra); what shows them masks.
        self._post(_Message(execution_id, "result", result))

    async def _loop(self) -> None:
        while True:
            batch = [await self._inbox.get()]
            while not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            try:
                await self._process(batch)
            except Exception as error:  # the loop must survive anything one execution does
                self.events.publish(EngineError(f"{type(error).__name__}: {error}"))
                import traceback

                traceback.print_exc()

    async def _process(self, batch: list[_Message]) -> None:
        try:
            await self._process_batch(batch)
        finally:
            resting = {id(message) for messages in self._resting.values() for message in messages}
            for message in batch:
                if message.applied is not None and not message.applied.done() and id(message) not in resting:
                    message.applied.set_result(None)

    async def _process_batch(self, batch: list[_Message]) -> None:
        outcomes: dict[str, list[Outcome]] = {}
        handled: dict[str, list[_Message]] = {}
        heavy: dict[str, float] = {}  # executions whose step was long, with when it began
        for execution_id, messages in _grouped(batch):
            live = self._live.get(execution_id)
            if live is None:
                continue
            resting = self._resting.get(execution_id)
            if resting is not None:
                resting.extend(messages)
                continue
            flow, execution = live
            began = time.perf_counter()
            try:
                outcome = self._apply(flow, execution, messages)
            except Exception as error:  # one broken execution must not hold up the others
                message = f"Internal error, the execution cannot go on: {type(error).__name__}: {error}"
                outcome = self.executor.crash(flow, execution, utcnow(), message)
                self.events.publish(EngineError(message, execution_id))
            if time.perf_counter() - began >= HEAVY_STEP_SECONDS:
                heavy.setdefault(execution_id, began)
            self._live[execution_id] = (flow, outcome.execution)
            outcomes.setdefault(execution_id, []).append(outcome)
            handled.setdefault(execution_id, []).extend(messages)
        saves = []
        for execution_id, steps in outcomes.items():
            execution = steps[-1].execution
            before = self._persisted.get(execution_id)
            known = before.task_runs_by_id if before else {}
            changed = [run for run in execution.task_runs if known.get(run.id) is not run]
            removed = [run_id for run_id in known if run_id not in execution.task_runs_by_id]
            logs = [self._masked(entry) for step in steps for entry in step.logs]
            for entry in logs:
                self._remember_error(entry)
            if before is execution and not logs:
                continue
            saves.append((execution, changed, logs, removed))
        results = await asyncio.gather(
            *(self.store.save_execution(e, c, lg, removed=r) for e, c, lg, r in saves), return_exceptions=True
        )
        for (execution, changed, logs, _), result in zip(saves, results, strict=True):
            if isinstance(result, Exception):
                outcomes.pop(execution.id, None)
                self._save_failed(execution.id, result, handled.get(execution.id, []))
                continue
            self._save_failures.pop(execution.id, None)
            self._persisted[execution.id] = execution
            for run in changed:
                self.events.publish(TaskRunChanged(execution.id, run))
            self.events.publish(ExecutionChanged(execution))
            if logs:
                self.events.publish(LogsAppended(tuple(logs)))
        for execution_id, steps in outcomes.items():
            flow, execution = self._live[execution_id]
            for step in steps:
                for run in step.cancel:
                    self.runner.cancel(run.id)
                for run in step.dispatch:
                    self.runner.start(flow, execution, execution.task_run(run.id))
                for run in step.subflows:
                    self._spawn(self._launch_subflow(flow, execution, execution.task_run(run.id)))
            self._schedule(execution_id, steps[-1].wake_at)
            if steps[-1].more and not execution.state.current.is_terminated:
                # A large fan-out goes on in the next batch, behind what others have queued meanwhile.
                self._post(_Message(execution_id, "wake"))
            self._notify(execution)
        for execution_id, began in heavy.items():
            if execution_id in self._live:
                self._rest(execution_id, time.perf_counter() - began)

    def _apply(self, flow: Flow, execution: Execution, messages: list[_Message]) -> Outcome:
        now = utcnow()
        executor = self.executor
        message = messages[0]
        if message.kind in ("start", "wake") and execution.state.current in (
            StateType.CREATED,
            StateType.QUEUED,
        ):
            held = self._held_back(flow, execution, now)
            if held is not None:
                return held
        if message.kind == "result":
            return executor.apply_results(flow, execution, [m.payload for m in messages], now)
        if message.kind == "kill":
            return executor.kill(flow, execution, now)
        if message.kind == "resume":
            return executor.resume(flow, execution, now, message.payload)
        if message.kind == "restart":
            return executor.restart(flow, execution, now)
        if message.kind == "link":
            return executor.link_subflow(flow, execution, now, *message.payload)
        return executor.advance(flow, execution, now)

    def _held_back(self, flow: Flow, execution: Execution, now: datetime) -> Outcome | None:
        """Apply the flow's concurrency limit to an execution about to start; None lets it start."""
        admission = self.slots.admit(flow, execution.id)
        if admission is Admission.RUN:
            return None
        if admission is Admission.QUEUE:
            queued = (
                execution
                if execution.state.current is StateType.QUEUED
                else execution.to(StateType.QUEUED, now)
            )
            return Outcome(queued)
        limit = limit_of(flow)
        if admission is Admission.CANCEL:
            message = f"Cancelled: the flow's concurrency limit ({limit}) is reached"
            return Outcome(
                execution.to(StateType.CANCELLED, now),
                logs=[self._entry(execution, None, message, LogLevel.WARN)],
            )
        message = f"Failed: the flow's concurrency limit ({limit}) is reached"
        return Outcome(execution.to(StateType.FAILED, now), logs=[self._entry(execution, None, message)])

    def _rest(self, execution_id: str, seconds: float) -> None:
        """Hold an execution's next messages back for as long as its last step took (with its save).

        A step costs time in proportion to the execution's task runs (a ForEach over 100,000 values);
        resting that long after it leaves every other execution at least half of the loop, so their
        tasks and webhooks are answered while the large one goes on.
        """
        self._resting[execution_id] = []
        self._rest_timers[execution_id] = asyncio.get_running_loop().call_later(
            min(seconds, MAX_REST_SECONDS), self._rested, execution_id
        )

    def _rested(self, execution_id: str) -> None:
        self._rest_timers.pop(execution_id, None)
        for message in self._resting.pop(execution_id, []):
            self._post(message)

    def _schedule(self, execution_id: str, wake_at: Any) -> None:
        timer = self._timers.pop(execution_id, None)
        if timer is not None:
            timer.cancel()
        if wake_at is None or execution_id not in self._live:
            return
        delay = max((wake_at - utcnow()).total_seconds(), 0)
        loop = asyncio.get_running_loop()
        self._timers[execution_id] = loop.call_later(delay, self._wake, execution_id)

    def _save_failed(self, execution_id: str, error: BaseException, messages: list[_Message]) -> None:
        """A step of an execution could not be committed (disk full, I/O error): nothing of it happened.

        Policy: the execution goes back to its stored state and the same messages are applied again
        SAVE_RETRY_SECONDS later; after MAX_SAVE_FAILURES failures in a row it fails instead of
        retrying forever. Its running tasks are stopped, and its FAILED state and the storage error
        are announced at once (the dashboard shows them) and stored as soon as the store accepts
        writes again; until then `execution` and `wait` report them from memory.
        """
        flow, _ = self._live[execution_id]
        persisted = self._persisted[execution_id]
        self._live[execution_id] = (flow, persisted)
        failures = self._save_failures.get(execution_id, 0) + 1
        if failures < MAX_SAVE_FAILURES:
            self._save_failures[execution_id] = failures
            note = f"Could not save execution (attempt {failures} of {MAX_SAVE_FAILURES}): {error}"
            self.events.publish(EngineError(note, execution_id))
            asyncio.get_running_loop().call_later(SAVE_RETRY_SECONDS, self._repost, messages)
            return
        self._save_failures.pop(execution_id, None)
        message = (
            f"Storage error: the execution's state could not be saved {failures} times in a row ({error}); "
            "the execution failed. Free space (or fix the disk), then restart it"
        )
        outcome = self.executor.crash(flow, persisted, utcnow(), message)
        failed = outcome.execution
        for run in outcome.cancel:
            self.runner.cancel(run.id)
        known = persisted.task_runs_by_id
        changed = [run for run in failed.task_runs if known.get(run.id) is not run]
        logs = [self._masked(entry) for entry in outcome.logs]
        self._unsaved[execution_id] = failed
        self._live[execution_id] = (flow, failed)
        self._schedule(execution_id, None)
        self.events.publish(EngineError(message, execution_id))
        for run in changed:
            self.events.publish(TaskRunChanged(execution_id, run))
        self.events.publish(ExecutionChanged(failed))
        if logs:
            self.events.publish(LogsAppended(tuple(logs)))
        self._notify(failed)
        self._spawn(self._store_failure(failed, changed, logs))

    async def _store_failure(self, failed: Execution, changed: list[TaskRun], logs: list[LogEntry]) -> None:
        """Store an execution failed by `_save_failed` once the store takes writes again."""
        while True:
            try:
                await self.store.save_execution(failed, changed, logs)
            except Exception:
                if self._loop_task is None or self._loop_task.done():
                    return  # the engine stopped: a restart finds the execution unfinished and fails it
                await asyncio.sleep(SAVE_RETRY_SECONDS)
                continue
            self._unsaved.pop(failed.id, None)
            return

    def _repost(self, messages: list[_Message]) -> None:
        for message in messages:
            self._post(message)

    def _wake(self, execution_id: str) -> None:
        self._timers.pop(execution_id, None)
        self._post(_Message(execution_id, "wake"))

    def _notify(self, execution: Execution) -> None:
        ended = execution.state.current.is_terminated
        if ended:
            live = self._live.get(execution.id)
            if live is not None:
                for queued_id in self.slots.release(live[0], execution.id):
                    self._post(_Message(queued_id, "start"))
            self._live.pop(execution.id, None)
            self._persisted.pop(execution.id, None)
            self._errors.pop(execution.id, None)
            self._secret_inputs.pop(execution.id, None)
            self.masker.release(execution.id)
            release_context(execution.id)
            if len(execution.task_runs) >= LARGE_EXECUTION_RUNS:
                # Once this step's references are gone too: the loop then holds none of it.
                asyncio.get_running_loop().call_later(GIVE_BACK_DELAY, give_back)
            parent = self._subflow_parents.pop(execution.id, None)
            if parent is not None:
                self._spawn(self._subflow_ended(parent, execution))
        if ended or self._idle_paused(execution):
            for future in self._waiters.pop(execution.id, []):
                if not future.done():
                    future.set_result(execution)

    # -- subflows -----------------------------------------------------------------------------
    async def _launch_subflow(self, flow: Flow, parent: Execution, run: TaskRun) -> None:
        task = flow.tasks_by_id[run.task_id]
        try:
            props = self.renderer.render_value(
                {k: v for k, v in task.props.items() if k != "outputs"},
                build_context(flow, parent, task, run, extra=self._functions(parent, [])),
            )
            namespace, flow_id = str(props["namespace"]), str(props["flowId"])
            chain = await self._subflow_chain(parent)
            if len(chain) > self.max_subflow_depth:
                calls = " -> ".join([*chain, f"{namespace}.{flow_id}"])
                raise EngineCommandError(
                    f"the subflow depth limit ({self.max_subflow_depth}) is reached: {calls}. A flow that "
                    "calls itself, directly or through other flows, never ends; raise the limit with "
                    "TIERCEL_MAX_SUBFLOW_DEPTH if this nesting is intended"
                )
            child_flow = self.flows.get((namespace, flow_id))
            own = {label.key for label in child_flow.labels} if child_flow else set()
            # Kestra: inherited labels give way to the child flow's own; system labels always pass.
            labels = [
                label
                for label in parent.labels
                if label.key.startswith("system.") or (props.get("inheritLabels") and label.key not in own)
            ]
            if props.get("labels"):
                labels.extend(labels_of(props["labels"]))
            if "system.correlationId" not in parent.labels_map():
                labels.append(Label("system.correlationId", parent.id))
            trigger = {
                "id": task.id,
                "type": task.type,
                "variables": {
                    "executionId": parent.id,
                    "namespace": parent.namespace,
                    "flowId": parent.flow_id,
                    "flowRevision": parent.flow_revision,
                    "taskRunId": run.id,
                    "taskId": task.id,
                    **({"taskRunValue": run.value} if run.value is not None else {}),
                    **({"taskRunIteration": run.iteration} if run.iteration is not None else {}),
                },
                "parent": {"taskrun": {"id": run.id, "value": run.value}},
            }
            child_id = await self.trigger(
                namespace, flow_id, props.get("inputs") or {}, labels, parent_id=parent.id, trigger=trigger
            )
        except Exception as error:  # whatever it is, the Subflow task must end rather than wait forever
            known = isinstance(error, EngineCommandError | InputError | ExpressionError | KeyError)
            reason = str(error) if known else f"{type(error).__name__}: {error}"
            self._on_log(self._entry(parent, run, f"Unable to start the subflow: {reason}", LogLevel.ERROR))
            self._on_result(parent.id, WorkerResult(run.id, StateType.FAILED))
            return
        self._on_log(self._entry(parent, run, f"Started subflow execution {child_id}", LogLevel.INFO))
        self._post(_Message(parent.id, "link", (run.id, child_id)))
        if props.get("wait", True):
            self._subflow_parents[child_id] = (parent.id, run.id)
            live = self._live.get(parent.id)
            if live is None or live[1].state.current in (StateType.KILLING, StateType.KILLED):
                # Killed while the child was being created: the kill did not see it, so it goes now.
                with contextlib.suppress(EngineCommandError):
                    await self.kill(child_id)
        else:
            self._on_result(parent.id, WorkerResult(run.id, StateType.SUCCESS, {"executionId": child_id}))

    async def _subflow_chain(self, execution: Execution) -> list[str]:
        """The flows from the root execution down to `execution` (at most the depth limit + 1)."""
        chain = [f"{execution.namespace}.{execution.flow_id}"]
        parent_id = execution.parent_id
        while parent_id is not None and len(chain) <= self.max_subflow_depth:
            live = self._live.get(parent_id)
            parent = live[1] if live is not None else await self.execution(parent_id)
            if parent is None:
                break
            chain.append(f"{parent.namespace}.{parent.flow_id}")
            parent_id = parent.parent_id
        return chain[::-1]

    async def _subflow_ended(self, parent: tuple[str, str], child: Execution) -> None:
        try:
            await self._report_subflow(parent, child)
        except Exception as error:  # the parent's Subflow task must end rather than wait forever
            message = (
                f"Could not read the end of subflow execution {child.id}: {type(error).__name__}: {error}"
            )
            parent_id, run_id = parent
            live = self._live.get(parent_id)
            if live is not None:
                self._on_log(self._entry(live[1], live[1].task_run(run_id), message))
            self._on_result(parent_id, WorkerResult(run_id, StateType.FAILED))

    async def _report_subflow(self, parent: tuple[str, str], child: Execution) -> None:
        parent_id, run_id = parent
        live = self._live.get(parent_id)
        if live is None:
            return
        flow, execution = live
        task = flow.tasks_by_id[execution.task_run(run_id).task_id]
        outputs: dict[str, Any] = dict(child.outputs or {})
        state = child.state.current
        legacy = task.props.get("outputs")
        if legacy and not child.outputs:  # Kestra: the child flow's own outputs win
            child_flow = await self.flow_revision(child.namespace, child.flow_id, child.flow_revision)
            try:
                if child_flow is not None:
                    outputs.update(self.renderer.render_value(legacy, build_context(child_flow, child)))
            except ExpressionError as error:
                self._on_log(self._entry(execution, execution.task_run(run_id), str(error), LogLevel.ERROR))
                state = StateType.FAILED
        if state not in (StateType.SUCCESS, StateType.WARNING) and not task.props.get("transmitFailed", True):
            state = StateType.SUCCESS
        result = {"executionId": child.id, "state": child.state.current.value, "outputs": outputs}
        self._on_result(parent_id, WorkerResult(run_id, state, result))

    # -- logs -----------------------------------------------------------------------------------
    def _entry(
        self, execution: Execution, run: TaskRun | None, message: str, level: LogLevel = LogLevel.ERROR
    ) -> LogEntry:
        return LogEntry(
            execution_id=execution.id,
            namespace=execution.namespace,
            flow_id=execution.flow_id,
            timestamp=utcnow(),
            level=level,
            message=message,
            task_id=run.task_id if run else None,
            task_run_id=run.id if run else None,
            attempt=len(run.attempts) - 1 if run and run.attempts else None,
        )

    def _on_log(self, entry: LogEntry) -> None:
        entry = self._masked(entry)
        self._remember_error(entry)
        self._log_buffer.append(entry)
        self._log_buffer_chars += len(entry.message)

    def _masked(self, entry: LogEntry) -> LogEntry:
        """Secret values never reach the store or the screen in clear."""
        if not self.masker:
            return entry
        message = self.masker.mask(entry.message)
        return entry if message == entry.message else dataclasses.replace(entry, message=message)

    def _remember_error(self, entry: LogEntry) -> None:
        if entry.level is LogLevel.ERROR and entry.execution_id in self._live:
            self._errors.setdefault(entry.execution_id, []).append(entry)

    def _functions(self, execution: Execution, pending: list[LogEntry]) -> dict[str, Any]:
        """The expression functions that need the engine: errorLogs() and kv()."""

        def error_logs() -> list[dict[str, Any]]:
            entries = [*self._errors.get(execution.id, ()), *pending]
            return [entry.to_json() for entry in entries if entry.level is LogLevel.ERROR]

        def kv(key: str, namespace: str | None = None, errorOnMissing: bool = True) -> Any:
            space = namespace or execution.namespace
            found, value = self.store.kv_get_now(space, key)
            if not found and errorOnMissing:
                raise ExpressionError(f"The key '{key}' does not exist in the namespace '{space}'.")
            return value

        def secret(name: str) -> str:
            try:
                value = self.secrets.get(str(name))
            except SecretError as error:
                raise ExpressionError(str(error)) from None
            self.masker.add(value)
            return value

        def read(path: str) -> str:
            """A kestra:// file of the internal storage, or a namespace file of this namespace."""
            try:
                if str(path).startswith("kestra://"):
                    self.storage.check_readable(str(path), execution.namespace, execution.trigger)
                    return self.storage.read_text(str(path))
                return namespace_file(self.flows_dir, execution.namespace, str(path)).read_text()
            except (StorageError, OSError) as error:
                raise ExpressionError(f"read(`{path}`): {error}") from None

        functions: dict[str, Any] = {
            "errorLogs": error_logs,
            "kv": kv,
            "secret": secret,
            "read": read,
            "namespace": self.catalog.namespaces.context(execution.namespace),
        }
        clear = self._secret_inputs.get(execution.id)
        if clear:
            functions["inputs"] = {**execution.inputs, **clear}
        return functions

    async def _drain_logs(self) -> None:
        """Back-pressure for tasks that log a lot: wait for the store when the buffer is large."""
        if len(self._log_buffer) >= LOG_BUFFER_LINES or self._log_buffer_chars >= LOG_BUFFER_CHARS:
            await self._flush_logs()

    async def _flush_logs_forever(self) -> None:
        while True:
            await asyncio.sleep(LOG_FLUSH_SECONDS)
            await self._flush_logs()

    async def _flush_logs(self) -> None:
        # One flush at a time: a reader that flushes first (see `logs`) then also waits for lines
        # another flush has announced but not yet stored.
        async with self._log_lock:
            if not self._log_buffer:
                return
            entries, self._log_buffer = self._log_buffer, []
            self._log_buffer_chars = 0
            self.events.publish(LogsAppended(tuple(entries)))
            try:
                await self.store.append_logs(entries)
            except Exception as error:
                self.events.publish(EngineError(f"Could not save {len(entries)} log lines: {error}"))

    async def _on_control(self, request: dict[str, Any]) -> dict[str, Any]:
        """Commands from other processes (tiercel kill, replay, triggers ...) on the control channel."""
        return await answer(self, request)

    # -- queries --------------------------------------------------------------------------------
    async def execution(self, execution_id: str) -> Execution | None:
        """The execution as last stored (the loop's working copy may be a step ahead)."""
        stored = self._persisted.get(execution_id) or self._unsaved.get(execution_id)
        return stored if stored is not None else await self.store.get_execution(execution_id)

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
        await self._flush_logs()
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
        return list(self._live)

    def is_idle(self) -> bool:
        return not self._live and self._inbox.empty()

    def with_flow(self, flow: Flow) -> None:
        """Register a flow parsed elsewhere (tests, one-off files)."""
        self.catalog.flows[flow.uid] = flow
        self.events.publish(FlowsChanged())


__all__ = ["Engine", "EngineCommandError", "FlowParseError", "InputError"]


if TYPE_CHECKING:  # the Engine is the local implementation of the command surface
    _: type[Commands] = Engine
