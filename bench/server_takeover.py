"""Servers of a cluster dying: how soon another carries their executions on, and whether the
scheduler, moving from server to server, fires each slot once.

Takeover: two servers (each as if on a machine of its own) and one worker on a new PostgreSQL
database. Each trial starts an execution through the first server whose first task waits for a file;
once a worker runs it, the server is killed with SIGKILL and the file made; measured from the kill to
the RUNNING date of the execution's second task, which the adopting server sends out. Bound: the
heartbeat timeout plus 2 s.

Scheduler: three servers with a worker each and a flow scheduled every second (withSeconds); every
10 to 30 s (at random) one server, the scheduler's holder half the time, is killed with SIGKILL and a
new one started. At the end: slots from the first fire to the last, executions per slot (0: missed,
2 or more: fired twice) and how late each fired (the takeover gaps).

    .venv/bin/python bench/server_takeover.py [--trials 5] [--chaos-seconds 300]
        [--heartbeat-timeout 10] [--postgres postgresql://postgres@127.0.0.1/postgres] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from cluster_recovery import start, wait_for

HOOK = "triggers:\n  - id: hook\n    type: io.kestra.plugin.core.trigger.Webhook\n    key: k\n"
HOLDER = (
    "SELECT a.application_name FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'tiercel server %% scheduler'"
)


class Machines:
    """Servers and workers of one database, each server with a local folder of its own."""

    def __init__(self, db: str, folder: Path, timeout: float) -> None:
        self.db, self.folder, self.timeout = db, folder, timeout
        self.processes: list[subprocess.Popen[str]] = []
        self.count = 0

    def env(self, machine: str) -> dict[str, str]:
        return {**os.environ, "XDG_DATA_HOME": str(self.folder / machine)}  # files: in the store

    def server(self, *, worker: bool) -> tuple[subprocess.Popen[str], str]:
        """A new server and its webhooks' address."""
        self.count += 1
        log = self.folder / f"server-{self.count}.log"
        args = ["server", "--flows", str(self.folder / "flows"), "--db", self.db, "--port", "0"]
        args += ["--heartbeat-timeout", str(self.timeout), *([] if worker else ["--no-worker"])]
        process = start(args, self.env(f"machine-{self.count}"), log, "tiercel server:")
        self.processes.append(process)
        # Its ready line (warnings, about executions it adopted, may come before it).
        ready = next(line for line in log.read_text().splitlines() if "webhooks on " in line)
        return process, ready.rsplit("webhooks on ", 1)[1].strip()

    def worker(self) -> None:
        log = self.folder / "workers.log"
        self.processes.append(start(["worker", "--db", self.db], self.env("workers"), log, "tiercel worker "))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            process.wait()


def server_pids(db: str) -> dict[str, int]:
    with psycopg.connect(db) as conn:
        return {str(a): int(b) for a, b in conn.execute("SELECT id, pid FROM servers").fetchall()}


def takeover(machines: Machines, trials: int) -> list[float]:
    folder = machines.folder
    delays = []
    spare, _ = machines.server(worker=False)
    machines.worker()
    for trial in range(trials):
        release = folder / f"release-{trial}"
        task = f'    script: "while [ ! -e {release} ]; do sleep 0.05; done"\n'
        (folder / "flows" / "held.yml").write_text(
            "id: held\nnamespace: bench\ntasks:\n"
            f"  - id: wait\n    type: io.kestra.plugin.scripts.shell.Script\n{task}"
            f"  - id: after\n    type: io.kestra.plugin.core.log.Log\n    message: after\n{HOOK}"
        )
        doomed, url = machines.server(worker=False)
        answer = httpx.post(f"{url}/api/v1/executions/webhook/bench/held/k", timeout=30)
        execution_id = str(answer.json()["id"])
        wait_for("SELECT 1 FROM worker_jobs WHERE execution_id = %s AND worker_id IS NOT NULL",
                 machines.db, [execution_id])  # fmt: skip
        killed_at = datetime.now(UTC)
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
        release.touch()
        [(text,)] = wait_for(
            "SELECT json FROM task_runs WHERE execution_id = %s AND task_id = 'after' AND state <> 'CREATED'",
            machines.db, [execution_id],
        )  # fmt: skip
        histories = json.loads(text)["state"]["histories"]
        started = datetime.fromisoformat(next(h["date"] for h in histories if h["state"] == "RUNNING"))
        delays.append((started - killed_at).total_seconds())
        print(f"trial {trial + 1}: the next task sent out {delays[-1]:.2f} s after the kill", file=sys.stderr)
    spare.terminate()
    return delays


