"""Kestra's flowable rules, driven through the pure Executor as plain data (see executor_cases)."""

from __future__ import annotations

import pytest

from .executor_cases import Case, play

SEQUENTIAL = [
    Case(
        "tasks run one after the other",
        """
        tasks:
          - {id: a, type: Return, format: a}
          - {id: b, type: Return, format: b}
        """,
        (("start", "run a"), ("ok a", "run b"), ("ok b", "")),
        "SUCCESS",
        {"a": "SUCCESS", "b": "SUCCESS"},
    ),
    Case(
        "the first failure ends the flow; later tasks never start",
        """
        tasks:
          - {id: a, type: Return, format: a}
          - {id: b, type: Return, format: b}
        """,
        (("start", "run a"), ("fail a", "")),
        "FAILED",
        {"a": "FAILED", "b": None},
    ),
    Case(
        "a task whose runIf is false is skipped; a disabled task is left out",
        """
        tasks:
          - {id: a, type: Return, format: a, runIf: "{{ 1 > 2 }}"}
          - {id: off, type: Return, format: x, disabled: true}
          - {id: b, type: Return, format: b}
        """,
        (("start", "run b"), ("ok b", "")),
        "SUCCESS",
        {"a": "SKIPPED", "off": None, "b": "SUCCESS"},
    ),
    Case(
        "a warning goes on and marks the execution",
        """
        tasks:
          - {id: a, type: Return, format: a}
          - {id: b, type: Return, format: b}
        """,
        (("start", "run a"), ("warn a", "run b"), ("ok b", "")),
        "WARNING",
        {"a": "WARNING", "b": "SUCCESS"},
    ),
    Case(
        "nested Sequentials: a parent ends in the step its last child ends, and the next task starts",
        """
        tasks:
          - id: outer
            type: Sequential
            tasks:
              - id: inner
                type: Sequential
                tasks:
                  - {id: a, type: Return, format: a}
                  - {id: b, type: Return, format: b}
              - {id: c, type: Return, format: c}
          - {id: d, type: Return, format: d}
        """,
        (("start", "run a"), ("ok a", "run b"), ("ok b", "run c"), ("ok c", "run d"), ("ok d", "")),
        "SUCCESS",
        {"outer": "SUCCESS", "inner": "SUCCESS", "c": "SUCCESS", "d": "SUCCESS"},
    ),
    Case(
        "a failure deep inside fails every parent",
        """
        tasks:
          - id: outer
            type: Sequential
            tasks:
              - id: inner
                type: Sequential
                tasks:
                  - {id: a, type: Return, format: a}
              - {id: c, type: Return, format: c}
        """,
        (("start", "run a"), ("fail a", "")),
        "FAILED",
        {"outer": "FAILED", "inner": "FAILED", "a": "FAILED", "c": None},
    ),
]

PARALLEL = [
    Case(
        "every child at once",
        """
        tasks:
          - id: p
            type: Parallel
            tasks:
              - {id: a, type: Return, format: a}
              - {id: b, type: Return, format: b}
              - {id: c, type: Return, format: c}
        """,
        (("start", "run a b c"), ("ok b", ""), ("ok a", ""), ("ok c", "")),
        "SUCCESS",
        {"p": "SUCCESS", "a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS"},
    ),
    Case(
        "concurrent: 2 keeps two running; the next starts when one ends",
        """
        tasks:
          - id: p
            type: Parallel
            concurrent: 2
            tasks:
              - {id: a, type: Return, format: a}
              - {id: b, type: Return, format: b}
              - {id: c, type: Return, format: c}
              - {id: d, type: Return, format: d}
        """,
        (("start", "run a b"), ("ok b", "run c"), ("ok a", "run d"), ("ok c", ""), ("ok d", "")),
        "SUCCESS",
        {"p": "SUCCESS", "d": "SUCCESS"},
    ),
    Case(
        "a failed child: running siblings end, waiting ones never start, then the Parallel fails",
        """
        tasks:
          - id: p
            type: Parallel
            concurrent: 2
            tasks:
              - {id: a, type: Return, format: a}
              - {id: b, type: Return, format: b}
              - {id: c, type: Return, format: c}
          - {id: after, type: Return, format: x}
        """,
        (("start", "run a b"), ("fail b", ""), ("ok a", "")),
        "FAILED",
        {"p": "FAILED", "a": "SUCCESS", "b": "FAILED", "c": None, "after": None},
    ),
]

