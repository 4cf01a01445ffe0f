"""Crash recovery: kill -9 an engine while 50 executions run, start a new one, and check what it does.

Policy under test (engine.recovery): an interrupted task runs again as a new attempt (the old one
ends FAILED); a task the flow labels `tiercel.notIdempotent` fails with "engine stopped while the
task was running". Every program the dead engine started is killed by the new one, including a
descendant that left the process group (found by its token).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import (
    EngineProcess,
    _stat,
    alive,
    connect,
    executions,
    holding_tokens,
    integrity_check,
    recorded_processes,
    start_server,
    wait_until,
    write_flow,
)

pytestmark = pytest.mark.reliability

EXECUTIONS = 50
MESSAGE = "engine stopped while the task was running"


def sleeper(labels: str) -> str:
    # The task sleeps 5 s; it also leaves a descendant in a session of its own, which only the
    # process token can find.
    return f"""
id: sleeper
namespace: rel.crash
{labels}
tasks:
  - id: nap
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - setsid sleep 120 > /dev/null 2>&1 &
      - sleep 5
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: crash-key
"""


def _running_naps(db: Path) -> int:
    with contextlib.closing(connect(db)) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM task_runs WHERE task_id = 'nap' AND state = 'RUNNING'"
            ).fetchone()[0]
        )


def _messages(db: Path, execution_id: str) -> list[tuple[str | None, int | None, str]]:
    with contextlib.closing(connect(db)) as conn:
        rows = conn.execute(
            "SELECT task_id, attempt, message FROM logs WHERE execution_id = ? ORDER BY id", (execution_id,)
        ).fetchall()
    return [(row[0], row[1], str(row[2])) for row in rows]


@pytest.mark.parametrize(
    ("idempotent", "recorded"),
    [(True, True), (False, True), (True, False)],
    ids=["runs-again", "not-idempotent", "unrecorded-programs"],
)
def test_kill_9_during_50_executions_then_restart(
    tmp_path: Path, engines: list[EngineProcess], idempotent: bool, recorded: bool
) -> None:
    flows, db = tmp_path / "flows", tmp_path / "tiercel.db"
    write_flow(flows, "sleeper.yml", sleeper("" if idempotent else 'labels:\n  tiercel.notIdempotent: "nap"'))
    first = start_server(flows, db)
    engines.append(first)
    accepted = [first.webhook("rel.crash", "sleeper", "crash-key")["id"] for _ in range(EXECUTIONS)]
    assert len(set(accepted)) == EXECUTIONS
    assert wait_until(
        lambda: _running_naps(db) == EXECUTIONS and len(recorded_processes(db)) == EXECUTIONS, 30
    ), f"{_running_naps(db)} naps running, {len(recorded_processes(db))} programs recorded"
    # Let every program start its escaping descendant before the crash.
    assert wait_until(
        lambda: len(holding_tokens(t for _, _, t in recorded_processes(db))) >= 3 * EXECUTIONS, 10
    )

    first.kill9()
    assert integrity_check(db) == "ok"
    old = recorded_processes(db)
    tokens = [token for _, _, token in old]
    left = holding_tokens(tokens)
    # kill -9 of the engine leaves its tasks' programs running: the next engine must end them.
    assert sum(alive(pid, ticks) for pid, ticks, _ in old) == EXECUTIONS
    assert len(left) >= 3 * EXECUTIONS
    if not recorded:
        # What a crash between a program's start and the commit of its record leaves: the attempt is
        # stored RUNNING, the program is not. Its token still names the attempt.
        with contextlib.closing(connect(db)) as conn, conn:
            conn.execute("DELETE FROM processes")

    restarted = time.monotonic()
    second = start_server(flows, db)
    engines.append(second)
    ready = time.monotonic() - restarted
    # The new engine has started (it listens) only after killing what was left.
    assert not [pid for pid, ticks, _ in old if alive(pid, ticks)]
    assert holding_tokens(tokens) == set()

    def all_ended() -> bool:
        return all(e["state"]["current"] in ("SUCCESS", "FAILED") for e in executions(db).values())

    assert wait_until(all_ended, 30, interval=0.1), "not every execution ended within 30 s of the restart"
    ended_after = time.monotonic() - restarted
    second.stop()
    assert second.proc.returncode == 0, second.stderr()

    stored = executions(db)
    assert sorted(stored) == sorted(accepted)
    for execution_id, execution in stored.items():
        (nap,) = execution["taskRunList"]
        attempts = [attempt["state"]["current"] for attempt in nap["attempts"]]
        errors = [
            (task, attempt) for task, attempt, message in _messages(db, execution_id) if MESSAGE in message
        ]
        assert errors == [("nap", 0)], errors
        if idempotent:
            assert execution["state"]["current"] == "SUCCESS"
            assert attempts == ["FAILED", "SUCCESS"]
        else:
            assert execution["state"]["current"] == "FAILED"
            assert attempts == ["FAILED"]
    assert integrity_check(db) == "ok"
    assert recorded_processes(db) == []
    assert holding_tokens(tokens) == set()
    policy = "ran again" if idempotent else "failed (not idempotent)"
    policy += "" if recorded else ", programs not recorded"
    print(
        f"\ncrash recovery ({policy}): {EXECUTIONS}/{EXECUTIONS} executions kept, "
        f"{len(left)} leftover processes killed, engine ready {ready:.2f} s after restart, "
        f"all terminal {ended_after:.2f} s after restart"
    )


JOB, DOUBLE_FORK, DETACHED = "301.875", "301.9375", "301.96875"


def _alive_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    stat = _stat(int(entry.name))
                    if stat is not None and stat[0] != "Z":
                        found.append(int(entry.name))
    return found


def test_kill_9_then_restart_ends_descendants_with_a_cleared_environment(
    tmp_path: Path, engines: list[EngineProcess]
) -> None:
    """What recovery finds of processes that shed the token: by the task folder they work in, or as
    descendants of the recorded program. One that also leaves the folder and closes its output after
    a double fork shows nothing that ties it to the task: it is not found (see engine.processes.tree)."""
    flows, db = tmp_path / "flows", tmp_path / "tiercel.db"
    write_flow(
        flows,
        "escaping.yml",
        f"""
