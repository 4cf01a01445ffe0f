"""The founding article's other task properties: `maxParallel` on flowables, and the Process runner's
`memory` and `cpu` (accepted, warned as not enforced)."""

from __future__ import annotations

import pytest

from .executor_cases import Case, play
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


def test_kestra_is_named_for_max_parallel_and_unenforced_resources_are_warned() -> None:
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
    assert "is not enforced" in found["tasks[0].tasks[0].taskRunner.memory"]
    assert "is not enforced" in found["tasks[0].tasks[0].taskRunner.cpu"]
