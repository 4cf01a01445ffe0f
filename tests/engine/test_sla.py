"""A flow's `sla`: MAX_DURATION and EXECUTION_ASSERTION with FAIL, CANCEL and NONE behaviours.

Kestra: models/flows/sla (MaxDurationSLA, ExecutionAssertionSLA: their reasons), SLAService (a
violation is logged at WARN), ExecutorService.processViolation (FAIL and CANCEL end the execution
in that state, the SLA's labels are added), and the documentation's example (kestra.io/docs/
workflow-components/sla: an 8-hour MAX_DURATION that CANCELs and labels the execution).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.helpers import flow, logs_of, run, running_engine, states
from tiercel.engine.model import LogLevel, StateType as S
from tiercel.engine.parser import FlowParseError, parse_flow


def sleepy(sla: str) -> str:
    """The documentation's example flow, shortened, with the SLA block given (at column 2)."""
    return (
        "id: f\nnamespace: ns\n"
        "inputs:\n  - {id: ok, type: BOOLEAN, defaults: true}\n"
        f"sla:{sla}"
        "tasks:\n"
        "  - {id: punctual, type: io.kestra.plugin.core.log.Log, message: started}\n"
        "  - {id: sleepyhead, type: io.kestra.plugin.core.flow.Sleep, duration: PT30S}\n"
        "  - {id: never_executed_task, type: io.kestra.plugin.core.log.Log, message: never}\n"
    )


MAX_DURATION = """
  - id: maxDuration
    type: MAX_DURATION
    duration: PT0.3S
    behavior: {behavior}
    labels:
      sla: miss
      reason: durationExceeded
"""


@pytest.mark.parametrize(("behavior", "end"), [("CANCEL", S.CANCELLED), ("FAIL", S.FAILED)])
async def test_max_duration_ends_the_execution(tmp_path: Path, behavior: str, end: S) -> None:
    source = sleepy(MAX_DURATION.format(behavior=behavior))
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        logs = await logs_of(engine, execution.id)
    assert execution.state.current is end
    assert states(execution) == {"punctual": S.SUCCESS, "sleepyhead": end}
    assert execution.labels_map()["sla"] == "miss"
    assert execution.labels_map()["reason"] == "durationExceeded"
    warnings = [entry.message for entry in logs if entry.level is LogLevel.WARN and "SLA" in entry.message]
    assert len(warnings) == 1
    assert warnings[0].startswith("SLA 'maxDuration' violated: execution duration of PT")
    assert warnings[0].endswith("exceed the maximum duration of PT0.3S.")
    failed = [entry.message for entry in logs if "Execution failed due to SLA" in entry.message]
    assert len(failed) == (1 if end is S.FAILED else 0)


async def test_a_none_behaviour_only_logs_and_labels_once(tmp_path: Path) -> None:
    source = flow(
        """
        sla:
          - {id: slow, type: MAX_DURATION, duration: PT0.1S, behavior: NONE, labels: {late: "yes"}}
        tasks:
          - {id: wait, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.4S}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: done}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        logs = await logs_of(engine, execution.id)
    assert execution.state.current is S.SUCCESS
    assert execution.labels_map()["late"] == "yes"
    assert sum("SLA 'slow' violated" in entry.message for entry in logs) == 1


async def test_an_execution_assertion_is_checked_while_the_execution_runs(tmp_path: Path) -> None:
    source = sleepy(
        """
  - id: must_be_ok
    type: EXECUTION_ASSERTION
    assert: "{{ inputs.ok }}"
    behavior: FAIL
"""
    )
    async with running_engine(tmp_path, source) as engine:
        failed = await run(engine, "ns", "f", {"ok": False})
        failed_logs = [entry.message for entry in await logs_of(engine, failed.id)]
    assert failed.state.current is S.FAILED
    assert "never_executed_task" not in states(failed)
    assert "SLA 'must_be_ok' violated: assertion is false: {{ inputs.ok }}." in failed_logs


@pytest.mark.parametrize(
    ("sla", "message"),
    [
        ("- {id: a, behavior: FAIL, duration: PT1S}", "SLA `a` has no `type`"),
        ("- {id: a, type: MAX_DURATION, behavior: STOP, duration: PT1S}", "Unknown SLA behavior `STOP`"),
        ("- {id: a, type: MAX_DURATION, behavior: FAIL}", "needs a `duration`"),
        ("- {id: a, type: EXECUTION_ASSERTION, behavior: FAIL}", "needs an `assert` expression"),
        ("- {id: a, type: LATE, behavior: FAIL}", "Unknown SLA type `LATE`"),
        ("- {type: MAX_DURATION, behavior: FAIL, duration: PT1S}", "An SLA has no `id`"),
    ],
)
def test_a_malformed_sla_is_refused_when_the_flow_loads(sla: str, message: str) -> None:
    task = "{id: t, type: io.kestra.plugin.core.log.Log, message: x}"
    text = f"id: f\nnamespace: ns\nsla:\n  {sla}\ntasks:\n  - {task}\n"
    with pytest.raises(FlowParseError) as caught:
        parse_flow(text)
    assert any(message in error.message for error in caught.value.errors), caught.value.errors
