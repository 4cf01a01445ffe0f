"""Acknowledged means durable: once `tiercel run` has printed an execution id, the execution is stored,
even if the engine dies a moment later (kill -9 right after the id is read from its pipe)."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import (
    TERMINAL,
    TIERCEL,
    EngineProcess,
    connect,
    executions,
    integrity_check,
    start_server,
    wait_until,
    write_flow,
)

pytestmark = pytest.mark.reliability

TRIALS = 200
INTERRUPTED = "engine stopped while the task was running"
STARTED = re.compile(rb"^Execution (\S+) of rel\.ack\.hello started")

HELLO = """
id: hello
namespace: rel.ack
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: hello
"""


def _run_and_kill(flows: Path, db: Path) -> tuple[str, float]:
    """`tiercel run` until it prints the execution id, then kill -9; the id and the delay in seconds."""
    proc = subprocess.Popen(
        [str(TIERCEL), "run", "--flows", str(flows), "--db", str(db), "rel.ack", "hello"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stderr is not None
    try:
        while True:
            line = proc.stderr.readline()
            if not line:
                raise AssertionError(f"tiercel run ended ({proc.wait()}) without printing an execution id")
            found = STARTED.match(line)
            if found:
                read_at = time.perf_counter()
                os.kill(proc.pid, signal.SIGKILL)
                delay = time.perf_counter() - read_at
                return found.group(1).decode(), delay
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stderr.close()


def test_200_acknowledged_executions_survive_kill_9(tmp_path: Path, engines: list[EngineProcess]) -> None:
    flows, db = tmp_path / "flows", tmp_path / "tiercel.db"
    write_flow(flows, "hello.yml", HELLO)
    started = time.monotonic()
    acknowledged: list[str] = []
    delays: list[float] = []
    for _ in range(TRIALS):
        execution_id, delay = _run_and_kill(flows, db)
        acknowledged.append(execution_id)
        delays.append(delay)
    elapsed = time.monotonic() - started
    assert max(delays) < 0.05
    assert integrity_check(db) == "ok"

    restart = start_server(flows, db)
    engines.append(restart)
    assert wait_until(lambda: all(e["state"]["current"] in TERMINAL for e in executions(db).values()), 60)
    restart.stop()
    stored = executions(db)
    kept = [execution_id for execution_id in acknowledged if execution_id in stored]
    assert len(kept) == TRIALS, f"{TRIALS - len(kept)} acknowledged executions lost"
    # Each engine dies a moment after its own execution started, often while it recovers earlier ones:
    # a task interrupted more often than its attempts allow fails, and says why.
    with contextlib.closing(connect(db)) as conn:
        explained = {
            row[0] for row in conn.execute("SELECT execution_id FROM logs WHERE message = ?", (INTERRUPTED,))
        }
    for execution_id in acknowledged:
        state = stored[execution_id]["state"]["current"]
        assert state == "SUCCESS" or (state == "FAILED" and execution_id in explained), state
    assert integrity_check(db) == "ok"
    by_state = collections.Counter(stored[execution_id]["state"]["current"] for execution_id in acknowledged)
    print(
        f"\ndurable acknowledgement: {len(kept)}/{TRIALS} executions kept after kill -9 "
        f"at most {max(delays) * 1000:.2f} ms after the id was read ({elapsed:.1f} s for {TRIALS} trials; "
        f"ended {dict(by_state)})"
    )