BRANCHES = [
    Case(
        "If: a true condition runs `then`",
        """
        tasks:
          - id: check
            type: If
            condition: "{{ inputs.size > 10 }}"
            then: [{id: big, type: Return, format: big}]
            else: [{id: small, type: Return, format: small}]
        """,
        (("start", "run big"), ("ok big", "")),
        "SUCCESS",
        {"check": "SUCCESS", "big": "SUCCESS", "small": None},
        inputs={"size": 11},
    ),
    Case(
        "If: a false condition runs `else`",
        """
        tasks:
          - id: check
            type: If
            condition: "{{ inputs.size > 10 }}"
            then: [{id: big, type: Return, format: big}]
            else: [{id: small, type: Return, format: small}]
        """,
        (("start", "run small"), ("ok small", "")),
        "SUCCESS",
        {"big": None, "small": "SUCCESS"},
        inputs={"size": 3},
    ),
    Case(
        "If: a false condition without `else` succeeds with no child",
        """
        tasks:
          - id: check
            type: If
            condition: "false"
            then: [{id: big, type: Return, format: big}]
          - {id: after, type: Return, format: x}
        """,
        (("start", "run after"), ("ok after", "")),
        "SUCCESS",
        {"check": "SUCCESS", "big": None},
    ),
    Case(
        "Switch: the matching case runs",
        """
        tasks:
          - id: route
            type: Switch
            value: "{{ inputs.kind }}"
            cases:
              csv: [{id: load_csv, type: Return, format: csv}]
              json: [{id: load_json, type: Return, format: json}]
            defaults: [{id: other, type: Return, format: other}]
        """,
        (("start", "run load_json"), ("ok load_json", "")),
        "SUCCESS",
        {"route": "SUCCESS", "load_json": "SUCCESS", "load_csv": None, "other": None},
        inputs={"kind": "json"},
    ),
    Case(
        "Switch: no matching case runs `defaults`",
        """
        tasks:
          - id: route
            type: Switch
            value: "{{ inputs.kind }}"
            cases:
              csv: [{id: load_csv, type: Return, format: csv}]
            defaults: [{id: other, type: Return, format: other}]
        """,
        (("start", "run other"), ("ok other", "")),
        "SUCCESS",
        {"other": "SUCCESS", "load_csv": None},
        inputs={"kind": "xml"},
    ),
    Case(
        "Switch: no matching case and no `defaults` fails the Switch at start",
        """
        tasks:
          - id: route
            type: Switch
            value: "{{ inputs.kind }}"
            cases:
              csv: [{id: load_csv, type: Return, format: csv}]
        """,
        (("start", ""),),
        "FAILED",
        {"route": "FAILED", "load_csv": None},
        inputs={"kind": "xml"},
    ),
]

