"""Flowable tasks, error branches, finally, afterExecution, flow outputs and subflows, on a real engine."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from tests.engine.helpers import (
    flow,
    one_run,
    run,
    run_flow,
    running_engine,
    running_window,
    runs_of,
    states,
)
from tiercel.engine.inputs import InputError
from tiercel.engine.model import Execution, Label, LogLevel, StateType, TaskRun

S = StateType


def task_ids(execution: Execution) -> list[str]:
    return [r.task_id for r in execution.task_runs]


def max_overlap(runs: list[TaskRun]) -> int:
    """The largest number of task runs that were RUNNING at the same moment."""
    events: list[tuple[datetime, int]] = []
    for item in runs:
        start, end = running_window(item)
        events += [(start, 1), (end, -1)]
    # Ends sort before starts at the same instant: touching windows do not overlap.
    events.sort(key=lambda event: (event[0], event[1]))
    current = best = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


def duration(item: TaskRun) -> float:
    start, end = running_window(item)
    return (end - start).total_seconds()


# ---------------------------------------------------------------------------------------------
# Sequential, Parallel
# ---------------------------------------------------------------------------------------------


async def test_sequential_runs_children_in_order_under_their_parent(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - {id: a, type: io.kestra.plugin.core.debug.Return, format: a}
              - id: inner
                type: io.kestra.plugin.core.flow.Sequential
                tasks:
                  - {id: b, type: io.kestra.plugin.core.debug.Return, format: "{{ outputs.a.value }}b"}
              - {id: c, type: io.kestra.plugin.core.debug.Return, format: "{{ outputs.b.value }}c"}
          - {id: last, type: io.kestra.plugin.core.debug.Return, format: "{{ outputs.c.value }}!"}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert task_ids(execution) == ["seq", "a", "inner", "b", "c", "last"]
    seq, inner = one_run(execution, "seq"), one_run(execution, "inner")
    assert one_run(execution, "a").parent_task_run_id == seq.id
    assert one_run(execution, "b").parent_task_run_id == inner.id
    assert one_run(execution, "last").parent_task_run_id is None
    assert one_run(execution, "last").outputs == {"value": "abc!"}
    # A flowable ends after its last child, and the next sibling starts after it.
    assert seq.state.end_date >= one_run(execution, "c").state.end_date
    assert running_window(one_run(execution, "last"))[0] >= seq.state.end_date


async def test_sequential_stops_at_the_first_failure(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - {id: ok, type: io.kestra.plugin.core.log.Log, message: ok}
              - {id: ko, type: io.kestra.plugin.core.execution.Fail}
              - {id: never, type: io.kestra.plugin.core.log.Log, message: never}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: never}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert states(execution) == {"seq": S.FAILED, "ok": S.SUCCESS, "ko": S.FAILED}


async def test_parallel_runs_children_concurrently(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: par
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - {id: s1, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.3S}
              - {id: s2, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.3S}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert one_run(execution, "par").state.end_date is not None
    assert max_overlap([one_run(execution, "s1"), one_run(execution, "s2")]) == 2


async def test_parallel_concurrent_one_serialises_children(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: par
            type: io.kestra.plugin.core.flow.Parallel
            concurrent: 1
            tasks:
              - {id: s1, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.15S}
              - {id: s2, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.15S}
              - {id: s3, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.15S}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    sleeps = [one_run(execution, t) for t in ("s1", "s2", "s3")]
    assert max_overlap(sleeps) == 1
    par = one_run(execution, "par")
    assert (par.state.end_date - par.state.start_date).total_seconds() >= 0.44


async def test_parallel_concurrent_two_caps_at_two(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: par
            type: io.kestra.plugin.core.flow.Parallel
            concurrent: 2
            tasks:
              - {id: s1, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.15S}
              - {id: s2, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.15S}
              - {id: s3, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.15S}
              - {id: s4, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.15S}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert max_overlap([one_run(execution, f"s{i}") for i in range(1, 5)]) == 2


async def test_parallel_child_failure_fails_the_parallel_after_running_siblings_end(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: par
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - {id: ko, type: io.kestra.plugin.core.execution.Fail}
              - {id: slow, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.2S}
          - {id: never, type: io.kestra.plugin.core.log.Log, message: never}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert states(execution) == {"par": S.FAILED, "ko": S.FAILED, "slow": S.SUCCESS}
    assert one_run(execution, "par").state.end_date >= one_run(execution, "slow").state.end_date


# ---------------------------------------------------------------------------------------------
# If, Switch
# ---------------------------------------------------------------------------------------------


IF_FLOW = flow(
    """
    inputs:
      - {id: param, type: STRING, required: false}
    tasks:
      - id: if
        type: io.kestra.plugin.core.flow.If
        condition: "{{ inputs.param }}"
        then:
          - {id: when_true, type: io.kestra.plugin.core.log.Log, message: "true"}
        else:
          - {id: when_false, type: io.kestra.plugin.core.log.Log, message: "false"}
    """
)


@pytest.mark.parametrize(
    ("value", "branch"),
    [
        ("true", "when_true"),
        ("1", "when_true"),
        ("yes", "when_true"),
        ("false", "when_false"),
        ("0", "when_false"),
        ("", "when_false"),
    ],
)
async def test_if_truthiness(tmp_path: Path, value: str, branch: str) -> None:
    execution, _ = await run_flow(tmp_path, IF_FLOW, {"param": value})
    assert execution.state.current is S.SUCCESS
    assert task_ids(execution) == ["if", branch]


async def test_if_literal_conditions_and_no_else(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: if_false
            type: io.kestra.plugin.core.flow.If
            condition: "{{ 1 == 2 }}"
            then:
              - {id: not_run, type: io.kestra.plugin.core.execution.Fail}
          - id: if_true
            type: io.kestra.plugin.core.flow.If
            condition: "{{ 'abc' is defined }}"
            then:
              - {id: run_a, type: io.kestra.plugin.core.log.Log, message: a}
              - {id: run_b, type: io.kestra.plugin.core.log.Log, message: b}
            else:
              - {id: not_run_either, type: io.kestra.plugin.core.execution.Fail}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert task_ids(execution) == ["if_false", "if_true", "run_a", "run_b"]
    assert one_run(execution, "if_false").state.current is S.SUCCESS


async def test_if_condition_render_error_fails(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: if
            type: io.kestra.plugin.core.flow.If
            condition: "{{ missing.thing }}"
            then:
              - {id: never, type: io.kestra.plugin.core.log.Log, message: never}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert states(execution) == {"if": S.FAILED}
    assert any("missing" in e.message for e in logs if e.level is LogLevel.ERROR)


SWITCH_FLOW = flow(
    """
    inputs:
      - {id: string, type: STRING}
    tasks:
      - id: switch
        type: io.kestra.plugin.core.flow.Switch
        value: "{{ inputs.string }}"
        cases:
          FIRST:
            - {id: t1, type: io.kestra.plugin.core.debug.Return, format: "first"}
          SECOND:
            - {id: t2, type: io.kestra.plugin.core.debug.Return, format: "second"}
            - {id: t2b, type: io.kestra.plugin.core.debug.Return, format: "second b"}
        defaults:
          - {id: default, type: io.kestra.plugin.core.debug.Return, format: "default {{ inputs.string }}"}
    """
)


async def test_switch_runs_the_matching_case(tmp_path: Path) -> None:
    async with running_engine(tmp_path, SWITCH_FLOW) as engine:
        first = await run(engine, "ns", "f", {"string": "FIRST"})
        second = await run(engine, "ns", "f", {"string": "SECOND"})
        other = await run(engine, "ns", "f", {"string": "OTHER"})
    assert first.state.current is S.SUCCESS
    assert task_ids(first) == ["switch", "t1"]
    assert one_run(first, "switch").outputs == {"value": "FIRST", "defaults": False}
    assert task_ids(second) == ["switch", "t2", "t2b"]
    assert task_ids(other) == ["switch", "default"]
    assert one_run(other, "switch").outputs == {"value": "OTHER", "defaults": True}
    assert one_run(other, "default").outputs == {"value": "default OTHER"}


async def test_switch_without_match_or_defaults_fails(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: switch
            type: io.kestra.plugin.core.flow.Switch
            value: "{{ 'impossible' }}"
            cases:
              possible:
                - {id: never, type: io.kestra.plugin.core.log.Log, message: never}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: never}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert states(execution) == {"switch": S.FAILED}
    assert any("impossible" in e.message for e in logs if e.task_id == "switch")


async def test_switch_on_a_boolean_expression(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: switch
            type: io.kestra.plugin.core.flow.Switch
            value: "{{ 1 < 2 }}"
            cases:
              "true":
                - {id: yes, type: io.kestra.plugin.core.log.Log, message: yes}
              "false":
                - {id: no, type: io.kestra.plugin.core.log.Log, message: no}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert task_ids(execution) == ["switch", "yes"]


# ---------------------------------------------------------------------------------------------
# ForEach, EachSequential, EachParallel
# ---------------------------------------------------------------------------------------------


async def test_foreach_values_list_runs_children_per_value(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "b", "c"]
            tasks:
              - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}!"}
              - id: log
                type: io.kestra.plugin.core.log.Log
                message: "{{ outputs.ret[taskrun.value].value }}"
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.ret['a'].value }}{{ outputs.ret['b'].value }}{{ outputs.ret.c.value }}"
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert [(r.task_id, r.value) for r in execution.task_runs if r.task_id != "each"][:2] == [
        ("ret", "a"),
        ("log", "a"),
    ]
    assert sorted(r.value for r in runs_of(execution, "ret")) == ["a", "b", "c"]
    each = one_run(execution, "each")
    assert all(r.parent_task_run_id == each.id for r in runs_of(execution, "ret"))
    assert one_run(execution, "ret", "b").outputs == {"value": "b!"}
    assert one_run(execution, "after").outputs == {"value": "a!b!c!"}
    assert sorted(e.message for e in logs if e.task_id == "log") == ["a!", "b!", "c!"]


async def test_foreach_values_as_json_text_and_non_string_items(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: '[1, "two", {"k": "v"}]'
            tasks:
              - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert [r.value for r in runs_of(execution, "ret")] == ["1", "two", '{"k":"v"}']


async def test_foreach_values_from_an_expression(tmp_path: Path) -> None:
    source = flow(
        """
        inputs:
          - {id: items, type: JSON, defaults: '["x", "y"]'}
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: "{{ inputs.items }}"
            tasks:
              - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert [r.value for r in runs_of(execution, "ret")] == ["x", "y"]


