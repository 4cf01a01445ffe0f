"""A task run whose worker is gone (engine.cluster): crash recovery's policy, on plain data."""

from __future__ import annotations

import pytest

from tests.engine.executor_cases import Case, play

TWO_LOGS = """
tasks:
  - {id: a, type: Log, message: x}
  - {id: b, type: Log, message: y}
"""

CASES = [
    Case(
        "a new attempt runs on another worker",
        TWO_LOGS,
        (("start", "run a"), ("lost a", "run a"), ("ok a", "run b"), ("ok b", "")),
        "SUCCESS",
        states={"a": "SUCCESS"},
        attempts={"a": 2},
    ),
    Case(
        "a task marked not idempotent fails instead",
        "labels:\n  tiercel.notIdempotent: a\n" + TWO_LOGS,
        (("start", "run a"), ("lost a", "")),
        "FAILED",
        states={"a": "FAILED", "b": None},
        attempts={"a": 1},
    ),
    Case(
        "a retry's attempts are not exceeded",
        """
        tasks:
          - id: a
            type: Log
            message: x
            retry: {type: constant, interval: PT1S, maxAttempt: 1}
        """,
        (("start", "run a"), ("lost a", "run a"), ("lost a", "")),
        "FAILED",
        attempts={"a": 2},
    ),
    Case(
        "an execution being killed ends its task run KILLED",
        TWO_LOGS,
        (("start", "run a"), ("kill", "cancel a"), ("lost a", "")),
        "KILLED",
        states={"a": "KILLED"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_lost_worker(case: Case) -> None:
    drive = play(case)
    if case.attempts.get("a", 0) > 1 or case.execution == "FAILED":
        assert "the worker running the task left the cluster or stopped heartbeating" in drive.logs


def test_a_late_loss_of_an_attempt_that_already_ended_changes_nothing() -> None:
    case = Case("late", TWO_LOGS, (("start", "run a"), ("ok a", "run b")), "RUNNING")
    drive = play(case)
    run = drive.run("a")
    outcome = drive.executor.lost(drive.flow, drive.execution, drive.now, run.id, 0)
    assert outcome.execution.task_run(run.id) == run
    assert not outcome.dispatch
