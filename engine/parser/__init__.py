"""Flow files -> Flow, or every problem found, each with its file, line, column and YAML path.

Loading is safe (no Python tags, no alias bombs, no duplicate keys, a size cap) and the checks follow
Kestra's rules, so a file that passes here also loads on a Kestra cluster. The work is split over
`loader` (loading with positions), `flow` (the flow's own properties), `tasks`
(tasks, retries, plugin defaults), `inputs` (inputs, outputs) and `triggers`; this
module is the public face and holds the checks across flows.
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..model import DagNode, Flow, TaskSpec
from ..tasks.registry import registry
from ..tasks.types import Kind
from .context import Context, is_expression
from .errors import FlowError, FlowParseError
from .flow import NamespaceDefaults, build_flow
from .loader import YamlPath, format_path, load_yaml

__all__ = [
    "MAX_FLOW_BYTES",
    "FlowError",
    "FlowParseError",
    "NamespaceDefaults",
    "parse_flow",
    "parse_flow_file",
    "subflow_calls",
    "validate_flows",
]

MAX_FLOW_BYTES = 1_000_000

FlowUid = tuple[str, str]


def parse_flow(text: str, path: str | None = None, *, defaults: NamespaceDefaults | None = None) -> Flow:
    """Parse and validate one flow.

    Args:
        text: The YAML source of the flow.
        path: The file it came from, as given (used in error messages and kept on the Flow).
        defaults: The plugin defaults of a namespace (declared in `_namespace.yaml` files).

    Returns:
        The flow, with plugin defaults applied and task types resolved to their canonical names.

    Raises:
        FlowParseError: With every problem found, in source order.
    """
    size = len(text) if len(text) > MAX_FLOW_BYTES else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FLOW_BYTES:
        raise FlowParseError([_too_big(path, size)])
    document = load_yaml(text)
    ctx = Context(document.source, path)
    for problem in document.problems:
        line, column = problem.position if problem.position else (None, None)
        ctx.errors.append(FlowError(path, line, column, format_path(problem.path), problem.message))
    flow: Flow | None = None
    if document.complete:
        try:
            flow = build_flow(ctx, document.value, text, path, defaults)
        except RecursionError:
            ctx.errors.append(FlowError(path, None, None, "", "The flow is nested too deeply to be checked"))
        except Exception as exc:  # a bad file must never take the engine down
            message = f"Unexpected error while checking the flow: {type(exc).__name__}: {exc}"
            ctx.errors.append(FlowError(path, None, None, "", message))
    if ctx.errors or flow is None:
        raise FlowParseError(sorted(ctx.errors, key=FlowError.sort_key))
    if ctx.warnings:
        warnings = tuple(str(warning) for warning in sorted(ctx.warnings, key=FlowError.sort_key))
        flow = dataclasses.replace(flow, warnings=warnings)
    return flow


def parse_flow_file(path: str | Path, *, defaults: NamespaceDefaults | None = None) -> Flow:
    """Read and parse a flow file; the Flow keeps its source text and the path as given.

    Raises:
        FlowParseError: When the file cannot be read, is larger than MAX_FLOW_BYTES, is not UTF-8
            text, or holds an invalid flow.
    """
    name = str(path)
    try:
        size = os.stat(name).st_size
        if size > MAX_FLOW_BYTES:
            raise FlowParseError([_too_big(name, size)])
        with open(name, "rb") as handle:
            raw = handle.read(MAX_FLOW_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise FlowParseError([FlowError(name, None, None, "", f"Cannot read the file: {reason}")]) from exc
    if len(raw) > MAX_FLOW_BYTES:
        raise FlowParseError([_too_big(name, len(raw))])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"The file is not UTF-8 text (byte 0x{raw[exc.start]:02x}): save it as UTF-8"
        raise FlowParseError([FlowError(name, line, column, "", message)]) from exc
    return parse_flow(text, name, defaults=defaults)


def _too_big(path: str | None, size: int) -> FlowError:
    message = (
        f"The flow is {size:,} bytes, over the {MAX_FLOW_BYTES:,}-byte limit: split it, for example into "
        "subflows"
    )
    return FlowError(path, None, None, "", message)


# ---------------------------------------------------------------------------------------------
# Checks across flows
# ---------------------------------------------------------------------------------------------


def validate_flows(flows: Sequence[Flow]) -> list[FlowError]:
    """Checks that need several flows: a chain of subflow calls must not lead back to its start.

    Only calls whose `namespace` and `flowId` are literal text count; expressions are resolved at
    run time and cannot be followed here.

    Returns:
        One error per Subflow task that starts a cycle, in the file of the flow holding it.
    """
    calls: dict[FlowUid, list[tuple[FlowUid, TaskSpec, YamlPath]]] = {}
    unique: dict[FlowUid, Flow] = {}
    for flow in flows:
        unique.setdefault(flow.uid, flow)
        edges = calls.setdefault(flow.uid, [])
        for task_path, task in walk_tasks(flow):
            target = _subflow_target(task)
            if target is not None:
                edges.append((target, task, task_path))
    errors: list[FlowError] = []
    for uid, flow in unique.items():
        for target, task, task_path in calls[uid]:
            chain = _path_between(target, uid, calls)
            if chain is None:
                continue
            cycle = " -> ".join(f"{namespace}.{flow_id}" for namespace, flow_id in (uid, *chain))
            line, column = (task.position.line, task.position.column) if task.position else (None, None)
            message = (
                f"Subflow task `{task.id}` leads back to flow `{uid[0]}.{uid[1]}` ({cycle}): recursive "
                "subflows never end; break the cycle"
            )
            errors.append(FlowError(flow.path, line, column, format_path(task_path), message))
    return errors


def subflow_calls(flow: Flow) -> list[FlowUid]:
    """The flows a flow calls through Subflow tasks whose namespace and flowId are literal text."""
    return [target for _, task in walk_tasks(flow) if (target := _subflow_target(task)) is not None]


def walk_tasks(flow: Flow) -> Iterator[tuple[YamlPath, TaskSpec]]:
    """Every task of a flow with its YAML path, depth first, in source order."""
    branches = (
        ("tasks", flow.tasks),
        ("errors", flow.errors),
        ("finally", flow.finally_),
        ("afterExecution", flow.after_execution),
    )
    for key, tasks in branches:
        for index, task in enumerate(tasks):
            yield from _walk((key, index), task)


def _walk(path: YamlPath, task: TaskSpec) -> Iterator[tuple[YamlPath, TaskSpec]]:
    yield path, task
    for key, value in task.props.items():
        if isinstance(value, tuple):
            for index, item in enumerate(value):
                if isinstance(item, TaskSpec):
                    yield from _walk((*path, key, index), item)
                elif isinstance(item, DagNode):
                    yield from _walk((*path, key, index, "task"), item.task)
        elif isinstance(value, dict):
            for case, items in value.items():
                if isinstance(items, tuple):
                    for index, item in enumerate(items):
                        if isinstance(item, TaskSpec):
                            yield from _walk((*path, key, case, index), item)


def _subflow_target(task: TaskSpec) -> FlowUid | None:
    task_type = registry().lookup(task.type)
    if task_type is None or task_type.kind is not Kind.SUBFLOW:
        return None
    namespace, flow_id = task.props.get("namespace"), task.props.get("flowId")
    if not isinstance(namespace, str) or not isinstance(flow_id, str):
        return None
    if is_expression(namespace) or is_expression(flow_id):
        return None
    return (namespace, flow_id)


def _path_between(
    start: FlowUid, goal: FlowUid, calls: dict[FlowUid, list[tuple[FlowUid, TaskSpec, YamlPath]]]
) -> list[FlowUid] | None:
    """The shortest chain of calls from `start` to `goal` (both included), or None."""
    previous: dict[FlowUid, FlowUid | None] = {start: None}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        if current == goal:
            chain = [current]
            while (before := previous[chain[-1]]) is not None:
                chain.append(before)
            return chain[::-1]
        for target, _, _ in calls.get(current, ()):
            if target not in previous:
                previous[target] = current
                queue.append(target)
    return None
