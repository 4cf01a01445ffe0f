"""Task-level `dependsOn` in any task list and task `conditions`: Tiercel's extensions, as the
founding article writes them (a task waits for the siblings it names; its conditions skip it)."""

from __future__ import annotations

import pytest

from tiercel.engine.parser import parse_flow

from .executor_cases import Case, play
from .test_parser import error_at, parse

ROWS = [
    Case(
        "a task waits for the siblings it names; one without dependsOn follows the task before it",
        """
        tasks:
          - {id: a, type: Return, format: a}
          - {id: b, type: Return, format: b, dependsOn: []}
          - {id: c, type: Return, format: c, dependsOn: [a, b]}
          - {id: d, type: Return, format: d}
          - {id: e, type: Return, format: e, dependsOn: [c]}
        """,
        (
            ("start", "run a b"),
            ("ok a", ""),
            ("ok b", "run c"),
            ("ok c", "run d e"),
            ("ok e", ""),
            ("ok d", ""),
        ),
        "SUCCESS",
        {"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS", "d": "SUCCESS", "e": "SUCCESS"},
    ),
    Case(
        "a failure: its dependants never start, the others running end, then the errors branch",
        """
        tasks:
          - {id: a, type: Return, format: a}
          - {id: b, type: Return, format: b, dependsOn: []}
          - {id: c, type: Return, format: c, dependsOn: [a]}
        errors:
          - {id: alert, type: Return, format: failed}
        """,
        (("start", "run a b"), ("fail a", ""), ("ok b", "run alert"), ("ok alert", "")),
        "FAILED",
        {"a": "FAILED", "b": "SUCCESS", "c": None, "alert": "SUCCESS"},
    ),
    Case(
        "a skipped or allowed-to-fail task lets its dependants start; a disabled one is not waited for",
        """
        tasks:
          - {id: off, type: Return, format: x, disabled: true}
          - {id: maybe, type: Return, format: m, runIf: "{{ 1 > 2 }}", dependsOn: []}
          - {id: shaky, type: Return, format: s, allowFailure: true, dependsOn: []}
          - {id: after, type: Return, format: a, dependsOn: [off, maybe, shaky]}
        """,
        (("start", "run shaky"), ("fail shaky", "run after"), ("ok after", "")),
        "WARNING",
        {"off": None, "maybe": "SKIPPED", "shaky": "WARNING", "after": "SUCCESS"},
    ),
    Case(
        "in a ForEach, a task waits for the tasks it names of the same value",
        """
        tasks:
          - id: each
            type: ForEach
            values: ["1", "2"]
            concurrencyLimit: 0
            tasks:
              - {id: x, type: Return, format: "{{ taskrun.value }}"}
              - {id: y, type: Return, format: "{{ taskrun.value }}", dependsOn: []}
              - {id: z, type: Return, format: "{{ taskrun.value }}", dependsOn: [x, y]}
        """,
        (
            ("start", "run x[1] y[1] x[2] y[2]"),
            ("ok x[1]", ""),
            ("ok y[2]", ""),
            ("ok y[1]", "run z[1]"),
            ("ok x[2]", "run z[2]"),
            ("ok z[1]", ""),
            ("ok z[2]", ""),
        ),
        "SUCCESS",
        {"each": "SUCCESS", "z[1]": "SUCCESS", "z[2]": "SUCCESS"},
    ),
    Case(
        "in a Parallel, a task without dependsOn starts at once, as the Parallel's tasks do",
        """
        tasks:
          - id: p
            type: Parallel
            tasks:
              - {id: a, type: Return, format: a}
              - {id: b, type: Return, format: b}
              - {id: c, type: Return, format: c, dependsOn: [a]}
        """,
        (("start", "run a b"), ("ok b", ""), ("ok a", "run c"), ("ok c", "")),
        "SUCCESS",
        {"p": "SUCCESS"},
    ),
    Case(
        "a Parallel's tasks keep its concurrent limit with dependsOn",
        """
        tasks:
          - id: p
            type: Parallel
            concurrent: 1
            tasks:
              - {id: a, type: Return, format: a, dependsOn: []}
              - {id: b, type: Return, format: b, dependsOn: []}
              - {id: c, type: Return, format: c, dependsOn: [a]}
        """,
        (("start", "run a"), ("ok a", "run b"), ("ok b", "run c"), ("ok c", "")),
        "SUCCESS",
        {"p": "SUCCESS"},
    ),
    Case(
        "a task that ended KILLED (or CANCELLED): what waits for it is CANCELLED, the others go on",
        """
        tasks:
          - {id: a, type: Return, format: a}
          - {id: b, type: Return, format: b, dependsOn: [a]}
          - {id: c, type: Return, format: c, dependsOn: [b]}
          - {id: d, type: Return, format: d, dependsOn: []}
        """,
        (("start", "run a d"), ("killed a", ""), ("ok d", "")),
        "KILLED",
        {"a": "KILLED", "b": "CANCELLED", "c": "CANCELLED", "d": "SUCCESS"},
    ),
    Case(
        "restart: the failed task runs again, then the tasks that wait for it",
        """
        tasks:
          - {id: a, type: Return, format: a}
          - {id: b, type: Return, format: b, dependsOn: []}
          - {id: c, type: Return, format: c, dependsOn: [a, b]}
        """,
        (
            ("start", "run a b"),
            ("ok b", ""),
            ("fail a", ""),
            ("restart", "run a"),
            ("ok a", "run c"),
            ("ok c", ""),
        ),
        "SUCCESS",
        {"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS"},
        {"a": 2, "b": 1, "c": 1},
    ),
    Case(
        "conditions: a task runs when every one holds, and is skipped when one does not",
        """
        tasks:
          - {id: a, type: Return, format: a}
          - id: wanted
            type: Return
            format: w
            conditions:
              - {type: io.kestra.plugin.core.condition.Expression, expression: "{{ flow.id == 'f' }}"}
              - type: io.kestra.plugin.core.condition.Not
                conditions:
                  - {type: io.kestra.plugin.core.condition.Expression, expression: "{{ flow.id == 'g' }}"}
          - id: unwanted
            type: Return
            format: u
            conditions:
              - {type: io.kestra.plugin.core.condition.Expression, expression: "{{ flow.id == 'g' }}"}
          - id: on_saturday
            type: Return
            format: s
            conditions:
              - {type: io.kestra.plugin.core.condition.Weekend, date: "2024-01-06T10:00:00Z"}
        """,
        (
            ("start", "run a"),
            ("ok a", "run wanted"),
            ("ok wanted", "run on_saturday"),
            ("ok on_saturday", ""),
        ),
        "SUCCESS",
        {"wanted": "SUCCESS", "unwanted": "SKIPPED", "on_saturday": "SUCCESS"},
    ),
    Case(
        "a condition that cannot be tested fails its task, naming what went wrong",
        """
        tasks:
          - id: broken
            type: Return
            format: b
            conditions:
              - {type: io.kestra.plugin.core.condition.Expression, expression: "{{ outputs.missing.value }}"}
        """,
        (("start", ""),),
        "FAILED",
        {"broken": "FAILED"},
    ),
]


