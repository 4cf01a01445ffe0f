"""Retries, timeouts, kill, restart, pause and subflows, driven through the pure Executor as plain
data: the clock is a value moved by `wait` events (see executor_cases)."""

from __future__ import annotations

import pytest

from .executor_cases import Case, Drive, flow_of, play

RETRIES = [
    Case(
        "constant: the same wait before each attempt, maxAttempt counts the first one",
        """
        tasks:
          - id: a
            type: Return
            format: a
            retry: {type: constant, interval: PT2S, maxAttempt: 3}
        """,
        (
            ("start", "run a"),
            ("fail a", "wake +2s"),
            ("wait 1", "wake +1s"),  # woken early: nothing is due yet
            ("wait 1", "run a"),
            ("fail a", "wake +2s"),
            ("wait 2", "run a"),
            ("fail a", ""),
        ),
        "FAILED",
        {"a": "FAILED"},
        {"a": 3},
    ),
    Case(
        "exponential: the wait doubles up to maxInterval; a success ends the retries",
        """
        tasks:
          - id: a
            type: Return
            format: a
            retry: {type: exponential, interval: PT1S, maxInterval: PT3S, maxAttempt: 5}
        """,
        (
            ("start", "run a"),
            ("fail a", "wake +1s"),
            ("wait 1", "run a"),
            ("fail a", "wake +2s"),
            ("wait 2", "run a"),
            ("fail a", "wake +3s"),
            ("wait 3", "run a"),
            ("ok a", ""),
        ),
        "SUCCESS",
        {"a": "SUCCESS"},
        {"a": 4},
    ),
    Case(
        "maxDuration: no attempt starts after it",
        """
        tasks:
          - id: a
            type: Return
            format: a
            retry: {type: constant, interval: PT2S, maxAttempt: 10, maxDuration: PT3S}
        """,
        (("start", "run a"), ("fail a", "wake +2s"), ("wait 2", "run a"), ("fail a", "")),
        "FAILED",
        {"a": "FAILED"},
        {"a": 2},
    ),
    Case(
        "warningOnRetry: a success after a retry is a warning",
        """
        tasks:
          - id: a
            type: Return
            format: a
            retry: {type: constant, interval: PT1S, maxAttempt: 2, warningOnRetry: true}
        """,
        (("start", "run a"), ("fail a", "wake +1s"), ("wait 1", "run a"), ("ok a", "")),
        "WARNING",
        {"a": "WARNING"},
        {"a": 2},
    ),
    Case(
        "a success at the first attempt stays a success with warningOnRetry",
        """
        tasks:
          - id: a
            type: Return
            format: a
            retry: {type: constant, interval: PT1S, maxAttempt: 2, warningOnRetry: true}
        """,
        (("start", "run a"), ("ok a", "")),
        "SUCCESS",
        {"a": "SUCCESS"},
        {"a": 1},
    ),
    Case(
        "a task without retry takes its parent's",
        """
        tasks:
          - id: seq
            type: Sequential
            retry: {type: constant, interval: PT1S, maxAttempt: 2}
            tasks:
              - {id: a, type: Return, format: a}
        """,
        (("start", "run a"), ("fail a", "wake +1s"), ("wait 1", "run a"), ("fail a", "")),
        "FAILED",
        {"seq": "FAILED", "a": "FAILED"},
        {"a": 2},
    ),
    Case(
        "a task without retry, under no parent with one, takes the flow's",
        """
        retry: {type: constant, interval: PT5S, maxAttempt: 2}
        tasks:
          - {id: a, type: Return, format: a}
        """,
        (("start", "run a"), ("fail a", "wake +5s"), ("wait 5", "run a"), ("ok a", "")),
        "SUCCESS",
        {"a": "SUCCESS"},
        {"a": 2},
    ),
    Case(
        "a timed-out attempt is a failure like any other: retried at once with a zero interval",
        """
        tasks:
          - id: a
            type: Return
            format: a
            timeout: PT1S
            retry: {type: constant, interval: PT0S, maxAttempt: 2}
          - {id: b, type: Return, format: b}
        """,
        (("start", "run a"), ("timeout a", "run a"), ("timeout a", "")),
        "FAILED",
        {"a": "FAILED", "b": None},
        {"a": 2},
    ),
    Case(
        "a retried task inside a Parallel holds its parent until it ends",
        """
        tasks:
          - id: p
            type: Parallel
            tasks:
              - id: a
                type: Return
                format: a
                retry: {type: constant, interval: PT1S, maxAttempt: 2}
              - {id: b, type: Return, format: b}
        """,
        (
            ("start", "run a b"),
            ("fail a", "wake +1s"),
            ("ok b", "wake +1s"),
            ("wait 1", "run a"),
            ("ok a", ""),
        ),
        "SUCCESS",
        {"p": "SUCCESS", "a": "SUCCESS"},
        {"a": 2},
    ),
]

