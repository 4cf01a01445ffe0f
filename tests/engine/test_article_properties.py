"""The founding article's other task properties: `maxParallel` on flowables, a Subflow's `transmit`
and `receive`, `send` (refused), and the Process runner's `memory` and `cpu` (warned as not
enforced)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiercel.engine.model import StateType

from .executor_cases import Case, play
from .helpers import run_flow
from .test_parser import error_at, parse

ROWS = [
    Case(
        "maxParallel is a Parallel's concurrent",
        """
        tasks:
          - id: p
            type: Parallel
            maxParallel: 1
            tasks:
              - {id: a, type: Return, format: a}
              - {id: b, type: Return, format: b}
        """,
        (("start", "run a"), ("ok a", "run b"), ("ok b", "")),
        "SUCCESS",
        {"p": "SUCCESS"},
    ),
    Case(
        "maxParallel is a ForEach's concurrencyLimit",
        """
        tasks:
          - id: each
            type: ForEach
            values: ["1", "2", "3"]
            maxParallel: 2
            tasks:
              - {id: x, type: Return, format: "{{ taskrun.value }}"}
        """,
        (("start", "run x[1] x[2]"), ("ok x[1]", "run x[3]"), ("ok x[2]", ""), ("ok x[3]", "")),
        "SUCCESS",
        {"each": "SUCCESS"},
    ),
]


@pytest.mark.parametrize("case", ROWS, ids=[row.id for row in ROWS])
def test_max_parallel_caps_a_flowables_children(case: Case) -> None:
    play(case)


def test_max_parallel_is_refused_where_nothing_runs_in_parallel_or_twice() -> None:
    runnable = """
    id: demo
    namespace: company.team
    tasks:
      - id: query
        type: io.kestra.plugin.core.log.Log
        message: x
        maxParallel: 4
    """
    error_at(runnable, "`maxParallel` caps how many child tasks of a flowable run at once", 7, 5)
    both = """
    id: demo
    namespace: company.team
    tasks:
      - id: p
        type: io.kestra.plugin.core.flow.Parallel
        concurrent: 2
        maxParallel: 4
        tasks: [{id: a, type: io.kestra.plugin.core.log.Log, message: x}]
    """
    error_at(both, "sets both `maxParallel` and `concurrent`: keep `concurrent`", 7, 5)


def test_kestra_is_named_for_max_parallel_and_resource_limits_are_warned_as_tiercels() -> None:
    flow = parse(
        """
        id: demo
        namespace: company.team
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: [1, 2]
            maxParallel: 2
            tasks:
              - id: work
                type: io.kestra.plugin.scripts.shell.Commands
                commands: ["echo {{ taskrun.value }}"]
                taskRunner:
                  type: io.kestra.plugin.core.runner.Process
                  memory: 512Mi
                  cpu: 250m
        """
    )
    assert flow.tasks[0].props["concurrencyLimit"] == 2
    found = {warning.split(": ", 2)[1]: warning for warning in flow.warnings}
    assert "write `concurrencyLimit: 2` there" in found["tasks[0].maxParallel"]
    assert "Tiercel extension" in found["tasks[0].tasks[0].taskRunner.memory"]
    assert "Tiercel extension" in found["tasks[0].tasks[0].taskRunner.cpu"]


MAIN = """
id: main-orchestration
namespace: acme.data
tasks:
  - id: make
    type: io.kestra.plugin.core.debug.Return
    format: orders.csv
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: acme.data.utilities
    flowId: data-validation
    wait: true
    transmit:
      - name: input_file
        value: "{{ outputs.make.value }}"
    receive:
      - name: validation_report
  - id: continue-processing
    type: io.kestra.plugin.core.log.Log
    message: "Validation result: {{ outputs.call.outputs.validation_report }}"
    conditions:
      - type: io.kestra.plugin.core.condition.Expression
        expression: "{{ outputs.call.state == 'SUCCESS' }}"
"""
CHILD = """
id: data-validation
namespace: acme.data.utilities
inputs:
  - {id: input_file, type: STRING}
tasks:
  - id: check
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.input_file }} is valid"
outputs:
  - {id: validation_report, type: STRING, value: "{{ outputs.check.value }}"}
"""


async def test_a_subflow_transmits_inputs_and_receives_outputs_as_the_article_writes_it(
    tmp_path: Path,
) -> None:
    # The article's "Modular Flows with Subflows" (kestra-architecture-article.txt, line 268), its
    # download replaced by a local task.
    execution, logs = await run_flow(tmp_path, MAIN, None, CHILD)
    assert execution.state.current is StateType.SUCCESS
    assert "Validation result: orders.csv is valid" in [entry.message for entry in logs]


def test_transmit_entries_are_checked_and_send_is_refused() -> None:
    subflow = """
    id: demo
    namespace: company.team
    tasks:
      - id: call
        type: io.kestra.plugin.core.flow.Subflow
        namespace: company.team
        flowId: child
        inputs: {a: 1}
        transmit:
          - {name: a, value: 2}
          - {value: 3}
    """
    error_at(subflow, "Subflow `call` gives input `a` twice (`inputs` and `transmit`)", 10, 9)
    error_at(subflow, "An entry of `transmit` is `{name: ..., value: ...}`", 11, 9)
    sending = """
    id: demo
    namespace: company.team
    tasks:
      - id: consumer
        type: io.kestra.plugin.core.debug.Return
        format: x
        send: [producer]
    """
    error_at(sending, "`send` is not a property of any task (task `consumer`)", 7, 5)


def test_a_transmitted_value_is_checked_as_the_tasks_own() -> None:
    error = error_at(
        """
        id: demo
        namespace: company.team
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: company.team
            flowId: child
            transmit:
              - {name: x, value: "{{ broken"}
        """,
        "Invalid expression `{{ broken`",
        4,
        5,  # the task: `inputs` is not written as such
    )
    assert "plugin default" not in error.message
