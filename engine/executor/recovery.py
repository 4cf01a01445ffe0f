"""What a restarted engine does with a task run that was running when the previous engine stopped.

Policy (the engine applies it at start, to every unfinished execution it finds):

* By default an interrupted task run runs again, as a new attempt of the same task run: the
  interrupted attempt ends FAILED, with "engine stopped while the task was running" in its log.
* A task marked not idempotent fails instead, with the same message, and its retry policy applies as
  for any failure. Tasks are marked with a flow label, which keeps the flow valid for Kestra:
  ``tiercel.notIdempotent: "task_a,task_b"`` (task ids separated by commas), or ``"*"`` for every
  task of the flow.
* A task run never gets more than ``maxAttempt + 1`` attempts (``maxAttempt`` of the retry that
  applies to it, 1 without one): an interrupted attempt that was already the last one allowed fails.
* A task run being killed (or in an execution being killed) ends KILLED.

The same rules apply to the task runs of a worker of a cluster that stops heartbeating
(engine.cluster) or leaves it, with "the worker running the task left the cluster or stopped
heartbeating" in their log.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from ..model import Attempt, Execution, Flow, RetrySpec, State, StateType, TaskRun

NOT_IDEMPOTENT_LABEL = "tiercel.notIdempotent"
INTERRUPTED_MESSAGE = "engine stopped while the task was running"
WORKER_LOST_MESSAGE = "the worker running the task left the cluster or stopped heartbeating"


def not_idempotent(flow: Flow, task_id: str) -> bool:
    """Whether the flow's `tiercel.notIdempotent` label names the task (or is `*`)."""
    for label in flow.labels:
        if label.key == NOT_IDEMPOTENT_LABEL:
            names = {name.strip() for name in label.value.split(",")}
            return "*" in names or task_id in names
    return False


def _retry_of(flow: Flow, execution: Execution, run: TaskRun) -> RetrySpec | None:
    """The retry that applies to a task run: its task's, else its nearest parent's, else the flow's."""
    for candidate in (run, *execution.parents_of(run)):
        spec = flow.tasks_by_id.get(candidate.task_id)
        if spec is not None and spec.retry is not None:
            return spec.retry
    return flow.retry


def attempt_limit(flow: Flow, execution: Execution, run: TaskRun) -> int:
    """The most attempts a task run may have: `maxAttempt + 1` (one more than its retry allows)."""
    retry = _retry_of(flow, execution, run)
    max_attempt = retry.max_attempt if retry is not None and retry.max_attempt else 1
    return max_attempt + 1


def runs_again(flow: Flow, execution: Execution, run: TaskRun) -> bool:
    """Whether an interrupted task run runs again (else it fails, or ends KILLED when being killed)."""
    if execution.state.current is StateType.KILLING or run.state.current is not StateType.RUNNING:
        return False
    if not_idempotent(flow, run.task_id):
        return False
    return len(run.attempts) < attempt_limit(flow, execution, run)


def rerun(run: TaskRun, now: datetime) -> TaskRun:
    """The task run with its interrupted attempt FAILED and a new RUNNING attempt; it stays RUNNING."""
    attempts = run.attempts
    if attempts and not attempts[-1].state.current.is_terminated:
        attempts = (*attempts[:-1], attempts[-1].to(StateType.FAILED, now))
    return dataclasses.replace(
        run, attempts=(*attempts, Attempt(State.new(StateType.RUNNING, now))), due=None
    )