KILL = [
    Case(
        "kill: running task runs are cancelled; the execution is KILLED once they stopped",
        """
        tasks:
          - id: p
            type: Parallel
            tasks:
              - {id: a, type: Return, format: a}
              - {id: b, type: Return, format: b}
          - {id: after, type: Return, format: x}
        """,
        (("start", "run a b"), ("kill", "cancel a b"), ("killed a", ""), ("fail b", "")),
        "KILLED",
        {"p": "KILLED", "a": "KILLED", "b": "KILLED", "after": None},
    ),
    Case(
        "kill: a task that ends well while being killed keeps its state",
        """
        tasks:
          - {id: a, type: Return, format: a}
          - {id: b, type: Return, format: b}
        """,
        (("start", "run a"), ("kill", "cancel a"), ("ok a", "")),
        "KILLED",
        {"a": "SUCCESS", "b": None},
    ),
    Case(
        "kill: a task waiting for its retry is killed at once",
        """
        tasks:
          - id: a
            type: Return
            format: a
            retry: {type: constant, interval: PT10S, maxAttempt: 3}
        """,
        (("start", "run a"), ("fail a", "wake +10s"), ("kill", ""), ("wait 10", "")),
        "KILLED",
        {"a": "KILLED"},
        {"a": 1},
    ),
]

RESTART = [
    Case(
        "restart: the failed task runs again in a new attempt; what succeeded does not",
        """
        tasks:
          - {id: a, type: Return, format: a}
          - {id: b, type: Return, format: b}
          - {id: c, type: Return, format: c}
        """,
        (
            ("start", "run a"),
            ("ok a", "run b"),
            ("fail b", ""),
            ("restart", "run b"),
            ("ok b", "run c"),
            ("ok c", ""),
        ),
        "SUCCESS",
        {"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS"},
        {"a": 1, "b": 2, "c": 1},
    ),
    Case(
        "restart: the errors and finally branches that ran are dropped, and run again if needed",
        """
        tasks:
          - {id: a, type: Return, format: a}
        errors:
          - {id: e, type: Log, message: failed}
        finally:
          - {id: fin, type: Log, message: done}
        """,
        (
            ("start", "run a"),
            ("fail a", "run e"),
            ("ok e", "run fin"),
            ("ok fin", ""),
            ("restart", "run a"),
            ("ok a", "run fin"),
            ("ok fin", ""),
        ),
        "SUCCESS",
        {"a": "SUCCESS", "e": None, "fin": "SUCCESS"},
        {"a": 2, "fin": 1},
    ),
    Case(
        "restart: the failed child of a flowable runs again and its parents go back to RUNNING",
        """
        tasks:
          - id: seq
            type: Sequential
            tasks:
              - {id: a, type: Return, format: a}
              - {id: b, type: Return, format: b}
        """,
        (("start", "run a"), ("ok a", "run b"), ("fail b", ""), ("restart", "run b"), ("ok b", "")),
        "SUCCESS",
        {"seq": "SUCCESS", "a": "SUCCESS", "b": "SUCCESS"},
        {"b": 2},
    ),
    Case(
        "restart: a killed task runs again",
        """
        tasks:
          - {id: a, type: Return, format: a}
        """,
        (("start", "run a"), ("kill", "cancel a"), ("killed a", ""), ("restart", "run a"), ("ok a", "")),
        "SUCCESS",
        {"a": "SUCCESS"},
        {"a": 2},
    ),
    Case(
        "restart: a successful execution is left as it is",
        """
        tasks:
          - {id: a, type: Return, format: a}
        """,
        (("start", "run a"), ("ok a", ""), ("restart", "")),
        "SUCCESS",
        {"a": "SUCCESS"},
        {"a": 1},
    ),
]