async def test_foreach_duplicate_values_run_once(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "b", "a", "b", "c"]
            tasks:
              - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert [r.value for r in runs_of(execution, "ret")] == ["a", "b", "c"]


async def test_foreach_null_value_fails(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: '[1, null, {"key": "my-key"}]'
            tasks:
              - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: never}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert task_ids(execution) == ["each"]
    assert any("Found '1' null values on Each" in e.message for e in logs)


async def test_foreach_many_null_values_are_counted_as_kestra_does(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: '[1, null, null]'
            tasks:
              - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert any("Found '1' null values on Each" in e.message for e in logs)


async def test_foreach_empty_list_succeeds_without_children(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: []
            tasks:
              - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: after}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert task_ids(execution) == ["each", "after"]


async def test_foreach_values_that_are_not_a_list_fail(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: "not json"
            tasks:
              - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert task_ids(execution) == ["each"]


FOREACH_SLEEPS = """
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["v1", "v2", "v3"]
    concurrencyLimit: {limit}
    tasks:
      - {{id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.15S}}
      - {{id: log, type: io.kestra.plugin.core.log.Log, message: "{{{{ taskrun.value }}}}"}}
"""


@pytest.mark.parametrize(("limit", "expected"), [(1, 1), (2, 2), (0, 3)])
async def test_foreach_concurrency_limit(tmp_path: Path, limit: int, expected: int) -> None:
    execution, _ = await run_flow(tmp_path, flow(FOREACH_SLEEPS.format(limit=limit)))
    assert execution.state.current is S.SUCCESS
    naps = runs_of(execution, "nap")
    assert len(naps) == 3
    assert max_overlap(naps) == expected
    # Within one value the children stay sequential.
    for value in ("v1", "v2", "v3"):
        assert (
            running_window(one_run(execution, "log", value))[0]
            >= one_run(execution, "nap", value).state.end_date
        )


async def test_foreach_default_concurrency_is_one(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["v1", "v2"]
            tasks:
              - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.1S}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert max_overlap(runs_of(execution, "nap")) == 1


async def test_nested_foreach_parent_value_and_nested_outputs(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: outer
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "b"]
            tasks:
              - id: inner
                type: io.kestra.plugin.core.flow.ForEach
                values: ["1", "2"]
                tasks:
                  - id: ret
                    type: io.kestra.plugin.core.debug.Return
                    format: "{{ parent.taskrun.value }}-{{ taskrun.value }}"
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.ret['a']['2'].value }} {{ outputs.ret['b']['1'].value }}"
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert sorted(r.outputs["value"] for r in runs_of(execution, "ret")) == ["a-1", "a-2", "b-1", "b-2"]
    assert sorted(r.value for r in runs_of(execution, "inner")) == ["a", "b"]
    assert one_run(execution, "after").outputs == {"value": "a-2 b-1"}


