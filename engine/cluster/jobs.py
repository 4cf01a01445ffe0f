"""The statements on the worker queue's tables (migration 0002_worker_queue.sql), and the results'
encoding: the one place that knows the tables' columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..messages import Failure, WorkerResult
from ..model import Label, LogEntry, LogLevel, StateType, parse_iso
from ..model.resources import ResourceUsage
from ..store.codec import dumps, loads

# Jobs in, and the workers told, in one statement (one round trip, one commit); each column is an
# array. A job written again (after a cut connection) is not doubled.
ENQUEUE = (
    "WITH added AS (INSERT INTO worker_jobs (execution_id, task_run_id, attempt, worker_group, server_id) "
    "SELECT *, %s::text FROM unnest(%s::text[], %s::text[], %s::int[], %s::text[]) "
    "ON CONFLICT (task_run_id, attempt) DO NOTHING RETURNING 1) "
    "SELECT pg_notify(%s, '') FROM (SELECT count(*) FROM added) AS written"
)
# The oldest jobs of the worker's group no other worker is claiming: rows a claim in progress locks
# are skipped, not waited for.
CLAIM = (
    "UPDATE worker_jobs SET worker_id = %(worker)s, claimed = now() WHERE id IN ("
    "SELECT id FROM worker_jobs WHERE worker_id IS NULL AND worker_group IS NOT DISTINCT FROM %(group)s "
    "ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
    "RETURNING id, execution_id, task_run_id, attempt, cancel"
)
# Attempts' ends: their jobs go, their results come and the executor is told, in one statement; a
# job that is no longer the worker's (it was declared lost meanwhile) takes no result. A result goes
# to the server its job names. The ended attempts come as arrays: job id, execution id, task run id,
# attempt, result.
REPORT = (
    "WITH ended AS (SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[], %s::text[]) "
    "AS e (job_id, execution_id, task_run_id, attempt, result)), "
    "gone AS (DELETE FROM worker_jobs AS j USING ended AS e WHERE j.id = e.job_id AND j.worker_id = %s "
    "RETURNING j.id, j.server_id), "
    "added AS (INSERT INTO worker_results (execution_id, task_run_id, attempt, result, server_id) "
    "SELECT e.execution_id, e.task_run_id, e.attempt, e.result, g.server_id FROM ended AS e JOIN gone AS g "
    "ON g.id = e.job_id RETURNING 1) "
    "SELECT pg_notify(%s, '') FROM (SELECT count(*) FROM added) AS written"
)
# A job no one waits for any more (its attempt is over): it goes without a result.
FINISH = "DELETE FROM worker_jobs WHERE id = %s AND worker_id = %s"
# A kill: a job no worker took yet is withdrawn; one a worker runs is flagged for it.
WITHDRAW = "DELETE FROM worker_jobs WHERE task_run_id = %s AND worker_id IS NULL RETURNING attempt"
FLAG_CANCEL = "UPDATE worker_jobs SET cancel = TRUE WHERE task_run_id = %s RETURNING worker_id"
RESULTS = (
    "SELECT id, execution_id, task_run_id, attempt, result FROM worker_results WHERE server_id = %s "
    "ORDER BY id LIMIT %s"
)
FORGET_RESULTS = "DELETE FROM worker_results WHERE id = ANY(%s)"
HELD = (
    "SELECT task_run_id, attempt FROM worker_jobs WHERE task_run_id = ANY(%(runs)s) "
    "UNION ALL SELECT task_run_id, attempt FROM worker_results WHERE task_run_id = ANY(%(runs)s)"
)

REGISTER = "INSERT INTO workers (id, host, pid, worker_group, concurrency) VALUES (%s, %s, %s, %s, %s)"
HEARTBEAT = "UPDATE workers SET heartbeat = now() WHERE id = %s RETURNING id"
UNREGISTER = "DELETE FROM workers WHERE id = %s"
# The worker's jobs as the table has them: to cancel those flagged, and to give back those it does
# not run (a claim whose answer a lost connection cut).
CLAIMED = "SELECT id, cancel FROM worker_jobs WHERE worker_id = %s"
GIVE_BACK = "UPDATE worker_jobs SET worker_id = NULL, claimed = NULL WHERE id = ANY(%s) AND worker_id = %s"
# Workers silent for longer than the timeout are gone, and so are their claims.
DEAD_WORKERS = (
    "DELETE FROM workers WHERE heartbeat < now() - make_interval(secs => %s) RETURNING id, host, pid"
)
# A server's jobs claimed by workers that are gone (another server's are its own to deal with).
LOST_JOBS = (
    "SELECT id, execution_id, task_run_id, attempt, worker_id FROM worker_jobs "
    "WHERE server_id = %s AND worker_id IS NOT NULL AND worker_id <> ALL(SELECT id FROM workers)"
)
FORGET_JOB = "DELETE FROM worker_jobs WHERE id = %s AND worker_id = %s"
# The workers with how many task runs each holds, and when each last heartbeat came (seconds ago).
WORKERS = (
    "SELECT w.id, w.host, w.pid, w.worker_group, w.concurrency, w.started, "
    "extract(epoch FROM now() - w.heartbeat), "
    "(SELECT count(*) FROM worker_jobs AS j WHERE j.worker_id = w.id) "
    "FROM workers AS w ORDER BY w.started, w.id"
)
WAITING = "SELECT worker_group, count(*) FROM worker_jobs WHERE worker_id IS NULL GROUP BY worker_group"


def encode_result(result: WorkerResult, errors: Sequence[LogEntry] = ()) -> str:
    """An attempt's end, with its ERROR lines (the executor's `errorLogs()` needs them)."""
    return dumps(
        {
            "state": result.state.value,
            "outputs": result.outputs,
            "labels": [[label.key, label.value] for label in result.labels],
            "failure": None if result.failure is None else [result.failure.code, result.failure.message],
            "cachedFrom": result.cached_from,
            "resources": None if result.usage is None else result.usage.to_json(),
            "errors": [
                [e.execution_id, e.namespace, e.flow_id, e.stamp, e.message, e.task_id, e.attempt]
                for e in errors
            ],
        }
    )


def decode_result(task_run_id: str, text: str) -> tuple[WorkerResult, list[LogEntry]]:
    data: dict[str, Any] = loads(text)
    labels = tuple(Label(key, value) for key, value in data.get("labels") or ())
    failure = Failure(*data["failure"]) if data.get("failure") else None
    state, outputs, cached_from = StateType(data["state"]), data.get("outputs"), data.get("cachedFrom")
    usage = ResourceUsage.from_json(data["resources"]) if data.get("resources") else None
    result = WorkerResult(task_run_id, state, outputs, labels, failure, cached_from, usage)
    errors = [
        LogEntry(
            execution_id, namespace, flow, parse_iso(stamp), LogLevel.ERROR, message, task, task_run_id, n
        )
        for execution_id, namespace, flow, stamp, message, task, n in data.get("errors") or ()
    ]
    return result, errors
