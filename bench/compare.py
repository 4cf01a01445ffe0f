"""Tiercel side by side with Prefect 3 and Dagster on the same workloads, whole process.

Workloads (bench/peers/tiercel/*.yml, bench/peers/prefect_flows.py, bench/peers/dagster_jobs.py):
  empty     one trivial task (start-up cost)
  seq100    100 trivial tasks in sequence, each passing its output to the next
  fan1000   1,000 trivial tasks in parallel (ForEach with no limit, Prefect's map, Dagster's
            dynamic outputs), then a collect
  shell20   20 shell tasks running `echo hi`
  logs100k  one task printing 100,000 lines, all stored (the count is verified in each store)
  python40  a ForEach over 40 values, one at a time, computing fib(10) in a python Script task
            (Prefect and Dagster compute it in their task function, as their users would)

Each tool gets a warm-up (its `empty` workload: imports, disk cache, its store created), then the
runs go round-robin: run 1 of every (workload, tool), then run 2 ... so that the noise of a shared
machine hits every tool alike. A (workload, tool) whose first run takes longer than --slow seconds
is not run again, and a run longer than --timeout seconds is stopped and reported as such.

Stores: Tiercel gets a fresh database file for every run (schema created each time). Prefect keeps
its SQLite database under one PREFECT_HOME and Dagster its instance under one DAGSTER_HOME for the
whole bench (both created during the warm-up), so their one-off migrations are not counted.

    .venv/bin/python bench/compare.py [--runs 3] [--only seq100,fan1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proctree import TIMED_OUT, Measured, measure

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / "peers"
WORKLOADS = ("empty", "seq100", "fan1000", "shell20", "logs100k", "python40")
LOG_LINES = 100_000


def base_env() -> dict[str, str]:
    """This environment, measured as installed software runs: with its bytecode cached."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


class Failed(Exception):
    pass


@dataclass
class Tool:
    name: str
    python: Path
    command: Callable[[str, Path], list[str]]
    env: Callable[[Path], dict[str, str]]
    verify: Callable[[str, Measured, Path], int | None]  # returns the stored log count for logs100k

    def available(self) -> bool:
        return self.python.exists()


def _tiercel_db(workload: str, work: Path) -> Path:
    return work / "tiercel" / f"{workload}.db"


def _tiercel_command(workload: str, work: Path) -> list[str]:
    db = _tiercel_db(workload, work)
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    shutil.rmtree(db.parent / "storage", ignore_errors=True)
    return [
        str(ROOT / ".venv/bin/tiercel"),
        "run",
        "--json",
        "--db",
        str(db),
        str(PEERS / f"tiercel/{workload}.yml"),
    ]


def _tiercel_verify(workload: str, result: Measured, work: Path) -> int | None:
    execution = json.loads(result.stdout)
    if execution["state"]["current"] != "SUCCESS":
        raise Failed(f"ended {execution['state']['current']}")
    if workload != "logs100k":
        return None
    with sqlite3.connect(f"file:{_tiercel_db(workload, work)}?mode=ro", uri=True) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM logs WHERE execution_id = ?", (execution["id"],)
        ).fetchone()
    return int(count)


def _prefect_env(work: Path) -> dict[str, str]:
    return {
        **base_env(),
        "PREFECT_HOME": str(work / "prefect"),
        # The local API's telemetry would otherwise try the network at every start.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def _prefect_verify(workload: str, result: Measured, work: Path) -> int | None:
    found = re.search(r"flow_run_id=(\S+)", result.stdout)
    if not found or "state=COMPLETED" not in result.stdout:
        raise Failed("no completed flow run")
    if workload != "logs100k":
        return None
    with sqlite3.connect(f"file:{work / 'prefect' / 'prefect.db'}?mode=ro", uri=True) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM log WHERE flow_run_id = ? AND task_run_id IS NOT NULL", (found.group(1),)
        ).fetchone()
    return int(count)


def _dagster_env(work: Path) -> dict[str, str]:
    home = work / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    return {**base_env(), "DAGSTER_HOME": str(home)}


def _dagster_verify(workload: str, result: Measured, work: Path) -> int | None:
    found = re.search(r"run_id=(\S+)", result.stdout)
    if not found or "success=True" not in result.stdout:
        raise Failed("the run did not succeed")
    if workload != "logs100k":
        return None
    run_id = found.group(1)
    db = work / "dagster" / "history" / "runs" / f"{run_id}.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = ? AND step_key IS NOT NULL "
            "AND dagster_event_type IS NULL",
            (run_id,),
        ).fetchone()
    return int(count)


