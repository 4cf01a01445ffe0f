"""What fails later is refused when a flow loads: durations that are not durations, each reported
where it is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.helpers import run_flow
from tests.engine.test_parser import error_at, errors_of, parse, wrap_tasks
from tiercel.engine.model import StateType

PAUSE = "io.kestra.plugin.core.flow.Pause"
SLEEP = "io.kestra.plugin.core.flow.Sleep"
WAIT_FOR = "io.kestra.plugin.core.flow.WaitFor"
LOG = "io.kestra.plugin.core.log.Log"
NOT_A_DURATION = "'notaduration' is not an ISO 8601 duration"

# ---------------------------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "line", "column", "yaml_path"),
    [
        (f"type: {PAUSE}\ndelay: notaduration\n", 6, 12, "tasks[0].delay"),
        (f"type: {PAUSE}\ntimeout: notaduration\n", 6, 14, "tasks[0].timeout"),
        (f"type: {PAUSE}\npauseDuration: notaduration\n", 6, 20, "tasks[0].pauseDuration"),
        (f"type: {SLEEP}\nduration: notaduration\n", 6, 15, "tasks[0].duration"),
        (f"type: {LOG}\nmessage: hi\ntimeout: notaduration\n", 7, 14, "tasks[0].timeout"),
        (
            "type: io.kestra.plugin.core.kv.Set\nkey: k\nvalue: v\nttl: notaduration\n",
            8,
            10,
            "tasks[0].ttl",
        ),
        (
            f"type: {WAIT_FOR}\ncondition: x\ntasks: [{{id: s, type: {LOG}, message: m}}]\n"
            "checkFrequency:\n  interval: notaduration\n",
            9,
            17,
            "tasks[0].checkFrequency.interval",
        ),
        (
            f"type: {WAIT_FOR}\ncondition: x\ntasks: [{{id: s, type: {LOG}, message: m}}]\n"
            "checkFrequency: {maxDuration: notaduration}\n",
            8,
            35,
            "tasks[0].checkFrequency.maxDuration",
        ),
        (
            "type: io.kestra.plugin.core.http.Request\nuri: https://example.com\n"
            "options:\n  timeout:\n    connectTimeout: notaduration\n",
            9,
            25,
            "tasks[0].options.timeout.connectTimeout",
        ),
        (
            "type: io.kestra.plugin.core.http.Download\nuri: https://example.com\n"
            "options: {readTimeout: notaduration}\n",
            7,
            28,
            "tasks[0].options.readTimeout",
        ),
    ],
)
def test_a_duration_property_that_is_not_a_duration_is_refused_where_written(
    task: str, line: int, column: int, yaml_path: str
) -> None:
    text = wrap_tasks("- id: t\n" + "".join(f"  {row}\n" for row in task.splitlines()))
    error = error_at(text, NOT_A_DURATION, line, column, yaml_path)
    assert f"`{yaml_path.removeprefix('tasks[0].')}`" in error.message


def test_durations_holding_an_expression_are_known_only_at_run_time() -> None:
    flow = parse(
        wrap_tasks(
            f"""
            - id: p
              type: {PAUSE}
              delay: "{{{{ inputs.wait }}}}"
            - id: s
              type: {SLEEP}
              duration: "PT{{{{ 1 + 1 }}}}S"
            """
        )
    )
    assert flow.tasks[0].props["delay"] == "{{ inputs.wait }}"
    assert flow.tasks[1].props["duration"] == "PT{{ 1 + 1 }}S"


def test_durations_written_as_seconds_become_iso_text() -> None:
    flow = parse(
        wrap_tasks(
            f"""
            - id: p
              type: {PAUSE}
              delay: 90
            - id: w
              type: {WAIT_FOR}
              condition: "{{{{ true }}}}"
              checkFrequency: {{interval: 0.5, maxIterations: 3}}
              tasks: [{{id: s, type: {LOG}, message: m}}]
            - id: l
              type: {LOG}
              message: hi
              timeout: 90
            """
        )
    )
    pause, wait, log = flow.tasks
    assert pause.props["delay"] == "PT1M30S"
    assert wait.props["checkFrequency"] == {"interval": "PT0.5S", "maxIterations": 3}
    assert log.timeout == "PT1M30S"


async def test_a_sleep_written_in_seconds_runs(tmp_path: Path) -> None:
    execution, _ = await run_flow(
        tmp_path, f"id: nap\nnamespace: acme\ntasks:\n  - {{id: s, type: {SLEEP}, duration: 0.01}}\n"
    )
    assert execution.state.current is StateType.SUCCESS


def test_a_duration_set_by_a_plugin_default_is_reported_on_its_task() -> None:
    text = f"""\
        id: demo
        namespace: company.team
        pluginDefaults:
          - type: {SLEEP}
            values: {{duration: soon}}
        tasks:
          - id: nap
            type: {SLEEP}
        """
    error = error_at(text, "'soon' is not an ISO 8601 duration", 7, 5, "tasks[0].duration")
    assert "(set by a plugin default)" in error.message


@pytest.mark.parametrize("value", ["-PT1S", "[PT1S]", "1e400"])
def test_negative_listed_or_endless_durations_are_refused(value: str) -> None:
    text = wrap_tasks(f"- id: s\n  type: {SLEEP}\n  duration: {value}\n")
    [error] = errors_of(text)
    assert (error.line, error.column, error.yaml_path) == (6, 15, "tasks[0].duration")
    assert error.message.startswith("`duration`")
