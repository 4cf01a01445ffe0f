"""The executor keeps each execution's working copy from one step to the next, with its indexes
kept up to date instead of rebuilt (so a step costs what it changes). Every executor case is played
twice here, once with the kept copies and once with a copy built afresh at each step, and both must
decide the same; what each step says it changed, and the outputs trees it hands out, are checked
against the executions themselves."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from tiercel.engine.executor.working_copy import Outcome
from tiercel.engine.expressions.variables import outputs_tree, release
from tiercel.engine.messages import WorkerResult
from tiercel.engine.model import Execution, StateType

from .executor_cases import Case, Drive, flow_of
from .test_executor_flowables import BRANCHES, DAG, FAILURES, LOOPS, PARALLEL, SEQUENTIAL
from .test_executor_lifecycle import KILL, PAUSE_AND_SUBFLOW, RESTART, RETRIES

CASES = [
    *SEQUENTIAL,
    *PARALLEL,
    *BRANCHES,
    *LOOPS,
    *DAG,
    *FAILURES,
    *RETRIES,
    *KILL,
    *RESTART,
    *PAUSE_AND_SUBFLOW,
]


class Afresh(Drive):
    """Hands the executor an equal copy of the execution at each step: its kept working copy is
    for the very object it returned, so every step builds one from the execution."""

    def _took(self, outcome: Outcome) -> str:
        actions = super()._took(outcome)
        self.execution = dataclasses.replace(outcome.execution)
        return actions


def trace(drive: Drive, case: Case) -> list[tuple[str, dict[str, str], str]]:
    steps = []
    for event, _ in case.steps:
        actions = drive.event(event)
        steps.append((actions, drive.states(), drive.execution.state.current.name))
    return steps


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_kept_working_copies_decide_as_fresh_ones(case: Case) -> None:
    kept = Drive(flow_of(case.flow), case.inputs)
    kept_trace = trace(kept, case)
    fresh_trace = trace(Afresh(flow_of(case.flow), case.inputs), case)
    assert kept_trace == fresh_trace


def test_a_step_starts_from_the_working_copy_the_last_one_left() -> None:
    drive = Drive(
        flow_of("tasks:\n  - {id: a, type: Return, format: x}\n  - {id: b, type: Return, format: y}\n")
    )
    drive.event("start")
    kept = drive.executor._kept[drive.execution.id]
    assert kept.snapshot() is drive.execution
    drive.event("ok a")
    assert drive.executor._kept[drive.execution.id] is kept
    drive.event("ok b")
    assert drive.execution.state.current.name == "SUCCESS"
    assert drive.execution.id not in drive.executor._kept  # an ended execution keeps nothing


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_step_names_every_task_run_it_changed(case: Case) -> None:
    drive = Drive(flow_of(case.flow), case.inputs)
    for event, _ in case.steps:
        before = drive.execution.task_runs_by_id
        drive.event(event)
        after = drive.execution
        really = {run.id for run in after.task_runs if before.get(run.id) is not run}
        changed = drive.outcome.changed
        if changed is not None:  # None: the step removed task runs, the loop compares
            assert really <= set(changed)
            new = [run_id for run_id in changed if run_id not in before]
            order = [run.id for run in after.task_runs if run.id in set(new)]
            assert new == order  # new task runs are named in creation order
        assert after.task_runs_by_id == {run.id: run for run in after.task_runs}


LOOP_OUTPUTS = """
tasks:
  - id: each
    type: ForEach
    values: [1, 2, 3]
    concurrencyLimit: 1
    tasks:
      - {id: inner, type: Return, format: "{{ taskrun.value }}"}
  - {id: after, type: Return, format: "{{ outputs.inner | length }}"}
"""


def test_an_outputs_tree_handed_out_stays_as_it_was() -> None:
    """The executor shares its live outputs tree with each execution it returns and copies it on
    write: a task rendered for an older execution sees that execution's outputs, no later ones."""
    drive = Drive(flow_of(LOOP_OUTPUTS))
    seen: list[tuple[Execution, dict[str, Any], dict[str, Any]]] = []

    def remember() -> None:
        tree = outputs_tree(drive.execution)  # the tree the executor handed out with it
        seen.append((drive.execution, tree, copy.deepcopy(tree)))

    drive.event("start")
    remember()
    for name in ("inner[1]", "inner[2]", "inner[3]", "after"):
        result = WorkerResult(drive.run(name).id, StateType.SUCCESS, outputs={"value": name})
        drive._took(drive.executor.apply_results(drive.flow, drive.execution, [result], drive.now))
        remember()
    assert drive.execution.state.current.name == "SUCCESS"
    assert seen[-1][2]["inner"] == {str(v): {"value": f"inner[{v}]"} for v in (1, 2, 3)}
    for execution, tree, as_handed in seen:
        assert tree == as_handed
        release(execution.id)
        assert outputs_tree(execution) == as_handed  # built from its task runs, the same