def chaos(machines: Machines, seconds: float, seed: int) -> dict[str, object]:
    (machines.folder / "flows" / "ticks.yml").write_text(
        "id: ticks\nnamespace: bench\ntasks:\n  - id: log\n    type: io.kestra.plugin.core.log.Log\n"
        "    message: tick\ntriggers:\n  - id: every\n    type: io.kestra.plugin.core.trigger.Schedule\n"
        "    cron: '* * * * * *'\n    withSeconds: true\n"
    )
    chance = random.Random(seed)
    servers = [machines.server(worker=True)[0] for _ in range(3)]
    deadline = time.monotonic() + seconds
    kills = 0
    while time.monotonic() < deadline:
        time.sleep(min(chance.uniform(10, 30), max(0.0, deadline - time.monotonic())))
        if time.monotonic() >= deadline:
            break
        pids = server_pids(machines.db)
        with psycopg.connect(machines.db) as conn:
            holder = [str(name).split()[2] for (name,) in conn.execute(HOLDER).fetchall()]
        target = pids.get(holder[0]) if holder and chance.random() < 0.5 else None
        victim = next((s for s in servers if s.pid == target), None) or chance.choice(servers)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        servers.remove(victim)
        kills += 1
        print(f"killed server pid {victim.pid}{' (the scheduler)' if victim.pid == target else ''}",
              file=sys.stderr)  # fmt: skip
        servers.append(machines.server(worker=True)[0])
    for server in servers:
        server.terminate()
        server.wait()
    with psycopg.connect(machines.db) as conn:
        rows = conn.execute("SELECT json FROM executions WHERE flow_id = 'ticks'").fetchall()
    fires: Counter[datetime] = Counter()
    late: list[float] = []
    for (text,) in rows:
        data = json.loads(text)
        slot = datetime.fromisoformat(data["trigger"]["variables"]["date"])
        fires[slot] += 1
        created = datetime.fromisoformat(data["state"]["histories"][0]["date"])
        late.append((created - slot).total_seconds())
    first, last = min(fires), max(fires)
    slots = int((last - first).total_seconds()) + 1
    missed = sum(1 for n in range(slots) if first + timedelta(seconds=n) not in fires)
    twice = sum(1 for count in fires.values() if count > 1)
    late.sort()
    return {
        "seconds": seconds, "kills": kills, "slots": slots, "fired": sum(fires.values()), "missed": missed,
        "fired_twice": twice, "late_p50_s": late[len(late) // 2], "late_p99_s": late[int(len(late) * 0.99)],
        "late_max_s": late[-1],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--chaos-seconds", type=float, default=300.0)
    parser.add_argument("--heartbeat-timeout", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1/postgres")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    name = f"tiercel_bench_takeover_{os.getpid()}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    db = args.postgres.rsplit("/", 1)[0] + "/" + name
    try:
        with tempfile.TemporaryDirectory(prefix="tiercel-takeover-") as tmp:
            (Path(tmp) / "flows").mkdir()
            machines = Machines(db, Path(tmp), args.heartbeat_timeout)
            try:
                delays = sorted(takeover(machines, args.trials)) if args.trials else []
                schedule = chaos(machines, args.chaos_seconds, args.seed) if args.chaos_seconds else {}
            finally:
                machines.stop()
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    if delays:
        print(
            f"kill -9 of a server to its execution's next task sent out by another: median "
            f"{delays[len(delays) // 2]:.2f} s, max {delays[-1]:.2f} s over {len(delays)} trials "
            f"(bound: heartbeat timeout + 2 s = {args.heartbeat_timeout + 2:.0f} s)"
        )
    if schedule:
        print(
            f"scheduler over {schedule['seconds']:.0f} s with {schedule['kills']} servers killed: "
            f"{schedule['slots']} slots, {schedule['fired']} fired, {schedule['missed']} missed, "
            f"{schedule['fired_twice']} fired twice; fired late by p50 {schedule['late_p50_s']:.2f} s, "
            f"p99 {schedule['late_p99_s']:.2f} s, max {schedule['late_max_s']:.2f} s"
        )
    if args.json:
        args.json.write_text(json.dumps({"takeover_delays_s": delays, "scheduler": schedule}, default=str))


if __name__ == "__main__":
    main()
