"""templating.TemplatedTask, run through the engine, following Kestra's TemplatedTaskTest."""

from __future__ import annotations

from pathlib import Path

from tests.engine.helpers import flow, messages, one_run, run_flow, states
from tiercel.engine.model import StateType

S = StateType
TEMPLATED = "io.kestra.plugin.core.templating.TemplatedTask"


async def test_the_rendered_spec_runs_as_the_task(tmp_path: Path) -> None:
    """TemplatedTaskTest.templatedType: `type: {{ type }}` rendered to debug.Return, whose `format`
    becomes the task's output; the doc example's templated property name, under the old type name."""
    source = flow(
        f"""
        variables:
          type: io.kestra.plugin.core.debug.Return
          property: format
        tasks:
          - id: template
            type: {TEMPLATED}
            spec: |
              type: {{{{ vars.type }}}}
              format: It's alive!
          - id: named
            type: io.kestra.core.tasks.templating.TemplatedTask
            spec: |
              type: io.kestra.plugin.core.debug.Return
              {{{{ vars.property }}}}: "{{{{ outputs.template.value }}}} ({{{{ flow.id }}}})"
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS, messages(logs)
    assert (one_run(execution, "template").outputs or {}) == {"value": "It's alive!"}
    assert (one_run(execution, "named").outputs or {}) == {"value": "It's alive! (f)"}


async def test_the_inner_task_renders_its_properties_and_logs_as_the_task(tmp_path: Path) -> None:
    """Kestra runs the parsed task with the same run context: its own properties are rendered again
    (a `{% raw %}` expression left by the spec is evaluated by the inner task), and its log lines
    and failures are the TemplatedTask's."""
    source = flow(
        f"""
        tasks:
          - id: log
            type: {TEMPLATED}
            spec: |
              type: io.kestra.plugin.core.log.Log
              message: "{{% raw %}}{{{{ task.id }}}}{{% endraw %}} says hello"
          - id: fail
            type: {TEMPLATED}
            spec: |
              type: io.kestra.plugin.core.execution.Fail
              errorMessage: "{{{{ 'stop' | upper }}}}"
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert "log says hello" in messages(logs)
    assert states(execution) == {"log": S.SUCCESS, "fail": S.FAILED}
    assert "STOP" in messages(logs)


async def test_flowable_and_templated_specs_are_refused(tmp_path: Path) -> None:
    """TemplatedTaskTest.templatedFlowable and templatedTemplated: a Pause spec fails with "The
    templated task must be a runnable task", a TemplatedTask spec with its own message."""
    source = flow(
        f"""
        tasks:
          - id: flowable
            type: {TEMPLATED}
            allowFailure: true
            spec: |
              type: io.kestra.plugin.core.flow.Pause
              delay: PT10S
          - id: nested
            type: {TEMPLATED}
            allowFailure: true
            spec: |
              type: {TEMPLATED}
              spec: whatever
          - id: unknown
            type: {TEMPLATED}
            allowFailure: true
            spec: "type: io.kestra.plugin.core.nothing.Here"
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    lines = messages(logs)
    assert states(execution) == {"flowable": S.WARNING, "nested": S.WARNING, "unknown": S.WARNING}
    assert "The templated task must be a runnable task" in lines
    assert f"The templated task cannot be of type '{TEMPLATED}'" in lines
    assert any("io.kestra.plugin.core.nothing.Here" in line for line in lines)
