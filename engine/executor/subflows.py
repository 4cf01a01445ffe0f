"""Subflows: a Subflow task run starts a child execution, waits for it, and ends as it ended.

The child is an execution like any other (admitted under its own flow's inputs and limits), with
the parent's system labels (and the others with `inheritLabels`), a correlation id, and a trigger
naming the parent task run. With `wait` (the default) the parent's task run ends when the child does,
with the child's outputs (or the task's legacy `outputs` rendered on the child), FAILED unless the
child succeeded (`transmitFailed: false` makes it SUCCESS). Nesting is limited to
TIERCEL_MAX_SUBFLOW_DEPTH levels below the root, so a flow that calls itself fails instead of
growing without end.

A ForEachItem's `_items` task run (engine.tasks.for_each_item) starts one child per batch the same
way, with `taskrun.items` and `taskrun.iteration` in its inputs, and ends once they all have
(engine.executor.for_each_item counts them, and the task run's `iterations` follow their ends).

A restart of the parent execution runs its failed Subflow (or `_items`) task run again. With
`restartBehavior: RETRY_FAILED` (the default) the child executions it started before are found again,
as Kestra's ExecutableUtils.subflowExecution finds them (the child's trigger names the task run and
its iteration): each failed (or killed) one is restarted in place as a new attempt, the others keep
their results, and a batch without one gets a new execution. With `NEW_EXECUTION` new child
executions are started. An engine restarted while a task run waited follows its children again the
same way, without restarting them (`wait_again`, `follow_again`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from ..errors import EngineCommandError
from ..expressions import ExpressionError, Renderer
from ..expressions.variables import build_context
from ..inputs import InputError
from ..internal_storage import Storage, StorageError
from ..ion import IonError
from ..labels import CORRELATION_ID
from ..logs import log_entry
from ..messages import ExecutorMessage, LinkSubflow, TaskRunResult, WorkerResult
from ..model import (
    Execution,
    ExecutionSummary,
    Flow,
    Label,
    LogEntry,
    LogLevel,
    StateType,
    TaskRun,
    TaskSpec,
)
from ..tasks.core import labels_of
from ..tasks.for_each_item import EXECUTABLE, OUTPUTS_FILE, batch_uris, outputs_line
from .for_each_item import Batches, splits_uri, with_batch

# How many Subflow calls may nest below a root execution. A flow that calls itself (directly, through
# other flows, or through an expression no check can follow) then fails at this depth instead of
# growing without end. TIERCEL_MAX_SUBFLOW_DEPTH overrides it.
MAX_SUBFLOW_DEPTH = 10
# The child executions a RETRY_FAILED restart restarts (the states an execution restarts from).
RESTARTABLE = (StateType.FAILED, StateType.KILLED)
# How many executions a search for the earlier children of a task run reads at once.
_PAGE = 500
_log = logging.getLogger(__name__)


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


def restarted(run: TaskRun) -> bool:
    """Whether a restart of its execution put the task run back to CREATED (not a retry, not a
    first start): it may have started child executions before."""
    return any(history.state is StateType.CREATED for history in run.state.histories[1:])


def retries_failed(task: TaskSpec) -> bool:
    """Kestra's `restartBehavior`: RETRY_FAILED (the default) rather than NEW_EXECUTION."""
    return str(task.props.get("restartBehavior") or "RETRY_FAILED").upper() != "NEW_EXECUTION"


class SubflowHost(Protocol):
    """What starting and following child executions needs from the engine."""

    @property
    def flows(self) -> Mapping[tuple[str, str], Flow]: ...

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
    ) -> str: ...

    async def kill(self, execution_id: str) -> None: ...

    async def restart(self, execution_id: str) -> None: ...

    async def list_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        state: str | Sequence[str] | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[ExecutionSummary]: ...

    async def execution(self, execution_id: str) -> Execution | None: ...

    async def flow_revision(self, namespace: str, flow_id: str, revision: int) -> Flow | None: ...


class LiveExecutions(Protocol):
    """The executor loop as subflows see it."""

    def live(self, execution_id: str) -> tuple[Flow, Execution] | None: ...

    def post(self, message: ExecutorMessage) -> None: ...

    def spawn(self, work: Coroutine[Any, Any, None]) -> None: ...


