"""Kestra's published benchmark flow fired at increasing rates through `tiercel server` on loopback.

The flow is Kestra's "Benchmark 1" (a Webhook trigger, an OutputValues task and a Log task reading
its output), with `wait: true` on the trigger: the server answers a request once the execution has
ended and its end is stored, with the stored execution. So the latency measured is what a client
sees: from the time its request was due (a client that falls behind counts against the server) to
its reading the stored SUCCESS in the answer.

Each rate runs --runs times, each on a server started cold (a new process on a new database, one
request answered before the clock starts) and for --seconds. Requests go on a fixed schedule over
48 keep-alive connections (the server takes up to 64 from one address); a request due while all of
them wait for their executions waits for one, and that wait counts in its latency. A rate is held
when, in every run, every request was answered 200 with a SUCCESS execution and every execution is
in the database as SUCCESS, and the p99 over all runs is under --p99-ms. Rates stop at the first
one not held. The server's SQLite durability setting is stated
(`TIERCEL_SQLITE_SYNC`, FULL unless --sync says otherwise).

With `--postgres URL` (a server to make databases on), each run has a new database there: the
server sends task runs through the shared queue to `--workers N` `tiercel worker` processes (0:
to the server's own worker), and the stored states are read from PostgreSQL.

    .venv/bin/python bench/server_load.py [--seconds 20] [--runs 3] [--rates 6000,30000,...]
        [--sync FULL|NORMAL] [--postgres postgresql://postgres@127.0.0.1/postgres --workers 2]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOW = """\
id: benchmark01
namespace: benchmarks

triggers:
  - id: webhook
    type: io.kestra.plugin.core.trigger.Webhook
    key: benchmark
    wait: true

inputs:
  - id: name
    type: STRING
    defaults: World

tasks:
  - id: concatenate
    type: io.kestra.plugin.core.output.OutputValues
    values:
      message: Hello {{ inputs.name }}
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.concatenate.values.message }}"
"""
PATH = "/api/v1/executions/webhook/benchmarks/benchmark01/benchmark"
REQUEST = (
    f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    "Content-Length: 2\r\nConnection: keep-alive\r\n\r\n{}"
).encode()
# Keep-alive connections, under the server's cap per client address (64); a request due while all
# of them wait for their executions waits for one, and that wait counts in its latency.
CONNECTIONS = 48
SHARES = (0.50, 0.95, 0.99)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (`share` of 1), NaN when there is nothing."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(share * len(ordered) + 0.5) - 1))]


@dataclass
class Run:
    """One cold run at one rate."""

    rate_per_min: int
    seconds: float
    sent: int = 0
    succeeded: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    stored_success: int = 0
    connections: int = 0
    max_send_lag_s: float = 0.0
    server_cpu_s: float = 0.0  # the server's CPU time (user + system) while the requests ran

    @property
    def complete(self) -> bool:
        """Every request answered with a SUCCESS execution, every one stored so."""
        return not self.errors and self.succeeded == self.sent == self.stored_success and self.sent > 0

    def to_json(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "succeeded": self.succeeded,
            "stored_success": self.stored_success,
            "errors": self.errors[:5],
            "error_count": len(self.errors),
            "p50_s": percentile(self.latencies, 0.50),
            "p95_s": percentile(self.latencies, 0.95),
            "p99_s": percentile(self.latencies, 0.99),
            "max_s": max(self.latencies, default=float("nan")),
            "connections": self.connections,
            "max_send_lag_s": self.max_send_lag_s,
            "server_cpu_ms_per_execution": self.server_cpu_s * 1000 / self.sent if self.sent else None,
            "complete": self.complete,
        }


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self) -> tuple[int, bytes]:
        self.writer.write(REQUEST)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


async def fire(port: int, run: Run) -> list[str]:
    """Send the run's requests on schedule; the ids of the executions they started."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        idle.put_nowait(await Connection.open(port))
    run.connections = CONNECTIONS
    interval = 60.0 / run.rate_per_min
    count = int(run.seconds * run.rate_per_min / 60)
    start = time.monotonic()
    pending: set[asyncio.Task[None]] = set()
    ids: list[str] = []

    async def one(due: float) -> None:
        conn = await idle.get()
        run.max_send_lag_s = max(run.max_send_lag_s, time.monotonic() - due)
        try:
            status, body = await conn.post()
        except (OSError, asyncio.IncompleteReadError) as exc:
            run.errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            idle.put_nowait(await Connection.open(port))
            return
        seen = time.monotonic()
        idle.put_nowait(conn)
        if status != 200:
            run.errors.append(f"HTTP {status}: {body[:200]!r}")
            return
        execution = json.loads(body)
        ids.append(execution["id"])
        if execution["state"]["current"] == "SUCCESS":
            run.succeeded += 1
            run.latencies.append(seen - due)
        else:
            run.errors.append(f"execution {execution['id']} answered {execution['state']['current']}")

    for index in range(count):
        due = start + index * interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(due))
        pending.add(task)
        task.add_done_callback(pending.discard)
        run.sent += 1
    if pending:
        await asyncio.wait(pending)
    while not idle.empty():
        idle.get_nowait().close()
    return ids


