"""Runnable core tasks and the properties every task has, run through a real engine on SQLite."""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.engine.helpers import (
    flow,
    logs_of,
    messages,
    one_run,
    run,
    run_flow,
    running_engine,
    running_window,
    runs_of,
    states,
)
from tiercel.engine.durations import format_duration, parse_duration
from tiercel.engine.model import Execution, Label, LogEntry, LogLevel, StateType

S = StateType


def task_messages(logs: list[LogEntry], task_id: str) -> list[str]:
    return [entry.message for entry in logs if entry.task_id == task_id]


def attempt_states(execution: Execution, task_id: str) -> list[StateType]:
    return [attempt.state.current for attempt in one_run(execution, task_id).attempts]


# ---------------------------------------------------------------------------------------------
# Log, Return, Echo, OutputValues
# ---------------------------------------------------------------------------------------------


async def test_log_writes_each_level(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: trace, type: io.kestra.plugin.core.log.Log, level: TRACE, message: t}
          - {id: debug, type: io.kestra.plugin.core.log.Log, level: DEBUG, message: d}
          - {id: info, type: io.kestra.plugin.core.log.Log, message: "i {{ flow.id }}"}
          - {id: warn, type: io.kestra.plugin.core.log.Log, level: WARN, message: w}
          - {id: error, type: io.kestra.plugin.core.log.Log, level: ERROR, message: e}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    got = {(entry.task_id, entry.level, entry.message) for entry in logs}
    assert got >= {
        ("trace", LogLevel.TRACE, "t"),
        ("debug", LogLevel.DEBUG, "d"),
        ("info", LogLevel.INFO, "i f"),
        ("warn", LogLevel.WARN, "w"),
        ("error", LogLevel.ERROR, "e"),
    }
    # A log line belongs to its task run and to the attempt that wrote it.
    info = next(entry for entry in logs if entry.task_id == "info")
    assert info.task_run_id == one_run(execution, "info").id
    assert info.attempt == 0


