"""The control channel: real Unix sockets beside a real database, a real engine answering."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import stat
import tempfile
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tiercel.engine import control
from tiercel.engine.commands import answer
from tiercel.engine.connection import NoEngineError, connect
from tiercel.engine.control import (
    MAX_REPLY_BYTES,
    MAX_REQUEST_BYTES,
    ControlClient,
    ControlServer,
    send,
    socket_path,
)
from tiercel.engine.engine import Engine
from tiercel.engine.errors import EngineCommandError
from tiercel.engine.inputs import InputError
from tiercel.engine.model import Label, StateType
from tiercel.engine.store import Store, StoreError, StoreLockedError

TRIGGERS = 400


def many_triggers(count: int) -> str:
    triggers = "".join(
        f"  - {{id: yearly_{index:04d}, type: io.kestra.plugin.core.trigger.Schedule, cron: '0 0 1 1 *'}}\n"
        for index in range(count)
    )
    return (
        textwrap.dedent(
            """
        id: busy
        namespace: acme.control
        tasks:
          - {id: log, type: io.kestra.plugin.core.log.Log, message: hi}
        triggers:
        """
        )
        + triggers
    )


@asynccontextmanager
async def owning_engine(folder: Path, *flows: str) -> AsyncIterator[Engine]:
    """An engine that owns its database and listens on its control channel."""
    flows_dir = folder / "flows"
    flows_dir.mkdir(parents=True, exist_ok=True)
    for index, source in enumerate(flows):
        (flows_dir / f"flow_{index}.yml").write_text(source)
    store = await Store.open(folder / "tiercel.db")
    engine = Engine(store, flows_dir=flows_dir)
    await engine.start(control=True, triggers=True)
    try:
        yield engine
    finally:
        await engine.stop()


@asynccontextmanager
async def serving(folder: Path, handler: control.Handler) -> AsyncIterator[Path]:
    db = folder / "x.db"
    server = ControlServer(db, handler)
    await server.start()
    try:
        yield db
    finally:
        await server.stop()


async def exchange(db: Path, data: bytes) -> dict[str, Any]:
    """Send raw bytes on the socket; return the decoded answer line."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path(db)), limit=MAX_REPLY_BYTES)
    try:
        writer.write(data)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 20)
    finally:
        writer.close()
    answer: dict[str, Any] = json.loads(line)
    return answer


async def test_a_trigger_list_larger_than_64_kib_reaches_the_client(tmp_path: Path) -> None:
    async with owning_engine(tmp_path, many_triggers(TRIGGERS)) as engine:
        reply = await send(engine.store.path, {"command": "triggers"})
    assert reply["ok"] is True, reply
    assert len(reply["triggers"]) == TRIGGERS
    assert len(json.dumps(reply)) > 64 * 1024  # beyond asyncio's default line limit


async def test_a_request_over_64_kib_is_served(tmp_path: Path) -> None:
    async with owning_engine(tmp_path) as engine:
        reply = await send(engine.store.path, {"command": "triggers", "note": "x" * 200_000})
    assert reply == {"ok": True, "triggers": []}


async def test_a_request_over_the_limit_gets_a_clear_answer(tmp_path: Path) -> None:
    async with owning_engine(tmp_path) as engine:
        db = engine.store.path
        huge = {"command": "triggers", "note": "x" * MAX_REQUEST_BYTES}
        assert await send(db, huge) == {"ok": False, "error": "request too large: over 1 MiB"}
        # The same request sent as raw bytes, past the client's own check, gets the server's answer.
        answer = await exchange(db, json.dumps(huge).encode() + b"\n")
        assert answer == {"ok": False, "error": "request too large: over 1 MiB"}
        assert (await send(db, {"command": "triggers"}))["ok"] is True


async def test_inputs_that_are_not_an_object_get_an_error_answer(tmp_path: Path) -> None:
    async with owning_engine(tmp_path) as engine:
        db = engine.store.path
        reply = await send(db, {"command": "resume", "executionId": "x", "inputs": "oops"})
        assert reply["ok"] is False and "`inputs` must be a JSON object" in reply["error"]
        reply = await send(db, {"command": "backfill", "start": "2025-01-01T00:00:00Z", "labels": [1]})
        assert reply["ok"] is False and "`labels` must be a JSON object" in reply["error"]