TOOLS = (
    Tool(
        "tiercel",
        ROOT / ".venv/bin/python",
        _tiercel_command,
        lambda work: base_env(),
        _tiercel_verify,
    ),
    Tool(
        "prefect",
        BENCH / ".venv-prefect/bin/python",
        lambda workload, work: [
            str(BENCH / ".venv-prefect/bin/python"),
            str(PEERS / "prefect_flows.py"),
            workload,
        ],
        _prefect_env,
        _prefect_verify,
    ),
    Tool(
        "dagster",
        BENCH / ".venv-dagster/bin/python",
        lambda workload, work: [
            str(BENCH / ".venv-dagster/bin/python"),
            str(PEERS / "dagster_jobs.py"),
            workload,
        ],
        _dagster_env,
        _dagster_verify,
    ),
)


@dataclass
class Series:
    seconds: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)
    logs_stored: int | None = None
    timed_out: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "runs_s": self.seconds,
            "peak_rss_bytes": self.peak_rss,
            "median_s": statistics.median(self.seconds) if self.seconds else None,
            "median_peak_rss_bytes": int(statistics.median(self.peak_rss)) if self.peak_rss else None,
            "logs_stored": self.logs_stored,
            "timed_out": self.timed_out,
            "error": self.error,
        }


def run_one(tool: Tool, workload: str, work: Path, timeout: float, series: Series) -> None:
    result = measure(tool.command(workload, work), env=tool.env(work), timeout=timeout)
    if result.returncode == TIMED_OUT:
        series.timed_out = True
        series.seconds.append(result.seconds)
        series.peak_rss.append(result.peak_rss_bytes)
        return
    try:
        if result.returncode != 0:
            raise Failed(f"exit code {result.returncode}: {result.stderr[-1500:]}")
        logs = tool.verify(workload, result, work)
    except (Failed, ValueError, KeyError, sqlite3.Error) as exc:
        series.error = str(exc)
        print(f"  {tool.name} {workload}: FAILED {exc}", file=sys.stderr)
        return
    if logs is not None:
        series.logs_stored = logs
    series.seconds.append(result.seconds)
    series.peak_rss.append(result.peak_rss_bytes)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", help="comma-separated workloads (default: all)")
    parser.add_argument("--tools", help="comma-separated tools (default: all installed)")
    parser.add_argument("--slow", type=float, default=30.0, help="one run only past this many seconds")
    parser.add_argument("--timeout", type=float, default=180.0, help="stop a run after this many seconds")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    workloads = tuple(args.only.split(",")) if args.only else WORKLOADS
    wanted = set(args.tools.split(",")) if args.tools else {tool.name for tool in TOOLS}
    tools = [tool for tool in TOOLS if tool.name in wanted]
    missing = [tool.name for tool in tools if not tool.available()]
    if missing:
        sys.exit(f"not installed: {', '.join(missing)}; run `make bench-setup` first")
    results: dict[str, dict[str, Series]] = {w: {t.name: Series() for t in tools} for w in workloads}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="tiercel-compare-") as tmp:
        work = Path(tmp)
        for tool in tools:  # warm-up: imports, disk cache, each peer's store and migrations
            warm = measure(tool.command("empty", work), env=tool.env(work), timeout=args.timeout)
            if warm.returncode != 0:
                sys.exit(f"{tool.name} warm-up failed: {warm.stderr[-2000:]}")
        for run in range(args.runs):
            for workload in workloads:
                for tool in tools:
                    series = results[workload][tool.name]
                    if series.error or series.timed_out:
                        continue
                    if run > 0 and series.seconds and series.seconds[0] > args.slow:
                        continue
                    run_one(tool, workload, work, args.timeout, series)
                    last = f"{series.seconds[-1]:.3f} s" if series.seconds else "-"
                    print(f"run {run + 1} {workload:<9} {tool.name:<8} {last}", file=sys.stderr, flush=True)
    print_table(results)
    if args.json:
        payload = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
            "runs": args.runs,
            "slow_s": args.slow,
            "timeout_s": args.timeout,
            "results": {w: {t: s.to_json() for t, s in by_tool.items()} for w, by_tool in results.items()},
        }
        args.json.write_text(json.dumps(payload, indent=2))


def print_table(results: dict[str, dict[str, Series]]) -> None:
    for workload, by_tool in results.items():
        base = by_tool.get("tiercel")
        base_median = statistics.median(base.seconds) if base and base.seconds else None
        print(f"\n{workload}")
        for name, series in by_tool.items():
            if not series.seconds:
                print(f"  {name:<8} {series.error or 'no run'}")
                continue
            median = statistics.median(series.seconds)
            rss = statistics.median(series.peak_rss) / 2**20
            ratio = f"{median / base_median:7.1f}x" if base_median else ""
            more = " (timed out)" if series.timed_out else ""
            print(f"  {name:<8} {median:9.3f} s {rss:7.0f} MiB {ratio} n={len(series.seconds)}{more}")


if __name__ == "__main__":
    main()