LOOPS = [
    Case(
        "ForEach: concurrencyLimit 2 keeps two values going; each value's tasks run in sequence",
        """
        tasks:
          - id: each
            type: ForEach
            values: ["1", "2", "3"]
            concurrencyLimit: 2
            tasks:
              - {id: x, type: Return, format: "{{ taskrun.value }}"}
              - {id: y, type: Return, format: "{{ taskrun.value }}"}
        """,
        (
            ("start", "run x[1] x[2]"),
            ("ok x[1]", "run y[1]"),
            ("ok y[1]", "run x[3]"),
            ("ok x[2]", "run y[2]"),
            ("ok x[3]", "run y[3]"),
            ("ok y[2]", ""),
            ("ok y[3]", ""),
        ),
        "SUCCESS",
        {"each": "SUCCESS", "y[1]": "SUCCESS", "y[2]": "SUCCESS", "y[3]": "SUCCESS"},
    ),
    Case(
        "ForEach: concurrencyLimit 0 starts every value; values render from an expression",
        """
        tasks:
          - id: each
            type: ForEach
            values: "{{ inputs.items }}"
            concurrencyLimit: 0
            tasks:
              - {id: x, type: Return, format: "{{ taskrun.value }}"}
        """,
        (("start", "run x[a] x[b] x[c]"), ("ok x[c]", ""), ("ok x[a]", ""), ("ok x[b]", "")),
        "SUCCESS",
        {"each": "SUCCESS", "x[a]": "SUCCESS"},
        inputs={"items": ["a", "b", "c"]},
    ),
    Case(
        "ForEach: the default concurrencyLimit is 1",
        """
        tasks:
          - id: each
            type: ForEach
            values: [1, 2]
            tasks:
              - {id: x, type: Return, format: "{{ taskrun.value }}"}
        """,
        (("start", "run x[1]"), ("ok x[1]", "run x[2]"), ("ok x[2]", "")),
        "SUCCESS",
        {"each": "SUCCESS"},
    ),
    Case(
        "ForEach: a failed value stops new values; open ones end first",
        """
        tasks:
          - id: each
            type: ForEach
            values: [1, 2, 3]
            concurrencyLimit: 2
            tasks:
              - {id: x, type: Return, format: "{{ taskrun.value }}"}
        """,
        (("start", "run x[1] x[2]"), ("fail x[1]", ""), ("ok x[2]", "")),
        "FAILED",
        {"each": "FAILED", "x[1]": "FAILED", "x[2]": "SUCCESS", "x[3]": None},
    ),
    Case(
        "ForEach: a null among the values fails the loop",
        """
        tasks:
          - id: each
            type: ForEach
            values: "[1, null]"
            tasks:
              - {id: x, type: Return, format: "{{ taskrun.value }}"}
        """,
        (("start", ""),),
        "FAILED",
        {"each": "FAILED"},
    ),
    Case(
        "EachSequential: one value at a time",
        """
        tasks:
          - id: each
            type: EachSequential
            value: [a, b]
            tasks:
              - {id: x, type: Return, format: "{{ taskrun.value }}"}
        """,
        (("start", "run x[a]"), ("ok x[a]", "run x[b]"), ("ok x[b]", "")),
        "SUCCESS",
        {"each": "SUCCESS"},
    ),
    Case(
        "EachParallel: every task of every value at once",
        """
        tasks:
          - id: each
            type: EachParallel
            value: [a, b]
            tasks:
              - {id: x, type: Return, format: "{{ taskrun.value }}"}
              - {id: y, type: Return, format: "{{ taskrun.value }}"}
        """,
        (
            ("start", "run x[a] y[a] x[b] y[b]"),
            ("ok x[a]", ""),
            ("ok y[a]", ""),
            ("ok x[b]", ""),
            ("ok y[b]", ""),
        ),
        "SUCCESS",
        {"each": "SUCCESS"},
    ),
    Case(
        "WaitFor: the children run again until the condition holds",
        """
        tasks:
          - id: poll
            type: WaitFor
            condition: "{{ outputs.poll.iterationCount >= 2 }}"
            checkFrequency: {interval: PT1S}
            tasks:
              - {id: x, type: Return, format: x}
        """,
        (("start", "run x"), ("ok x", "wake +1s"), ("wait 1", "run x"), ("ok x", "")),
        "SUCCESS",
        {"poll": "SUCCESS", "x": "SUCCESS"},
    ),
]

