"""A large fan-out is created in slices, one executor step at a time (plain data, no engine)."""

from __future__ import annotations

from tiercel.engine.executor.decisions import Executor
from tiercel.engine.executor.working_copy import FANOUT_SLICE
from tiercel.engine.expressions import Renderer
from tiercel.engine.messages import WorkerResult
from tiercel.engine.model import Execution, State, StateType, utcnow
from tiercel.engine.parser import parse_flow
from tiercel.engine.tasks.registry import registry

S = StateType


def foreach(values: int, limit: int) -> str:
    return f"""
id: fan
namespace: ns
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    concurrencyLimit: {limit}
    values: "{{{{ range(1, {values}) }}}}"
    tasks:
      - {{id: first, type: io.kestra.plugin.core.debug.Return, format: "{{{{ taskrun.value }}}}"}}
      - {{id: second, type: io.kestra.plugin.core.debug.Return, format: "{{{{ taskrun.value }}}}"}}
"""


def test_a_foreach_over_many_values_creates_its_children_a_slice_per_step() -> None:
    values = FANOUT_SLICE * 2 + 500
    flow = parse_flow(foreach(values, 0)).with_revision(1)
    executor = Executor(registry(), Renderer())
    execution = Execution("e", "ns", "fan", 1, State.new())
    outcome = executor.advance(flow, execution, utcnow())
    created = [len(outcome.dispatch)]
    while outcome.more:
        outcome = executor.advance(flow, outcome.execution, utcnow())
        created.append(len(outcome.dispatch))
    # The ForEach's own run counts in the first step's share.
    assert len(created) == 3 and max(created) <= FANOUT_SLICE
    assert sum(created) == sum(run.task_id == "first" for run in outcome.execution.task_runs)
    # Each value's second child follows its first one, and the loop ends once all have run.
    pending = [run.id for run in outcome.execution.task_runs if run.task_id == "first"]
    while pending:
        results = [WorkerResult(run_id, S.SUCCESS, {"value": "x"}) for run_id in pending]
        outcome = executor.apply_results(flow, outcome.execution, results, utcnow())
        pending = [run.id for run in outcome.dispatch]
        while outcome.more:
            outcome = executor.advance(flow, outcome.execution, utcnow())
            pending += [run.id for run in outcome.dispatch]
    runs = outcome.execution.task_runs
    assert sum(run.task_id == "second" for run in runs) == sum(created) > FANOUT_SLICE * 2
    assert outcome.execution.state.current is S.SUCCESS


def test_a_concurrency_limit_holds_across_slices() -> None:
    flow = parse_flow(foreach(50, 3)).with_revision(1)
    executor = Executor(registry(), Renderer())
    outcome = executor.advance(flow, Execution("e", "ns", "fan", 1, State.new()), utcnow())
    assert [run.value for run in outcome.dispatch] == ["1", "2", "3"]
    first = outcome.dispatch[0].id
    outcome = executor.apply_results(flow, outcome.execution, [WorkerResult(first, S.SUCCESS)], utcnow())
    # Value 1 goes on with its second child; no new value starts while three are going.
    assert [(run.task_id, run.value) for run in outcome.dispatch] == [("second", "1")]
