"""Kestra's published benchmark flow fired at increasing rates through `tiercel server` on loopback.

The flow is Kestra's "Benchmark 1" (a Webhook trigger, an OutputValues task and a Log task reading
its output). For each rate, requests are sent on a fixed schedule for --seconds over a pool of
keep-alive connections; the latency of an execution runs from the time its request was due (so a
client that falls behind counts against the server) to the SUCCESS entry of its state history,
read from the SQLite file (read-only) once the step has drained. A rate is sustained when every
request was answered 200, every execution ended SUCCESS, and the p95 latency stayed under 1 s.
Steps stop at the first rate not sustained.

    .venv/bin/python bench/server_load.py [--seconds 20] [--rates 1000,2000,...] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOW = """\
id: benchmark01
namespace: benchmarks

triggers:
  - id: webhook
    type: io.kestra.plugin.core.trigger.Webhook
    key: benchmark

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
SUCCESS_LATENCY_S = 1.0


@dataclass
class Step:
    rate_per_min: int
    seconds: float
    sent: int = 0
    answered_ok: int = 0
    errors: list[str] = field(default_factory=list)
    due: dict[str, float] = field(default_factory=dict)  # execution id -> wall time its request was due
    latencies: list[float] = field(default_factory=list)
    unfinished: int = 0
    failed: int = 0
    max_send_lag_s: float = 0.0

    @property
    def sustained(self) -> bool:
        return (
            not self.errors
            and self.answered_ok == self.sent
            and self.unfinished == 0
            and self.failed == 0
            and bool(self.latencies)
            and self.p95 < SUCCESS_LATENCY_S
        )

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def p95(self) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]

    def to_json(self) -> dict[str, object]:
        return {
            "rate_per_min": self.rate_per_min,
            "seconds": self.seconds,
            "sent": self.sent,
            "answered_ok": self.answered_ok,
            "errors": self.errors[:5],
            "succeeded": len(self.latencies),
            "failed": self.failed,
            "unfinished": self.unfinished,
            "p50_s": self.p50,
            "p95_s": self.p95,
            "max_s": max(self.latencies) if self.latencies else None,
            "max_send_lag_s": self.max_send_lag_s,
            "sustained": self.sustained,
        }


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

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


async def open_pool(port: int, size: int) -> asyncio.Queue[Connection]:
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(size):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        pool.put_nowait(Connection(reader, writer))
    return pool


async def fire(port: int, step: Step, pool: asyncio.Queue[Connection]) -> None:
    interval = 60.0 / step.rate_per_min
    count = int(step.seconds * step.rate_per_min / 60)
    start_wall, start_mono = time.time(), time.monotonic()
    pending: set[asyncio.Task[None]] = set()

    async def one(offset: float) -> None:
        conn = await pool.get()
        lag = time.monotonic() - start_mono - offset
        step.max_send_lag_s = max(step.max_send_lag_s, lag)
        try:
            status, body = await conn.post()
        except (OSError, asyncio.IncompleteReadError) as exc:
            step.errors.append(f"{type(exc).__name__}: {exc}")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            conn = Connection(reader, writer)
        else:
            if status == 200:
                step.answered_ok += 1
                step.due[json.loads(body)["id"]] = start_wall + offset
            else:
                step.errors.append(f"HTTP {status}: {body[:200]!r}")
        finally:
            pool.put_nowait(conn)

    for index in range(count):
        offset = index * interval
        delay = start_mono + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(offset))
        pending.add(task)
        task.add_done_callback(pending.discard)
        step.sent += 1
    if pending:
        await asyncio.wait(pending)


def _success_time(data: dict[str, object]) -> float | None:
    state = data.get("state")
    if not isinstance(state, dict):
        return None
    for history in state.get("histories") or ():
        if history["state"] == "SUCCESS":
            return datetime.fromisoformat(history["date"].replace("Z", "+00:00")).timestamp()
    return None


def collect(db: Path, step: Step, drain_seconds: float) -> None:
    """Wait until the step's executions are terminal (or drain_seconds pass), then read latencies."""
    ids = list(step.due)
    deadline = time.monotonic() + drain_seconds
    terminal = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        while True:
            rows: list[tuple[str, str, str]] = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows += conn.execute(
                    f"SELECT id, state, json FROM executions WHERE id IN ({marks})", chunk
                ).fetchall()
            done = [row for row in rows if row[1] in terminal]
            if len(done) == len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    step.unfinished = len(ids) - len(done)
    for execution_id, state, text in done:
        if state != "SUCCESS":
            step.failed += 1
            continue
        at = _success_time(json.loads(text))
        if at is None:
            step.failed += 1
        else:
            step.latencies.append(at - step.due[execution_id])


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
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        status, _ = await Connection(reader, writer).post()
        writer.close()
        if status == 200:
            return
        await asyncio.sleep(0.2)
    raise SystemExit("tiercel server did not answer the webhook in time")


async def run(rates: list[int], seconds: float, connections: int, folder: Path) -> list[Step]:
    (folder / "flows").mkdir()
    (folder / "flows" / "benchmark01.yml").write_text(FLOW)
    db = folder / "bench.db"
    port = free_port()
    log = (folder / "server.log").open("wb")
    command = [str(ROOT / ".venv/bin/tiercel"), "server", "--flows", str(folder / "flows"), "--db", str(db)]
    proc = subprocess.Popen([*command, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    steps: list[Step] = []
    try:
        await wait_ready(port, proc)
        pool = await open_pool(port, connections)
        for rate in rates:
            step = Step(rate, seconds)
            await fire(port, step, pool)
            collect(db, step, drain_seconds=max(10.0, seconds))
            steps.append(step)
            print(
                f"{rate:>6}/min sent {step.sent:>6} ok {step.answered_ok:>6} "
                f"success {len(step.latencies):>6} "
                f"p50 {step.p50:.3f} s p95 {step.p95:.3f} s send lag {step.max_send_lag_s:.3f} s "
                f"{'sustained' if step.sustained else 'NOT sustained'}",
                file=sys.stderr,
                flush=True,
            )
            if not step.sustained:
                break
            await asyncio.sleep(2)  # let the store checkpoint between steps
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each rate step")
    parser.add_argument("--rates", default="1000,6000,15000,30000,45000,60000,75000,90000")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rates = [int(rate) for rate in args.rates.split(",")]
    with tempfile.TemporaryDirectory(prefix="tiercel-load-") as tmp:
        steps = asyncio.run(run(rates, args.seconds, args.connections, Path(tmp)))
    sustained = [step for step in steps if step.sustained]
    best = sustained[-1] if sustained else None
    if best:
        print(f"highest sustained: {best.rate_per_min}/min, p50 {best.p50:.3f} s, p95 {best.p95:.3f} s")
    else:
        print("no rate sustained")
    if args.json:
        payload = {
            "seconds_per_step": args.seconds,
            "connections": args.connections,
            "steps": [step.to_json() for step in steps],
            "highest_sustained_per_min": best.rate_per_min if best else None,
        }
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
