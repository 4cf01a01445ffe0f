"""Kestra's ForEachItem: one subflow execution for each batch of the lines of an internal-storage file.

As in Kestra, a ForEachItem is a flowable that runs three internal tasks one after the other, each
with its own task run and outputs, named after the ForEachItem's id:

- `<id>_split` (`ForEachItem$ForEachItemSplit`) reads the `items` file line by line and writes the
  batches (`batch`: `rows`, 1 by default, or `bytes`, or `partitions`; each line ends with the
  `separator`, a newline by default) to the internal storage; its output `splits` is the URI of a
  text file listing the batch URIs one a line;
- `<id>_items` (`ForEachItem$ForEachItemExecutable`) starts one execution of the subflow per batch,
  with `taskrun.items` (the batch URI) and `taskrun.iteration` (from 0) in its `inputs`; it is run
  by the executor's subflows component (engine.executor.subflows), and ends with `numberOfBatches`,
  `iterations` (how many subflow executions ended in each state) and `subflowOutputsBaseUri`;
- `<id>_merge` (`ForEachItem$ForEachItemMergeOutputs`) concatenates the subflows' outputs (one Ion
  line each, written under `subflowOutputsBaseUri`/<iteration>/outputs.ion, in batch order) into
  one file, its output `subflowOutputs`.

The parser asks the handler for them (`internal_tasks`) and keeps them as the ForEachItem's `tasks`,
so that they are tasks of the flow like any other: `outputs.each_merge.subflowOutputs` reads.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..expressions import to_text
from ..internal_storage import StorageError
from ..internal_storage.uris import URI_PREFIX
from ..ion import dumps, iter_lines
from ..model import Execution, TaskRun, TaskSpec
from .base import TaskContext, TaskFailure
from .files import java_regex, split_batches
from .flow import Sequential

FOR_EACH_ITEM = "io.kestra.plugin.core.flow.ForEachItem"
SPLIT = f"{FOR_EACH_ITEM}$ForEachItemSplit"
EXECUTABLE = f"{FOR_EACH_ITEM}$ForEachItemExecutable"
MERGE = f"{FOR_EACH_ITEM}$ForEachItemMergeOutputs"
SPLIT_SUFFIX, ITEMS_SUFFIX, MERGE_SUFFIX = "_split", "_items", "_merge"
# The properties the ForEachItem hands to its `_items` task (Kestra's ForEachItemExecutable).
SUBFLOW_PROPERTIES = (
    "namespace",
    "flowId",
    "revision",
    "inputs",
    "labels",
    "wait",
    "transmitFailed",
    "inheritLabels",
    "scheduleDate",
    "restartBehavior",
)
# The subflow outputs of one batch, under the `_items` task run's folder: <iteration>/outputs.ion.
OUTPUTS_FILE = "outputs.ion"
# Micronaut's readable sizes, as Kestra reads `batch.bytes`: 1024, 10KB, 10MB, 1GB.
_SIZE = re.compile(r"^(\d+)([KMG]B)?$", re.IGNORECASE)
_UNITS = {None: 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


class ForEachItem(Sequential):
    """The ForEachItem flowable: its three internal tasks one after the other, then errors, finally."""

    def internal_tasks(self, spec: TaskSpec) -> TaskSpec:
        """The ForEachItem as the parser keeps it: with its `_split`, `_items`, `_merge` as `tasks`."""
        props = spec.props
        split = TaskSpec(
            id=spec.id + SPLIT_SUFFIX,
            type=SPLIT,
            props={"items": props.get("items"), "batch": props.get("batch") or {}},
            position=spec.position,
        )
        items = TaskSpec(
            id=spec.id + ITEMS_SUFFIX,
            type=EXECUTABLE,
            props={name: props[name] for name in SUBFLOW_PROPERTIES if name in props},
            position=spec.position,
        )
        merge = TaskSpec(id=spec.id + MERGE_SUFFIX, type=MERGE, position=spec.position)
        return dataclasses.replace(spec, props={**props, "tasks": (split, items, merge)})


def sibling_run(execution: Execution, run: TaskRun, task_id: str) -> TaskRun | None:
    """The newest task run of `task_id` under the same parent as `run` (a ForEachItem's tasks)."""
    found = None
    for other in execution.task_runs:
        if other.task_id == task_id and other.parent_task_run_id == run.parent_task_run_id:
            found = other
    return found


def base_id(task_id: str, suffix: str) -> str:
    """The ForEachItem's id from one of its internal tasks' ids."""
    return task_id[: -len(suffix)] if task_id.endswith(suffix) else task_id


def outputs_line(outputs: Mapping[str, Any]) -> bytes:
    """One subflow execution's outputs as Kestra writes them for the merge: one Ion line."""
    return (dumps(dict(outputs)) + "\n").encode()


# -- splitting ------------------------------------------------------------------------------------
def byte_size(value: Any) -> int:
    text = to_text(value).strip()
    match = _SIZE.match(text)
    if match is None:
        raise TaskFailure(f"Invalid size with value '{text}': write a number of bytes, or 10KB, 10MB, 1GB")
    unit = match.group(2).upper() if match.group(2) else None
    return int(match.group(1)) * _UNITS[unit]


def _positive(value: Any, name: str) -> int:
    try:
        number = int(to_text(value).strip())
    except ValueError:
        raise TaskFailure(f"`batch.{name}` must be an integer, got `{value}`") from None
    if number < 1:
        raise TaskFailure(f"`batch.{name}` must be at least 1, got {number}")
    return number


def _batching(batch: Any) -> dict[str, Any]:
    """The rendered `batch` as split_batches takes it; Kestra's order: regexPattern, bytes,
    partitions, rows."""
    if batch is None:
        batch = {}
    if not isinstance(batch, Mapping):
        raise TaskFailure(
            f"`batch` must be a map (rows, bytes, partitions, regexPattern, separator), got `{batch}`"
        )
    if batch.get("regexPattern") is not None:
        return {"regex": java_regex(batch["regexPattern"], "batch.regexPattern")}
    if batch.get("bytes") is not None:
        return {"size": byte_size(batch["bytes"])}
    if batch.get("partitions") is not None:
        return {"partitions": _positive(batch["partitions"], "partitions")}
    rows = batch.get("rows")
    return {"rows": _positive(rows if rows is not None else 1, "rows")}


def _extension(uri: str) -> str:
    path = uri.split("?", 1)[0]
    dot = path.rfind(".")
    return path[dot:] if dot >= 0 and "/" not in path[dot:] else ".tmp"


async def split(context: TaskContext) -> Mapping[str, Any] | None:
    """`<id>_split`: the batches of `items`, and the file listing their URIs (output `splits`)."""
    storage = context.require_storage()
    uri = to_text(context.prop("items"))
    if not uri.startswith("kestra://"):
        raise TaskFailure(f"Unable to split the items from {uri}, this is not an internal storage URI!")
    batch = context.prop("batch") or {}
    how = _batching(batch)
    separator = to_text(batch.get("separator", "\n") if isinstance(batch, Mapping) else "\n").encode()
    extension = _extension(uri)
    base = context.task_uri()
    uris: list[str] = []
    try:
        storage.check_readable(uri, context.execution.namespace, context.execution.trigger)
        with storage.path(uri).open("rb") as handle:
            for index, data in enumerate(split_batches(iter_lines(handle), separator, **how)):
                uris.append(storage.put_bytes(base, f"batch-{index}{extension}", data))
        listing = storage.put_bytes(base, "splits.txt", "\n".join(uris).encode())
    except FileNotFoundError:
        raise TaskFailure(f"File '{uri}' does not exist in the internal storage") from None
    except (StorageError, OSError) as error:
        raise TaskFailure(f"Unable to split the items from {uri}: {error}") from None
    return {"splits": listing}


def batch_uris(listing: str) -> list[str]:
    """The batch URIs of a `splits` file's text."""
    return [line for line in listing.splitlines() if line.strip()]


# -- merging --------------------------------------------------------------------------------------
def outputs_files(listed: Sequence[str], base_uri: str) -> list[str]:
    """The `<iteration>/outputs.ion` files under `base_uri`, in iteration order."""
    prefix = base_uri.rstrip("/") + "/"
    found: list[tuple[int, str]] = []
    for uri in listed:
        rest = uri[len(prefix) :] if uri.startswith(prefix) else ""
        iteration, _, name = rest.partition("/")
        if iteration.isdigit() and name == OUTPUTS_FILE:
            found.append((int(iteration), uri))
    return [uri for _, uri in sorted(found)]


async def merge(context: TaskContext) -> Mapping[str, Any] | None:
    """`<id>_merge`: the subflows' outputs files end to end (output `subflowOutputs`), if any."""
    items_id = base_id(context.task.id, MERGE_SUFFIX) + ITEMS_SUFFIX
    items = sibling_run(context.execution, context.run, items_id)
    base = (items.outputs or {}).get("subflowOutputsBaseUri") if items is not None else None
    if not base:
        return None  # no subflow execution was started
    storage = context.require_storage()
    base_uri = URI_PREFIX + str(base).lstrip("/")
    try:
        files = outputs_files(storage.list(base_uri), base_uri)
        if not files:
            return None
        data = b"".join(storage.path(uri).read_bytes() for uri in files)
        return {"subflowOutputs": storage.put_bytes(context.task_uri(), OUTPUTS_FILE, data)}
    except (StorageError, OSError) as error:
        raise TaskFailure(f"Unable to merge the subflow outputs: {error}") from None


HANDLERS: dict[str, Any] = {
    FOR_EACH_ITEM: ForEachItem(),
    SPLIT: split,
    MERGE: merge,
}