async def test_an_exception_in_the_handler_becomes_an_error_answer(tmp_path: Path) -> None:
    async def broken(request: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError(f"cannot do {request['command']}")

    async with serving(tmp_path, broken) as db:
        reply = await send(db, {"command": "kill"})
        assert reply == {"ok": False, "error": "the engine could not carry out `kill`: cannot do kill"}
        # The server keeps serving after it.
        assert (await send(db, {"command": "again"}))["ok"] is False


async def test_malformed_requests_get_an_error_answer(tmp_path: Path) -> None:
    async def echo(request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "echo": request}

    async with serving(tmp_path, echo) as db:
        assert await exchange(db, b"not json\n") == {"ok": False, "error": "the request is not JSON"}
        assert await exchange(db, b"[1, 2]\n") == {
            "ok": False,
            "error": "the request must be a JSON object",
        }
        assert await exchange(db, b'{"command": "x"}\n') == {"ok": True, "echo": {"command": "x"}}


async def test_a_client_that_sends_nothing_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "READ_SECONDS", 0.2)

    async def echo(request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    async with serving(tmp_path, echo) as db:
        reader, writer = await asyncio.open_unix_connection(str(socket_path(db)))
        try:
            line = await asyncio.wait_for(reader.readline(), 20)
        finally:
            writer.close()
        assert json.loads(line) == {"ok": False, "error": "no complete request within 0.2 s"}


async def test_an_answer_over_the_reply_limit_is_refused_by_the_server(tmp_path: Path) -> None:
    async def huge(request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "data": "x" * MAX_REPLY_BYTES}

    async with serving(tmp_path, huge) as db:
        assert await send(db, {"command": "big"}) == {
            "ok": False,
            "error": "the answer is larger than 16 MiB",
        }


async def test_the_client_turns_bad_answers_into_messages(tmp_path: Path) -> None:
    """Peers that misbehave (too long, not JSON, silent) get a message, never an exception."""
    answers = iter([b"x" * (MAX_REPLY_BYTES + 10), b"<html>\n", b"", b"[1]\n"])

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        answer = next(answers, None)
        if answer is None:  # the last client gets no answer at all, yet the connection stays open
            await asyncio.sleep(5)
        else:
            writer.write(answer)
            await writer.drain()
        writer.close()

    db = tmp_path / "x.db"
    server = await asyncio.start_unix_server(peer, path=str(socket_path(db)))
    try:
        errors = [(await send(db, {"command": "triggers"}))["error"] for _ in range(4)]
        slow = await send(db, {"command": "triggers"}, timeout=0.3)
    finally:
        server.close()
    assert errors == [
        "the engine's answer is larger than 16 MiB",
        "bad answer from the engine: not JSON",
        "no answer from the engine",
        "bad answer from the engine",
    ]
    assert slow == {"ok": False, "error": f"the engine on {db} did not answer within 0.3 s"}


async def test_no_engine_listening_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        await send(tmp_path / "nobody.db", {"command": "triggers"})


# -- another local user ---------------------------------------------------------------------------

NOBODY = 65534
# The system's interpreter: the test's own may live where another user cannot read it.
SYSTEM_PYTHON = Path("/usr/bin/python3")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
as_another_user = pytest.mark.skipif(
    os.geteuid() != 0 or not SYSTEM_PYTHON.exists(), reason="running a process as nobody needs root"
)

LISTEN_AS_NOBODY = """
import socket, sys, time
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen()
print("ready", flush=True)
conn, _ = server.accept()
sys.stdout.write(conn.recv(65536).decode())
sys.stdout.flush()
conn.sendall(b'{"ok": true, "executionId": "forged"}\\n')
time.sleep(1)
"""

ASK_AS_NOBODY = """
import socket, sys
client = socket.socket(socket.AF_UNIX)
client.connect(sys.argv[1])
try:
    client.sendall(b'{"command": "triggers"}\\n')
except BrokenPipeError:
    pass  # answered and closed before the request was read
print(client.makefile().readline(), end="")
"""


async def answer_ok(request: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True}


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder every local user can enter and write (as a team folder would be)."""
    folder = Path(tempfile.mkdtemp(prefix="tiercel-shared-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_the_server_refuses_a_link_in_the_sockets_place_and_leaves_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    victim.chmod(0o644)
    db = tmp_path / "x.db"
    socket_path(db).symlink_to(victim)

    with pytest.raises(StoreError, match=r"control socket .* is a symbolic link"):
        await ControlServer(db, answer_ok).start()
    assert victim.read_text() == "keep me\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    # The client does not follow it either.
    reply = await send(db, {"command": "triggers"})
    assert reply["ok"] is False and "is a symbolic link" in reply["error"]


@needs_root
async def test_the_server_refuses_another_users_file_in_the_sockets_place(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    socket_path(db).touch()
    os.chown(socket_path(db), NOBODY, NOBODY)
    with pytest.raises(StoreError, match=r"belongs to .*uid 65534"):
        await ControlServer(db, answer_ok).start()
    assert socket_path(db).exists()


@needs_root
async def test_the_client_refuses_a_socket_owned_by_another_user(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    async def record(request: dict[str, Any]) -> dict[str, Any]:
        calls.append(request)
        return {"ok": True}

    async with serving(tmp_path, record) as db:
        os.chown(socket_path(db), NOBODY, NOBODY)
        reply = await send(db, {"command": "kill", "executionId": "x"})
    assert reply["ok"] is False
    assert f"refusing the control socket {socket_path(db)}: it belongs to" in reply["error"]
    assert calls == []


async def test_the_client_refuses_a_socket_writable_by_others(tmp_path: Path) -> None:
    async with serving(tmp_path, answer_ok) as db:
        socket_path(db).chmod(0o666)
        reply = await send(db, {"command": "triggers"})
    assert reply["ok"] is False and "writable by group and others" in reply["error"]


@as_another_user
async def test_the_client_refuses_a_server_run_by_another_user(shared_folder: Path) -> None:
    db = shared_folder / "team.db"
    listener = await asyncio.create_subprocess_exec(
        str(SYSTEM_PYTHON), "-c", LISTEN_AS_NOBODY, str(socket_path(db)),
        user=NOBODY, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert listener.stdout is not None
        assert await asyncio.wait_for(listener.stdout.readline(), 20) == b"ready\n"
        # The socket file is made to look like ours: only the peer's credentials give it away.
        os.chown(socket_path(db), os.geteuid(), os.getegid())
        os.chmod(socket_path(db), 0o600)
        reply = await send(db, {"command": "resume", "executionId": "x", "inputs": {"pin": "1234"}})
        heard = await asyncio.wait_for(listener.stdout.read(), 20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            listener.kill()
        await listener.wait()
    assert reply["ok"] is False
    assert "the process serving it runs as nobody (uid 65534)" in reply["error"]
    assert b"1234" not in heard and heard == b""


@as_another_user
async def test_the_server_answers_only_its_own_user(shared_folder: Path) -> None:
    calls: list[dict[str, Any]] = []

    async def record(request: dict[str, Any]) -> dict[str, Any]:
        calls.append(request)
        return {"ok": True}

    async with serving(shared_folder, record) as db:
        socket_path(db).chmod(0o666)  # as if the mode had been loosened: the server still checks
        asker = await asyncio.create_subprocess_exec(
            str(SYSTEM_PYTHON), "-c", ASK_AS_NOBODY, str(socket_path(db)),
            user=NOBODY, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(asker.communicate(), 20)
    answer = json.loads(out)
    assert answer["ok"] is False and "may use this engine's control channel" in answer["error"]
    assert calls == []


# -- the command surface through the channel ----------------------------------------------------------

APPROVAL = """
id: approval
namespace: acme.control
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - {id: count, type: INT}
  - {id: after, type: io.kestra.plugin.core.log.Log, message: "count {{ outputs.wait.onResume.count }}"}
triggers:
  - {id: nightly, type: io.kestra.plugin.core.trigger.Schedule, cron: "0 2 * * *"}
"""


async def test_the_client_carries_out_commands_on_the_owning_engine(tmp_path: Path) -> None:
    async with owning_engine(tmp_path, APPROVAL) as engine:
        client = ControlClient(engine.store.path)
        try:
            execution_id = await client.trigger("acme.control", "approval", labels=[Label("team", "ops")])
            paused = await engine.wait(execution_id, until_paused=True)
            assert paused.state.current is StateType.PAUSED
            assert Label("team", "ops") in paused.labels
            # The caller's own wrong values come back as they were raised: a usage error.
            with pytest.raises(InputError, match="count"):
                await client.resume(execution_id, {"count": "many"})
            await client.resume(execution_id, {"count": "3"})
            assert (await engine.wait(execution_id)).state.current is StateType.SUCCESS
            replayed = await client.replay(execution_id)
            assert replayed != execution_id
            await engine.wait(replayed, until_paused=True)
            await client.kill(replayed)
            assert (await engine.wait(replayed)).state.current is StateType.KILLED
            await client.change_status(replayed, StateType.CANCELLED)
            changed = await engine.execution(replayed)
            assert changed is not None and changed.state.current is StateType.CANCELLED
            with pytest.raises(EngineCommandError, match="No execution nope"):
                await client.restart("nope")

            # Queries read what the engine stored.
            assert (await client.execution(execution_id)) == await engine.execution(execution_id)
            listed = await client.list_executions(flow_id="approval")
            assert {row.id for row in listed} == {execution_id, replayed}
            await engine.logs(execution_id)  # writes out the lines the engine still buffers
            assert any("count 3" in entry.message for _, entry in await client.logs(execution_id))
        finally:
            await client.close()


async def test_triggers_and_backfills_are_commands_of_the_client(tmp_path: Path) -> None:
    async with owning_engine(tmp_path, APPROVAL) as engine:
        client = ControlClient(engine.store.path)
        key = ("acme.control", "approval", "nightly")
        assert await client.trigger_states() == await engine.trigger_states()
        await client.set_trigger_enabled(*key, False)
        [state] = await engine.trigger_states()
        assert state.enabled is False
        with pytest.raises(EngineCommandError, match="No trigger `nope`"):
            await client.set_trigger_enabled("acme.control", "approval", "nope", True)

        start = datetime(2020, 1, 1, tzinfo=UTC)
        backfill_id = await client.start_backfill(*key, start, start + timedelta(days=365), labels={"a": "b"})
        await client.change_backfill(*key, "cancel")
        [state] = await client.trigger_states()
        assert state.backfill is not None
        assert (state.backfill.id, state.backfill.status) == (backfill_id, "CANCELLED")
        with pytest.raises(EngineCommandError, match="no backfill to paused"):
            await client.change_backfill(*key, "pause")


async def test_the_table_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    async with owning_engine(tmp_path) as engine:
        assert await answer(engine, {"command": "nope"}) == {"ok": False, "error": "unknown command `nope`"}
        assert await answer(engine, {"action": "start"}) == {"ok": False, "error": "unknown command `None`"}
        refused = await answer(engine, {"command": "backfill", "action": "rewind"})
        assert refused == {"ok": False, "error": "unknown backfill action `rewind`"}
        refused = await answer(engine, {"command": "backfill"})
        assert refused == {"ok": False, "error": "a backfill needs a start date"}
        refused = await answer(engine, {"command": "change-status", "executionId": "x", "state": "DONE"})
        assert refused["ok"] is False and "Unknown state `DONE`" in refused["error"]


async def test_connect_hands_out_the_owner_or_an_engine_held_for_the_command(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(NoEngineError):
        async with connect(missing, local=False):
            pass
    assert not missing.exists()  # asking whether an engine runs creates nothing

    db = tmp_path / "tiercel.db"
    async with connect(db) as commands:
        assert isinstance(commands, Engine)
        # The database stays held until the command is done: no engine can start in between.
        with pytest.raises(StoreLockedError):
            await Store.open(db)
    with pytest.raises(NoEngineError):
        async with connect(db, local=False):
            pass

    async with owning_engine(tmp_path) as engine:
        assert engine.store.path == db
        async with connect(db) as commands:
            assert isinstance(commands, ControlClient)
            assert await commands.trigger_states() == []


async def test_a_trigger_switched_with_no_engine_running_stays_switched_for_the_next(tmp_path: Path) -> None:
    async with owning_engine(tmp_path, APPROVAL):
        pass  # stores the flow and its trigger
    db = tmp_path / "tiercel.db"
    async with connect(db) as commands:
        await commands.set_trigger_enabled("acme.control", "approval", "nightly", False)
    async with owning_engine(tmp_path, APPROVAL) as engine:
        [state] = await engine.trigger_states()
        assert state.enabled is False


async def test_a_database_too_deep_for_a_socket_beside_it_is_still_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Unix socket's path holds about 100 bytes: for a deeper database, the socket goes in a
    private folder of the user's, named by a digest of the database's path, and clients find it."""
    run = Path(tempfile.mkdtemp(prefix="run"))  # short, as a real XDG_RUNTIME_DIR is
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    try:
        async with serving(deep, answer_ok) as db:
            path = socket_path(db)
            assert path.parent == run / f"tiercel-{os.getuid()}"
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            assert await send(db, {"command": "triggers"}) == {"ok": True}
        assert not path.exists()
    finally:
        shutil.rmtree(run)


async def test_hundreds_of_clients_at_once_all_get_an_answer(tmp_path: Path) -> None:
    """Many waits at once (a script waiting for each of its executions) overflow no backlog: every
    client gets its answer, none an exception."""

    async def slow_echo(request: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.5)
        return {"ok": True, "n": request["n"]}

    async with serving(tmp_path, slow_echo) as db:
        replies = await asyncio.gather(*(send(db, {"command": "x", "n": n}) for n in range(600)))
    assert [reply.get("n") for reply in replies] == list(range(600))
