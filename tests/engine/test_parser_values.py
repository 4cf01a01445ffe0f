"""What fails later is refused when a flow loads: durations that are not durations, and templates
that do not parse, in the properties the engine renders, each reported where it is written."""

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
RETURN = "io.kestra.plugin.core.debug.Return"
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


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ('"Hello {{ inputs.name"', "Invalid expression `Hello {{ inputs.name`: Unexpected end of template"),
        ('"{% foo %}"', "Invalid expression `{% foo %}`: Unknown tag 'foo' (column 1 of the value)"),
        ('"{{ inputs.name | }}"', "Expected a filter name but found end of expression"),
        ('"{{ inputs.name | shout }}"', "Unknown filter 'shout'"),
        ('"{% if inputs.x %}yes"', "Unclosed 'if' tag"),
    ],
)
def test_a_template_that_does_not_parse_is_refused_at_its_value(message: str, fragment: str) -> None:
    text = wrap_tasks(f"- id: say\n  type: {LOG}\n  message: {message}\n")
    error_at(text, fragment, 6, 14, "tasks[0].message")


def test_each_value_reports_its_first_problem_with_where_in_the_value() -> None:
    text = wrap_tasks(
        """
        - id: sh
          type: io.kestra.plugin.scripts.shell.Commands
          commands:
            - echo {{ ok }}
            - |
              echo one
              echo {{ two }} {{ three
            - echo {{ four
        """
    )
    errors = errors_of(text)
    assert [(e.line, e.column, e.yaml_path) for e in errors] == [
        (8, 9, "tasks[0].commands[1]"),
        (11, 9, "tasks[0].commands[2]"),
    ]
    assert "`echo {{ two }} {{ three`" in errors[0].message
    assert "(line 2, column 18 of the value)" in errors[0].message
    assert str(errors[1]).startswith("flow.yml:11:9: tasks[0].commands[2]: Invalid expression `echo {{ four`")


def test_templates_are_checked_in_keys_children_and_every_branch() -> None:
    text = f"""\
        id: demo
        namespace: company.team
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: "{{{{ [1, 2 }}}}"
            tasks:
              - id: call
                type: io.kestra.plugin.core.http.Request
                uri: https://example.com
                headers:
                  "X-{{{{ id": v
                runIf: "{{{{ a ? b }}}}"
        errors:
          - id: oops
            type: {RETURN}
            format: "{{{{ error }}"
        """
    paths = [error.yaml_path for error in errors_of(text)]
    assert paths == [
        "tasks[0].values",
        'tasks[0].tasks[0].headers["X-{{ id"]',
        "tasks[0].tasks[0].runIf",
        "errors[0].format",
    ]


def test_flow_outputs_inputs_and_triggers_are_checked_where_they_are_rendered() -> None:
    text = f"""\
        id: demo
        namespace: company.team
        inputs:
          - id: day
            type: STRING
            defaults: "{{{{ now( }}}}"
          - id: pick
            type: SELECT
            expression: "{{{{ [1 }}}}"
        tasks: [{{id: t, type: {LOG}, message: hi}}]
        outputs:
          - id: result
            type: STRING
            value: "{{{{ outputs.t.value"
        triggers:
          - id: upstream
            type: io.kestra.plugin.core.trigger.Flow
            inputs: {{from: "{{{{ trigger.executionId"}}
            conditions:
              - type: io.kestra.plugin.core.condition.Expression
                expression: "{{{{ trigger.state == }}}}"
          - id: hook
            type: io.kestra.plugin.core.trigger.Webhook
            key: "{{{{ secret('KEY') "
        """
    paths = [error.yaml_path for error in errors_of(text)]
    assert paths == [
        "inputs[0].defaults",
        "inputs[1].expression",
        "outputs[0].value",
        "triggers[0].inputs.from",
        "triggers[0].conditions[0].expression",
        "triggers[1].key",
    ]


def test_text_the_engine_never_renders_is_not_checked() -> None:
    flow = parse(
        f"""\
        id: demo
        namespace: company.team
        description: "a {{{{ brace in prose"
        labels: {{team: "{{{{ data"}}
        variables: {{raw: "{{{{ kept as text"}}
        tasks:
          - id: sh
            type: io.kestra.plugin.scripts.shell.Commands
            description: "{{{{ prose"
            containerImage: "ubuntu:{{{{ tag"
            taskRunner: {{type: io.kestra.plugin.core.runner.Process, note: "{{{{ x"}}
            commands: [echo ok]
          - id: wait
            type: {PAUSE}
            behavior: "{{{{ x"
            onResume:
              - {{id: ok, type: STRING, defaults: "{{{{ x"}}
          - id: child
            type: io.kestra.plugin.core.flow.Subflow
            namespace: company.team
            flowId: other
            restartBehavior: "{{{{ x"
        triggers:
          - id: nightly
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "0 3 * * *"
            inputs: {{day: "{{{{ not rendered"}}
        """
    )
    assert [task.id for task in flow.tasks] == ["sh", "wait", "child"]


def test_sandbox_escapes_are_left_to_the_renderer_which_refuses_them_when_run() -> None:
    flow = parse(wrap_tasks(f"- {{id: r, type: {RETURN}, format: \"{{{{ ''.__class__ }}}}\"}}\n"))
    assert flow.tasks[0].props["format"] == "{{ ''.__class__ }}"


def test_a_template_set_by_a_plugin_default_is_reported_on_its_task() -> None:
    text = f"""\
        id: demo
        namespace: company.team
        pluginDefaults:
          - type: {LOG}
            values: {{message: "{{{{ oops"}}
        tasks:
          - id: say
            type: {LOG}
        """
    error = error_at(text, "Invalid expression `{{ oops`", 7, 5, "tasks[0].message")
    assert error.message.endswith("(set by a plugin default)")