DAG = [
    Case(
        "Dag: a task starts once every task it depends on ended well; independent ones together",
        """
        tasks:
          - id: dag
            type: Dag
            tasks:
              - task: {id: a, type: Return, format: a}
              - task: {id: b, type: Return, format: b}
                dependsOn: [a]
              - task: {id: c, type: Return, format: c}
                dependsOn: [a]
              - task: {id: d, type: Return, format: d}
                dependsOn: [b, c]
        """,
        (("start", "run a"), ("ok a", "run b c"), ("ok b", ""), ("ok c", "run d"), ("ok d", "")),
        "SUCCESS",
        {"dag": "SUCCESS", "d": "SUCCESS"},
    ),
    Case(
        "Dag: concurrent 1 runs one task at a time",
        """
        tasks:
          - id: dag
            type: Dag
            concurrent: 1
            tasks:
              - task: {id: a, type: Return, format: a}
              - task: {id: b, type: Return, format: b}
              - task: {id: c, type: Return, format: c}
                dependsOn: [a]
        """,
        (("start", "run a"), ("ok a", "run b"), ("ok b", "run c"), ("ok c", "")),
        "SUCCESS",
        {"dag": "SUCCESS"},
    ),
    Case(
        "Dag: a failure stops its dependants; the Dag fails",
        """
        tasks:
          - id: dag
            type: Dag
            tasks:
              - task: {id: a, type: Return, format: a}
              - task: {id: b, type: Return, format: b}
                dependsOn: [a]
        """,
        (("start", "run a"), ("fail a", "")),
        "FAILED",
        {"dag": "FAILED", "b": None},
    ),
]

