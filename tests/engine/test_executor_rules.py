"""The executor's pure rules: retry delays and limits, and how end states combine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tiercel.engine.executor.decisions import may_retry, retry_delay
from tiercel.engine.model import RetrySpec, State, StateType, TaskRun
from tiercel.engine.tasks.flowable import allowed, worst_state

S = StateType
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def test_constant_delay_is_the_interval() -> None:
    retry = RetrySpec("constant", interval=seconds(0.25), max_attempt=5)
    assert [retry_delay(retry, n) for n in (1, 2, 3)] == [seconds(0.25)] * 3


def test_exponential_delay_doubles_and_is_capped() -> None:
    retry = RetrySpec("exponential", interval=seconds(1), max_interval=seconds(5), max_attempt=9)
    assert [retry_delay(retry, n).total_seconds() for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_exponential_delay_uses_the_delay_factor() -> None:
    retry = RetrySpec("exponential", interval=seconds(1), delay_factor=3, max_interval=seconds(100))
    assert [retry_delay(retry, n).total_seconds() for n in (1, 2, 3)] == [1, 3, 9]


def test_random_delay_stays_within_bounds() -> None:
    retry = RetrySpec("random", min_interval=seconds(1), max_interval=seconds(2), max_attempt=3)
    delays = {retry_delay(retry, 1) for _ in range(50)}
    assert all(seconds(1) <= d <= seconds(2) for d in delays)
    assert len(delays) > 1


def test_max_attempt_counts_every_attempt_including_the_first() -> None:
    retry = RetrySpec("constant", interval=seconds(0), max_attempt=3)
    assert may_retry(retry, 1, T0, T0) is not None
    assert may_retry(retry, 2, T0, T0) is not None
    assert may_retry(retry, 3, T0, T0) is None


def test_max_duration_stops_retries_whose_next_attempt_would_start_too_late() -> None:
    retry = RetrySpec("constant", interval=seconds(2), max_attempt=10, max_duration=seconds(5))
    assert may_retry(retry, 1, T0, T0 + seconds(2)) == seconds(2)
    assert may_retry(retry, 2, T0, T0 + seconds(4)) is None


def test_no_policy_means_no_retry() -> None:
    assert may_retry(None, 1, T0, T0) is None
    assert may_retry(RetrySpec("constant", interval=seconds(1)), 1, T0, T0) is None


def run_in(state: StateType) -> TaskRun:
    return TaskRun("r", "e", "ns", "f", "t", State.new(state, T0))


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([S.SUCCESS, S.SKIPPED], S.SUCCESS),
        ([S.SUCCESS, S.WARNING], S.WARNING),
        ([S.WARNING, S.FAILED], S.FAILED),
        ([S.FAILED, S.KILLED], S.KILLED),
        ([S.SUCCESS, S.PAUSED], S.PAUSED),
        ([], S.SUCCESS),
    ],
)
def test_worst_state_ranks_like_kestra(states: list[StateType], expected: StateType) -> None:
    assert worst_state(run_in(state) for state in states) is expected


def test_allow_failure_and_allow_warning() -> None:
    assert allowed(S.FAILED, False, False) is S.FAILED
    assert allowed(S.FAILED, True, False) is S.WARNING
    assert allowed(S.FAILED, True, True) is S.SUCCESS
    assert allowed(S.WARNING, False, True) is S.SUCCESS
    assert allowed(S.KILLED, True, True) is S.KILLED