async def test_log_message_list_writes_one_line_per_item_in_order(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: many
            type: io.kestra.plugin.core.log.Log
            message: [first, "second {{ task.id }}", third]
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert task_messages(logs, "many") == ["first", "second many", "third"]


async def test_log_level_property_filters_out_lower_levels(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: quiet, type: io.kestra.plugin.core.log.Log, logLevel: WARN, level: INFO, message: hidden}
          - {id: debug, type: io.kestra.plugin.core.log.Log, logLevel: WARN, level: DEBUG, message: hidden}
          - {id: loud, type: io.kestra.plugin.core.log.Log, logLevel: WARN, level: ERROR, message: shown}
          - {id: same, type: io.kestra.plugin.core.log.Log, logLevel: WARN, level: WARN, message: also}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert states(execution) == {"quiet": S.SUCCESS, "debug": S.SUCCESS, "loud": S.SUCCESS, "same": S.SUCCESS}
    assert "hidden" not in messages(logs)
    assert task_messages(logs, "loud") == ["shown"]
    assert task_messages(logs, "same") == ["also"]


async def test_return_renders_format_into_value_output(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: ret
            type: io.kestra.plugin.core.debug.Return
            format: "{{ flow.namespace }}-{{ 40 + 2 }}"
          - id: use
            type: io.kestra.plugin.core.debug.Return
            format: "got {{ outputs.ret.value }}"
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert one_run(execution, "ret").outputs == {"value": "ns-42"}
    assert one_run(execution, "use").outputs == {"value": "got ns-42"}


async def test_echo_logs_its_rendered_format_at_its_level(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: plain, type: io.kestra.plugin.core.debug.Echo, format: "hello {{ task.id }}"}
          - {id: warned, type: io.kestra.plugin.core.debug.Echo, format: careful, level: WARN}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert [(e.level, e.message) for e in logs if e.task_id == "plain"] == [(LogLevel.INFO, "hello plain")]
    assert [(e.level, e.message) for e in logs if e.task_id == "warned"] == [(LogLevel.WARN, "careful")]


async def test_output_values_renders_nested_values(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: out
            type: io.kestra.plugin.core.output.OutputValues
            values:
              plain: xyz
              sum: "{{ 1 + 2 }}"
              nested:
                id: "{{ flow.id }}"
                items: ["{{ task.id }}", fixed]
          - id: read
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.out['values'].nested.items[0] }}/{{ outputs.out['values'].sum }}"
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    values = one_run(execution, "out").outputs["values"]
    assert values["plain"] == "xyz"
    assert str(values["sum"]) == "3"
    assert values["nested"] == {"id": "f", "items": ["out", "fixed"]}
    assert one_run(execution, "read").outputs == {"value": "out/3"}


# ---------------------------------------------------------------------------------------------
# Fail
# ---------------------------------------------------------------------------------------------


async def test_fail_without_message_fails_with_task_failure(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: fail, type: io.kestra.plugin.core.execution.Fail}
          - {id: never, type: io.kestra.plugin.core.log.Log, message: never}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert states(execution) == {"fail": S.FAILED}
    errors = [e.message for e in logs if e.task_id == "fail" and e.level is LogLevel.ERROR]
    assert errors == ["Task failure"]


async def test_fail_error_message_is_rendered_and_logged(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: "broken in {{ flow.id }}"
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert "broken in f" in task_messages(logs, "fail")


async def test_fail_condition_true_fails_with_its_message(tmp_path: Path) -> None:
    source = flow(
        """
        inputs:
          - {id: param, type: STRING}
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{ inputs.param == 'fail' }}"
            errorMessage: "param was {{ inputs.param }}"
          - {id: after, type: io.kestra.plugin.core.log.Log, message: after}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        failed = await run(engine, "ns", "f", {"param": "fail"})
        passed = await run(engine, "ns", "f", {"param": "success"})
        failed_logs = await logs_of(engine, failed.id)
    assert failed.state.current is S.FAILED
    assert states(failed) == {"fail": S.FAILED}
    assert any(
        e.level is LogLevel.ERROR and e.message == "param was fail"
        for e in failed_logs
        if e.task_id == "fail"
    )
    assert passed.state.current is S.SUCCESS
    assert states(passed) == {"fail": S.SUCCESS, "after": S.SUCCESS}


# ---------------------------------------------------------------------------------------------
# execution.Labels
# ---------------------------------------------------------------------------------------------


async def test_labels_task_map_form_merges_into_execution_labels(tmp_path: Path) -> None:
    source = flow(
        """
        labels:
          owner: alice
          team: core
        tasks:
          - id: labels
            type: io.kestra.plugin.core.execution.Labels
            labels:
              team: data
              env: "{{ flow.namespace }}"
          - id: read
            type: io.kestra.plugin.core.debug.Return
            format: "{{ labels.team }}"
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f", labels=[Label("run", "manual")])
        stored = await engine.store.get_execution(execution.id)
    assert execution.state.current is S.SUCCESS
    expected = {"owner": "alice", "team": "data", "env": "ns", "run": "manual"}
    expected["system.correlationId"] = execution.id
    assert execution.labels_map() == expected
    assert stored is not None and stored.labels_map() == expected
    assert one_run(execution, "read").outputs == {"value": "data"}


async def test_labels_task_list_form(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: labels
            type: io.kestra.plugin.core.execution.Labels
            labels:
              - {key: color, value: "{{ 'bl' ~ 'ue' }}"}
              - {key: size, value: large}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert execution.labels_map() == {
        "system.correlationId": execution.id,
        "color": "blue",
        "size": "large",
    }


async def test_labels_task_refuses_system_keys(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: labels
            type: io.kestra.plugin.core.execution.Labels
            labels:
              system.correlationId: forged
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert states(execution) == {"labels": S.FAILED}
    assert execution.labels_map()["system.correlationId"] == execution.id  # not forged
    assert any("system." in e.message for e in logs if e.level is LogLevel.ERROR)


# ---------------------------------------------------------------------------------------------
# Sleep, timeout
# ---------------------------------------------------------------------------------------------


async def test_sleep_lasts_its_duration_and_says_so(tmp_path: Path) -> None:
    """Kestra's Sleep logs "Waiting for {}" with Java's Duration.toString (core/.../flow/Sleep.java):
    PT0.2S, and PT1M30S for ninety seconds (Java writes no days: PT24H)."""
    source = flow(
        """
        tasks:
          - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.2S}
          - {id: none, type: io.kestra.plugin.core.flow.Sleep, duration: PT0S}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    start, end = running_window(one_run(execution, "nap"))
    assert (end - start).total_seconds() >= 0.19
    assert [(entry.task_id, entry.level.name, entry.message) for entry in logs] == [
        ("nap", "INFO", "Waiting for PT0.2S"),
        ("none", "INFO", "Waiting for PT0S"),
    ]
    assert format_duration(parse_duration("PT90S")) == "PT1M30S"
    assert format_duration(parse_duration("P1D")) == "PT24H"


async def test_timeout_fails_a_long_sleep(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT1H, timeout: PT0.1S}
          - {id: never, type: io.kestra.plugin.core.log.Log, message: never}
        """
    )
    # run_flow's timeout is far shorter than the hour-long sleep: the flow ends only if the timeout cuts it.
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert states(execution) == {"nap": S.FAILED}
    assert any("Timeout" in e.message for e in logs if e.task_id == "nap" and e.level is LogLevel.ERROR)


# ---------------------------------------------------------------------------------------------
# KV store
# ---------------------------------------------------------------------------------------------


async def test_kv_set_get_default_namespace_and_explicit_namespace(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: set, type: io.kestra.plugin.core.kv.Set, key: color, value: "{{ 'red' }}"}
          - {id: set_other, type: io.kestra.plugin.core.kv.Set, key: color, value: green, namespace: other}
          - {id: get, type: io.kestra.plugin.core.kv.Get, key: color}
          - {id: get_other, type: io.kestra.plugin.core.kv.Get, key: color, namespace: other}
          - {id: get_missing, type: io.kestra.plugin.core.kv.Get, key: nothing}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        assert await engine.store.kv_get("ns", "color") == (True, "red")
        assert await engine.store.kv_get("other", "color") == (True, "green")
    assert execution.state.current is S.SUCCESS
    assert one_run(execution, "get").outputs == {"value": "red"}
    assert one_run(execution, "get_other").outputs == {"value": "green"}
    # errorOnMissing defaults to false: a missing key gives a null value.
    assert one_run(execution, "get_missing").state.current is S.SUCCESS
    assert one_run(execution, "get_missing").outputs == {"value": None}


async def test_kv_get_error_on_missing_fails(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: get, type: io.kestra.plugin.core.kv.Get, key: nothing, errorOnMissing: true}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert any("nothing" in e.message for e in logs if e.task_id == "get" and e.level is LogLevel.ERROR)


async def test_kv_set_overwrite_false_fails_on_an_existing_key(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: first, type: io.kestra.plugin.core.kv.Set, key: k, value: one}
          - {id: again, type: io.kestra.plugin.core.kv.Set, key: k, value: two, overwrite: false}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        assert await engine.store.kv_get("ns", "k") == (True, "one")
    assert execution.state.current is S.FAILED
    assert states(execution) == {"first": S.SUCCESS, "again": S.FAILED}


async def test_kv_set_overwrite_false_on_a_new_key_succeeds(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: only, type: io.kestra.plugin.core.kv.Set, key: fresh, value: 1, overwrite: false}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        found, value = await engine.store.kv_get("ns", "fresh")
    assert execution.state.current is S.SUCCESS
    assert found and str(value) == "1"


async def test_kv_ttl_expires_the_value(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: set, type: io.kestra.plugin.core.kv.Set, key: short, value: here, ttl: PT0.3S}
          - {id: before, type: io.kestra.plugin.core.kv.Get, key: short}
          - {id: wait, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.4S}
          - {id: after, type: io.kestra.plugin.core.kv.Get, key: short}
          - {id: keys, type: io.kestra.plugin.core.kv.GetKeys}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert one_run(execution, "before").outputs == {"value": "here"}
    assert one_run(execution, "after").outputs == {"value": None}
    assert one_run(execution, "keys").outputs == {"keys": []}


async def test_kv_delete_and_error_on_missing(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: set, type: io.kestra.plugin.core.kv.Set, key: gone, value: x}
          - {id: delete, type: io.kestra.plugin.core.kv.Delete, key: gone}
          - {id: delete_again, type: io.kestra.plugin.core.kv.Delete, key: gone}
          - {id: get, type: io.kestra.plugin.core.kv.Get, key: gone}
          - {id: strict, type: io.kestra.plugin.core.kv.Delete, key: gone, errorOnMissing: true}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        assert await engine.store.kv_get("ns", "gone") == (False, None)
    assert execution.state.current is S.FAILED
    assert one_run(execution, "delete").outputs == {"deleted": True}
    assert one_run(execution, "delete_again").outputs == {"deleted": False}
    assert one_run(execution, "delete_again").state.current is S.SUCCESS
    assert one_run(execution, "get").outputs == {"value": None}
    assert one_run(execution, "strict").state.current is S.FAILED


async def test_kv_get_keys_lists_sorted_keys_with_prefix(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: s1, type: io.kestra.plugin.core.kv.Set, key: b_two, value: 2}
          - {id: s2, type: io.kestra.plugin.core.kv.Set, key: a_one, value: 1}
          - {id: s3, type: io.kestra.plugin.core.kv.Set, key: b_one, value: 1}
          - {id: s4, type: io.kestra.plugin.core.kv.Set, key: b_elsewhere, value: 1, namespace: other}
          - {id: all, type: io.kestra.plugin.core.kv.GetKeys}
          - {id: some, type: io.kestra.plugin.core.kv.GetKeys, prefix: b_}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert one_run(execution, "all").outputs == {"keys": ["a_one", "b_one", "b_two"]}
    assert one_run(execution, "some").outputs == {"keys": ["b_one", "b_two"]}


async def test_kv_function_reads_values_and_names_missing_keys(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: read
            type: io.kestra.plugin.core.debug.Return
            format: "{{ kv('k') }}-{{ kv('k', 'other') }}-{{ kv('none', errorOnMissing=false) is none }}"
          - id: missing
            type: io.kestra.plugin.core.debug.Return
            format: "{{ kv('absent') }}"
        """
    )
    async with running_engine(tmp_path, source) as engine:
        await engine.store.kv_set("ns", "k", "mine")
        await engine.store.kv_set("other", "k", "theirs")
        execution = await run(engine, "ns", "f")
        logs = await logs_of(engine, execution.id)
    assert one_run(execution, "read").outputs == {"value": "mine-theirs-true"}
    assert execution.state.current is S.FAILED
    assert one_run(execution, "missing").state.current is S.FAILED
    assert "The key 'absent' does not exist in the namespace 'ns'." in " ".join(
        task_messages(logs, "missing")
    )


async def test_kv_set_by_one_task_is_visible_to_kv_function_in_the_next(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: set, type: io.kestra.plugin.core.kv.Set, key: counter, value: "{{ 6 * 7 }}"}
          - {id: read, type: io.kestra.plugin.core.debug.Return, format: "{{ kv('counter') }}"}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert one_run(execution, "read").outputs == {"value": "42"}


# ---------------------------------------------------------------------------------------------
# disabled, runIf, allowFailure, allowWarning
# ---------------------------------------------------------------------------------------------


async def test_disabled_tasks_do_not_run(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: off, type: io.kestra.plugin.core.execution.Fail, disabled: true}
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - {id: inner_off, type: io.kestra.plugin.core.execution.Fail, disabled: true}
              - {id: inner_on, type: io.kestra.plugin.core.log.Log, message: on}
          - {id: on, type: io.kestra.plugin.core.log.Log, message: on}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert [r.task_id for r in execution.task_runs] == ["seq", "inner_on", "on"]


async def test_run_if_false_skips_and_the_flow_goes_on(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: skipped, type: io.kestra.plugin.core.execution.Fail, runIf: "{{ 1 > 2 }}"}
          - {id: ran, type: io.kestra.plugin.core.log.Log, message: yes, runIf: "{{ true }}"}
          - {id: text_false, type: io.kestra.plugin.core.execution.Fail, runIf: "false"}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert states(execution) == {"skipped": S.SKIPPED, "ran": S.SUCCESS, "text_false": S.SKIPPED}
    assert one_run(execution, "skipped").attempts == ()
    assert task_messages(logs, "ran") == ["yes"]


async def test_run_if_render_error_fails_the_task(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: broken, type: io.kestra.plugin.core.log.Log, message: x, runIf: "{{ nope.field }}"}
          - {id: never, type: io.kestra.plugin.core.log.Log, message: never}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert states(execution) == {"broken": S.FAILED}
    assert any("nope" in e.message for e in logs if e.task_id == "broken" and e.level is LogLevel.ERROR)


async def test_allow_failure_turns_a_failure_into_warning(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: fail, type: io.kestra.plugin.core.execution.Fail, allowFailure: true}
          - {id: next, type: io.kestra.plugin.core.log.Log, message: went on}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert states(execution) == {"fail": S.WARNING, "next": S.SUCCESS}
    assert execution.state.current is S.WARNING


async def test_allow_failure_and_allow_warning_give_success(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
            allowWarning: true
          - {id: next, type: io.kestra.plugin.core.log.Log, message: went on}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert states(execution) == {"fail": S.SUCCESS, "next": S.SUCCESS}
    assert execution.state.current is S.SUCCESS


async def test_allow_warning_alone_does_not_hide_a_failure(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: fail, type: io.kestra.plugin.core.execution.Fail, allowWarning: true}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert states(execution) == {"fail": S.FAILED}
    assert execution.state.current is S.FAILED


async def test_allow_failure_keeps_retrying_first(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
            retry: {type: constant, interval: PT0.05S, maxAttempt: 3}
          - {id: next, type: io.kestra.plugin.core.log.Log, message: went on}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.WARNING
    assert len(one_run(execution, "fail").attempts) == 3
    assert one_run(execution, "fail").state.current is S.WARNING


# ---------------------------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------------------------


async def test_constant_retry_runs_max_attempt_attempts_in_one_task_run(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            retry: {type: constant, interval: PT0.05S, maxAttempt: 4}
        errors:
          - {id: handler, type: io.kestra.plugin.core.log.Log, message: handled}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert [r.task_id for r in execution.task_runs] == ["fail", "handler"]
    assert attempt_states(execution, "fail") == [S.FAILED] * 4
    history = [h.state for h in one_run(execution, "fail").state.histories]
    assert history.count(S.RETRYING) == 3
    assert history[-1] is S.FAILED
    # Each attempt logs under its own number.
    assert sorted({e.attempt for e in logs if e.task_id == "fail"}) == [0, 1, 2, 3]
    starts = [a.state.start_date for a in one_run(execution, "fail").attempts]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.045 for gap in gaps), gaps


async def test_retry_attempts_count_and_success_on_a_later_attempt(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: flaky
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{ taskrun.attemptsCount < 2 }}"
            retry: {type: constant, interval: PT0.05S, maxAttempt: 5}
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "attempt {{ taskrun.attemptsCount }}"
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert attempt_states(execution, "flaky") == [S.FAILED, S.FAILED, S.SUCCESS]
    assert one_run(execution, "flaky").state.current is S.SUCCESS
    assert task_messages(logs, "log") == ["attempt 0"]


async def test_warning_on_retry_ends_warning_after_a_retried_success(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: flaky
            type: io.kestra.plugin.core.log.Log
            message: "{{ taskrun.attemptsCount == 2 ? 'ok' : ko }}"
            retry: {type: constant, interval: PT0.05S, maxAttempt: 4, warningOnRetry: true}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert len(one_run(execution, "flaky").attempts) == 3
    assert one_run(execution, "flaky").state.current is S.WARNING
    assert execution.state.current is S.WARNING


async def test_warning_on_retry_without_a_retry_stays_success(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: fine
            type: io.kestra.plugin.core.log.Log
            message: ok
            retry: {type: constant, interval: PT0.05S, maxAttempt: 4, warningOnRetry: true}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert len(one_run(execution, "fine").attempts) == 1
    assert execution.state.current is S.SUCCESS


async def test_allow_warning_turns_warning_on_retry_into_success(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: flaky
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{ taskrun.attemptsCount < 1 }}"
            allowWarning: true
            retry: {type: constant, interval: PT0.05S, maxAttempt: 3, warningOnRetry: true}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert len(one_run(execution, "flaky").attempts) == 2
    assert one_run(execution, "flaky").state.current is S.SUCCESS
    assert execution.state.current is S.SUCCESS


async def test_exponential_retry_waits_longer_each_time(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            retry:
              type: exponential
              interval: PT0.04S
              maxInterval: PT5S
              delayFactor: 2
              maxAttempt: 4
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    attempts = one_run(execution, "fail").attempts
    assert len(attempts) == 4
    gaps = [
        (b.state.start_date - a.state.end_date).total_seconds()
        for a, b in itertools.pairwise(attempts)
        if a.state.end_date is not None
    ]
    assert len(gaps) == 3
    for gap, expected in zip(gaps, (0.04, 0.08, 0.16), strict=True):
        assert gap >= expected * 0.9, gaps


async def test_exponential_retry_delay_is_capped_by_max_interval(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            retry:
              type: exponential
              interval: PT0.05S
              maxInterval: PT0.06S
              delayFactor: 1000
              maxAttempt: 4
        """
    )
    # Uncapped the waits would be 0.05 s, 50 s and 14 hours: the flow ends within run_flow's
    # timeout only if each wait is capped.
    execution, _ = await run_flow(tmp_path, source)
    assert len(one_run(execution, "fail").attempts) == 4


async def test_random_retry_waits_between_min_and_max(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            retry: {type: random, minInterval: PT0.05S, maxInterval: PT0.1S, maxAttempt: 3}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    attempts = one_run(execution, "fail").attempts
    assert len(attempts) == 3
    for a, b in itertools.pairwise(attempts):
        assert a.state.end_date is not None
        gap = (b.state.start_date - a.state.end_date).total_seconds()
        # The upper bound (maxInterval) is checked on retry_delay itself, where no clock is involved.
        assert gap >= 0.045, gap


async def test_max_duration_cuts_retries_short(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            retry: {type: constant, interval: PT0.1S, maxAttempt: 50, maxDuration: PT0.45S}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    count = len(one_run(execution, "fail").attempts)
    # Each wait is 0.1 s and no attempt may start after 0.45 s from the first one.
    assert 2 <= count <= 5, count


async def test_max_duration_alone_bounds_retries(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            retry: {type: constant, interval: PT0.1S, maxDuration: PT0.25S}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert 2 <= len(one_run(execution, "fail").attempts) <= 3


async def test_retry_on_a_parent_sequential_applies_to_a_failing_child(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            retry: {type: constant, interval: PT0.05S, maxAttempt: 3}
            tasks:
              - {id: child, type: io.kestra.plugin.core.execution.Fail}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert [r.task_id for r in execution.task_runs] == ["seq", "child"]
    assert len(one_run(execution, "child").attempts) == 3
    assert one_run(execution, "seq").state.current is S.FAILED


async def test_a_task_retry_wins_over_its_parent_retry(tmp_path: Path) -> None:
    source = flow(
        """
        retry: {type: constant, interval: PT0.05S, maxAttempt: 4}
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            retry: {type: constant, interval: PT0.05S, maxAttempt: 3}
            tasks:
              - id: child
                type: io.kestra.plugin.core.execution.Fail
                retry: {type: constant, interval: PT0.05S, maxAttempt: 2}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert len(one_run(execution, "child").attempts) == 2


async def test_flow_retry_applies_to_a_task_without_one(tmp_path: Path) -> None:
    source = flow(
        """
        retry: {type: constant, interval: PT0.05S, maxAttempt: 3}
        tasks:
          - {id: ok, type: io.kestra.plugin.core.log.Log, message: fine}
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - {id: child, type: io.kestra.plugin.core.execution.Fail}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert len(one_run(execution, "ok").attempts) == 1
    assert len(one_run(execution, "child").attempts) == 3


async def test_retried_task_run_is_one_task_run(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: flaky
            type: io.kestra.plugin.core.execution.Fail
            condition: "{{ taskrun.attemptsCount == 0 }}"
            retry: {type: constant, interval: PT0.05S, maxAttempt: 2}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert len(runs_of(execution, "flaky")) == 1
    assert execution.state.current is S.SUCCESS


# ---------------------------------------------------------------------------------------------
# More edges
# ---------------------------------------------------------------------------------------------


async def test_an_undefined_variable_fails_with_kestras_message(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: log, type: io.kestra.plugin.core.log.Log, message: "hi {{ nothing }}"}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert "Unable to find `nothing` used in the expression `hi {{ nothing }}`" in task_messages(logs, "log")


async def test_legacy_task_type_names_run(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: log, type: io.kestra.core.tasks.log.Log, message: legacy}
          - {id: ret, type: io.kestra.core.tasks.debugs.Return, format: "{{ 1 + 1 }}"}
          - id: seq
            type: io.kestra.core.tasks.flows.Sequential
            tasks:
              - {id: fail, type: io.kestra.core.tasks.executions.Fail, condition: "{{ false }}"}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert task_messages(logs, "log") == ["legacy"]
    assert one_run(execution, "ret").outputs == {"value": "2"}


async def test_an_unknown_log_level_fails_the_task(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: log, type: io.kestra.plugin.core.log.Log, message: x, level: "{{ 'LOUD' }}"}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert any("LOUD" in message for message in task_messages(logs, "log"))


async def test_labels_task_turns_values_into_text(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: labels, type: io.kestra.plugin.core.execution.Labels, labels: {number: 1, flag: true}}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.labels_map() == {"number": "1", "flag": "true", "system.correlationId": execution.id}


async def test_kv_set_with_a_number_type(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - {id: set, type: io.kestra.plugin.core.kv.Set, key: n, value: "{{ 40 + 2 }}", kvType: NUMBER}
          - {id: get, type: io.kestra.plugin.core.kv.Get, key: n}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert one_run(execution, "get").outputs == {"value": 42}


async def test_timeout_counts_as_a_failure_for_retries(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT5S
            timeout: PT0.05S
            retry: {type: constant, interval: PT0.02S, maxAttempt: 2}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.FAILED
    assert attempt_states(execution, "nap") == [S.FAILED, S.FAILED]
    timeouts = [e.attempt for e in logs if e.task_id == "nap" and "Timeout" in e.message]
    assert timeouts == [0, 1]


async def test_max_attempt_one_means_no_retry(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: fail
            type: io.kestra.plugin.core.execution.Fail
            retry: {type: constant, interval: PT0.01S, maxAttempt: 1}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert attempt_states(execution, "fail") == [S.FAILED]


async def test_run_if_false_on_a_flowable_skips_its_children(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            runIf: "{{ 1 == 2 }}"
            tasks:
              - {id: never, type: io.kestra.plugin.core.execution.Fail}
          - {id: next, type: io.kestra.plugin.core.log.Log, message: next}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert states(execution) == {"seq": S.SKIPPED, "next": S.SUCCESS}


async def test_allow_failure_and_allow_warning_on_a_flowable(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: tolerant
            type: io.kestra.plugin.core.flow.Sequential
            allowFailure: true
            tasks:
              - {id: ko, type: io.kestra.plugin.core.execution.Fail}
          - id: quiet
            type: io.kestra.plugin.core.flow.Sequential
            allowWarning: true
            tasks:
              - {id: warned, type: io.kestra.plugin.core.execution.Fail, allowFailure: true}
          - {id: next, type: io.kestra.plugin.core.log.Log, message: next}
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert states(execution) == {
        "tolerant": S.WARNING,
        "ko": S.FAILED,
        "quiet": S.SUCCESS,
        "warned": S.WARNING,
        "next": S.SUCCESS,
    }
    assert execution.state.current is S.WARNING
