"""Write bench/RESULTS.md from the JSON figures of one `make bench` run.

    .venv/bin/python bench/report.py RESULTS_DIR bench/RESULTS.md

RESULTS_DIR holds overhead.json (engine_overhead.py), compare.json (compare.py), scaling.json
(scaling.py), load.json and load_normal.json (server_load.py, synchronous FULL and NORMAL) and
store.json (store_scale.py); a missing file leaves its section out.
bench/profile_notes.md (what profiling found and what changed) is copied in as it is.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
TOOLS = ("tiercel", "prefect", "dagster")


def _load(folder: Path, name: str) -> Any:
    path = folder / name
    return json.loads(path.read_text()) if path.exists() else None


def _peer_version(tool: str) -> str:
    python = BENCH / f".venv-{tool}/bin/python"
    if not python.exists():
        return "not installed"
    done = subprocess.run(
        [str(python), "-c", f"from importlib.metadata import version; print(version('{tool}'))"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(date: str) -> list[str]:
    try:
        tiercel = version("tiercel")
    except PackageNotFoundError:
        tiercel = "unknown"
    return [
        f"- Date: {date}",
        f"- Machine: {os.cpu_count()} cores ({_cpu_model()}), {platform.system()} {platform.release()}; "
        "a **shared** machine: other test runs used the same 2 cores during the bench, which is why runs "
        "alternate between tools and medians and ratios are reported",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        f"- Tiercel {tiercel}, Prefect {_peer_version('prefect')}, Dagster {_peer_version('dagster')}",
    ]


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


def compare_section(data: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    lines = [
        "## Tiercel, Prefect 3 and Dagster, whole process",
        "",
        f"`bench/compare.py`: {data['runs']} runs of each (workload, tool) after a warm-up, alternated "
        f"between tools; a (workload, tool) whose first run took over {data['slow_s']:.0f} s ran once; "
        f"runs are stopped after {data['timeout_s']:.0f} s. Wall time from spawn to exit; peak memory is "
        "the summed RSS of the process tree (Prefect's temporary API server included), sampled every "
        "20 ms, or the process's own peak RSS if larger. Tiercel: `tiercel run --json --db <fresh db> "
        "FILE` (bench/peers/tiercel/); Prefect: `@flow`/`@task` with its ephemeral local API "
        "(bench/peers/prefect_flows.py); Dagster: ops in a job, `execute_in_process` on a persistent "
        "SQLite instance (bench/peers/dagster_jobs.py). Tiercel starts from a fresh database every "
        "run; Prefect and Dagster keep theirs across runs (their migrations are not counted). "
        "Prefect's ephemeral mode was found to keep only 24-78 of its 1,001 fan1000 task runs in its "
        "database at exit (its writes are dropped when the process ends), so its fan1000 figure is for "
        "less work than Tiercel's and Dagster's, which store every task run.",
        "",
    ]
    results = data["results"]
    medians: dict[str, dict[str, float | None]] = {}
    for workload, by_tool in results.items():
        base = by_tool.get("tiercel", {}).get("median_s")
        medians[workload] = {tool: by_tool.get(tool, {}).get("median_s") for tool in TOOLS}
        lines += [
            f"### {workload}",
            "",
            "| tool | median wall | peak memory | runs | vs Tiercel |",
            "| --- | --- | --- | --- | --- |",
        ]
        for tool in TOOLS:
            entry = by_tool.get(tool)
            if entry is None:
                continue
            median = entry.get("median_s")
            if entry.get("error"):
                lines.append(f"| {tool} | failed: {entry['error'][:120]} | - | - | - |")
                continue
            ratio = f"{median / base:.1f}x" if median and base else "-"
            runs = len(entry.get("runs_s") or [])
            wall = _s(median)
            if entry.get("timed_out"):
                wall, ratio = (
                    f"> {data['timeout_s']:.0f} s (stopped)",
                    f"> {data['timeout_s'] / base:.0f}x" if base else "-",
                )
            lines.append(
                f"| {tool} | {wall} | {_mib(entry.get('median_peak_rss_bytes'))} | {runs} | {ratio} |"
            )
        stored = {
            t: by_tool[t].get("logs_stored") for t in TOOLS if t in by_tool and by_tool[t].get("logs_stored")
        }
        if stored:
            lines += ["", "Lines stored: " + ", ".join(f"{t} {n:,}" for t, n in stored.items()) + "."]
        lines.append("")
    return lines, medians


def overhead_section(data: dict[str, Any]) -> list[str]:
    med = data["medians_s"]
    lines = [
        "## Engine overhead (bench/engine_overhead.py)",
        "",
        "Generated flows, each on a fresh database, runs alternated, medians (each1000 is a ForEach "
        "over 1,000 values without the collect task of fan1000):",
        "",
        "| workload | median |",
        "| --- | --- |",
        *(f"| {name} | {_s(value)} |" for name, value in med.items()),
        "",
        f"- per task, in sequence: {data['seq_overhead_ms']:.2f} ms ((seq100 - empty) / 100)",
        f"- per task, in a ForEach: {data['foreach_overhead_ms']:.2f} ms ((each1000 - empty) / 1000)",
    ]
    if "shell_overhead_ms" in data:
        lines.append(
            f"- shell task: {data['shell_task_ms']:.2f} ms each against {data['bare_spawn_ms']:.2f} ms for a "
            f"bare `sh -c 'echo hi'` spawn: {data['shell_overhead_ms']:.2f} ms of overhead"
        )
    if "python_task_ms" in data:
        lines.append(
            f"- python task (python40): {data['python_task_ms']:.2f} ms each ((python40 - empty) / 40) "
            f"against {data['bare_python_ms']:.2f} ms for a bare `python -c 'print(1)'` spawn; 40 bare "
            f"spawns: {data['python40_bare_s']:.3f} s"
        )
    return [*lines, ""]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None or seconds != seconds else f"{seconds * 1000:.1f} ms"


def load_section(data: dict[str, Any], normal: dict[str, Any] | None) -> list[str]:
    lines = [
        "## Kestra's benchmark flow through `tiercel server` (Tiercel alone)",
        "",
        "`bench/server_load.py`: Kestra's Benchmark 1 flow (Webhook trigger, OutputValues, Log) with "
        "`wait: true` on its trigger, so that the server answers each request with the execution once "
        "its end is stored. Latency runs from the time a request was due to the client reading the "
        f"stored SUCCESS. Each rate: {data['runs_per_rate']} cold runs (a new server on a new database) "
        f"of {data['seconds_per_run']:.0f} s, requests on a fixed schedule over 48 keep-alive "
        "connections on loopback; percentiles over all runs. A rate is held when every request of every "
        f"run got its SUCCESS, all were found stored so, and p99 < {data['p99_limit_ms']:.0f} ms. "
        f"SQLite synchronous={data['synchronous']} (WAL, group commit). The load generator (Python "
        "asyncio) runs on the same 2 cores as the server.",
        "",
        "| rate / min | requests | p50 | p95 | p99 | per run p99 | server CPU per execution | held |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for step in data["steps"]:
        runs = step["runs"]
        cpu = [run["server_cpu_ms_per_execution"] or 0 for run in runs]
        lines.append(
            f"| {step['rate_per_min']:,} | {sum(run['sent'] for run in runs):,} | {_ms(step['p50_s'])} | "
            f"{_ms(step['p95_s'])} | {_ms(step['p99_s'])} | "
            f"{', '.join(_ms(run['p99_s']) for run in runs)} | "
            f"{min(cpu):.2f}-{max(cpu):.2f} ms | {'yes' if step['held'] else 'no'} |"
        )
    best = data.get("highest_held_per_min")
    lines += [
        "",
        f"Highest rate held: **{best:,} executions/min**." if best else "No rate held.",
    ]
    if normal and normal["steps"]:
        step = normal["steps"][0]
        full = next((s for s in data["steps"] if s["rate_per_min"] == step["rate_per_min"]), None)
        if full is not None:
            lines.append(
                f"Durability's price, at {step['rate_per_min']:,}/min: synchronous=NORMAL (a stored "
                f"execution survives the process's crash, not a power loss) p50 {_ms(step['p50_s'])}, "
                f"p99 {_ms(step['p99_s'])}; FULL (the default: it survives both) p50 {_ms(full['p50_s'])}, "
                f"p99 {_ms(full['p99_s'])}."
            )
    lines += [
        "For reference, Kestra 0.23.4 OSS (4 vCPUs, PostgreSQL) published 1,000/min at 0.47 s and 24 s "
        "latency at 2,000/min.",
        "",
    ]
    return lines


def cluster_section(folder: Path) -> list[str]:
    """The same flow through a PostgreSQL-backed server and its workers (cluster_*.json), with the
    SQLite server of the same run, and how soon a killed worker's task run runs again."""
    configs = [
        (
            f"PostgreSQL, {w} worker process{'es' if w > 1 else ''}"
            if w
            else "PostgreSQL, the server's own worker",
            _load(folder, f"cluster_w{w}.json"),
        )
        for w in (0, 1, 2, 4)
    ]
    configs.append(("SQLite (the same run)", _load(folder, "cluster_sqlite.json")))
    configs = [(name, data) for name, data in configs if data]
    recovery = _load(folder, "cluster_recovery.json")
    takeover = _load(folder, "server_takeover.json")
    backends = _load(folder, "backends.json")
    files = _load(folder, "shared_files.json")
    if not configs and not recovery and not takeover and not backends and not files:
        return []
    lines = [
        "## Past one machine: the benchmark flow on a PostgreSQL cluster (bench/server_load.py --postgres)",
        "",
    ]
    if configs:
        first = configs[0][1]
        lines += [
            "`bench/server_load.py --postgres URL --workers N`: the flow and client above, each run on a "
            "new PostgreSQL database (PostgreSQL 15 on the same machine, its default durability: "
            "synchronous_commit on), the server with `--no-worker` and N `tiercel worker` processes (0: "
            f"the server's own worker), {first['runs_per_rate']} run(s) of {first['seconds_per_run']:.0f} s "
            "per rate, held with every execution stored SUCCESS and "
            f"p99 < {first['p99_limit_ms']:.0f} ms. CPU is the Tiercel processes' (server and workers), "
            "not PostgreSQL's. Every process, PostgreSQL and the load generator share the same 2 cores: "
            "this machine shows what the queue costs, not how workers on more machines scale.",
            "",
            "| store and workers | rate / min | p50 | p95 | p99 | Tiercel CPU per execution | held |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, data in configs:
            for step in data["steps"]:
                cpu = [run["server_cpu_ms_per_execution"] or 0 for run in step["runs"]]
                lines.append(
                    f"| {name} | {step['rate_per_min']:,} | {_ms(step['p50_s'])} | {_ms(step['p95_s'])} | "
                    f"{_ms(step['p99_s'])} | {max(cpu):.2f} ms | {'yes' if step['held'] else 'no'} |"
                )
        lines += [
            "",
            "For reference, Kestra 0.23.4 OSS with its JDBC backend (PostgreSQL, 4 vCPUs) published "
            "1,000/min at 0.47 s.",
            "",
        ]
    if recovery:
        delays = sorted(recovery["delays_s"])
        bound = recovery["heartbeat_timeout_s"] + 2
        lines += [
            f"A worker killed with `kill -9` while it runs a task (bench/cluster_recovery.py, "
            f"{len(delays)} trials, heartbeat every 2 s, server `--heartbeat-timeout "
            f"{recovery['heartbeat_timeout_s']:.0f}`): the task run's new attempt started on another worker "
            f"{delays[len(delays) // 2]:.2f} s (median) and at most {delays[-1]:.2f} s after the kill; the "
            f"bound promised is the timeout + 2 s = {bound:.0f} s.",
            "",
        ]
    if takeover:
        lines += takeover_lines(takeover)
    if backends:
        lines += backend_lines(backends)
    if files:
        lines += shared_files_lines(files)
    return lines


def shared_files_lines(data: dict[str, Any]) -> list[str]:
    """The files of executions in PostgreSQL beside a shared folder (bench/shared_files.py)."""
    lines = [
        "The files of executions kept in PostgreSQL (bench/shared_files.py): machine a writes a file, "
        "machine b reads it a first time (fetched into its folder) and again (its copy, after one query "
        "tells it is current); beside a folder both see (`--storage` on a mount; here the same disk, "
        "the best case a mount reaches), in the same run, median and p95 per file:",
        "",
        "| size | step | database p50 | p95 | shared folder p50 | p95 | ratio (p50) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size, steps in data["sizes"].items():
        for step in ("write", "first read elsewhere", "read again"):
            db, folder = steps[f"database: {step}"], steps[f"shared folder: {step}"]
            lines.append(
                f"| {size} | {step} | {db['p50_ms']:.2f} ms | {db['p95_ms']:.2f} ms | "
                f"{folder['p50_ms']:.2f} ms | {folder['p95_ms']:.2f} ms | "
                f"{db['p50_ms'] / folder['p50_ms']:.1f}x |"
            )
    return [*lines, ""]


def backend_lines(data: dict[str, Any]) -> list[str]:
    """seq100 and fan1000 on both stores (bench/scaling.py --postgres)."""
    lines = [
        f"seq100 and fan1000 through `tiercel run` on each store (bench/scaling.py --postgres, engine time, "
        f"median of {data['runs']} alternated runs, a fresh store each run):",
        "",
        "| workload | SQLite | PostgreSQL | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for name, found in data["backends"].items():
        lite, pg = found["sqlite_s"], found["postgres_s"]
        lines.append(f"| {name} | {lite:.3f} s | {pg:.3f} s | {pg / lite:.1f}x |")
    return [*lines, ""]


def takeover_lines(data: dict[str, Any]) -> list[str]:
    """Servers killed: their executions carried on, the scheduler moving (bench/server_takeover.py)."""
    lines = []
    delays = sorted(data["takeover_delays_s"])
    if delays:
        median, worst = delays[len(delays) // 2], delays[-1]
        lines += [
            "A server killed with `kill -9` while a worker runs a task of its execution "
            f"(bench/server_takeover.py, {len(delays)} trials, two servers, `--heartbeat-timeout 10`): "
            f"the other server adopted the execution and sent its next task out {median:.2f} s (median) "
            f"and at most {worst:.2f} s after the kill (bound: the timeout + 2 s = 12 s).",
            "",
        ]
    schedule = data.get("scheduler")
    if schedule:
        late = [schedule["late_p50_s"], schedule["late_p99_s"], schedule["late_max_s"]]
        lines += [
            f"The scheduler over {schedule['seconds']:.0f} s on three servers, a flow scheduled every "
            f"second, one server killed with `kill -9` every 10-30 s ({schedule['kills']} kills, the "
            f"scheduler's own server about half the time): {schedule['slots']} slots, "
            f"{schedule['fired']} executions, {schedule['missed']} slots missed, "
            f"{schedule['fired_twice']} fired twice; a slot fired {late[0]:.2f} s after its date at the "
            f"median, {late[1]:.2f} s at p99 and {late[2]:.2f} s at most (the takeovers).",
            "",
        ]
    return lines


def scaling_section(data: dict[str, Any]) -> list[str]:
    lines = [
        "## Sequences and fan-outs as they grow (bench/scaling.py)",
        "",
        f"Engine time (the execution's stored duration), median of {data['runs']} runs, fresh database "
        "each run. A linear engine keeps the time per task flat.",
        "",
        "| workload | tasks | engine time | per task |",
        "| --- | --- | --- | --- |",
    ]
    for name, figures in data["results"].items():
        seconds, tasks = figures["seconds"], figures["tasks"]
        lines.append(f"| {name} | {tasks:,} | {seconds:.3f} s | {seconds / tasks * 1000:.3f} ms |")
    return [*lines, "", f"seq2000 / seq100 = {data['seq_ratio']:.1f} (20 when linear).", ""]


def _percentiles(figures: dict[str, float] | None) -> str:
    if not figures:
        return "-"
    return " / ".join(f"{figures[key]:.2f}" for key in ("p50_ms", "p95_ms", "p99_ms")) + " ms"


def store_reads(data: dict[str, Any]) -> list[str]:
    """The first pages and the last states, warm, in a new process and from a disk-cold cache."""
    if "namespace_warm" not in data:
        return []
    reads = (
        ("namespace", '`Store.list_executions(namespace="company")` first page (three namespaces below it)'),
        ("all", "`Store.list_executions()` first page, unfiltered"),
        ("last_states", "`Store.last_states()`: the last state of all 16 flows, one query"),
    )
    return [
        f"The dashboard's reads, p50 / p95 / p99: warm ({data['page_calls']} calls in one process), "
        f"in a new process ({data['cold_runs']} processes, each timing its first call on a store it "
        "just opened) and disk-cold (the same, after the database's files were dropped from the OS "
        "page cache with posix_fadvise(DONTNEED), so that every page it reads comes from the disk).",
        "",
        "| read | warm | new process | disk-cold |",
        "| --- | --- | --- | --- |",
        *(
            f"| {label} | {_percentiles(data.get(f'{name}_warm'))} | "
            f"{_percentiles(data.get(f'{name}_new_process'))} | {_percentiles(data.get(f'{name}_cold'))} |"
            for name, label in reads
        ),
        "",
    ]


def store_section(data: dict[str, Any]) -> list[str]:
    return [
        "## The store at scale (bench/store_scale.py)",
        "",
        f"{data['executions']:,} executions (two task runs each) and {data['log_lines']:,} log lines, "
        "written in bulk through the Store API:",
        "",
        "| measure | result |",
        "| --- | --- |",
        f"| write time | {_s(data['fill_s'])} |",
        f"| database size (with WAL) | {data['size_bytes'] / 2**20:.0f} MiB |",
        f"| `Store.list_executions` first page, first call | {data['all_first_call_ms']:.2f} ms |",
        f"| `Store.list_executions` first page (median) | {data['all_median_ms']:.2f} ms |",
        f"| first page, namespace prefix filter | {data['namespace_median_ms']:.2f} ms |",
        f"| first page, state filter | {data['state_median_ms']:.2f} ms |",
        f"| `tiercel executions` (whole process, table) | {_s(data['command_table_s'])} |",
        f"| `tiercel executions --json` (whole process) | {_s(data['command_json_s'])} |",
        f"| `tiercel executions --help` (start-up floor) | {_s(data['command_help_s'])} |",
        "",
        *store_reads(data),
    ]


def _ok(flag: bool | None) -> str:
    return "-" if flag is None else ("met" if flag else "**not met**")


def targets(
    compare: dict[str, Any] | None,
    medians: dict[str, dict[str, float | None]],
    overhead: dict[str, Any] | None,
    load: dict[str, Any] | None,
    store: dict[str, Any] | None,
    scaling: dict[str, Any] | None,
) -> list[str]:
    rows: list[tuple[str, str, bool | None]] = []

    def ratio(workload: str, tool: str) -> float | None:
        row = medians.get(workload, {})
        base, other = row.get("tiercel"), row.get(tool)
        if compare:
            entry = compare["results"].get(workload, {}).get(tool, {})
            if entry.get("timed_out") and base:
                return float(compare["timeout_s"]) / base
        return other / base if base and other else None

    for workload in ("seq100", "fan1000"):
        for tool, want in (("prefect", 20), ("dagster", 5)):
            value = ratio(workload, tool)
            rows.append(
                (
                    f"{workload}: Tiercel >= {want}x faster than {tool}",
                    "-" if value is None else f"{value:.1f}x",
                    None if value is None else value >= want,
                )
            )
    seq, empty = medians.get("seq100", {}).get("tiercel"), medians.get("empty", {}).get("tiercel")
    if seq and empty:
        per = (seq - empty) / 100 * 1000
        rows.append(
            ("overhead per trivial task < 1 ms (compare.py seq100 - empty)", f"{per:.2f} ms", per < 1)
        )
    if overhead:
        per = overhead["seq_overhead_ms"]
        rows.append(("overhead per trivial task < 1 ms (engine_overhead.py)", f"{per:.2f} ms", per < 1))
        if "shell_overhead_ms" in overhead:
            extra = overhead["shell_overhead_ms"]
            text = f"{extra:.2f} ms"
            if "shell20_bare_s" in overhead:
                shell20 = overhead["medians_s"]["shell20"]
                text += (
                    f" (shell20 {shell20:.3f} s; 20 bare `sh -c` spawns {overhead['shell20_bare_s']:.3f} s)"
                )
            rows.append(("shell20: < 5 ms per task over a bare spawn", text, extra < 5))
    logs = medians.get("logs100k", {}).get("tiercel")
    if logs is not None and compare:
        stored = compare["results"]["logs100k"]["tiercel"].get("logs_stored")
        rows.append(
            (
                "logs100k < 1 s, all lines stored",
                f"{logs:.2f} s, {stored:,} lines",
                logs < 1 and stored == 100_000,
            )
        )
    if store:
        page = store["all_median_ms"]
        rows.append(("executions list first page < 50 ms at 100k", f"{page:.2f} ms", page < 50))
        warm, fresh, cold = (store.get(f"namespace_{when}") for when in ("warm", "new_process", "cold"))
        if warm and fresh:
            worst = max(warm["p95_ms"], fresh["p95_ms"])
            rows.append(
                (
                    "namespace-filtered first page < 2 ms at 100k (p95, warm and in a new process)",
                    f"{warm['p95_ms']:.2f} ms warm, {fresh['p95_ms']:.2f} ms new process",
                    worst < 2,
                )
            )
        if cold and store.get("all_cold"):
            rows.append(
                (
                    "namespace-filtered first page < 2 ms at 100k, disk-cold (p50)",
                    f"{cold['p50_ms']:.2f} ms (unfiltered page: {store['all_cold']['p50_ms']:.2f} ms)",
                    cold["p50_ms"] < 2,
                )
            )
    if load:
        best = next((s for s in reversed(load["steps"]) if s["held"]), None)
        text = (
            f"{best['rate_per_min']:,}/min: p50 {_ms(best['p50_s'])}, p95 {_ms(best['p95_s'])}, "
            f"p99 {_ms(best['p99_s'])} (synchronous={load['synchronous']})"
            if best
            else "none"
        )
        rows.append(
            (
                "Kestra's flow through the server, client to stored SUCCESS, p99 < 100 ms at 60,000/min",
                text,
                bool(best and best["rate_per_min"] >= 60_000),
            )
        )
    if scaling:
        growth = float(scaling["seq_ratio"])
        rows.append(("seq2000 / seq100 engine time < 25 (linear: 20)", f"{growth:.1f}", growth < 25))
    # Beside 40 bare interpreter spawns timed in the same run (engine_overhead.py), when there are.
    py40 = medians.get("python40", {}).get("tiercel")
    bare40 = None
    if overhead and "python40_bare_s" in overhead:
        py40, bare40 = overhead["medians_s"]["python40"], overhead["python40_bare_s"]
    if py40 is not None:
        text = f"{py40:.2f} s" + (f" (40 bare `python -c` spawns: {bare40:.2f} s)" if bare40 else "")
        rows.append(("python40 < 0.5 s whole process", text, py40 < 0.5))
    return [
        "## Targets",
        "",
        "| target | measured | |",
        "| --- | --- | --- |",
        *(f"| {name} | {value} | {_ok(flag)} |" for name, value, flag in rows),
        "",
    ]


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    overhead = _load(folder, "overhead.json")
    compare = _load(folder, "compare.json")
    load = _load(folder, "load.json")
    normal = _load(folder, "load_normal.json")
    store = _load(folder, "store.json")
    scaling = _load(folder, "scaling.json")
    date = compare["date"] if compare else "unknown"
    lines = [
        "# Benchmark results",
        "",
        "Regenerated by `make bench` (`make bench-setup` installs the peers). Benchmarks, not tests: "
        "CI does not run them. See bench/README.md for what each script measures.",
        "",
        *machine(date),
        "",
    ]
    compare_lines, medians = compare_section(compare) if compare else ([], {})
    lines += targets(compare, medians, overhead, load, store, scaling)
    lines += compare_lines
    if overhead:
        lines += overhead_section(overhead)
    if scaling:
        lines += scaling_section(scaling)
    if load:
        lines += load_section(load, normal)
    lines += cluster_section(folder)
    if store:
        lines += store_section(store)
    notes = BENCH / "profile_notes.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
