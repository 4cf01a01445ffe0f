"""How soon a cluster hands the task run of a worker killed with `kill -9` to another worker.

A server (with no worker of its own) and two `tiercel worker` processes on a new PostgreSQL
database; a flow whose one task sleeps the first time it runs. Each trial starts an execution,
waits for a worker to claim the task, kills that worker with SIGKILL and measures from the kill to
the new attempt's RUNNING date as stored, then starts a new worker in its place. The bound the
cluster promises is the server's heartbeat timeout plus 2 s; workers heartbeat every 2 s.

    .venv/bin/python bench/cluster_recovery.py [--trials 5] [--heartbeat-timeout 10]
        [--postgres postgresql://postgres@127.0.0.1/postgres] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from tiercel.engine import connect

ROOT = Path(__file__).resolve().parent.parent
TIERCEL = str(ROOT / ".venv/bin/tiercel")


def flow(folder: Path) -> str:
    marker = folder / "ran-once"
    script = f"if [ -e {marker} ]; then rm {marker}; else touch {marker}; sleep 300; fi"
    task = f'  - id: s\n    type: io.kestra.plugin.scripts.shell.Script\n    script: "{script}"\n'
    return f"id: slow\nnamespace: bench\ntasks:\n{task}"


def start(args: list[str], env: dict[str, str], log: Path, ready: str) -> subprocess.Popen[str]:
    handle = log.open("a")
    process = subprocess.Popen([TIERCEL, *args], env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)
    while ready not in log.read_text():
        if process.poll() is not None:
            raise SystemExit(f"{args[0]} exited: {log.read_text()[-500:]}")
        time.sleep(0.05)
    return process


def wait_for(query: str, db: str, params: list[object]) -> list[tuple[object, ...]]:
    while True:
        with psycopg.connect(db) as conn:
            rows = conn.execute(query, params).fetchall()
        if rows:
            return rows
        time.sleep(0.05)


async def trigger(db: str) -> str:
    async with connect(db, local=False) as engine:
        return await engine.trigger("bench", "slow")


async def second_attempt(db: str, execution_id: str) -> datetime:
    """When the task run's second attempt started, as stored (waiting for it)."""
    async with connect(db, local=False) as engine:
        while True:
            execution = await engine.execution(execution_id)
            if execution is not None and len(execution.task_runs[0].attempts) > 1:
                return execution.task_runs[0].attempts[1].state.histories[0].date
            await asyncio.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--heartbeat-timeout", type=float, default=10.0)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1/postgres")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    name = f"tiercel_bench_recovery_{os.getpid()}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    db = args.postgres.rsplit("/", 1)[0] + "/" + name
    delays: list[float] = []
    processes: list[subprocess.Popen[str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="tiercel-recovery-") as tmp:
            folder = Path(tmp)
            (folder / "flows").mkdir()
            (folder / "flows" / "slow.yml").write_text(flow(folder))
            os.environ["XDG_DATA_HOME"] = str(folder / "data")  # where the control socket is
            env = dict(os.environ)
            log = folder / "cluster.log"
            server_args = [
                "server",
                "--flows",
                str(folder / "flows"),
                "--db",
                db,
                "--port",
                "0",
                "--no-worker",
            ]
            server_args += ["--heartbeat-timeout", str(args.heartbeat_timeout)]
            processes.append(start(server_args, env, log, "tiercel server:"))
            workers = [start(["worker", "--db", db], env, log, "tiercel worker ") for _ in range(2)]
            processes += workers
            for trial in range(args.trials):
                execution_id = asyncio.run(trigger(db))
                [(pid,)] = wait_for(
                    "SELECT w.pid FROM worker_jobs j JOIN workers w ON w.id = j.worker_id "
                    "WHERE j.execution_id = %s",
                    db,
                    [execution_id],
                )
                time.sleep(0.5)  # the program has started
                killed_at = datetime.now(UTC)
                os.kill(int(pid), signal.SIGKILL)
                started = asyncio.run(second_attempt(db, execution_id))
                delay = (started - killed_at).total_seconds()
                delays.append(delay)
                print(f"trial {trial + 1}: new attempt {delay:.2f} s after the kill", file=sys.stderr)
                dead = next(w for w in workers if w.pid == int(pid))
                dead.wait()
                workers.remove(dead)
                new = start(["worker", "--db", db], env, log, "tiercel worker ")
                workers.append(new)
                processes.append(new)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait()
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    ordered = sorted(delays)
    bound = args.heartbeat_timeout + 2
    print(
        f"kill -9 of a worker to the new attempt: median {ordered[len(ordered) // 2]:.2f} s, "
        f"max {ordered[-1]:.2f} s over {len(ordered)} trials (bound: heartbeat timeout + 2 s = {bound:.0f} s)"
    )
    if args.json:
        args.json.write_text(json.dumps({"delays_s": delays, "heartbeat_timeout_s": args.heartbeat_timeout}))


if __name__ == "__main__":
    main()
