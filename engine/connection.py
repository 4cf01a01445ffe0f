"""`connect(db)`: the `Commands` of a database, whether or not an engine runs on it.

One engine owns a database at a time (the store's lock). When one does (the dashboard, `tiercel
server`, a running backfill), `connect` hands out a `ControlClient` that sends each command to it.
Otherwise it starts an engine here for the command, holding the lock until the command is done, so
that no engine can start in between and nothing writes the store behind one; that engine stops when
the `async with` block ends. On a PostgreSQL store whose servers run on other machines (no server
answers on this one), the engine started here joins their cluster as a guest (`ClusterServer`):
its executions' task runs go to the cluster's workers, its kills and resumes to the servers that
run the executions.

This is the one place that decides whether an engine owns a database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection
from pathlib import Path

from .commands import Commands
from .control import ControlClient, socket_path
from .db_target import DbTarget, describe_target, is_url, target_exists
from .engine import Engine
from .hosting import HostedEngine
from .secrets import SecretError
from .store import Store, StoreError, StoreLockedError

# A guest heartbeats every second (a fifth of this), within the shortest timeout a server is given.
GUEST_HEARTBEAT_TIMEOUT = 5.0


class ConnectError(Exception):
    """No engine could be had for the database: it cannot be opened, or the engine's settings
    (its secrets file) are wrong."""


class NoEngineError(Exception):
    """No engine owns the database, and none was to be started here."""


@contextlib.asynccontextmanager
async def connect(
    db: DbTarget,
    *,
    local: bool = True,
    flows_dir: Path | None = None,
    recover: Collection[str] | None = (),
    triggers: bool = False,
    control: bool = False,
    flows_on_demand: bool = False,
) -> AsyncIterator[Commands]:
    """The engine that owns `db` through its control channel, or else an engine started here.

    Args:
        local: Start an engine here when none owns the database; False raises NoEngineError
            instead (and never creates the database).
        flows_dir, recover, triggers, control: How the engine started here runs (see
            `Engine.start`). By default it loads no flows folder, resumes no unfinished execution
            (a command that stops again soon must not rerun tasks it has nothing to do with), fires
            no trigger and serves no control channel.
        flows_on_demand: The engine started here reads only the flow files it is asked for, with the
            flows they name, not the whole folder (`FlowFolder.read_on_demand`).

    Raises:
        ConnectError: The database cannot be opened, or the engine's settings are wrong.
        NoEngineError: Without `local`, when no engine owns the database.
    """
    store = await _own(db, local)
    if store is None and local and is_url(db) and not await _answers(socket_path(db)):
        async with _guest(str(db), flows_dir, flows_on_demand) as guest:
            yield guest
        return
    if store is None:
        client = ControlClient(db)
        try:
            yield client
        finally:
            await client.close()
        return
    try:
        engine = Engine(store, flows_dir=flows_dir)
    except SecretError as error:
        await store.close()
        raise ConnectError(f"{error} (TIERCEL_SECRETS_FILE)") from None
    if flows_on_demand:
        engine.folder.read_on_demand()
    try:
        await engine.start(control=control, triggers=triggers, recover=recover)
    except BaseException:
        await engine.stop()
        raise
    try:
        yield engine
    finally:
        await engine.stop()


async def _answers(path: Path) -> bool:
    """Whether a process listens on the control socket at `path`."""
    try:
        _, writer = await asyncio.open_unix_connection(path)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def _guest(url: str, flows_dir: Path | None, flows_on_demand: bool) -> AsyncIterator[Engine]:
    """An engine joining the cluster at `url` as a guest for one command (see `ClusterServer`)."""
    try:
        hosted = await HostedEngine.open(
            url, flows_dir, local_concurrency=0, heartbeat_timeout=GUEST_HEARTBEAT_TIMEOUT, guest=True
        )
    except StoreError as error:
        raise ConnectError(str(error)) from None
    except SecretError as error:
        raise ConnectError(f"{error} (TIERCEL_SECRETS_FILE)") from None
    if flows_on_demand:
        hosted.engine.folder.read_on_demand()
    try:
        await hosted.start()
    except BaseException:
        await hosted.stop()
        raise
    try:
        yield hosted.engine
    finally:
        await hosted.stop()


async def _own(db: DbTarget, local: bool) -> Store | None:
    """The store of `db`, locked for an engine here, or None when another engine owns it."""
    if not local and not target_exists(db):
        raise NoEngineError(f"no engine runs on {describe_target(db)}")
    try:
        store = await Store.open(db)
    except StoreLockedError:
        return None
    except StoreError as error:
        raise ConnectError(str(error)) from None
    if not local:
        await store.close()
        raise NoEngineError(f"no engine runs on {describe_target(db)}")
    return store
