"""A local control channel: commands reach the engine that owns a database through a Unix socket.

The socket sits beside the database (`tiercel.db.sock`, mode 0600), so only the same user can
drive the engine. Both sides check the other is that user: the client talks only to a socket that
is this user's (not a link, not writable by others) and served by a process of this user, the
server answers only processes of its user. One request per connection: a JSON line in, a JSON line
out. Both sides read with
limits sized to the protocol (a request is small, a reply such as the trigger list can be large), and
every failure, on either side, becomes an answer of the form {"ok": false, "error": message}.

The requests are those of the dispatch table in `commands.py`: the engine answers them with
`commands.answer`, and `ControlClient` is the `Commands` that sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import stat
import struct
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .commands import MAX_WAIT_SECONDS, BackfillAction, Commands, EngineAbout, ExecutionIds, trigger_from_json
from .db_target import DbTarget, describe_target, local_path
from .errors import EngineCommandError
from .evaluation import Evaluation
from .inputs import InputError
from .model import Execution, ExecutionSummary, Label, LogEntry, MetricEntry, StateType
from .private_files import UnsafeFileError, check_private, check_private_path, user_name
from .store import Store, StoreError
from .triggers.state import TriggerState

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_REQUEST_BYTES = 1 << 20
MAX_REPLY_BYTES = 16 << 20
# A client must send its request line within this time, or the connection is closed.
READ_SECONDS = 10.0
# Connections waiting to be accepted (asyncio's default, 100, is soon reached by a script waiting
# for each of hundreds of executions at once); beyond it a client tries again a few times.
BACKLOG = 1024
CONNECT_TRIES = 6


# A Unix socket's path holds at most 108 bytes on Linux (104 on macOS).
_MAX_SOCKET_PATH = 100


def _short_folder() -> Path:
    """A private folder for the sockets of stores whose own folder is too deep for one."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"tiercel-{os.getuid()}"


def socket_path(db: DbTarget) -> Path:
    """The control socket of the engine that owns `db`: beside its local files, or when that
    path is too long for a socket, in a private folder of the user's, named by a digest of it."""
    path = local_path(db)
    beside = path.with_name(path.name + ".sock")
    if len(os.fsencode(beside)) <= _MAX_SOCKET_PATH:
        return beside
    digest = hashlib.sha256(os.fsencode(beside.absolute())).hexdigest()[:24]
    return _short_folder() / f"{digest}.sock"


def _failure(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def _mib(size: int) -> str:
    return f"{size / (1 << 20):g} MiB"


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    """The uid of the process at the other end of a Unix socket (None where the OS cannot say)."""
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    size = struct.calcsize("3i")
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size))
    return int(uid)