@pytest.mark.parametrize("case", ROWS, ids=[row.id for row in ROWS])
def test_dependencies_and_conditions_run(case: Case) -> None:
    play(case)


def test_a_name_that_is_not_a_sibling_is_refused_where_it_is_written() -> None:
    text = """
    id: demo
    namespace: company.team
    tasks:
      - id: extract
        type: io.kestra.plugin.core.log.Log
        message: x
      - id: load
        type: io.kestra.plugin.core.log.Log
        message: y
        dependsOn: [extrct]
    """
    error = error_at(text, "Task `load` of `tasks` depends on `extrct`, which is not a task", 10, 17)
    assert "Did you mean `extract`?" in error.message


def test_a_cycle_is_refused_with_its_path_the_implicit_order_included() -> None:
    text = """
    id: demo
    namespace: company.team
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: x
        dependsOn: [b]
      - id: b
        type: io.kestra.plugin.core.log.Log
        message: y
    """
    error = error_at(text, "`tasks` has a cyclic dependency", 8, 5)
    assert "a -> b -> a" in error.message
    assert "`b` has no `dependsOn`, so it waits for the task written before it" in error.message


def test_a_disabled_task_waits_for_nothing_so_it_closes_no_cycle() -> None:
    flow = parse(
        """
        id: demo
        namespace: company.team
        tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: x, dependsOn: [b]}
          - {id: b, type: io.kestra.plugin.core.log.Log, message: x, disabled: true}
          - {id: c, type: io.kestra.plugin.core.log.Log, message: x}
        """
    )
    assert [(task.id, task.depends_on) for task in flow.tasks] == [("a", ("b",)), ("b", ()), ("c", ("a",))]


def test_entries_must_be_task_ids_and_a_dag_task_keeps_them_beside_it() -> None:
    error_at(
        """
        id: demo
        namespace: company.team
        tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: x, dependsOn: [3]}
        """,
        "`dependsOn` lists task ids (text), not a number",
        4,
        74,
    )
    error_at(
        """
        id: demo
        namespace: company.team
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task: {id: a, type: io.kestra.plugin.core.log.Log, message: x, dependsOn: []}
        """,
        "In Dag `dag`, `dependsOn` goes beside `task:`",
        7,
        72,
    )


def test_an_execution_condition_is_refused_on_a_task() -> None:
    error_at(
        """
        id: demo
        namespace: company.team
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: x
            conditions:
              - type: io.kestra.plugin.core.condition.ExecutionStatus
                in: [FAILED]
        """,
        "tests the execution that triggered a flow, which a task has not",
        8,
        9,
    )


def test_the_flow_is_told_it_will_not_run_unchanged_on_kestra() -> None:
    flow = parse(
        """
        id: demo
        namespace: company.team
        tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: x}
          - id: b
            type: io.kestra.plugin.core.log.Log
            message: y
            dependsOn: [a]
            conditions:
              - {type: io.kestra.plugin.core.condition.Expression, expression: "{{ true }}"}
        """
    )
    assert [warning.split(": ", 2)[1] for warning in flow.warnings] == [
        "tasks[1].dependsOn",
        "tasks[1].conditions",
    ]
    assert all("Kestra refuses this flow" in warning for warning in flow.warnings)
    dag_only = parse_flow(
        "id: demo\nnamespace: company.team\ntasks:\n  - id: dag\n    type: io.kestra.plugin.core.flow.Dag\n"
        "    tasks:\n      - task: {id: a, type: io.kestra.plugin.core.log.Log, message: x}\n"
        "      - task: {id: b, type: io.kestra.plugin.core.log.Log, message: x}\n        dependsOn: [a]\n"
    )
    assert dag_only.warnings == ()  # Kestra's own Dag is no extension


def test_a_working_directorys_tasks_keep_their_order() -> None:
    error_at(
        """
        id: demo
        namespace: company.team
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - {id: a, type: io.kestra.plugin.core.log.Log, message: x}
              - {id: b, type: io.kestra.plugin.core.log.Log, message: x, dependsOn: []}
        """,
        "The tasks of a WorkingDirectory run one after the other on one worker",
        8,
        66,
    )
