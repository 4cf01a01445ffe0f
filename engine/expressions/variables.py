"""The variables an expression sees: flow, execution, inputs, outputs, vars, task, taskrun, parents ...

Kestra builds the same context in its RunContext; names and shapes follow it so that flow files
render identically here and on a Kestra cluster.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

from ..labels import nested_labels
from ..model import Execution, Flow, TaskRun, TaskSpec, iso

# One cache slot per execution, for its latest object: executions are immutable, so the derived
# outputs tree of a given object never changes, and rendering several properties of one task (or the
# tasks one step starts) reuses it. An older object of the same execution gives way: a large fan-out
# must not keep a tree per step. `release` drops an execution's slots when it ends.
_OUTPUTS_CACHE: dict[str, tuple[Execution, dict[str, Any]]] = {}
_CACHE_SIZE = 64


def release(execution_id: str) -> None:
    """Forget what is cached for an execution (it ended)."""
    _OUTPUTS_CACHE.pop(execution_id, None)


def outputs_tree(execution: Execution) -> dict[str, Any]:
    """Task outputs by task id, nested by the loop values of the task run and its parents."""
    cached = _OUTPUTS_CACHE.get(execution.id)
    if cached is not None and cached[0] is execution:
        return cached[1]
    tree: dict[str, Any] = {}
    for run in execution.task_runs:
        if run.outputs is not None:
            add_output(tree, run, execution.parents_of(run))
    if len(_OUTPUTS_CACHE) >= _CACHE_SIZE and execution.id not in _OUTPUTS_CACHE:
        _OUTPUTS_CACHE.clear()
    _OUTPUTS_CACHE[execution.id] = (execution, tree)
    return tree


def share_outputs(execution: Execution, tree: dict[str, Any]) -> None:
    """Give `execution` its outputs tree, built by whoever made the execution (the executor keeps
    one up to date), so that rendering for it does not build the tree again. The tree must not
    change afterwards: see `add_output`'s `fresh`."""
    if len(_OUTPUTS_CACHE) >= _CACHE_SIZE and execution.id not in _OUTPUTS_CACHE:
        _OUTPUTS_CACHE.clear()
    _OUTPUTS_CACHE[execution.id] = (execution, tree)


def add_output(
    tree: dict[str, Any], run: TaskRun, parents: list[TaskRun], fresh: dict[int, Any] | None = None
) -> None:
    """Put a task run's outputs in the tree, under its task id and the loop values above it.

    With `fresh` (the nested nodes made since the tree was last shared, by id), a shared node on
    the way is copied before it changes, so a tree handed out earlier stays as it was; the caller
    copies the top level itself."""
    values = [p.value for p in reversed(parents) if p.value is not None]
    if run.value is not None:
        values.append(run.value)
    if not values:
        tree[run.task_id] = dict(run.outputs or {})
        return
    node = tree
    for name in (run.task_id, *values[:-1]):
        child = node.get(name)
        if fresh is not None and (child is None or id(child) not in fresh):
            child = dict(child) if isinstance(child, dict) else {}
            fresh[id(child)] = child
            node[name] = child
        elif not isinstance(child, dict):
            child = node[name] = {}
        node = child
    node[values[-1]] = dict(run.outputs or {})


@functools.cache
def _server_envs() -> dict[str, str]:
    """The process's ENV_* variables, read once: as Kestra reads its server's environment at start
    (reading os.environ costs ~90 µs, which every task run and every execution would pay again)."""
    return {key[4:].lower(): value for key, value in os.environ.items() if key.startswith("ENV_")}


def build_context(
    flow: Flow,
    execution: Execution,
    task: TaskSpec | None = None,
    run: TaskRun | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    parents: list[TaskRun] | None = None,
) -> dict[str, Any]:
    """The rendering context for one task run (or for the execution itself when run is None)."""
    context: dict[str, Any] = {
        "flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision},
        "execution": {
            "id": execution.id,
            "startDate": iso(execution.state.start_date),
            "originalId": execution.original_id or execution.id,
            "state": (execution.after_execution_state or execution.state.current).value,
        },
        "labels": nested_labels(execution.labels),
        "envs": dict(_server_envs()),  # Kestra's `envs.*`: ENV_* without the prefix, lower case
    }
    if flow.inputs or execution.inputs:
        context["inputs"] = dict(execution.inputs)
    if flow.variables:
        context["vars"] = dict(flow.variables)
    if outputs is not None:
        context["outputs"] = outputs
    elif execution.task_runs:
        context["outputs"] = outputs_tree(execution)
    if execution.trigger:
        context["trigger"] = dict(execution.trigger.get("variables") or {})
    if execution.parent_id and execution.trigger:
        context["parent"] = execution.trigger.get("parent")
    if task is not None:
        context["task"] = {"id": task.id, "type": task.type}
    if run is not None:
        context["taskrun"] = taskrun_variables(run)
        if parents is None:
            parents = execution.parents_of(run)
        # Kestra's Execution.parents: the nearest first, leaving out the flowables that hold neither
        # a loop value nor outputs (a Sequential, a ForEach itself), so that parents[1] of a task
        # in a Switch in a ForEach in a Switch in a ForEach is the outer loop's Switch.
        chain = [_parent_entry(flow, p) for p in parents if p.value is not None or p.outputs]
        if chain:
            context["parent"] = chain[0]
            context["parents"] = chain
    if extra:
        context.update(extra)
    return context


def taskrun_variables(run: TaskRun) -> dict[str, Any]:
    """`taskrun`: what an expression sees of a task run."""
    return {
        "id": run.id,
        "startDate": iso(run.state.start_date),
        "attemptsCount": max(len(run.attempts) - 1, 0),
        "parentId": run.parent_task_run_id,
        "value": run.value,
        "iteration": run.iteration,
    }


def in_working_directory(context: dict[str, Any], owner: TaskRun) -> None:
    """A task run below a WorkingDirectory sees its task run as `workerTaskrun`, and its loop value
    as `taskrun.value` (Kestra's RunContextInitializer.forWorkingDirectory, then forWorker)."""
    worker = taskrun_variables(owner)
    context["workerTaskrun"] = worker
    if worker["value"] is not None and "taskrun" in context:
        context["taskrun"] = {**context["taskrun"], "value": worker["value"]}


def _parent_entry(flow: Flow, run: TaskRun) -> dict[str, Any]:
    task = flow.tasks_by_id.get(run.task_id)
    return {
        "task": {"id": run.task_id, "type": task.type if task else None},
        "taskrun": {"id": run.id, "value": run.value, "startDate": iso(run.state.start_date)},
        "outputs": dict(run.outputs or {}),
    }