class ControlServer:
    """Serves requests with `handler` until stopped."""

    def __init__(self, db: DbTarget, handler: Handler) -> None:
        self.path = socket_path(db)
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen on the socket beside the database, replacing a stale socket of this user's.

        Raises:
            StoreError: Something other than this user's private socket is in the way (a link,
                another user's file), or the socket was replaced as it was made.
        """
        if self.path.parent == _short_folder():
            try:
                self.path.parent.mkdir(mode=0o700, exist_ok=True)
                folder = os.lstat(self.path.parent)
                check_private(folder, self.path.parent, "socket folder", kind=stat.S_ISDIR, single_link=False)
            except UnsafeFileError as exc:
                raise StoreError(str(exc)) from exc
            except OSError as exc:
                raise StoreError(f"cannot create the folder {self.path.parent}: {exc.strerror}") from exc
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            pass
        else:
            try:
                check_private(info, self.path, "control socket", kind=stat.S_ISSOCK, single_link=False)
            except UnsafeFileError as exc:
                raise StoreError(str(exc)) from exc
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        # Made 0600 by the umask: no chmod, which would follow a link put in the socket's place.
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST_BYTES, backlog=BACKLOG
            )
        finally:
            os.umask(old)
        try:
            check_private_path(self.path, "control socket", kind=stat.S_ISSOCK)
        except UnsafeFileError as exc:
            self._server.close()
            self._server = None
            raise StoreError(str(exc)) from exc

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = _peer_uid(writer)
            if peer is not None and peer != os.geteuid():
                reply = _failure(
                    f"only {user_name(os.geteuid(), with_uid=False)} may use this engine's control channel"
                )
            else:
                reply = await self._answer(reader)
            writer.write(_encode_reply(reply))
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the engine is stopping
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), READ_SECONDS)
        except asyncio.LimitOverrunError:
            return _failure(f"request too large: over {_mib(MAX_REQUEST_BYTES)}")
        except asyncio.IncompleteReadError as error:
            line = error.partial  # a request without the final newline is still read
        except TimeoutError:
            return _failure(f"no complete request within {READ_SECONDS:g} s")
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _failure("the request is not JSON")
        if not isinstance(request, dict):
            return _failure("the request must be a JSON object")
        try:
            reply = await self.handler(request)
        except Exception as error:  # a bad request must get an answer, never a silent close
            return _failure(f"the engine could not carry out `{request.get('command')}`: {error}")
        return reply if isinstance(reply, dict) else _failure("the engine gave no answer")


def _encode_reply(reply: dict[str, Any]) -> bytes:
    try:
        data = json.dumps(reply, default=str).encode()
    except (TypeError, ValueError) as error:
        data = json.dumps(_failure(f"the answer could not be encoded: {error}")).encode()
    if len(data) >= MAX_REPLY_BYTES:
        data = json.dumps(_failure(f"the answer is larger than {_mib(MAX_REPLY_BYTES)}")).encode()
    return data + b"\n"


async def send(db: DbTarget, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to the engine owning `db` and return its answer.

    The request goes only to this user's own socket, served by a process of this user: anything
    else (a link, another user's socket or server) could be someone listening for it.

    Raises:
        OSError: No engine listens on the socket (or it did not accept the connection in time).
    Every other failure (an unsafe socket, no answer, a too large or malformed answer) is returned
    as {"ok": False, "error": message}.
    """
    data = json.dumps(request).encode() + b"\n"
    if len(data) > MAX_REQUEST_BYTES:
        return _failure(f"request too large: over {_mib(MAX_REQUEST_BYTES)}")
    path = socket_path(db)
    try:
        check_private_path(path, "control socket", kind=stat.S_ISSOCK)
    except UnsafeFileError as exc:
        return _failure(str(exc))
    for attempt in range(CONNECT_TRIES):
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(path), limit=MAX_REPLY_BYTES), timeout
        )
        try:
            peer = _peer_uid(writer)
            break
        except OSError:  # the connection did not make it through a full backlog
            writer.close()
            if attempt == CONNECT_TRIES - 1:
                return _failure(f"the engine on {describe_target(db)} is too busy to take the connection")
            await asyncio.sleep(0.05 * 2**attempt)
    if peer is not None and peer != os.geteuid():
        writer.close()
        return _failure(
            f"refusing the control socket {path}: the process serving it runs as {user_name(peer)}, "
            f"not as you ({user_name(os.geteuid(), with_uid=False)}); stop it or use a database of your own"
        )
    try:
        writer.write(data)
        await writer.drain()
        line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout)
    except asyncio.LimitOverrunError:
        return _failure(f"the engine's answer is larger than {_mib(MAX_REPLY_BYTES)}")
    except asyncio.IncompleteReadError as error:
        line = error.partial
    except TimeoutError:
        return _failure(f"the engine on {describe_target(db)} did not answer within {timeout:g} s")
    except ConnectionError as error:
        return _failure(f"the engine on {describe_target(db)} closed the connection ({error})")
    finally:
        writer.close()
    if not line.strip():
        return _failure("no answer from the engine")
    try:
        reply = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _failure("bad answer from the engine: not JSON")
    return reply if isinstance(reply, dict) else _failure("bad answer from the engine")


