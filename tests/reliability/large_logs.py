"""A database holding one execution with a huge log, built quickly (executemany, no task run), and
the measures of `tiercel logs` and of the dashboard on it.

By hand, for the figures of the README (10^7 lines: about 2 GB of disk and a few minutes):
`python -m tests.reliability.large_logs /tmp/big.db 10000000`
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tiercel.engine.model import Execution, State, StateType, iso, new_id
from tiercel.engine.store import Store

NAMESPACE, FLOW_ID = "rel.logs", "chatty"
TASKS = ("extract", "transform", "load")
START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def message(index: int) -> str:
    return f"line {index:08d} of a chatty task, with enough text to look like a real log line"


def _rows(execution_id: str, lines: int, first: int = 0) -> Iterator[tuple[object, ...]]:
    for index in range(first, first + lines):
        task = TASKS[index % len(TASKS)]
        level = 4 if index % 1000 == 999 else 2  # one line in 1,000 is an ERROR, the others INFO
        stamp = iso(START + timedelta(milliseconds=index))
        yield (execution_id, NAMESPACE, FLOW_ID, task, f"run-{task}", 1, level, stamp, message(index))


async def create(db: Path, lines: int, *, running: bool = False) -> str:
    """A database at `db` with one SUCCESS (or RUNNING) execution whose log holds `lines` lines; its id."""
    execution = Execution(
        id=new_id(),
        namespace=NAMESPACE,
        flow_id=FLOW_ID,
        flow_revision=1,
        state=State.new(StateType.CREATED, START),
    )
    execution = execution.to(StateType.RUNNING, START)
    if not running:
        execution = execution.to(StateType.SUCCESS, START + timedelta(hours=3))
    async with await Store.open(db) as store:
        await store.save_execution(execution)
    append(db, execution.id, 0, lines)
    return execution.id


def append(db: Path, execution_id: str, first: int, lines: int) -> None:
    """Append lines `first` .. `first + lines - 1` to an execution's log."""
    # Written as an engine's log batches are (executemany), in one transaction, without a task.
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        with conn:
            conn.executemany(
                "INSERT INTO logs (execution_id, namespace, flow_id, task_id, task_run_id, attempt, level,"
                " timestamp, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _rows(execution_id, lines, first),
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def build(db: Path, lines: int) -> str:
    """`create` outside an event loop."""
    return asyncio.run(create(db, lines))


# Runs a command and reports its peak RSS: a fresh parent whose only child is the command.
_PEAK = """
import resource, subprocess, sys
with open(sys.argv[1], "wb") as out:
    code = subprocess.run(sys.argv[2:], stdout=out).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""

# Opens the dashboard headless on the execution and reports the lines it holds and its RSS.
_DASHBOARD = """
import asyncio, sys, time
from pathlib import Path
from tiercel.app.app import TiercelApp

def status_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])

async def main():
    flows, db, execution_id = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(120, 40)) as pilot:
        while app.engine is None:
            await pilot.pause(0.05)
        started = time.monotonic()
        app.show_execution(execution_id)
        while not app.detail.entries:
            await pilot.pause(0.05)
        seconds = time.monotonic() - started
        await pilot.pause(0.5)
        # VmHWM, not ru_maxrss: a process's ru_maxrss keeps the peak of the process it was forked
        # from (here the test runner, hundreds of MiB after a long session) across the exec.
        print(len(app.detail.entries), status_kb("VmRSS"), status_kb("VmHWM"), seconds)

asyncio.run(main())
"""


def tiercel_logs_peak(db: Path, execution_id: str, out: Path, *args: str) -> tuple[int, int, float]:
    """Run `tiercel logs` into `out`: (exit code, peak RSS in KiB, seconds)."""
    tiercel = Path(sys.executable).parent / "tiercel"
    command = [
        sys.executable,
        "-c",
        _PEAK,
        str(out),
        str(tiercel),
        "logs",
        "--db",
        str(db),
        *args,
        execution_id,
    ]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900)
    code, peak = result.stdout.split()
    return int(code), int(peak), time.monotonic() - started


def dashboard_rss(db: Path, execution_id: str, flows: Path) -> tuple[int, int, int, float]:
    """Open the execution in a headless dashboard: (lines held, RSS KiB, peak RSS KiB, seconds to load)."""
    flows.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", _DASHBOARD, str(flows), str(db), execution_id]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    held, rss, peak, seconds = result.stdout.split()[-4:]
    return int(held), int(rss), int(peak), float(seconds)


if __name__ == "__main__":
    # python -m tests.reliability.large_logs DB LINES: build, then measure the CLI and the dashboard.
    database, count = Path(sys.argv[1]), int(sys.argv[2])
    began = time.monotonic()
    made = build(database, count)
    print(f"built {count} lines in {time.monotonic() - began:.1f} s: execution {made}")
    code, peak, seconds = tiercel_logs_peak(database, made, database.with_suffix(".out"))
    print(f"tiercel logs: exit {code}, {seconds:.1f} s, peak RSS {peak / 1024:.0f} MiB")
    held, rss, peak, seconds = dashboard_rss(database, made, database.parent / "flows")
    print(f"dashboard: {held} lines held in {seconds:.2f} s,", end=" ")
    print(f"RSS {rss / 1024:.0f} MiB (peak {peak / 1024:.0f} MiB)")
