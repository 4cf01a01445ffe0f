"""Loop values inside nested flowables: `parents`, `taskrun.value` and `workerTaskrun`.

Kestra: Execution.parents (the nearest parent first, leaving out the flowables that hold neither a
value nor outputs), RunContextInitializer.forWorkingDirectory (a WorkingDirectory's task run is
`workerTaskrun` to the tasks below it, and gives them its loop value as `taskrun.value`).
"""

from __future__ import annotations

from pathlib import Path

from tests.engine.helpers import flow, messages, one_run, run_flow, runs_of
from tiercel.engine.model import StateType as S

# Kestra's core/src/test/resources/flows/valids/each-switch.yaml, as its tests run it.
EACH_SWITCH = """
id: each-switch
namespace: io.kestra.tests
tasks:
  - id: t1
    type: io.kestra.plugin.core.debug.Return
    format: "{{task.id}} > {{taskrun.startDate}}"
  - id: 2_each
    type: io.kestra.plugin.core.flow.ForEach
    values: '["a", "b"]'
    tasks:
      - id: 2-1_switch
        type: io.kestra.plugin.core.flow.Switch
        value: "{{taskrun.value}}"
        cases:
          a:
            - id: 2-1_switch-letter-a
              type: io.kestra.plugin.core.debug.Return
              format: "{{task.id}}"
          b:
            - id: 2-1_switch-letter-b
              type: io.kestra.plugin.core.debug.Return
              format: "{{task.id}}"
            - id: 2-1_each
              type: io.kestra.plugin.core.flow.ForEach
              values: '["1", "2"]'
              tasks:
              - id: 2-1-1_switch
                type: io.kestra.plugin.core.flow.Switch
                value: "{{taskrun.value}}"
                cases:
                  1:
                    - id: 2-1-1_switch-number-1
                      type: io.kestra.plugin.core.debug.Return
                      format: "{{parents[0].taskrun.value}}"
                  2:
                    - id: 2-1-1_switch-number-2
                      type: io.kestra.plugin.core.debug.Return
                      format: "{{parents[0].taskrun.value}} {{parents[1].taskrun.value}}"
  - id: 2_end
    type: io.kestra.plugin.core.debug.Return
    format: "{{task.id}} > {{taskrun.startDate}}"
"""


async def test_parents_reach_the_outer_loop_through_a_switch(tmp_path: Path) -> None:
    """Kestra's EachSequentialTest.eachSwitch: 12 task runs; `parents[1].taskrun.value` is `b`."""
    execution, logs = await run_flow(tmp_path, EACH_SWITCH)
    assert execution.state.current is S.SUCCESS, messages(logs)
    assert len(execution.task_runs) == 12
    assert one_run(execution, "2-1-1_switch-number-1").outputs == {"value": "1"}
    assert one_run(execution, "2-1-1_switch-number-2").outputs == {"value": "2 b"}


async def test_a_working_directory_in_a_loop_gives_its_tasks_the_loop_value(tmp_path: Path) -> None:
    """RunContextInitializer.forWorkingDirectory: `workerTaskrun` is the WorkingDirectory's task run,
    and its loop value is the `taskrun.value` of the tasks below it; their outputs are keyed by it."""
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: each
                type: io.kestra.plugin.core.flow.ForEach
                values: ["north", "south"]
                tasks:
                  - id: wd
                    type: io.kestra.plugin.core.flow.WorkingDirectory
                    tasks:
                      - id: write
                        type: io.kestra.plugin.scripts.shell.Commands
                        commands:
                          - echo "{{ taskrun.value }}" > region.txt
                      - id: read
                        type: io.kestra.plugin.core.debug.Return
                        format: "{{ taskrun.value }}|{{ workerTaskrun.value }}|{{ workerTaskrun.id }}"
              - id: after
                type: io.kestra.plugin.core.debug.Return
                format: "{{ outputs.read['south'].value }}"
            """
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    for region in ("north", "south"):
        [wd] = [run for run in runs_of(execution, "wd") if run.value == region]
        [read] = [run for run in runs_of(execution, "read") if run.parent_task_run_id == wd.id]
        assert (read.outputs or {})["value"] == f"{region}|{region}|{wd.id}"
    assert (one_run(execution, "after").outputs or {})["value"].startswith("south|south|")


async def test_a_task_outside_any_working_directory_has_no_worker_taskrun(tmp_path: Path) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: plain
                type: io.kestra.plugin.core.debug.Return
                format: "{{ workerTaskrun ?? 'none' }}"
            """
        ),
    )
    assert (one_run(execution, "plain").outputs or {})["value"] == "none", messages(logs)


async def test_loop_task_runs_carry_their_values_position_as_iteration(tmp_path: Path) -> None:
    """FlowableUtils.resolveEachTasks: each distinct value's task runs have `iteration` 0, 1, 2 ...
    (Kestra's docs: `taskrun.iteration` is zero-based), in ForEach and the deprecated Each tasks."""
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: each
                type: io.kestra.plugin.core.flow.ForEach
                values: ["x", "y", "x", "z"]
                concurrencyLimit: 0
                tasks:
                  - {id: a, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.iteration }}"}
                  - {id: b, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.iteration }}"}
              - id: par
                type: io.kestra.core.tasks.flows.EachParallel
                value: ["p", "q"]
                tasks:
                  - {id: c, type: io.kestra.plugin.core.debug.Return, format: "{{ taskrun.iteration }}"}
            """
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    for task_id, expected in (("a", {"x": "0", "y": "1", "z": "2"}), ("b", {"x": "0", "y": "1", "z": "2"})):
        found = {run.value: (run.outputs or {})["value"] for run in runs_of(execution, task_id)}
        assert found == expected
    assert {run.value: (run.outputs or {})["value"] for run in runs_of(execution, "c")} == {
        "p": "0",
        "q": "1",
    }