PAUSE_AND_SUBFLOW = [
    Case(
        "Pause: the execution waits until resumed",
        """
        tasks:
          - {id: wait, type: Pause}
          - {id: b, type: Return, format: b}
        """,
        (("start", ""), ("wait 3600", ""), ("resume", "run b"), ("ok b", "")),
        "SUCCESS",
        {"wait": "SUCCESS", "b": "SUCCESS"},
    ),
    Case(
        "Pause with a delay resumes by itself",
        """
        tasks:
          - {id: wait, type: Pause, delay: PT5S}
          - {id: b, type: Return, format: b}
        """,
        (("start", "wake +5s"), ("wait 5", "run b"), ("ok b", "")),
        "SUCCESS",
        {"wait": "SUCCESS"},
    ),
    Case(
        "Pause with a timeout fails when nobody resumed it in time",
        """
        tasks:
          - {id: wait, type: Pause, timeout: PT5S}
          - {id: b, type: Return, format: b}
        """,
        (("start", "wake +5s"), ("wait 5", "")),
        "FAILED",
        {"wait": "FAILED", "b": None},
    ),
    Case(
        "Subflow: handed to the engine, ended by the child execution's result",
        """
        tasks:
          - {id: sub, type: Subflow, namespace: company.team, flowId: child}
          - {id: b, type: Return, format: b}
        """,
        (("start", "subflow sub"), ("ok sub", "run b"), ("ok b", "")),
        "SUCCESS",
        {"sub": "SUCCESS", "b": "SUCCESS"},
    ),
]


def cases(rows: list[Case]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", rows, ids=[row.id for row in rows])


@cases(RETRIES)
def test_retries(case: Case) -> None:
    play(case)


@cases(KILL)
def test_kill(case: Case) -> None:
    play(case)


@cases(RESTART)
def test_restart(case: Case) -> None:
    play(case)


@cases(PAUSE_AND_SUBFLOW)
def test_pause_and_subflow(case: Case) -> None:
    play(case)


def test_a_restarted_execution_goes_through_restarted_and_is_labelled() -> None:
    drive = Drive(flow_of("tasks:\n  - {id: a, type: Return, format: a}\n"))
    for event in ("start", "fail a", "restart"):
        drive.event(event)
    history = [entry.state.name for entry in drive.execution.state.histories]
    assert history == ["CREATED", "RUNNING", "FAILED", "RESTARTED", "RUNNING"]
    assert [(label.key, label.value) for label in drive.execution.labels] == [("system.restarted", "true")]


def test_a_killed_execution_goes_through_killing() -> None:
    drive = Drive(flow_of("tasks:\n  - {id: a, type: Return, format: a}\n"))
    for event in ("start", "kill", "killed a"):
        drive.event(event)
    assert [entry.state.name for entry in drive.execution.state.histories][-2:] == ["KILLING", "KILLED"]
    assert [entry.state.name for entry in drive.run("a").state.histories] == [
        "CREATED",
        "RUNNING",
        "KILLING",
        "KILLED",
    ]


def test_retry_attempts_keep_their_own_states() -> None:
    drive = Drive(
        flow_of(
            """
            tasks:
              - id: a
                type: Return
                format: a
                retry: {type: constant, interval: PT1S, maxAttempt: 3}
            """
        )
    )
    for event in ("start", "fail a", "wait 1", "fail a", "wait 1", "ok a"):
        drive.event(event)
    run = drive.run("a")
    assert [attempt.state.current.name for attempt in run.attempts] == ["FAILED", "FAILED", "SUCCESS"]
    assert "RETRYING" in [entry.state.name for entry in run.state.histories]
