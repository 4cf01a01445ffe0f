"""The store at scale: 100,000 executions and 1,000,000 log lines, written in bulk through the Store API.

Each execution is shaped like one of Kestra's benchmark flow (two task runs with attempts and
outputs, CREATED -> RUNNING -> SUCCESS) with ten log lines, spread over a few namespaces and flows.
Measured: the time to write them, the size of the database (with its WAL), the first page of
`Store.list_executions` (unfiltered and filtered by namespace, median of --repeat calls on a
store opened afresh), and the whole `tiercel executions` command (table and --json).

The dashboard's page, filtered by the namespace "company" (three namespaces below it, 75% of the
executions), is measured warm (--page-calls calls in one process after a first one), in a new
process (--cold-runs processes, each timing the first call on a store it has just opened) and cold
(the same, each process started after the database's files were dropped from the OS page cache with
posix_fadvise(DONTNEED), so that every page it reads comes from the disk); the unfiltered page and
the dashboard's start-up read of every flow's last state are measured the same way beside it; each
as p50/p95/p99.

    .venv/bin/python bench/store_scale.py [--executions 100000] [--logs-per 10] [--json out.json]
        [--db kept.db]  # fill it when missing, else reuse it (to compare two versions on one store)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
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


async def _namespace_page(store: Store) -> int:
    """The page a dashboard shows for a namespace with namespaces below it."""
    return len(await store.list_executions(namespace="company", limit=100))


async def _unfiltered_page(store: Store) -> int:
    return len(await store.list_executions(limit=100))


async def _last_states(store: Store) -> int:
    """What the dashboard reads at start: the last state of every flow."""
    return len(await store.last_states())


# Each read with the number of rows it must return.
READS: dict[str, tuple[Callable[[Store], Awaitable[int]], int]] = {
    "namespace": (_namespace_page, 100),
    "all": (_unfiltered_page, 100),
    "last_states": (_last_states, len(NAMESPACES) * len(FLOWS)),
}


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


def percentiles(values_s: list[float]) -> dict[str, float]:
    """p50, p95 and p99 in milliseconds (nearest rank)."""
    ordered = sorted(values_s)
    rank = {50: 0.50, 95: 0.95, 99: 0.99}
    return {
        f"p{p}_ms": ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] * 1000
        for p, q in rank.items()
    }


async def warm_reads(db: Path, calls: int) -> dict[str, dict[str, float]]:
    """Each of READS called `calls` times in one process, after a first call."""
    store = await Store.open(db, readonly=True)
    try:
        result = {}
        for name, (read, _rows) in READS.items():
            await read(store)
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                await read(store)
                times.append(time.perf_counter() - started)
            result[name] = percentiles(times)
    finally:
        await store.close()
    return result


def drop_from_page_cache(db: Path) -> None:
    """Evict the database's files from the OS page cache (written pages are synced first)."""
    for path in db.parent.glob(db.name + "*"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


async def cold_child(db: Path, name: str) -> None:
    """In a fresh process: open the store, time its first read; print both as JSON."""
    read, want = READS[name]
    started = time.perf_counter()
    store = await Store.open(db, readonly=True)
    opened = time.perf_counter()
    try:
        rows = await read(store)
        paged = time.perf_counter()
    finally:
        await store.close()
    if rows != want:
        raise SystemExit(f"cold read {name} gave {rows} rows, not {want}")
    print(json.dumps({"open_s": opened - started, "page_s": paged - opened}))


def cold_reads(db: Path, runs: int, *, evict: bool) -> dict[str, dict[str, float]]:
    """Each of READS timed `runs` times, each in a new process (on a database just dropped from the
    page cache, with `evict`)."""
    result = {}
    for name in READS:
        pages, opens = [], []
        for _ in range(runs):
            if evict:
                drop_from_page_cache(db)
            done = subprocess.run(
                [sys.executable, __file__, "--cold-child", str(db), name],
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(done.stdout)
            pages.append(figures["page_s"])
            opens.append(figures["open_s"])
        result[name] = {**percentiles(pages), "open_median_ms": statistics.median(opens) * 1000}
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
    parser.add_argument("--page-calls", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=15)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--db", type=Path, help="keep the store here: filled when missing, else reused")
    parser.add_argument("--cold-child", nargs=2, metavar=("DB", "PAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_child:
        asyncio.run(cold_child(Path(args.cold_child[0]), args.cold_child[1]))
        return
    with tempfile.TemporaryDirectory(prefix="tiercel-store-") as tmp:
        db = args.db.absolute() if args.db else Path(tmp) / "scale.db"
        fill_s = None
        if not db.exists():
            fill_s = asyncio.run(fill(db, args.executions, args.logs_per, args.batch))
        size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())
        pages = asyncio.run(first_pages(db, args.repeat))
        warm = asyncio.run(warm_reads(db, args.page_calls))
        fresh = cold_reads(db, args.cold_runs, evict=False)
        cold = cold_reads(db, args.cold_runs, evict=True)
        table_s = command_seconds(db, [], args.repeat)
        json_s = command_seconds(db, ["--json"], args.repeat)
        help_s = command_seconds(db, ["--help"], args.repeat)
    figures = {
        "executions": args.executions,
        "log_lines": args.executions * args.logs_per,
        "fill_s": fill_s,
        "size_bytes": size,
        **pages,
        "page_calls": args.page_calls,
        "cold_runs": args.cold_runs,
        **{f"{name}_warm": value for name, value in warm.items()},
        **{f"{name}_new_process": value for name, value in fresh.items()},
        **{f"{name}_cold": value for name, value in cold.items()},
        "command_table_s": table_s,
        "command_json_s": json_s,
        "command_help_s": help_s,
    }
    for name, value in figures.items():
        if isinstance(value, dict):
            value = ", ".join(f"{key} {number:.3f}" for key, number in value.items())
        print(f"{name:<24} {value:.4f}" if isinstance(value, float) else f"{name:<24} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
