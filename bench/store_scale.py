"""The store at scale: 100,000 executions and 1,000,000 log lines, written in bulk through the Store API.

Each execution is shaped like one of Kestra's benchmark flow (two task runs with attempts and
outputs, CREATED -> RUNNING -> SUCCESS) with ten log lines, spread over a few namespaces and flows.
Measured: the time to write them, the size of the database (with its WAL), the first page of
`Store.list_executions` (unfiltered and filtered by namespace, median of --repeat calls on a
store opened afresh), and the whole `tiercel executions` command (table and --json).

    .venv/bin/python bench/store_scale.py [--executions 100000] [--logs-per 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tiercel.engine.model import (  # noqa: E402
    Attempt,
    Execution,
    LogEntry,
    LogLevel,
    State,
    StateType,
    TaskRun,
    new_id,
    utcnow,
)
from tiercel.engine.store import Store  # noqa: E402

NAMESPACES = ("company.team", "company.finance", "company.ops.etl", "benchmarks")
FLOWS = ("benchmark01", "daily_report", "sync_orders", "cleanup")


def _state(at: object, step: timedelta) -> State:
    start = at  # type: ignore[assignment]
    return (
        State.new(StateType.CREATED, start)
        .to(StateType.RUNNING, start + step)  # type: ignore[operator]
        .to(StateType.SUCCESS, start + 2 * step)  # type: ignore[operator]
    )


def make_execution(index: int, logs_per: int) -> tuple[Execution, list[LogEntry]]:
    namespace = NAMESPACES[index % len(NAMESPACES)]
    flow_id = FLOWS[(index // len(NAMESPACES)) % len(FLOWS)]
    at = utcnow() - timedelta(seconds=100_000 - index)
    step = timedelta(milliseconds=3)
    execution_id = new_id()
    runs = tuple(
        TaskRun(
            id=new_id(),
            execution_id=execution_id,
            namespace=namespace,
            flow_id=flow_id,
            task_id=task_id,
            state=_state(at, step),
            attempts=(Attempt(State.new(StateType.RUNNING, at).to(StateType.SUCCESS, at + step)),),
            outputs={"values": {"message": "Hello World"}} if task_id == "concatenate" else {},
        )
        for task_id in ("concatenate", "hello")
    )
    execution = Execution(
        id=execution_id,
        namespace=namespace,
        flow_id=flow_id,
        flow_revision=1,
        state=_state(at, step * 3),
        task_runs=runs,
        inputs={"name": "World"},
        trigger={"id": "webhook", "type": "io.kestra.plugin.core.trigger.Webhook", "variables": {}},
    )
    logs = [
        LogEntry(
            execution_id=execution_id,
            namespace=namespace,
            flow_id=flow_id,
            timestamp=at + step,
            level=LogLevel.INFO,
            message=f"Hello World (line {line} of execution {index})",
            task_id="hello",
            task_run_id=runs[1].id,
            attempt=0,
        )
        for line in range(logs_per)
    ]
    return execution, logs


async def fill(db: Path, executions: int, logs_per: int, batch: int) -> float:
    started = time.perf_counter()
    store = await Store.open(db)
    try:
        for first in range(0, executions, batch):
            made = [make_execution(i, logs_per) for i in range(first, min(executions, first + batch))]
            # Concurrent saves share one group-committed transaction in the store's writer.
            await asyncio.gather(*(store.save_execution(e, e.task_runs, logs) for e, logs in made))
    finally:
        await store.close()
    return time.perf_counter() - started


async def first_pages(db: Path, repeat: int) -> dict[str, float]:
    store = await Store.open(db, readonly=True)
    try:
        timings: dict[str, list[float]] = {"all": [], "namespace": [], "state": []}
        first_call = 0.0
        for attempt in range(repeat):
            for name, kwargs in (
                ("all", {}),
                ("namespace", {"namespace": "company.ops"}),
                ("state", {"state": "SUCCESS"}),
            ):
                started = time.perf_counter()
                rows = await store.list_executions(limit=100, **kwargs)  # type: ignore[arg-type]
                elapsed = time.perf_counter() - started
                if len(rows) != 100:
                    raise SystemExit(f"first page {name} has {len(rows)} rows")
                if attempt == 0 and name == "all":
                    first_call = elapsed
                timings[name].append(elapsed)
    finally:
        await store.close()
    result = {f"{name}_median_ms": statistics.median(values) * 1000 for name, values in timings.items()}
    result["all_first_call_ms"] = first_call * 1000
    return result


def command_seconds(db: Path, extra: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(
            [str(ROOT / ".venv/bin/tiercel"), "executions", "--db", str(db), *extra],
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"tiercel executions failed: {done.stderr[-1000:]}")
        if "--json" in extra and len(json.loads(done.stdout)) != 100:
            raise SystemExit("tiercel executions --json did not list a first page of 100")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--logs-per", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tiercel-store-") as tmp:
        db = Path(tmp) / "scale.db"
        fill_s = asyncio.run(fill(db, args.executions, args.logs_per, args.batch))
        size = sum(p.stat().st_size for p in Path(tmp).glob("scale.db*") if p.is_file())
        pages = asyncio.run(first_pages(db, args.repeat))
        table_s = command_seconds(db, [], args.repeat)
        json_s = command_seconds(db, ["--json"], args.repeat)
        help_s = command_seconds(db, ["--help"], args.repeat)
    figures = {
        "executions": args.executions,
        "log_lines": args.executions * args.logs_per,
        "fill_s": fill_s,
        "size_bytes": size,
        **pages,
        "command_table_s": table_s,
        "command_json_s": json_s,
        "command_help_s": help_s,
    }
    for name, value in figures.items():
        print(f"{name:<24} {value:.4f}" if isinstance(value, float) else f"{name:<24} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