class Subflows:
    """Launches child executions and reports their ends to the Subflow task runs waiting for them."""

    def __init__(
        self,
        host: SubflowHost,
        loop: LiveExecutions,
        renderer: Renderer,
        *,
        functions: Callable[[Execution, list[LogEntry]], dict[str, Any]],
        prefetch: Callable[[Any, Mapping[str, Any]], Awaitable[None]] | None = None,
        log: Callable[[LogEntry], None],
        max_depth: int,
        storage: Storage | None = None,
    ) -> None:
        self.host = host
        self.loop = loop
        self.renderer = renderer
        self.functions = functions
        self.prefetch = prefetch
        self.log = log
        self.max_depth = max_depth
        self.storage = storage
        # Child execution -> (parent execution, Subflow task run) for the children waited for.
        self._parents: dict[str, tuple[str, str]] = {}
        # ForEachItem `_items` task run -> the children it started and how they ended.
        self._batches: dict[str, Batches] = {}

    # -- what the loop asks -------------------------------------------------------------------
    def launch(self, flow: Flow, parent: Execution, run: TaskRun) -> None:
        """Start the child of a Subflow task run (the children of a ForEachItem's), beside the loop;
        a task run restarted with RETRY_FAILED restarts the children that failed instead."""
        task = flow.tasks_by_id[run.task_id]
        again = restarted(run) and retries_failed(task)
        if task.type == EXECUTABLE:
            self.loop.spawn(self._launch_batches(flow, parent, run, earlier=again, restart=again))
        elif again:
            self.loop.spawn(self._retry_child(flow, parent, run))
        else:
            self.loop.spawn(self._launch(flow, parent, run))

    def waits_for_child(self, execution_id: str) -> bool:
        return any(parent == execution_id for parent, _ in self._parents.values())

    def ended(self, execution: Execution) -> None:
        """An execution ended: when a parent waits for it, report its end there."""
        parent = self._parents.pop(execution.id, None)
        if parent is not None:
            self.loop.spawn(self._child_ended(parent, execution))

    # -- what the engine asks -----------------------------------------------------------------
    def tree(self, execution_id: str) -> list[str]:
        """The execution and every subflow execution below it that is waited for, breadth first."""
        waits_for: dict[str, list[str]] = {}
        for child_id, (parent_id, _) in self._parents.items():
            waits_for.setdefault(parent_id, []).append(child_id)
        tree = [execution_id]
        seen = {execution_id}
        for current in tree:  # the list grows while it is walked
            for child_id in waits_for.get(current, ()):
                if child_id not in seen:
                    seen.add(child_id)
                    tree.append(child_id)
        return tree

    def wait_again(self, parent_id: str, run: TaskRun, child: Execution | None) -> None:
        """After a restart of the engine: a Subflow task run waits for its child again
        (`child` as stored, None when it is not); a child that ended meanwhile is reported now."""
        parent = (parent_id, run.id)
        if child is not None and child.state.current.is_terminated:
            self.loop.spawn(self._child_ended(parent, child))
        else:
            self._parents[run.child_execution_id or ""] = parent

    def follow_again(self, flow: Flow, parent: Execution, run: TaskRun) -> None:
        """After a restart of the engine: a ForEachItem's `_items` task run follows the children it
        started again (those that ended meanwhile are counted now) and starts the batches it had not."""
        self.loop.spawn(self._launch_batches(flow, parent, run, earlier=True, restart=False))

    # -- launching ------------------------------------------------------------------------------
    async def _launch(self, flow: Flow, parent: Execution, run: TaskRun) -> None:
        task = flow.tasks_by_id[run.task_id]
        try:
            props = await self._render(flow, parent, task, run, leave_out=("outputs",))
            await self._check_depth(parent, props)
            child_id = await self._start_child(parent, task, run, props, props.get("inputs") or {})
        except Exception as error:  # whatever it is, the Subflow task must end rather than wait forever
            self._unable_to_start(parent, run, error, "the subflow")
            return
        self.loop.post(LinkSubflow(parent.id, run.id, child_id))
        if props.get("wait", True):
            self._parents[child_id] = (parent.id, run.id)
            if self._killed(parent.id):
                # Killed while the child was being created: the kill did not see it, so it goes now.
                with contextlib.suppress(EngineCommandError):
                    await self.host.kill(child_id)
        else:
            self._report(parent.id, WorkerResult(run.id, StateType.SUCCESS, {"executionId": child_id}))

    async def _retry_child(self, flow: Flow, parent: Execution, run: TaskRun) -> None:
        """A restarted Subflow task run: its failed child restarts, one that ended otherwise is
        reported again, and without a child (or with `wait: false`) a new one starts."""
        task = flow.tasks_by_id[run.task_id]
        child_id = run.child_execution_id or str((run.outputs or {}).get("executionId") or "")
        if not child_id or not task.props.get("wait", True):
            await self._launch(flow, parent, run)
            return
        try:
            followed = await self._follow(parent, run, child_id, restart=True)
        except Exception as error:  # the Subflow task must end rather than wait forever
            self._unable_to_start(parent, run, error, "the subflow")
            return
        if not followed:
            await self._launch(flow, parent, run)

    async def _follow(self, parent: Execution, run: TaskRun, child_id: str, *, restart: bool) -> bool:
        """Wait for a child started before, restarting it first when it failed (and `restart`);
        one that ended is reported at once. False when the child is not found."""
        key = (parent.id, run.id)
        self._parents[child_id] = key  # before reading it: its end, from now on, is heard
        child = await self.host.execution(child_id)
        if child is None:
            self._parents.pop(child_id, None)
            return False
        if restart and child.state.current in RESTARTABLE:
            try:
                await self.host.restart(child_id)
            except Exception:
                self._parents.pop(child_id, None)
                raise
            self.log(log_entry(parent, run, f"Restarted subflow execution {child_id}", LogLevel.INFO))
        elif child.state.current.is_terminated and self._parents.pop(child_id, None) is not None:
            await self._child_ended(key, child)
        if self._killed(parent.id) and child_id in self._parents:
            with contextlib.suppress(EngineCommandError):
                await self.host.kill(child_id)
        return True

    async def _started_before(
        self, parent: Execution, run: TaskRun, props: Mapping[str, Any], wanted: int
    ) -> dict[int, str]:
        """The children a task run started before, by iteration (the newest of each): the executions
        of the subflow whose trigger names the task run, newest first, back to the parent's creation."""
        found: dict[int, str] = {}
        since = parent.state.start_date
        before = None
        while len(found) < wanted:
            page = await self.host.list_executions(
                namespace=str(props["namespace"]), flow_id=str(props["flowId"]), limit=_PAGE, before=before
            )
            for summary in page:
                if summary.start_date is not None and summary.start_date < since:
                    return found  # older than the parent: no child of it is further on
                if summary.parent_id != parent.id:
                    continue
                child = await self.host.execution(summary.id)
                variables = ((child.trigger or {}).get("variables") or {}) if child is not None else {}
                iteration = variables.get("taskRunIteration")
                if variables.get("taskRunId") == run.id and isinstance(iteration, int):
                    found.setdefault(iteration, summary.id)
            if len(page) < _PAGE:
                break
            before = page[-1].cursor
        return found

    async def _launch_batches(
        self, flow: Flow, parent: Execution, run: TaskRun, *, earlier: bool = False, restart: bool = False
    ) -> None:
        """A ForEachItem's `_items` task run: one child per batch of its `_split` sibling. With
        `earlier`, the children it started before are followed (restarted when failed, with
        `restart`) and only the batches without one get a new execution."""
        task = flow.tasks_by_id[run.task_id]
        if self.storage is None:
            self._unable_to_start(parent, run, EngineCommandError("no internal storage"), "the subflows")
            return
        batches = Batches(
            parent.id,
            run.id,
            wait=bool(task.props.get("wait", True)),
            transmit_failed=bool(task.props.get("transmitFailed", True)),
            base_uri=self.storage.task_uri(parent.namespace, parent.flow_id, parent.id, task.id, run.id),
        )
        try:
            props = await self._render(flow, parent, task, run, leave_out=("inputs",))
            listing = splits_uri(parent, run)
            if listing is None:
                raise EngineCommandError("the split task gave no `splits` file")
            uris = batch_uris(self.storage.read_text(listing))
            if not uris:  # Kestra: no batch, no subflow execution, and no outputs
                self._report(parent.id, WorkerResult(run.id, StateType.SUCCESS))
                return
            await self._check_depth(parent, props)
            batches.total = len(uris)
            self._batches[run.id] = batches
            before = await self._started_before(parent, run, props, len(uris)) if earlier else {}
            inputs = task.props.get("inputs") or {}
            context = build_context(flow, parent, task, run, extra=self.functions(parent, []))
            if self.prefetch is not None:
                await self.prefetch(inputs, context)
            for iteration, uri in enumerate(uris):
                if self._killed(parent.id):
                    break  # the batches not started yet never will be
                earlier_id = before.get(iteration)
                if earlier_id and await self._take_up(batches, parent, run, earlier_id, iteration, restart):
                    continue
                rendered = self.renderer.render_value(inputs, with_batch(context, uri, iteration))
                batch_run = dataclasses.replace(run, iteration=iteration)
                child_id = await self._start_child(parent, task, batch_run, props, rendered)
                batches.children[child_id] = iteration
                if batches.wait:
                    self._parents[child_id] = (parent.id, run.id)
                    if self._killed(parent.id):
                        with contextlib.suppress(EngineCommandError):
                            await self.host.kill(child_id)
        except Exception as error:  # the task run must end rather than wait forever
            self._batches.pop(run.id, None)
            for child_id in batches.children:  # started by a task run that failed: they go too
                if self._parents.pop(child_id, None) is not None:
                    with contextlib.suppress(EngineCommandError):
                        await self.host.kill(child_id)
            self._unable_to_start(parent, run, error, "the subflows")
            return
        batches.launched = True
        self._end_batches(batches)

    async def _take_up(
        self, batches: Batches, parent: Execution, run: TaskRun, child_id: str, iteration: int, restart: bool
    ) -> bool:
        """A batch's child started before counts again: followed (restarted when it failed and
        `restart`), or only restarted when the task run does not wait. False when it is gone."""
        batches.children[child_id] = iteration
        if batches.wait:
            if await self._follow(parent, run, child_id, restart=restart):
                return True
            del batches.children[child_id]
            return False
        child = await self.host.execution(child_id)
        if child is None:
            del batches.children[child_id]
            return False
        if restart and child.state.current in RESTARTABLE:
            await self.host.restart(child_id)
            self.log(log_entry(parent, run, f"Restarted subflow execution {child_id}", LogLevel.INFO))
        return True

    async def _render(
        self, flow: Flow, parent: Execution, task: TaskSpec, run: TaskRun, *, leave_out: Sequence[str]
    ) -> dict[str, Any]:
        wanted = {k: v for k, v in task.props.items() if k not in leave_out}
        context = build_context(flow, parent, task, run, extra=self.functions(parent, []))
        if self.prefetch is not None:
            await self.prefetch(wanted, context)
        props: dict[str, Any] = self.renderer.render_value(wanted, context)
        return props

    async def _check_depth(self, parent: Execution, props: Mapping[str, Any]) -> None:
        chain = await self._chain(parent)
        if len(chain) > self.max_depth:
            calls = " -> ".join([*chain, f"{props['namespace']}.{props['flowId']}"])
            raise EngineCommandError(
                f"the subflow depth limit ({self.max_depth}) is reached: {calls}. A flow that "
                "calls itself, directly or through other flows, never ends; raise the limit with "
                "TIERCEL_MAX_SUBFLOW_DEPTH if this nesting is intended"
            )

    async def _start_child(
        self, parent: Execution, task: TaskSpec, run: TaskRun, props: Mapping[str, Any], inputs: Any
    ) -> str:
        namespace, flow_id = str(props["namespace"]), str(props["flowId"])
        child_id = await self.host.trigger(
            namespace,
            flow_id,
            inputs,
            self._labels(parent, props, self.host.flows.get((namespace, flow_id))),
            parent_id=parent.id,
            trigger=_trigger_of(parent, task.id, task.type, run),
        )
        self.log(log_entry(parent, run, f"Started subflow execution {child_id}", LogLevel.INFO))
        return child_id

    def _unable_to_start(self, parent: Execution, run: TaskRun, error: Exception, what: str) -> None:
        known = isinstance(error, EngineCommandError | InputError | ExpressionError | KeyError | StorageError)
        reason = str(error) if known else f"{type(error).__name__}: {error}"
        self.log(log_entry(parent, run, f"Unable to start {what}: {reason}", LogLevel.ERROR))
        self._report(parent.id, WorkerResult(run.id, StateType.FAILED))

    def _killed(self, parent_id: str) -> bool:
        live = self.loop.live(parent_id)
        return live is None or live[1].state.current in (StateType.KILLING, StateType.KILLED)

    @staticmethod
    def _labels(parent: Execution, props: Mapping[str, Any], child_flow: Flow | None) -> list[Label]:
        own = {label.key for label in child_flow.labels} if child_flow else set()
        # Kestra: inherited labels give way to the child flow's own; system labels always pass.
        labels = [
            label
            for label in parent.labels
            if label.key.startswith("system.") or (props.get("inheritLabels") and label.key not in own)
        ]
        if props.get("labels"):
            labels.extend(labels_of(props["labels"]))
        if CORRELATION_ID not in parent.labels_map():  # a parent stored before every execution had one
            labels.append(Label(CORRELATION_ID, parent.id))
        return labels

    async def _chain(self, execution: Execution) -> list[str]:
        """The flows from the root execution down to `execution` (at most the depth limit + 1)."""
        chain = [f"{execution.namespace}.{execution.flow_id}"]
        parent_id = execution.parent_id
        while parent_id is not None and len(chain) <= self.max_depth:
            live = self.loop.live(parent_id)
            parent = live[1] if live is not None else await self.host.execution(parent_id)
            if parent is None:
                break
            chain.append(f"{parent.namespace}.{parent.flow_id}")
            parent_id = parent.parent_id
        return chain[::-1]

    # -- reporting back -------------------------------------------------------------------------
    def _report(self, parent_id: str, result: WorkerResult) -> None:
        self.loop.post(TaskRunResult(parent_id, result))

    async def _child_ended(self, parent: tuple[str, str], child: Execution) -> None:
        if parent[1] in self._batches:
            self._batch_child_ended(self._batches[parent[1]], child)
            return
        try:
            await self._report_child(parent, child)
        except Exception as error:  # the parent's Subflow task must end rather than wait forever
            message = (
                f"Could not read the end of subflow execution {child.id}: {type(error).__name__}: {error}"
            )
            parent_id, run_id = parent
            live = self.loop.live(parent_id)
            if live is not None:
                self.log(log_entry(live[1], live[1].task_run(run_id), message))
            self._report(parent_id, WorkerResult(run_id, StateType.FAILED))

    async def _report_child(self, parent: tuple[str, str], child: Execution) -> None:
        parent_id, run_id = parent
        live = self.loop.live(parent_id)
        if live is None:
            return
        flow, execution = live
        task = flow.tasks_by_id[execution.task_run(run_id).task_id]
        outputs: dict[str, Any] = dict(child.outputs or {})
        state = child.state.current
        legacy = task.props.get("outputs")
        if legacy and not child.outputs:  # Kestra: the child flow's own outputs win
            child_flow = await self.host.flow_revision(child.namespace, child.flow_id, child.flow_revision)
            try:
                if child_flow is not None:
                    outputs.update(self.renderer.render_value(legacy, build_context(child_flow, child)))
            except ExpressionError as error:
                self.log(log_entry(execution, execution.task_run(run_id), str(error), LogLevel.ERROR))
                state = StateType.FAILED
        if state not in (StateType.SUCCESS, StateType.WARNING) and not task.props.get("transmitFailed", True):
            state = StateType.SUCCESS
        result = {"executionId": child.id, "state": child.state.current.value, "outputs": outputs}
        self._report(parent_id, WorkerResult(run_id, state, result))

    def _batch_child_ended(self, batches: Batches, child: Execution) -> None:
        """One batch's child ended: keep its outputs for the merge, and end the task run after the last."""
        state = child.state.current
        iteration = batches.children.get(child.id)
        if child.outputs is not None and iteration is not None and self.storage is not None:
            try:
                data = outputs_line(child.outputs)
                self.storage.put_bytes(batches.base_uri, f"{iteration}/{OUTPUTS_FILE}", data)
            except (StorageError, IonError, OSError) as error:
                live = self.loop.live(batches.parent_id)
                if live is not None:
                    message = f"Failed to extract outputs with the error: '{error}'"
                    run = live[1].task_run(batches.run_id)
                    self.log(log_entry(live[1], run, message, LogLevel.WARN))
                state = StateType.FAILED
        batches.child_ended(state)
        self._end_batches(batches)

    def _end_batches(self, batches: Batches) -> None:
        if batches.wait and not batches.done:
            if batches.launched:  # Kestra updates the counts as the children change state
                progress = WorkerResult(batches.run_id, StateType.RUNNING, batches.progress())
                self._report(batches.parent_id, progress)
            return
        self._batches.pop(batches.run_id, None)
        result = WorkerResult(batches.run_id, batches.state(), batches.outputs())
        self._report(batches.parent_id, result)


def _trigger_of(parent: Execution, task_id: str, task_type: str, run: TaskRun) -> dict[str, Any]:
    """The child's `trigger`: the parent task run that started it."""
    return {
        "id": task_id,
        "type": task_type,
        "variables": {
            "executionId": parent.id,
            "namespace": parent.namespace,
            "flowId": parent.flow_id,
            "flowRevision": parent.flow_revision,
            "taskRunId": run.id,
            "taskId": task_id,
            **({"taskRunValue": run.value} if run.value is not None else {}),
            **({"taskRunIteration": run.iteration} if run.iteration is not None else {}),
        },
        "parent": {"taskrun": {"id": run.id, "value": run.value}},
    }
