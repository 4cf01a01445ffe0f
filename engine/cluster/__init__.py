"""Past one machine: the worker queue a PostgreSQL store shares between servers and workers.

The executor's jobs become rows of `worker_jobs`, claimed by workers with FOR UPDATE SKIP LOCKED and
woken through LISTEN/NOTIFY (with polling for what a notification missed); each worker heartbeats in
`workers`, and an attempt's end comes back as a row of `worker_results`. `SharedWorkerQueue` is the
executor's side (the same `WorkerQueue` as the in-process runner), `ClusterWorker` a worker's (the
in-process runner's attempts, fed from the table). Nothing here is used with an SQLite store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # psycopg loads only when a cluster is used
    from ..engine import Engine
    from ..wiring import WorkerPoolFactory
    from .worker import ClusterWorker

# A worker silent for this long is taken as gone; workers heartbeat every HEARTBEAT_SECONDS.
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_TIMEOUT_SECONDS = 10.0


def shared_worker_pool(
    url: str, *, heartbeat_timeout: float = HEARTBEAT_TIMEOUT_SECONDS
) -> WorkerPoolFactory:
    """The engine's workers as the queue of the PostgreSQL store at `url` (see `SharedWorkerQueue`)."""

    def build(inbox: Any, runner: Any, logs: Any) -> Any:
        from .dispatch import SharedWorkerQueue

        return SharedWorkerQueue(url, inbox, runner, logs, heartbeat_timeout=heartbeat_timeout)

    return build


def cluster_worker(engine: Engine, url: str, **options: Any) -> ClusterWorker:
    """A worker of the cluster of the PostgreSQL store at `url`, on the engine's parts."""
    from .worker import ClusterWorker

    options.setdefault("heartbeat", HEARTBEAT_SECONDS)
    return ClusterWorker(engine, url, **options)