def stored_successes(db: Path, ids: list[str]) -> int:
    """How many of the executions the database holds as SUCCESS (read after the server stopped)."""
    found = 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found += conn.execute(
                f"SELECT count(*) FROM executions WHERE state = 'SUCCESS' AND id IN ({marks})", chunk
            ).fetchone()[0]
    return found


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far, user and system (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"tiercel server exited with {proc.returncode}")
        try:
            conn = await Connection.open(port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        status, _ = await conn.post()
        conn.close()
        if status == 200:
            return
        await asyncio.sleep(0.2)
    raise SystemExit("tiercel server did not answer the webhook in time")


@dataclass(frozen=True)
class Store:
    """Where a run's server keeps its state: a new SQLite file, or a new PostgreSQL database."""

    sync: str
    postgres: str | None = None  # a URL to create databases through
    workers: int = 0

    def new(self, folder: Path) -> str:
        if self.postgres is None:
            return str(folder / "bench.db")
        import psycopg

        name = f"tiercel_bench_{os.getpid()}_{folder.name.rsplit('-', 1)[-1].lower()}"
        with psycopg.connect(self.postgres, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.postgres.rsplit("/", 1)[0] + "/" + name

    def stored_successes(self, db: str, ids: list[str]) -> int:
        if self.postgres is None:
            return stored_successes(Path(db), ids)
        import psycopg

        with psycopg.connect(db) as conn:
            row = conn.execute(
                "SELECT count(*) FROM executions WHERE state = 'SUCCESS' AND id = ANY(%s)", [ids]
            ).fetchone()
        return int(row[0]) if row else 0

    def drop(self, db: str) -> None:
        if self.postgres is not None:
            import psycopg

            with psycopg.connect(self.postgres, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {db.rsplit('/', 1)[1]} WITH (FORCE)")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def cold_run(rate: int, seconds: float, store: Store, folder: Path) -> Run:
    """A new server on a new database, `seconds` at `rate`, then the server stopped and the
    database read."""
    (folder / "flows").mkdir(parents=True)
    (folder / "flows" / "benchmark01.yml").write_text(FLOW)
    db = store.new(folder)
    port = free_port()
    tiercel = str(ROOT / ".venv/bin/tiercel")
    command = [tiercel, "server", "--flows", str(folder / "flows"), "--db", db, "--port", str(port)]
    if store.workers:
        command.append("--no-worker")
    env = {**os.environ, "TIERCEL_SQLITE_SYNC": store.sync, "XDG_DATA_HOME": str(folder / "data")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measured as installed software runs
    with (folder / "server.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        workers = [
            subprocess.Popen([tiercel, "worker", "--db", db], stdout=log, stderr=subprocess.STDOUT, env=env)
            for _ in range(store.workers)
        ]
        run = Run(rate, seconds)
        try:
            await wait_ready(port, proc)
            cpu = sum(cpu_seconds(p.pid) for p in (proc, *workers))
            ids = await fire(port, run)
            run.server_cpu_s = sum(cpu_seconds(p.pid) for p in (proc, *workers)) - cpu
        finally:
            for process in (*workers, proc):
                stop(process)
    try:
        run.stored_success = store.stored_successes(db, ids)
    finally:
        store.drop(db)
    return run


def summary(rate: int, runs: list[Run], p99_limit: float) -> dict[str, object]:
    pooled = [latency for run in runs for latency in run.latencies]
    p99 = percentile(pooled, 0.99)
    return {
        "rate_per_min": rate,
        "runs": [run.to_json() for run in runs],
        "p50_s": percentile(pooled, 0.50),
        "p95_s": percentile(pooled, 0.95),
        "p99_s": p99,
        "held": all(run.complete for run in runs) and p99 < p99_limit,
    }


def milliseconds(latencies: list[float]) -> str:
    return " ".join(f"p{int(share * 100)} {percentile(latencies, share) * 1000:6.1f} ms" for share in SHARES)


async def measure(
    rates: list[int], seconds: float, runs: int, store: Store, p99_limit: float
) -> list[dict[str, object]]:
    steps = []
    for rate in rates:
        done = []
        for index in range(runs):
            with tempfile.TemporaryDirectory(prefix="tiercel-load-") as tmp:
                run = await cold_run(rate, seconds, store, Path(tmp))
            done.append(run)
            print(
                f"{rate:>6}/min run {index + 1}: sent {run.sent:>6} success {run.succeeded:>6} "
                f"stored {run.stored_success:>6} {milliseconds(run.latencies)} "
                f"connections {run.connections} "
                f"server CPU {run.server_cpu_s * 1000 / max(run.sent, 1):.2f} ms/exec"
                + (f" errors {len(run.errors)}, first: {run.errors[0]}" if run.errors else ""),
                file=sys.stderr,
                flush=True,
            )
        step = summary(rate, done, p99_limit)
        steps.append(step)
        pooled = [latency for run in done for latency in run.latencies]
        verdict = "held" if step["held"] else "NOT held"
        print(f"{rate:>6}/min, {runs} runs: {milliseconds(pooled)} {verdict}", file=sys.stderr, flush=True)
        if not step["held"]:
            break
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run")
    parser.add_argument("--runs", type=int, default=3, help="cold runs per rate")
    parser.add_argument("--rates", default="6000,30000,45000,60000")
    parser.add_argument(
        "--sync", default="FULL", choices=("FULL", "NORMAL"), help="SQLite synchronous setting"
    )
    parser.add_argument("--p99-ms", type=float, default=100.0, help="a rate is held with p99 under this")
    parser.add_argument("--postgres", help="a PostgreSQL URL to make each run's database through")
    parser.add_argument("--workers", type=int, default=0, help="tiercel worker processes (PostgreSQL)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rates = [int(rate) for rate in args.rates.split(",")]
    store = Store(args.sync, args.postgres, args.workers)
    steps = asyncio.run(measure(rates, args.seconds, args.runs, store, args.p99_ms / 1000))
    held = [step for step in steps if step["held"]]
    best = held[-1] if held else None
    if best:
        print(
            f"highest rate held (p99 < {args.p99_ms:.0f} ms, synchronous={args.sync}): "
            f"{best['rate_per_min']}/min"
        )
    else:
        print("no rate held")
    if args.json:
        payload = {
            "seconds_per_run": args.seconds,
            "runs_per_rate": args.runs,
            "synchronous": args.sync,
            "store": "postgresql" if args.postgres else "sqlite",
            "workers": args.workers,
            "p99_limit_ms": args.p99_ms,
            "steps": steps,
            "highest_held_per_min": best["rate_per_min"] if best else None,
        }
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