id: escaping
namespace: rel.crash
labels:
  tiercel.notIdempotent: "nap"
tasks:
  - id: nap
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - env -i setsid sleep {JOB} &
      - (env -i setsid sleep {DOUBLE_FORK} > /dev/null 2>&1 &)
      - (cd / && env -i setsid sleep {DETACHED} > /dev/null 2>&1 &)
      - sleep 60
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: crash-key
""",
    )
    first = start_server(flows, db)
    engines.append(first)
    first.webhook("rel.crash", "escaping", "crash-key")
    try:
        assert wait_until(lambda: all(_alive_with(m) for m in (JOB, DOUBLE_FORK, DETACHED)), 20)
        assert wait_until(lambda: len(recorded_processes(db)) == 1, 10)
        first.kill9()
        before = {marker: len(_alive_with(marker)) for marker in (JOB, DOUBLE_FORK, DETACHED)}
        second = start_server(flows, db)
        engines.append(second)
        after = {marker: len(_alive_with(marker)) for marker in (JOB, DOUBLE_FORK, DETACHED)}
        print(f"\ncrash recovery of `env -i setsid` descendants: alive before {before}, after {after}")
        assert before == {JOB: 1, DOUBLE_FORK: 1, DETACHED: 1}
        assert after[JOB] == 0, "a descendant of the recorded program is found through its parent links"
        assert after[DOUBLE_FORK] == 0, "an orphan working in its attempt's task folder is found"
        second.stop()
    finally:
        for marker in (JOB, DOUBLE_FORK, DETACHED):
            for pid in _alive_with(marker):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
