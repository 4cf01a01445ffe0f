"""kill -9 of an engine running a forked Python task: its forkserver exits with it, and the next
engine kills the task and what it started, from the store's records as for a spawned program."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests.reliability.conftest import (
    EngineProcess,
    _stat,
    recorded_processes,
    start_server,
    wait_until,
    write_flow,
)
from tiercel.engine.processes.forkserver import SERVER, usable

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not usable(), reason="Python tasks are forked on Linux with dash as /bin/sh"),
]

MARKER = "3181.5"


def _live(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _parent(pid: int) -> int:
    data = Path(f"/proc/{pid}/stat").read_bytes()
    return int(data[data.rfind(b")") + 2 :].split()[1])


def _sleepers() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _live(int(entry.name)):
            with contextlib.suppress(OSError):
                if MARKER.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def test_kill_9_ends_the_forkserver_and_the_next_engine_kills_the_forked_task(
    tmp_path: Path, engines: list[EngineProcess]
) -> None:
    flows, db, pid_file = tmp_path / "flows", tmp_path / "tiercel.db", tmp_path / "task.pid"
    write_flow(
        flows,
        "forked.yml",
        f"""
id: forked
namespace: rel.fork
labels:
  tiercel.notIdempotent: "nap"
tasks:
  - id: warm_up  # spawned while the forkserver starts: the next Python task is forked
    type: io.kestra.plugin.scripts.python.Script
    script: pass
  - id: nap
    type: io.kestra.plugin.scripts.python.Script
    script: |
      import os, subprocess, time
      subprocess.Popen(["sleep", "{MARKER}"])
      with open("{pid_file}", "w") as file:
          file.write(str(os.getpid()))
      time.sleep(120)
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: fork-key
""",
    )
    first = start_server(flows, db)
    engines.append(first)
    first.webhook("rel.fork", "forked", "fork-key")
    task = 0
    try:
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text() != "" and bool(_sleepers()), 20)
        task = int(pid_file.read_text())
        assert wait_until(lambda: len(recorded_processes(db)) == 1, 10)
        assert recorded_processes(db)[0][0] == task, "the forked task is recorded as its program"
        server = _parent(task)
        assert str(SERVER).encode() in Path(f"/proc/{server}/cmdline").read_bytes()
        first.kill9()
        assert wait_until(lambda: not _live(server), 10), "the forkserver exits with its engine"
        assert _live(task) and _sleepers(), "the task outlives the engine until the next one starts"
        second = start_server(flows, db)
        engines.append(second)
        assert wait_until(lambda: not _live(task) and not _sleepers(), 10)
        second.stop()
    finally:
        for pid in [*_sleepers(), *([task] if task and _live(task) else [])]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
