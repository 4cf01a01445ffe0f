"""The subflow executions of one ForEachItem `_items` task run, as the subflows component follows them.

Kestra's ForEachItemExecutable starts one execution of the subflow per batch and counts them by state
in its task run's `iterations` output (ExecutableUtils.manageIterations): the task run ends once every
batch's execution has ended, FAILED when one failed (KILLED when one was killed, WARNING when one
warned), unless `transmitFailed` is false; without `wait`, it ends SUCCESS as soon as they are
started. Its outputs are then `iterations`, `numberOfBatches` and `subflowOutputsBaseUri` (the
folder under which each batch's subflow outputs go, as `<iteration>/outputs.ion`). While they run,
its outputs hold `iterations` and `numberOfBatches`, updated as each one ends (`progress`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..internal_storage.uris import URI_PREFIX
from ..model import Execution, StateType, TaskRun
from ..tasks.for_each_item import ITEMS_SUFFIX, SPLIT_SUFFIX, base_id, sibling_run

S = StateType
# Kestra's findTerminalState: the first of these any batch ended in, else SUCCESS.
_WORST_FIRST = (S.FAILED, S.KILLED, S.WARNING)


@dataclass
class Batches:
    """One `_items` task run: the executions it started, by iteration, and how they ended."""

    parent_id: str
    run_id: str
    wait: bool
    transmit_failed: bool
    # The `_items` task run's folder in the internal storage (kestra:///...).
    base_uri: str
    children: dict[str, int] = field(default_factory=dict)
    ended: Counter[str] = field(default_factory=Counter)
    # How many batches the split gave (the subflow executions started or to start).
    total: int = 0
    # Every batch is started (or starting stopped): the task run may end once the children have.
    launched: bool = False

    def child_ended(self, state: StateType) -> None:
        self.ended[state.value] += 1

    @property
    def done(self) -> bool:
        return self.launched and sum(self.ended.values()) >= len(self.children)

    def iterations(self) -> dict[str, int]:
        """The `iterations` output: how many subflow executions are in each state."""
        if not self.wait:
            # Kestra reports each one SUCCESS at once: the RUNNING count went down to 0.
            return {"RUNNING": 0, "SUCCESS": len(self.children)}
        running = len(self.children) - sum(self.ended.values())
        # Kestra counts the batches not started yet as CREATED (0 once all are).
        created = 0 if self.launched else max(0, self.total - len(self.children))
        return {"CREATED": created, "RUNNING": running, **dict(self.ended)}

    def progress(self) -> dict[str, Any]:
        """The outputs while the subflow executions run (ExecutableUtils.manageIterations)."""
        return {"iterations": self.iterations(), "numberOfBatches": self.total}

    def state(self) -> StateType:
        if not self.wait or not self.transmit_failed:
            return S.SUCCESS
        return next((state for state in _WORST_FIRST if self.ended[state.value]), S.SUCCESS)

    def outputs(self) -> dict[str, Any]:
        return {
            "iterations": self.iterations(),
            "numberOfBatches": len(self.children),
            "subflowOutputsBaseUri": "/" + self.base_uri.removeprefix(URI_PREFIX),
        }


def splits_uri(execution: Execution, run: TaskRun) -> str | None:
    """The `splits` output of the `_split` task run beside an `_items` task run."""
    split_id = base_id(run.task_id, ITEMS_SUFFIX) + SPLIT_SUFFIX
    split = sibling_run(execution, run, split_id)
    outputs: Mapping[str, Any] = (split.outputs or {}) if split is not None else {}
    value = outputs.get("splits")
    return str(value) if value else None


def with_batch(context: dict[str, Any], uri: str, iteration: int) -> dict[str, Any]:
    """The expression context of one batch's inputs: `taskrun.items` and `taskrun.iteration`."""
    taskrun = dict(context.get("taskrun") or {})
    taskrun.update({"items": uri, "iteration": iteration})
    return {**context, "taskrun": taskrun}
