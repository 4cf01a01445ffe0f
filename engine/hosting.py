"""The engine of a long-running process (`tiercel server`, the dashboard) on its store.

On SQLite it owns the store alone. On PostgreSQL it is one server of the store's cluster
(`ClusterServer`): the task runs go through the shared queue, to a worker of its own process and to
the cluster's `tiercel worker` processes, and it runs beside the other servers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from .db_target import DbTarget, is_url
from .engine import Engine
from .store import Store

if TYPE_CHECKING:  # psycopg loads only for a PostgreSQL store
    from .cluster.server import ClusterServer


class HostedEngine:
    """An engine opened for a long run; `lost` is set when its cluster declared it gone (it must stop)."""

    def __init__(self, engine: Engine, cluster: ClusterServer | None = None) -> None:
        self.engine = engine
        self._cluster = cluster
        self.lost = asyncio.Event() if cluster is None else cluster.lost

    @property
    def server_id(self) -> str | None:
        """Its id as a server of a cluster (None on SQLite)."""
        return None if self._cluster is None else self._cluster.id

    @classmethod
    async def open(
        cls,
        db: DbTarget,
        flows_dir: Path | None,
        *,
        local_concurrency: int = 16,
        heartbeat_timeout: float | None = None,
        follow: bool = False,
        guest: bool = False,
    ) -> HostedEngine:
        """Open the store and build the engine (not started); with `follow` (the dashboard), the
        executions other servers of its cluster run are published on its bus too (`ExecutionFeed`);
        with `guest` (a one-off command), it joins the cluster as a guest (see `ClusterServer`).

        Raises:
            StoreError: The store cannot be opened (or another process owns it alone).
            SecretError: The secrets are misconfigured.
        """
        if not is_url(db):
            store = await Store.open(db)
            try:
                return cls(Engine(store, flows_dir=flows_dir))
            except BaseException:
                await store.close()
                raise
        Store.needs_driver()  # a clear refusal before the cluster's modules import it
        from .cluster import HEARTBEAT_TIMEOUT_SECONDS, shared_worker_pool
        from .cluster.server import ClusterServer
        from .cluster.servers import new_server_id

        url, me = str(db), new_server_id()
        timeout = heartbeat_timeout or HEARTBEAT_TIMEOUT_SECONDS
        store = await Store.open(url, server=me)
        try:
            workers = shared_worker_pool(
                url, heartbeat_timeout=timeout, local_concurrency=local_concurrency, server_id=me
            )
            engine = Engine(store, flows_dir=flows_dir, workers=workers)
        except BaseException:
            await store.close()
            raise
        return cls(engine, ClusterServer(engine, url, me, timeout=timeout, follow=follow, guest=guest))

    async def start(self, *, control: bool = True, watch: bool = True) -> None:
        if self._cluster is None:
            await self.engine.start(control=control, watch=watch)
        else:
            await self._cluster.start(control=control, watch=watch)

    async def stop(self) -> None:
        if self._cluster is None:
            await self.engine.stop()
        else:
            await self._cluster.stop()
