"""Flows that Kestra's open-source edition refuses are refused here too.

Kestra: WorkerGroupValidator and its test (FlowTest.workerGroup on flows/invalids/worker-group.yaml:
"tasks[0].workerGroup: Worker Group is an Enterprise Edition functionality"; a task's is a warning
here, as the Enterprise Edition runs it), and
WorkingDirectoryTaskValidator ("Only runnable tasks are allowed as children of a WorkingDirectory
task").
"""

from __future__ import annotations

import pytest

from tiercel.engine.parser import FlowError, FlowParseError, parse_flow

HEAD = "id: f\nnamespace: ns\n"


def errors(text: str) -> list[FlowError]:
    with pytest.raises(FlowParseError) as caught:
        parse_flow(text)
    return caught.value.errors


def test_a_task_worker_group_is_accepted_with_the_warning_kestra_oss_would_refuse_it_with() -> None:
    text = (
        HEAD
        + "tasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: x\n"
        + "    workerGroup:\n      key: gpu\n"
    )
    flow = parse_flow(text)
    assert flow.tasks_by_id["t"].props["workerGroup"] == {"key": "gpu"}
    [warning] = flow.warnings
    assert warning.startswith(
        "7:5: tasks[0].workerGroup: Worker Group is an Enterprise Edition functionality: Kestra OSS refuses"
    )


def test_worker_groups_of_flows_and_triggers_are_refused_and_nested_tasks_warned() -> None:
    text = HEAD + (
        "tasks:\n"
        "  - id: seq\n"
        "    type: io.kestra.plugin.core.flow.Sequential\n"
        "    tasks:\n"
        "      - {id: inner, type: io.kestra.plugin.core.log.Log, message: x, workerGroup: {key: a}}\n"
        "triggers:\n"
        "  - id: daily\n"
        "    type: io.kestra.plugin.core.trigger.Schedule\n"
        "    cron: '@daily'\n"
        "    workerGroup: {key: b}\n"
        "workerGroup: {key: c}\n"
    )
    assert sorted(error.yaml_path for error in errors(text)) == ["triggers[0].workerGroup", "workerGroup"]
    valid = text.replace("    workerGroup: {key: b}\n", "").replace("workerGroup: {key: c}\n", "")
    [warning] = parse_flow(valid).warnings
    assert warning.startswith("7:70: tasks[0].tasks[0].workerGroup: Worker Group")


@pytest.mark.parametrize(
    ("child", "short"),
    [
        ("{id: wait, type: io.kestra.plugin.core.flow.Pause}", "Pause"),
        (
            "{id: loop, type: io.kestra.plugin.core.flow.ForEach, values: [1], "
            "tasks: [{id: l, type: io.kestra.plugin.core.log.Log, message: x}]}",
            "ForEach",
        ),
        ("{id: sub, type: io.kestra.plugin.core.flow.Subflow, namespace: ns, flowId: other}", "Subflow"),
    ],
)
def test_a_working_directory_takes_runnable_tasks_only(child: str, short: str) -> None:
    text = HEAD + (
        "tasks:\n"
        "  - id: wd\n"
        "    type: io.kestra.plugin.core.flow.WorkingDirectory\n"
        "    tasks:\n"
        "      - {id: ok, type: io.kestra.plugin.scripts.shell.Commands, commands: [ls]}\n"
        f"      - {child}\n"
    )
    [error] = errors(text)
    assert error.yaml_path == "tasks[0].tasks[1].type"
    assert error.message.startswith(
        f"Only runnable tasks are allowed as children of a WorkingDirectory task, not {short}"
    )


def test_a_working_directory_of_runnable_tasks_is_valid() -> None:
    text = HEAD + (
        "tasks:\n"
        "  - id: wd\n"
        "    type: io.kestra.core.tasks.flows.WorkingDirectory\n"
        "    tasks:\n"
        "      - {id: a, type: io.kestra.plugin.scripts.shell.Commands, commands: [ls]}\n"
        "      - {id: b, type: io.kestra.plugin.core.log.Log, message: x}\n"
    )
    assert [task.id for task in parse_flow(text).tasks] == ["wd"]
