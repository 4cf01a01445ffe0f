"""One engine per database: a second engine (`tiercel server` or the dashboard) on a database that an
engine owns refuses to start within a second, saying which database and which process holds it, and
leaves the owner and the database untouched; `tiercel run` there hands its execution to the owner."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import (
    TIERCEL,
    EngineProcess,
    executions,
    integrity_check,
    start_server,
    wait_until,
    write_flow,
)

pytestmark = pytest.mark.reliability

HELLO = """
id: hello
namespace: rel.owner
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: hello
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: owner-key
"""


@pytest.mark.parametrize(
    "command",
    [
        ["server", "--port", "0"],
        ["ui"],
    ],
    ids=["server", "dashboard"],
)
def test_a_second_engine_on_the_same_database_is_refused(
    tmp_path: Path, engines: list[EngineProcess], command: list[str]
) -> None:
    flows, db = tmp_path / "flows", tmp_path / "tiercel.db"
    write_flow(flows, "hello.yml", HELLO)
    owner = start_server(flows, db)
    engines.append(owner)
    before = owner.webhook("rel.owner", "hello", "owner-key")["id"]

    started = time.monotonic()
    second = subprocess.run(
        [str(TIERCEL), *command, "--flows", str(flows), "--db", str(db)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    refused_in = time.monotonic() - started
    assert second.returncode == 2, second.stderr
    message = second.stderr.strip()
    assert f"database {db} is in use by another Tiercel process (pid {owner.pid})" in message
    print(f"\nrefused in {refused_in * 1000:.0f} ms")
    assert second.stdout == ""

    # The owner goes on as if nothing happened.
    assert owner.proc.poll() is None
    after = owner.webhook("rel.owner", "hello", "owner-key")["id"]
    assert wait_until(lambda: {e["state"]["current"] for e in executions(db).values()} == {"SUCCESS"}, 10)
    owner.stop()
    assert owner.proc.returncode == 0, owner.stderr()
    assert sorted(executions(db)) == sorted([before, after])
    assert integrity_check(db) == "ok"
    print(f"\nsecond engine ({command[0]}): refused in {refused_in * 1000:.0f} ms with: {message}")


def test_run_on_a_database_another_engine_owns_is_run_by_the_owner(
    tmp_path: Path, engines: list[EngineProcess]
) -> None:
    flows, db = tmp_path / "flows", tmp_path / "tiercel.db"
    write_flow(flows, "hello.yml", HELLO)
    owner = start_server(flows, db)
    engines.append(owner)
    before = owner.webhook("rel.owner", "hello", "owner-key")["id"]

    handed = subprocess.run(
        [str(TIERCEL), "run", "rel.owner", "hello", "--flows", str(flows), "--db", str(db)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert handed.returncode == 0, handed.stderr
    assert f"started by the engine running on {db}" in handed.stderr
    run_id = handed.stderr.split("Execution ", 1)[1].split()[0]

    # One engine wrote everything: the owner runs on, and the handed run is stored with the others.
    assert owner.proc.poll() is None
    after = owner.webhook("rel.owner", "hello", "owner-key")["id"]
    assert wait_until(lambda: {e["state"]["current"] for e in executions(db).values()} == {"SUCCESS"}, 10)
    owner.stop()
    assert owner.proc.returncode == 0, owner.stderr()
    assert sorted(executions(db)) == sorted([before, run_id, after])
    assert integrity_check(db) == "ok"


async def test_the_dashboard_app_refuses_a_database_another_engine_owns(
    tmp_path: Path, engines: list[EngineProcess]
) -> None:
    from tiercel.app.app import TiercelApp

    flows, db = tmp_path / "flows", tmp_path / "tiercel.db"
    write_flow(flows, "hello.yml", HELLO)
    owner = start_server(flows, db)
    engines.append(owner)
    started = time.monotonic()
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
    refused_in = time.monotonic() - started
    assert app.return_code == 2
    assert app.engine is None
    assert app.startup_error == f"database {db} is in use by another Tiercel process (pid {owner.pid})"
    print(f"\nrefused in {refused_in * 1000:.0f} ms")
    assert owner.proc.poll() is None
    print(f"\nsecond engine (dashboard app): refused in {refused_in * 1000:.0f} ms with: {app.startup_error}")