class ControlClient:
    """The `Commands` of the engine that owns `db`, reached through its control channel.

    Each command is one request of `commands.COMMANDS`. A refusal is raised as the engine raised it:
    `InputError` when the caller's own values are wrong, `EngineCommandError` otherwise (its message
    is the engine's). Queries read the store read-only, beside the engine, as every reader may.

    Raises:
        OSError: No engine answers on the socket (from any command).
    """

    def __init__(self, db: DbTarget, timeout: float = 30.0) -> None:
        self.db = db
        self.timeout = timeout
        self._reader: Store | None = None

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
            self._reader = None

    async def _request(self, command: str, **fields: Any) -> dict[str, Any]:
        reply = await send(self.db, {"command": command, **fields}, self.timeout)
        if not reply.get("ok"):
            message = str(reply.get("error"))
            raise InputError([message]) if reply.get("usage") else EngineCommandError(message)
        return reply

    # -- executions ---------------------------------------------------------------------------
    async def trigger(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None = None,
        labels: Sequence[Label] = (),
        *,
        local_files: bool = False,
    ) -> str:
        reply = await self._request(
            "trigger",
            namespace=namespace,
            flowId=flow_id,
            inputs=dict(inputs or {}),
            labels={label.key: label.value for label in labels},
            localFiles=local_files,
        )
        return str(reply["executionId"])

    async def kill(self, execution_id: str) -> None:
        await self._request("kill", executionId=execution_id)

    async def resume(self, execution_id: str, inputs: Mapping[str, Any] | None = None) -> None:
        await self._request("resume", executionId=execution_id, inputs=dict(inputs or {}))

    async def restart(self, execution_id: str) -> None:
        await self._request("restart", executionId=execution_id)

    async def replay(
        self, execution_id: str, task_run_id: str | None = None, *, revision: int | None = None
    ) -> str:
        reply = await self._request(
            "replay", executionId=execution_id, taskRunId=task_run_id, revision=revision
        )
        return str(reply["executionId"])

    async def change_status(self, execution_id: str, state: StateType) -> None:
        await self._request("change-status", executionId=execution_id, state=state.value)

    async def evaluate(self, execution_id: str, task_run_id: str | None, expression: str) -> Evaluation:
        # The engine renders it: its functions (kv(), read() ...) and masking apply.
        reply = await self._request(
            "evaluate", executionId=execution_id, taskRunId=task_run_id, expression=expression
        )
        return Evaluation.from_json(reply["evaluation"])

    async def clear_task_cache(self, namespace: str, flow_id: str, task_id: str | None = None) -> int:
        reply = await self._request("clear-cache", namespace=namespace, flowId=flow_id, taskId=task_id)
        return int(reply["cleared"])

    async def wait(self, execution_id: str, *, until_paused: bool = False) -> Execution:
        """Wait as `Engine.wait` does, a bounded request at a time.

        Raises:
            OSError, EngineCommandError: The engine stopped (or never answered) meanwhile.
        """
        seconds = min(MAX_WAIT_SECONDS, self.timeout / 2)
        while True:
            reply = await self._request(
                "wait", executionId=execution_id, untilPaused=until_paused, seconds=seconds
            )
            if reply.get("execution"):
                return Execution.from_json(reply["execution"])

    async def about(self) -> EngineAbout:
        """What the engine is: its pid, its flows folder, whether it watches it."""
        return EngineAbout.from_json(await self._request("about"))

    # -- triggers -----------------------------------------------------------------------------
    async def trigger_states(self) -> list[TriggerState]:
        reply = await self._request("triggers")
        return [trigger_from_json(data) for data in reply.get("triggers") or []]

    async def set_trigger_enabled(self, namespace: str, flow_id: str, trigger_id: str, enabled: bool) -> None:
        await self._request(
            "set-trigger", namespace=namespace, flowId=flow_id, triggerId=trigger_id, enabled=enabled
        )

    async def start_backfill(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str,
        start: datetime,
        end: datetime | None = None,
        inputs: Mapping[str, Any] | None = None,
        labels: Sequence[Label] | Mapping[str, str] | None = None,
    ) -> str:
        if labels is None or isinstance(labels, Mapping):
            named = dict(labels or {})
        else:
            named = {label.key: label.value for label in labels}
        reply = await self._request(
            "backfill",
            action="start",
            namespace=namespace,
            flowId=flow_id,
            triggerId=trigger_id,
            start=start.isoformat(),
            end=end.isoformat() if end is not None else None,
            inputs=dict(inputs or {}),
            labels=named,
        )
        return str(reply["backfillId"])

    async def change_backfill(
        self, namespace: str, flow_id: str, trigger_id: str, action: BackfillAction
    ) -> None:
        await self._request(
            "backfill", action=action, namespace=namespace, flowId=flow_id, triggerId=trigger_id
        )

    # -- queries ------------------------------------------------------------------------------
    async def _store(self) -> Store:
        if self._reader is None:
            self._reader = await Store.open(self.db, readonly=True)
        return self._reader

    async def execution(self, execution_id: str) -> Execution | None:
        return await (await self._store()).get_execution(execution_id)

    async def execution_ids(self, prefix: str, *, limit: int) -> list[str]:
        return await (await self._store()).execution_ids(prefix, limit=limit)

    async def flow_source(self, namespace: str, flow_id: str) -> tuple[int, str] | None:
        """The (revision, source) of the flow's current revision, as the engine stored it."""
        return await (await self._store()).flow_source(namespace, flow_id)

    async def list_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        state: str | Sequence[str] | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[ExecutionSummary]:
        store = await self._store()
        return await store.list_executions(
            namespace=namespace, flow_id=flow_id, state=state, limit=limit, before=before
        )

    async def logs(
        self,
        execution_id: str,
        *,
        level: str | None = None,
        task_id: str | None = None,
        after: int = 0,
        before: int | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[tuple[int, LogEntry]]:
        """A page of the stored lines (lines the engine still buffers appear once it writes them)."""
        store = await self._store()
        return await store.logs(
            execution_id, level=level, task_id=task_id, after=after, before=before, limit=limit, newest=newest
        )

    async def metrics(
        self, execution_id: str, *, task_run_id: str | None = None, task_id: str | None = None
    ) -> list[MetricEntry]:
        """The stored metrics: an attempt's are stored before its end is."""
        store = await self._store()
        return await store.metrics(execution_id, task_run_id=task_run_id, task_id=task_id)


if TYPE_CHECKING:  # the client is the remote implementation of the command surface
    _: type[Commands] = ControlClient
    _ids: type[ExecutionIds] = ControlClient
