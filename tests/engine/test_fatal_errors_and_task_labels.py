"""The founding article's `fatalError` (errors that fail the flow even under allowFailure, never
retried) and task `labels` (metadata that tags the task's metrics)."""

from __future__ import annotations

import socket
from pathlib import Path

from tiercel.engine.model import StateType

from .helpers import logs_of, messages, one_run, run, run_flow, running_engine
from .test_parser import error_at, parse


def _flow(task: str) -> str:
    return f"""
id: demo
namespace: company.team
tasks:
{task}
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: done
"""


FAILING_SCRIPT = """
  - id: risky
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner: {{type: io.kestra.plugin.core.runner.Process}}
    commands: ["exit 3"]
    allowFailure: true
    retry: {{type: constant, interval: PT0.01S, maxAttempt: 3}}
    fatalError: {fatal}
"""


async def test_a_named_error_fails_the_flow_under_allow_failure_and_is_not_retried(tmp_path: Path) -> None:
    execution, logs = await run_flow(tmp_path, _flow(FAILING_SCRIPT.format(fatal='["EXIT_CODE"]')))
    assert execution.state.current is StateType.FAILED
    risky = one_run(execution, "risky")
    assert risky.state.current is StateType.FAILED
    assert len(risky.attempts) == 1
    assert [run.task_id for run in execution.task_runs] == ["risky"]
    assert any(line.startswith("Fatal error (EXIT_CODE, named by `EXIT_CODE`") for line in messages(logs))


async def test_an_error_not_named_is_retried_and_allowed(tmp_path: Path) -> None:
    source = _flow(FAILING_SCRIPT.format(fatal="[CONNECTION_ERROR, timeout]"))
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is StateType.WARNING
    assert len(one_run(execution, "risky").attempts) == 3
    assert one_run(execution, "after").state.current is StateType.SUCCESS
    assert not any("Fatal error" in line for line in messages(logs))


async def test_an_entry_matches_text_of_the_error_message(tmp_path: Path) -> None:
    fail = """
  - id: quota
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "Quota exceeded for project acme"
    allowFailure: true
    fatalError: "quota EXCEEDED"
"""
    execution, logs = await run_flow(tmp_path, _flow(fail))
    assert execution.state.current is StateType.FAILED
    assert any("(TASK_FAILED, named by `quota EXCEEDED`" in line for line in messages(logs))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_refused_connection_is_a_connection_error(tmp_path: Path) -> None:
    request = f"""
  - id: call
    type: io.kestra.plugin.core.http.Request
    uri: http://127.0.0.1:{_closed_port()}/data
    allowFailure: true
    fatalError: [CONNECTION_ERROR]
"""
    execution, logs = await run_flow(tmp_path, _flow(request))
    assert execution.state.current is StateType.FAILED
    assert any(line.startswith("Fatal error (CONNECTION_ERROR") for line in messages(logs))


async def test_a_timeout_is_a_timeout(tmp_path: Path) -> None:
    sleep = """
  - id: slow
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
    timeout: PT0.2S
    allowFailure: true
    fatalError: [TIMEOUT]
"""
    execution, logs = await run_flow(tmp_path, _flow(sleep))
    assert execution.state.current is StateType.FAILED
    assert any(line.startswith("Fatal error (TIMEOUT") for line in messages(logs))


def test_fatal_error_is_checked_where_it_is_written() -> None:
    on_flowable = """
    id: demo
    namespace: company.team
    tasks:
      - id: group
        type: io.kestra.plugin.core.flow.Sequential
        fatalError: [TIMEOUT]
        tasks: [{id: a, type: io.kestra.plugin.core.log.Log, message: x}]
    """
    error_at(on_flowable, "`fatalError` on flowable task `group`: its state comes from its tasks", 6, 5)
    not_text = """
    id: demo
    namespace: company.team
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: x
        fatalError: [{code: TIMEOUT}]
    """
    error_at(not_text, "An entry of `fatalError` must be an error code or text, not a mapping", 7, 18)
    flow = parse(
        """
        id: demo
        namespace: company.team
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: x
            fatalError: [CONECTION_ERROR, "disk full"]
        """
    )
    assert flow.tasks[0].fatal_errors == ("CONECTION_ERROR", "disk full")
    found = {warning.split(": ", 2)[1]: warning for warning in flow.warnings}
    assert "Did you mean `CONNECTION_ERROR`?" in found["tasks[0].fatalError[0]"]
    assert "Kestra refuses this flow" in found["tasks[0].fatalError"]


METRIC = '::{"metrics":[{"name":"rows","type":"counter","value":3,"tags":{"stage":"load","team":"own"}}]}::'


async def test_task_labels_tag_its_metrics(tmp_path: Path) -> None:
    source = f"""
id: demo
namespace: company.team
tasks:
  - id: load
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner: {{type: io.kestra.plugin.core.runner.Process}}
    commands:
      - |
        echo '{METRIC}'
    labels:
      cost-center: marketing
      team: data
"""
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "company.team", "demo")
        assert execution.state.current is StateType.SUCCESS, messages(await logs_of(engine, execution.id))
        metrics = await engine.store.metrics(execution.id)
    [metric] = [entry for entry in metrics if not entry.name.startswith("process.")]
    assert metric.tags == {"cost-center": "marketing", "team": "own", "stage": "load"}
    # What the task's programs used is tagged the same way.
    figures = [entry for entry in metrics if entry.name.startswith("process.")]
    assert figures and all(entry.tags == {"cost-center": "marketing", "team": "data"} for entry in figures)
    assert all(label.key != "cost-center" for label in execution.labels)


def test_task_labels_are_checked_and_a_subflows_labels_stay_its_own() -> None:
    reserved = """
    id: demo
    namespace: company.team
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: x
        labels: {system.correlationId: x}
    """
    error_at(reserved, "Label `system.correlationId` uses the reserved `system.` prefix", 7, 14)
    flow = parse(
        """
        id: demo
        namespace: company.team
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: company.team
            flowId: child
            labels: {child: yes}
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: x
            labels: [{key: data-sensitive, value: true}]
        """
    )
    assert flow.tasks[0].props["labels"] == {"child": "yes"}
    assert flow.tasks[0].labels == ()
    assert [(label.key, label.value) for label in flow.tasks[1].labels] == [("data-sensitive", "true")]


async def test_a_fatal_error_fails_the_flow_through_a_flowable_that_allows_failure(tmp_path: Path) -> None:
    group = """
  - id: group
    type: io.kestra.plugin.core.flow.Sequential
    allowFailure: true
    tasks:
      - id: inner
        type: io.kestra.plugin.core.flow.Sequential
        allowFailure: true
        tasks:
          - id: risky
            type: io.kestra.plugin.scripts.shell.Commands
            taskRunner: {type: io.kestra.plugin.core.runner.Process}
            commands: ["exit 3"]
            fatalError: [EXIT_CODE]
"""
    execution, _ = await run_flow(tmp_path, _flow(group))
    assert execution.state.current is StateType.FAILED
    assert [(run.task_id, run.state.current) for run in execution.task_runs] == [
        ("group", StateType.FAILED),
        ("inner", StateType.FAILED),
        ("risky", StateType.FAILED),
    ]
    lenient = group.replace("fatalError: [EXIT_CODE]", "fatalError: [TIMEOUT]")
    execution, _ = await run_flow(tmp_path / "lenient", _flow(lenient))
    assert execution.state.current is StateType.WARNING
    assert one_run(execution, "after").state.current is StateType.SUCCESS