FAILURES = [
    Case(
        "AllowFailure: a failing child ends the block WARNING and the flow goes on",
        """
        tasks:
          - id: tolerant
            type: AllowFailure
            tasks:
              - {id: a, type: Return, format: a}
          - {id: b, type: Return, format: b}
        """,
        (("start", "run a"), ("fail a", "run b"), ("ok b", "")),
        "WARNING",
        {"tolerant": "WARNING", "a": "FAILED", "b": "SUCCESS"},
    ),
    Case(
        "allowFailure on a task: its failure is a warning",
        """
        tasks:
          - {id: a, type: Return, format: a, allowFailure: true}
          - {id: b, type: Return, format: b}
        """,
        (("start", "run a"), ("fail a", "run b"), ("ok b", "")),
        "WARNING",
        {"a": "WARNING", "b": "SUCCESS"},
    ),
    Case(
        "allowFailure and allowWarning on a task: its failure is a success",
        """
        tasks:
          - {id: a, type: Return, format: a, allowFailure: true, allowWarning: true}
        """,
        (("start", "run a"), ("fail a", "")),
        "SUCCESS",
        {"a": "SUCCESS"},
    ),
    Case(
        "flow errors: run after a failure; the execution stays FAILED",
        """
        tasks:
          - {id: a, type: Return, format: a}
          - {id: b, type: Return, format: b}
        errors:
          - {id: e1, type: Log, message: failed}
          - {id: e2, type: Log, message: failed}
        """,
        (("start", "run a"), ("fail a", "run e1"), ("ok e1", "run e2"), ("ok e2", "")),
        "FAILED",
        {"a": "FAILED", "b": None, "e1": "SUCCESS", "e2": "SUCCESS"},
    ),
    Case(
        "flow errors: do not run when nothing failed",
        """
        tasks:
          - {id: a, type: Return, format: a}
        errors:
          - {id: e, type: Log, message: failed}
        """,
        (("start", "run a"), ("ok a", "")),
        "SUCCESS",
        {"e": None},
    ),
    Case(
        "flow errors: a failing error task lets the next one run",
        """
        tasks:
          - {id: a, type: Return, format: a}
        errors:
          - {id: e1, type: Log, message: failed}
          - {id: e2, type: Log, message: failed}
        """,
        (("start", "run a"), ("fail a", "run e1"), ("fail e1", "run e2"), ("ok e2", "")),
        "FAILED",
        {"e1": "FAILED", "e2": "SUCCESS"},
    ),
    Case(
        "task errors: a flowable's own errors branch runs inside it, then the flowable fails",
        """
        tasks:
          - id: seq
            type: Sequential
            tasks:
              - {id: a, type: Return, format: a}
            errors:
              - {id: e, type: Log, message: failed}
          - {id: after, type: Return, format: x}
        """,
        (("start", "run a"), ("fail a", "run e"), ("ok e", "")),
        "FAILED",
        {"seq": "FAILED", "e": "SUCCESS", "after": None},
    ),
    Case(
        "task errors in a Parallel: start once every running sibling ended",
        """
        tasks:
          - id: p
            type: Parallel
            tasks:
              - {id: a, type: Return, format: a}
              - {id: b, type: Return, format: b}
            errors:
              - {id: e, type: Log, message: failed}
        """,
        (("start", "run a b"), ("fail a", ""), ("ok b", "run e"), ("ok e", "")),
        "FAILED",
        {"p": "FAILED", "e": "SUCCESS"},
    ),
    Case(
        "finally: runs after a success",
        """
        tasks:
          - {id: a, type: Return, format: a}
        finally:
          - {id: fin, type: Log, message: done}
        """,
        (("start", "run a"), ("ok a", "run fin"), ("ok fin", "")),
        "SUCCESS",
        {"fin": "SUCCESS"},
    ),
    Case(
        "finally: runs after a failure and after the errors branch",
        """
        tasks:
          - {id: a, type: Return, format: a}
        errors:
          - {id: e, type: Log, message: failed}
        finally:
          - {id: fin, type: Log, message: done}
        """,
        (("start", "run a"), ("fail a", "run e"), ("ok e", "run fin"), ("ok fin", "")),
        "FAILED",
        {"e": "SUCCESS", "fin": "SUCCESS"},
    ),
    Case(
        "finally: its failure fails a successful execution",
        """
        tasks:
          - {id: a, type: Return, format: a}
        finally:
          - {id: fin, type: Log, message: done}
        """,
        (("start", "run a"), ("ok a", "run fin"), ("fail fin", "")),
        "FAILED",
        {"a": "SUCCESS", "fin": "FAILED"},
    ),
    Case(
        "task finally: a flowable's finally runs after its errors branch, inside it",
        """
        tasks:
          - id: seq
            type: Sequential
            tasks:
              - {id: a, type: Return, format: a}
            errors:
              - {id: e, type: Log, message: failed}
            finally:
              - {id: fin, type: Log, message: done}
        """,
        (("start", "run a"), ("fail a", "run e"), ("ok e", "run fin"), ("ok fin", "")),
        "FAILED",
        {"seq": "FAILED", "e": "SUCCESS", "fin": "SUCCESS"},
    ),
    Case(
        "afterExecution: runs once the end state is known and does not change it",
        """
        tasks:
          - {id: a, type: Return, format: a}
        afterExecution:
          - {id: notify, type: Log, message: "{{ execution.state }}"}
        """,
        (("start", "run a"), ("fail a", "run notify"), ("fail notify", "")),
        "FAILED",
        {"a": "FAILED", "notify": "FAILED"},
    ),
]


def cases(rows: list[Case]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", rows, ids=[row.id for row in rows])


@cases(SEQUENTIAL)
def test_sequential(case: Case) -> None:
    play(case)


@cases(PARALLEL)
def test_parallel(case: Case) -> None:
    play(case)


@cases(BRANCHES)
def test_if_and_switch(case: Case) -> None:
    play(case)


@cases(LOOPS)
def test_loops(case: Case) -> None:
    play(case)


@cases(DAG)
def test_dag(case: Case) -> None:
    play(case)


@cases(FAILURES)
def test_allow_failure_errors_and_finally(case: Case) -> None:
    play(case)