async def test_foreach_child_failure_fails_the_loop(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["ok", "ko", "later"]
            tasks:
              - id: check
                type: io.kestra.plugin.core.execution.Fail
                condition: "{{ taskrun.value == 'ko' }}"
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert one_run(execution, "each").state.current is S.FAILED
    assert one_run(execution, "check", "ko").state.current is S.FAILED
    # With one value at a time, nothing starts after the failure.
    assert [r.value for r in runs_of(execution, "check")] == ["ok", "ko"]


async def test_each_sequential_runs_one_value_at_a_time(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.EachSequential
            value: ["v1", "v2", "v3"]
            tasks:
              - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.1S}
              - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert max_overlap(runs_of(execution, "nap")) == 1
    assert [r.outputs["value"] for r in runs_of(execution, "ret")] == ["v1", "v2", "v3"]


async def test_each_parallel_runs_values_at_once(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.EachParallel
            value: '["v1", "v2", "v3"]'
            tasks:
              - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.2S}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert max_overlap(runs_of(execution, "nap")) == 3


async def test_each_parallel_concurrent_caps_it(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.EachParallel
            value: ["v1", "v2", "v3"]
            concurrent: 1
            tasks:
              - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.1S}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert max_overlap(runs_of(execution, "nap")) == 1


# ---------------------------------------------------------------------------------------------
# Dag
# ---------------------------------------------------------------------------------------------


DAG_FLOW = """
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    {concurrent}
    tasks:
      - task: {{id: d, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.1S}}
        dependsOn: [b, c]
      - task: {{id: a, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.1S}}
      - task: {{id: b, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.15S}}
        dependsOn: [a]
      - task: {{id: c, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.15S}}
        dependsOn: [a]
"""


async def test_dag_respects_depends_on_and_runs_independent_tasks_together(tmp_path: Path) -> None:
    execution, _ = await run_flow(tmp_path, flow(DAG_FLOW.format(concurrent="")))
    assert execution.state.current is S.SUCCESS
    a, b, c, d = (one_run(execution, t) for t in "abcd")
    assert running_window(b)[0] >= running_window(a)[1]
    assert running_window(c)[0] >= running_window(a)[1]
    assert running_window(d)[0] >= max(running_window(b)[1], running_window(c)[1])
    assert max_overlap([b, c]) == 2


async def test_dag_concurrent_one_runs_one_task_at_a_time(tmp_path: Path) -> None:
    execution, _ = await run_flow(tmp_path, flow(DAG_FLOW.format(concurrent="concurrent: 1")))
    assert execution.state.current is S.SUCCESS
    runs = [one_run(execution, t) for t in "abcd"]
    assert max_overlap(runs) == 1
    _, b, c, d = runs
    assert running_window(d)[0] >= max(running_window(b)[1], running_window(c)[1])


async def test_dag_failure_stops_dependants(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task: {id: a, type: io.kestra.plugin.core.execution.Fail}
              - task: {id: b, type: io.kestra.plugin.core.log.Log, message: never}
                dependsOn: [a]
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert task_ids(execution) == ["dag", "a"]


# ---------------------------------------------------------------------------------------------
# AllowFailure, errors, finally, afterExecution
# ---------------------------------------------------------------------------------------------


async def test_allow_failure_child_failure_ends_warning_and_the_flow_goes_on(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: allow
            type: io.kestra.plugin.core.flow.AllowFailure
            tasks:
              - {id: ok, type: io.kestra.plugin.core.log.Log, message: ok}
              - {id: ko, type: io.kestra.plugin.core.execution.Fail}
              - {id: skipped_by_failure, type: io.kestra.plugin.core.log.Log, message: never}
            errors:
              - {id: local_error, type: io.kestra.plugin.core.log.Log, message: "handled {{ task.id }}"}
          - {id: next, type: io.kestra.plugin.core.log.Log, message: went on}
        errors:
          - {id: global_error, type: io.kestra.plugin.core.log.Log, message: never}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.WARNING
    assert states(execution) == {
        "allow": S.WARNING,
        "ok": S.SUCCESS,
        "ko": S.FAILED,
        "local_error": S.SUCCESS,
        "next": S.SUCCESS,
    }
    assert one_run(execution, "local_error").parent_task_run_id == one_run(execution, "allow").id
    assert any(e.message == "handled local_error" for e in logs)


async def test_flow_errors_branch_runs_after_a_failure_and_sees_error_logs(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: ok, type: io.kestra.plugin.core.log.Log, message: fine}
          - {id: failed, type: io.kestra.plugin.core.execution.Fail}
          - {id: never, type: io.kestra.plugin.core.log.Log, message: never}
        errors:
          - id: report
            type: io.kestra.plugin.core.log.Log
            message: |
              {%- for log in errorLogs() -%}
              - task: {{ log.taskId }}, message: {{ log.message }}
              {%- endfor -%}
          - {id: second, type: io.kestra.plugin.core.log.Log, message: "{{ errorLogs() | length }}"}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert task_ids(execution) == ["ok", "failed", "report", "second"]
    assert states(execution)["report"] is S.SUCCESS
    report = [e.message for e in logs if e.task_id == "report"]
    assert report == ["- task: failed, message: Task failure"]
    assert [e.message for e in logs if e.task_id == "second"] == ["1"]


async def test_flow_errors_branch_does_not_run_on_success(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: ok, type: io.kestra.plugin.core.log.Log, message: fine}
        errors:
          - {id: handler, type: io.kestra.plugin.core.log.Log, message: never}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert task_ids(execution) == ["ok"]


async def test_flowable_errors_branch_runs_inside_the_flowable(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - {id: ko, type: io.kestra.plugin.core.execution.Fail, errorMessage: inner boom}
            errors:
              - id: local
                type: io.kestra.plugin.core.log.Log
                message: "local {{ errorLogs()[0].message }}"
          - {id: never, type: io.kestra.plugin.core.log.Log, message: never}
        errors:
          - {id: global, type: io.kestra.plugin.core.log.Log, message: global}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert task_ids(execution) == ["seq", "ko", "local", "global"]
    assert one_run(execution, "seq").state.current is S.FAILED
    assert one_run(execution, "local").parent_task_run_id == one_run(execution, "seq").id
    assert [e.message for e in logs if e.task_id == "local"] == ["local inner boom"]


async def test_flow_finally_runs_after_success(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: ok, type: io.kestra.plugin.core.log.Log, message: fine}
        errors:
          - {id: handler, type: io.kestra.plugin.core.log.Log, message: never}
        finally:
          - {id: cleanup, type: io.kestra.plugin.core.log.Log, message: "cleanup"}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert task_ids(execution) == ["ok", "cleanup"]


async def test_flow_finally_runs_after_failure_and_after_errors(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: ko, type: io.kestra.plugin.core.execution.Fail}
        errors:
          - {id: handler, type: io.kestra.plugin.core.log.Log, message: handled}
        finally:
          - {id: cleanup, type: io.kestra.plugin.core.log.Log, message: cleanup}
          - {id: cleanup2, type: io.kestra.plugin.core.log.Log, message: cleanup2}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert task_ids(execution) == ["ko", "handler", "cleanup", "cleanup2"]
    assert states(execution)["cleanup2"] is S.SUCCESS
    assert running_window(one_run(execution, "cleanup"))[0] >= one_run(execution, "handler").state.end_date


async def test_flow_finally_failure_fails_the_execution(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: ok, type: io.kestra.plugin.core.log.Log, message: fine}
        finally:
          - {id: cleanup, type: io.kestra.plugin.core.execution.Fail}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert states(execution) == {"ok": S.SUCCESS, "cleanup": S.FAILED}


async def test_after_execution_sees_the_final_state_of_a_success(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: ok, type: io.kestra.plugin.core.log.Log, message: fine}
        afterExecution:
          - {id: notify, type: io.kestra.plugin.core.log.Log, message: "state {{ execution.state }}"}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert task_ids(execution) == ["ok", "notify"]
    assert [e.message for e in logs if e.task_id == "notify"] == ["state SUCCESS"]
    # The execution ends once afterExecution tasks are done.
    assert execution.state.end_date >= one_run(execution, "notify").state.end_date


async def test_after_execution_sees_failed_and_its_failure_does_not_change_the_state(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: ko, type: io.kestra.plugin.core.execution.Fail}
        afterExecution:
          - {id: notify, type: io.kestra.plugin.core.log.Log, message: "state {{ execution.state }}"}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert [e.message for e in logs if e.task_id == "notify"] == ["state FAILED"]


async def test_after_execution_failure_keeps_success(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: ok, type: io.kestra.plugin.core.log.Log, message: fine}
        afterExecution:
          - {id: broken, type: io.kestra.plugin.core.execution.Fail}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        stored = await engine.store.get_execution(execution.id)
    assert execution.state.current is S.SUCCESS
    assert states(execution) == {"ok": S.SUCCESS, "broken": S.FAILED}
    assert stored is not None and stored.state.current is S.SUCCESS


# ---------------------------------------------------------------------------------------------
# Flow outputs and labels
# ---------------------------------------------------------------------------------------------


async def test_flow_outputs_are_rendered_and_typed(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "{{ flow.id }}"}
        outputs:
          - {id: text, type: STRING, value: "{{ outputs.ret.value }}"}
          - {id: number, type: INT, value: "{{ 40 + 2 }}"}
          - {id: flag, type: BOOLEAN, value: "true"}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        stored = await engine.store.get_execution(execution.id)
    assert execution.state.current is S.SUCCESS
    assert execution.outputs == {"text": "f", "number": 42, "flag": True}
    assert stored is not None and stored.outputs == execution.outputs


async def test_flow_outputs_render_failure_fails_the_execution(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: ret, type: io.kestra.plugin.core.debug.Return, format: x}
        outputs:
          - {id: key, type: STRING, value: "{{ invalid }}"}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert any("invalid" in e.message for e in logs if e.level is LogLevel.ERROR)


async def test_flow_outputs_type_mismatch_fails_the_execution(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: ret, type: io.kestra.plugin.core.debug.Return, format: x}
        outputs:
          - {id: n, type: INT, value: "{{ outputs.ret.value }}"}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f", timeout=3)
    assert execution.state.current is S.FAILED


async def test_flow_labels_are_set_on_executions(tmp_path: Path) -> None:
    source = flow(
        """
        labels:
          team: data
          tier: "1"
        tasks:
          - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "{{ labels.team }}"}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f", labels=[Label("tier", "2"), Label("who", "me")])
    assert execution.labels_map() == {
        "team": "data",
        "tier": "2",
        "who": "me",
        "system.correlationId": execution.id,
    }
    assert one_run(execution, "ret").outputs == {"value": "data"}


# ---------------------------------------------------------------------------------------------
# Subflow
# ---------------------------------------------------------------------------------------------


CHILD = flow(
    """
    inputs:
      - {id: name, type: STRING, defaults: world}
    tasks:
      - {id: hello, type: io.kestra.plugin.core.debug.Return, format: "hello {{ inputs.name }}"}
      - id: nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: "{{ inputs.name == 'slow' ? 'PT0.3S' : 'PT0S' }}"
      - {id: maybe_fail, type: io.kestra.plugin.core.execution.Fail, condition: "{{ inputs.name == 'fail' }}"}
    outputs:
      - {id: greeting, type: STRING, value: "{{ outputs.hello.value }}"}
    """,
    flow_id="child",
    namespace="ns.sub",
)


def parent(props: str, labels: str = "", after: str = "{{ outputs.call.state }}") -> str:
    """A flow calling ns.sub.child with extra Subflow properties (`key: value` lines)."""
    extra = "".join(f"    {line}\n" for line in textwrap.dedent(props).splitlines() if line.strip())
    return (
        f"id: f\nnamespace: ns\n{labels}\n"
        "tasks:\n"
        "  - id: call\n"
        "    type: io.kestra.plugin.core.flow.Subflow\n"
        "    namespace: ns.sub\n"
        "    flowId: child\n"
        f"{extra}"
        f"  - {{id: after, type: io.kestra.plugin.core.debug.Return, format: '{after}'}}\n"
    )


async def test_subflow_waits_and_exposes_the_child_outputs(tmp_path: Path) -> None:
    source = parent("inputs: {name: Ada}\n", after="{{ outputs.call.outputs.greeting }}")
    async with running_engine(tmp_path, source, CHILD) as engine:
        execution = await run(engine, "ns", "f")
        call = one_run(execution, "call")
        child = await engine.store.get_execution(call.outputs["executionId"])
    assert execution.state.current is S.SUCCESS
    assert call.state.current is S.SUCCESS
    assert call.outputs["state"] == "SUCCESS"
    assert call.outputs["outputs"] == {"greeting": "hello Ada"}
    assert one_run(execution, "after").outputs == {"value": "hello Ada"}
    assert child is not None
    assert child.state.current is S.SUCCESS
    assert child.parent_id == execution.id
    assert child.inputs["name"] == "Ada"
    assert child.labels_map()["system.correlationId"] == execution.id
    assert child.state.end_date is not None and call.state.end_date >= child.state.end_date


async def test_subflow_failed_child_fails_the_parent(tmp_path: Path) -> None:
    source = parent("inputs: {name: fail}\n")
    execution, _ = await run_flow(tmp_path, source, None, CHILD)
    assert execution.state.current is S.FAILED
    assert one_run(execution, "call").state.current is S.FAILED
    assert "after" not in states(execution)


async def test_subflow_transmit_failed_false_keeps_the_parent_going(tmp_path: Path) -> None:
    source = parent("inputs: {name: fail}\ntransmitFailed: false\n")
    execution, _ = await run_flow(tmp_path, source, None, CHILD)
    call = one_run(execution, "call")
    assert call.state.current is S.SUCCESS
    assert call.outputs["state"] == "FAILED"
    assert one_run(execution, "after").outputs == {"value": "FAILED"}
    assert execution.state.current is S.SUCCESS


async def test_subflow_labels_and_inherit_labels(tmp_path: Path) -> None:
    source = parent(
        "inheritLabels: true\nlabels: {extra: yes, team: child-team}\n", labels="labels: {team: core}"
    )
    async with running_engine(tmp_path, source, CHILD) as engine:
        execution = await run(engine, "ns", "f", labels=[Label("run", "manual")])
        child = await engine.store.get_execution(one_run(execution, "call").outputs["executionId"])
    assert execution.state.current is S.SUCCESS
    assert child is not None
    labels = child.labels_map()
    assert labels["run"] == "manual"
    assert labels["extra"] == "yes"
    assert labels["team"] == "child-team"
    assert labels["system.correlationId"] == execution.id


async def test_subflow_without_inherit_labels_does_not_copy_parent_labels(tmp_path: Path) -> None:
    source = parent("labels: {extra: yes}\n", labels="labels: {team: core}")
    async with running_engine(tmp_path, source, CHILD) as engine:
        execution = await run(engine, "ns", "f")
        child = await engine.store.get_execution(one_run(execution, "call").outputs["executionId"])
    assert child is not None
    assert "team" not in child.labels_map()
    assert child.labels_map()["extra"] == "yes"


async def test_subflow_wait_false_succeeds_at_once(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns.sub
            flowId: child
            wait: false
            inputs: {name: slow}
        """
    )
    async with running_engine(tmp_path, source, CHILD) as engine:
        execution = await run(engine, "ns", "f")
        child_id = one_run(execution, "call").outputs["executionId"]
        child_before = await engine.execution(child_id)
        child = await asyncio.wait_for(engine.wait(child_id), 10)
    assert execution.state.current is S.SUCCESS
    assert child_before is not None and not child_before.state.current.is_terminated
    assert child.state.current is S.SUCCESS
    assert child.parent_id == execution.id
    assert child.labels_map()["system.correlationId"] == execution.id
    assert child.state.end_date > execution.state.end_date


async def test_subflow_unknown_flow_fails_the_task(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns.sub
            flowId: nowhere
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert any("nowhere" in e.message for e in logs if e.task_id == "call")


# ---------------------------------------------------------------------------------------------
# Pause
# ---------------------------------------------------------------------------------------------


async def test_pause_without_delay_waits_for_resume_with_on_resume_inputs(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
            onResume:
              - {id: approved, type: BOOLEAN}
              - {id: count, type: INT, defaults: 3}
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.pause.onResume.approved }} {{ outputs.pause.onResume.count }}"
        """
    )
    async with running_engine(tmp_path, source) as engine:
        paused = await run(engine, "ns", "f")
        assert paused.state.current is S.PAUSED
        assert one_run(paused, "pause").state.current is S.PAUSED
        with pytest.raises(InputError) as caught:
            await engine.resume(paused.id, {"approved": "maybe", "count": "many"})
        assert len(caught.value.errors) == 2
        still = await engine.execution(paused.id)
        assert still is not None and still.state.current is S.PAUSED
        await engine.resume(paused.id, {"approved": "true"})
        execution = await asyncio.wait_for(engine.wait(paused.id), 10)
    assert execution.state.current is S.SUCCESS
    assert one_run(execution, "pause").outputs["onResume"] == {"approved": True, "count": 3}
    assert one_run(execution, "after").outputs == {"value": "true 3"}
    history = [h.state for h in execution.state.histories]
    assert S.PAUSED in history and history[-1] is S.SUCCESS


async def test_a_file_given_on_resume_becomes_a_file_of_the_execution(tmp_path: Path) -> None:
    """Kestra's ExecutionService.resume reads the onResume inputs as a flow's inputs are read: a FILE
    is stored under the execution's inputs folder and the output is its kestra:// URI."""
    source = flow(
        """
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
            onResume:
              - {id: doc, type: FILE}
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "{{ read(outputs.pause.onResume.doc) }}"
        """
    )
    local = tmp_path / "approval.txt"
    local.write_text("signed by ada")
    async with running_engine(tmp_path, source) as engine:
        paused = await run(engine, "ns", "f")
        with pytest.raises(InputError):
            await engine.resume(paused.id, {"doc": str(tmp_path / "missing.txt")})
        await engine.resume(paused.id, {"doc": str(local)})
        execution = await asyncio.wait_for(engine.wait(paused.id), 10)
    assert execution.state.current is S.SUCCESS
    uri = one_run(execution, "pause").outputs["onResume"]["doc"]
    assert uri == f"kestra:///ns/f/executions/{execution.id}/inputs/doc/approval.txt"
    assert one_run(execution, "after").outputs == {"value": "signed by ada"}


async def test_pause_delay_resumes_by_itself(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
            delay: PT0.2S
            tasks:
              - {id: inside, type: io.kestra.plugin.core.log.Log, message: inside}
          - {id: last, type: io.kestra.plugin.core.debug.Return, format: last}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution_id = await engine.trigger("ns", "f")
        execution = await asyncio.wait_for(engine.wait(execution_id), 10)
    assert execution.state.current is S.SUCCESS
    assert task_ids(execution) == ["pause", "inside", "last"]
    pause = one_run(execution, "pause")
    paused_at = pause.state.first_date(S.PAUSED)
    assert paused_at is not None
    assert (pause.state.end_date - paused_at).total_seconds() >= 0.19


async def test_pause_timeout_fails_when_not_resumed(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
            timeout: PT0.2S
          - {id: last, type: io.kestra.plugin.core.debug.Return, format: last}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution_id = await engine.trigger("ns", "f")
        execution = await asyncio.wait_for(engine.wait(execution_id), 10)
    assert execution.state.current is S.FAILED
    assert task_ids(execution) == ["pause"]
    assert one_run(execution, "pause").state.current is S.FAILED


# ---------------------------------------------------------------------------------------------
# WaitFor
# ---------------------------------------------------------------------------------------------


async def test_wait_for_loops_until_the_condition_holds(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.WaitFor
            condition: "{{ outputs.ret.value == '3' }}"
            checkFrequency: {interval: PT0.05S}
            tasks:
              - id: ret
                type: io.kestra.plugin.core.debug.Return
                format: "{{ outputs.loop.iterationCount }}"
          - {id: after, type: io.kestra.plugin.core.debug.Return, format: "{{ outputs.loop.iterationCount }}"}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert [r.outputs["value"] for r in runs_of(execution, "ret")] == ["1", "2", "3"]
    assert one_run(execution, "loop").outputs["iterationCount"] == 3
    assert one_run(execution, "after").outputs == {"value": "3"}


@pytest.mark.parametrize(("fail_on_max", "expected"), [(False, S.SUCCESS), (True, S.FAILED)])
async def test_wait_for_max_iterations(tmp_path: Path, fail_on_max: bool, expected: StateType) -> None:
    source = flow(
        f"""
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.WaitFor
            condition: "{{{{ false }}}}"
            failOnMaxReached: {str(fail_on_max).lower()}
            checkFrequency: {{interval: PT0.02S, maxIterations: 3}}
            tasks:
              - {{id: ret, type: io.kestra.plugin.core.debug.Return, format: x}}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert len(runs_of(execution, "ret")) == 3
    assert one_run(execution, "loop").state.current is expected
    assert execution.state.current is expected


# ---------------------------------------------------------------------------------------------
# More edges
# ---------------------------------------------------------------------------------------------


async def test_each_parallel_runs_the_tasks_of_one_value_in_parallel(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.EachParallel
            value: ["v1"]
            tasks:
              - {id: s1, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.15S}
              - {id: s2, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.15S}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert max_overlap([one_run(execution, "s1", "v1"), one_run(execution, "s2", "v1")]) == 2


async def test_foreach_turns_non_text_values_into_json_text(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: [1, 1.5, true, {"a": [1, 2]}, [3, "x"]]
            concurrencyLimit: 0
            tasks:
              - {id: ret, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.value }}"}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert [r.value for r in runs_of(execution, "ret")] == ["1", "1.5", "true", '{"a":[1,2]}', '[3,"x"]']


async def test_switch_case_keys_written_as_numbers_match_rendered_text(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: switch
            type: io.kestra.plugin.core.flow.Switch
            value: "{{ 3 - 2 }}"
            cases:
              1:
                - {id: one, type: io.kestra.plugin.core.log.Log, message: one}
            defaults:
              - {id: other, type: io.kestra.plugin.core.log.Log, message: other}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert task_ids(execution) == ["switch", "one"]


async def test_parallel_errors_branch_runs_after_every_sibling_ended(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: par
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - {id: ko, type: io.kestra.plugin.core.execution.Fail}
              - {id: slow, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.15S}
            errors:
              - {id: handler, type: io.kestra.plugin.core.log.Log, message: handled}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert states(execution) == {"par": S.FAILED, "ko": S.FAILED, "slow": S.SUCCESS, "handler": S.SUCCESS}
    assert running_window(one_run(execution, "handler"))[0] >= one_run(execution, "slow").state.end_date


async def test_flowable_finally_runs_after_its_errors_branch(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - {id: ko, type: io.kestra.plugin.core.execution.Fail}
            errors:
              - {id: handler, type: io.kestra.plugin.core.log.Log, message: handled}
            finally:
              - {id: cleanup, type: io.kestra.plugin.core.log.Log, message: cleanup}
          - {id: never, type: io.kestra.plugin.core.log.Log, message: never}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert task_ids(execution) == ["seq", "ko", "handler", "cleanup"]
    assert one_run(execution, "cleanup").parent_task_run_id == one_run(execution, "seq").id


async def test_a_failing_error_task_lets_the_next_error_task_run(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: ko, type: io.kestra.plugin.core.execution.Fail}
        errors:
          - {id: e1, type: io.kestra.plugin.core.execution.Fail}
          - {id: e2, type: io.kestra.plugin.core.log.Log, message: e2}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert states(execution) == {"ko": S.FAILED, "e1": S.FAILED, "e2": S.SUCCESS}


async def test_finally_runs_before_after_execution(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: ok, type: io.kestra.plugin.core.log.Log, message: ok}
        finally:
          - {id: cleanup, type: io.kestra.plugin.core.log.Log, message: cleanup}
        afterExecution:
          - {id: notify, type: io.kestra.plugin.core.log.Log, message: "{{ execution.state }}"}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert task_ids(execution) == ["ok", "cleanup", "notify"]
    assert [e.message for e in logs if e.task_id == "notify"] == ["SUCCESS"]


async def test_dag_dependants_of_a_skipped_task_run(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: dag
            type: io.kestra.plugin.core.flow.Dag
            tasks:
              - task: {id: a, type: io.kestra.plugin.core.log.Log, message: a, runIf: "false"}
              - task: {id: b, type: io.kestra.plugin.core.log.Log, message: b}
                dependsOn: [a]
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert states(execution) == {"dag": S.SUCCESS, "a": S.SKIPPED, "b": S.SUCCESS}


async def test_wait_for_fails_when_a_child_fails(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.WaitFor
            condition: "{{ false }}"
            checkFrequency: {interval: PT0.02S}
            tasks:
              - {id: ko, type: io.kestra.plugin.core.execution.Fail}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert states(execution) == {"loop": S.FAILED, "ko": S.FAILED}
    assert len(runs_of(execution, "ko")) == 1


async def test_wait_for_max_duration(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: loop
            type: io.kestra.plugin.core.flow.WaitFor
            condition: "{{ false }}"
            failOnMaxReached: true
            checkFrequency: {interval: PT0.05S, maxDuration: PT0.2S}
            tasks:
              - {id: ret, type: io.kestra.plugin.core.debug.Return, format: x}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert 2 <= len(runs_of(execution, "ret")) <= 6
    loop = one_run(execution, "loop")
    assert (loop.state.end_date - loop.state.start_date).total_seconds() >= 0.19


async def test_subflow_child_warning_gives_a_warning(tmp_path: Path) -> None:
    child = flow(
        """
        tasks:
          - {id: soft, type: io.kestra.plugin.core.execution.Fail, allowFailure: true}
        """,
        flow_id="child",
        namespace="ns.sub",
    )
    source = flow(
        """
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns.sub
            flowId: child
            outputs:
              extracted: "{{ flow.id }}"
        """
    )
    execution, _ = await run_flow(tmp_path, source, None, child)
    call = one_run(execution, "call")
    assert call.state.current is S.WARNING
    assert call.outputs["state"] == "WARNING"
    assert call.outputs["outputs"] == {"extracted": "child"}
    assert execution.state.current is S.WARNING


async def test_subflow_with_invalid_inputs_fails_the_task(tmp_path: Path) -> None:
    child = flow(
        """
        inputs:
          - {id: n, type: INT}
        tasks:
          - {id: x, type: io.kestra.plugin.core.log.Log, message: x}
        """,
        flow_id="child",
        namespace="ns.sub",
    )
    source = flow(
        """
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns.sub
            flowId: child
            inputs: {n: abc}
        """
    )
    execution, logs = await run_flow(tmp_path, source, None, child)
    assert execution.state.current is S.FAILED
    assert one_run(execution, "call").state.current is S.FAILED
    assert any("Invalid value for input `n`" in e.message for e in logs if e.task_id == "call")


async def test_every_execution_carries_the_correlation_id_of_its_chain(tmp_path: Path) -> None:
    """Kestra gives every new execution the label `system.correlationId`: its own id, or the one its
    parent carries (Execution.newExecution and SubflowService in kestra-io/kestra), and expressions
    read labels as a nested map (Label.toNestedMap): `{{ labels.system.correlationId }}`."""

    def chained(flow_id: str, calls: str | None, returns: str = "{{ labels.system.correlationId }}") -> str:
        call = f"  - {{id: call, type: io.kestra.plugin.core.flow.Subflow, namespace: ns, flowId: {calls}}}\n"
        return (
            f"id: {flow_id}\nnamespace: ns\nlabels: {{team: data}}\ntasks:\n"
            f'  - {{id: mine, type: io.kestra.plugin.core.debug.Return, format: "{returns}"}}\n'
            + (call if calls else "")
        )

    top = chained("top", "middle", "{{ labels.system.correlationId }} {{ labels.team }}")
    middle, bottom = chained("middle", "bottom"), chained("bottom", None)
    async with running_engine(tmp_path, top, middle, bottom) as engine:
        execution = await run(engine, "ns", "top")
        middle_run = await engine.store.get_execution(one_run(execution, "call").outputs["executionId"])
        assert middle_run is not None
        bottom_run = await engine.store.get_execution(one_run(middle_run, "call").outputs["executionId"])
        assert bottom_run is not None
    assert execution.state.current is S.SUCCESS
    assert execution.labels_map()["system.correlationId"] == execution.id
    assert one_run(execution, "mine").outputs == {"value": f"{execution.id} data"}
    for child in (middle_run, bottom_run):
        assert child.labels_map()["system.correlationId"] == execution.id
        assert one_run(child, "mine").outputs == {"value": execution.id}
