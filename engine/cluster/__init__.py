"""Past one machine: the worker queue a PostgreSQL store shares between servers and workers.

The executor's jobs become rows of `worker_jobs`, claimed by workers with FOR UPDATE SKIP LOCKED and
woken through LISTEN/NOTIFY (with polling for what a notification missed); each worker heartbeats in
`workers`, and an attempt's end comes back as a row of `worker_results`. `SharedWorkerQueue` is the
executor's side (the same `WorkerQueue` as the in-process runner), `ClusterWorker` a worker's (the
in-process runner's attempts, fed from the table). Nothing here is used with an SQLite store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # psycopg loads only when a cluster is used
    from ..engine import Engine
    from ..wiring import WorkerPoolFactory
    from .worker import ClusterWorker

# A worker silent for this long is taken as gone; workers heartbeat every HEARTBEAT_SECONDS.
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_TIMEOUT_SECONDS = 10.0


def shared_worker_pool(
    url: str,
    *,
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT_SECONDS,
    local_concurrency: int = 16,
    server_id: str | None = None,
) -> WorkerPoolFactory:
    """The engine's workers as the queue of the PostgreSQL store at `url` (see `SharedWorkerQueue`),
    with a worker in the engine's own process running `local_concurrency` task runs at once (0: none,
    only `tiercel worker` processes). `server_id` names the cluster server the engine is (see
    `ClusterServer`); an engine holding the store alone gets an id of its own."""

    def build(parts: Any, inbox: Any, runner_on: Any) -> Any:
        from ..db_target import local_path
        from .dispatch import SharedWorkerQueue
        from .processes import LocalProcessBook
        from .servers import new_server_id
        from .worker import ClusterWorker, WorkerStore

        local = None
        if local_concurrency:
            local = ClusterWorker(parts, url, concurrency=local_concurrency, heartbeat=HEARTBEAT_SECONDS)
        me = server_id or new_server_id()
        # The programs of the server's own task runs are recorded on its machine, as a worker's: the
        # store's records are every server's, and a server starting must not kill another's.
        book = LocalProcessBook(local_path(url).parent / "workers", me)
        here = runner_on(WorkerStore(parts.store, book))
        return SharedWorkerQueue(
            url, inbox, here, parts.log_pipeline, server_id=me, heartbeat_timeout=heartbeat_timeout,
            worker=local, book=book,
        )  # fmt: skip

    return build


def cluster_worker(engine: Engine, url: str, **options: Any) -> ClusterWorker:
    """A worker process's worker of the cluster at `url`, on an engine it owns (not started): it
    reads the flows folder's namespace declarations itself."""
    from .worker import ClusterWorker

    options.setdefault("heartbeat", HEARTBEAT_SECONDS)
    return ClusterWorker(engine, url, load_namespaces=True, **options)


@dataclass(frozen=True)
class WorkerInfo:
    """A worker of a cluster as its row says: who and where, its share of the work, its last beat."""

    id: str
    host: str
    pid: int
    group: str | None
    concurrency: int
    started: datetime
    heartbeat_age: float  # seconds since its last heartbeat
    running: int  # task runs it has claimed and not reported yet


@dataclass(frozen=True)
class ServerInfo:
    """A server of a cluster as its row says, with the executions it runs and whether its scheduler runs."""

    id: str
    host: str
    pid: int
    started: datetime
    heartbeat_age: float  # seconds since its last heartbeat
    running: int  # unfinished executions it owns
    scheduler: bool  # it holds the scheduler's lock


@dataclass(frozen=True)
class ClusterMembers:
    """The servers and workers of a cluster, and the task runs waiting for a worker, by worker group."""

    servers: list[ServerInfo]
    workers: list[WorkerInfo]
    waiting: dict[str | None, int]


async def cluster_members(url: str) -> ClusterMembers:
    """The servers and workers of the cluster at `url`, as its tables say."""
    from ..db_target import describe_target
    from ..store import Store, StoreError

    Store.needs_driver()
    import psycopg

    from . import jobs, servers
    from .connection import ClusterConnection
    from .lease import HOLDER

    connection = ClusterConnection(url, "client", patient=False)
    try:
        await connection.open()
        server_rows = await connection.fetch(servers.SERVERS)
        holder = [str(name).split()[2] for (name,) in await connection.fetch(HOLDER)]
        worker_rows = await connection.fetch(jobs.WORKERS)
        waiting = {group: int(count) for group, count in await connection.fetch(jobs.WAITING)}
    except psycopg.errors.UndefinedTable:
        raise StoreError(
            f"{describe_target(url)} holds no Tiercel cluster (no server has opened it)"
        ) from None
    except psycopg.Error as exc:
        raise StoreError(f"cannot read the cluster of {describe_target(url)}: {str(exc).strip()}") from exc
    finally:
        await connection.close()
    return ClusterMembers(
        [
            ServerInfo(str(a), str(b), int(c), d, float(e), int(f), str(a) in holder)
            for a, b, c, d, e, f in server_rows
        ],
        [
            WorkerInfo(str(a), str(b), int(c), d, int(e), f, float(g), int(h))
            for a, b, c, d, e, f, g, h in worker_rows
        ],
        waiting,
    )
