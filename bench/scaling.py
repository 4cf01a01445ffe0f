"""Does a step cost what it changes? Engine time of sequences and fan-outs as they grow.

Workloads (generated, each run on a fresh database with `tiercel run --json`):
  seqN   N Return tasks in sequence, each returning the previous one's output (N = 100 ... 2,000)
  fanN   a ForEach over N values, all at once, one Return task each, then one reading them all

Engine time is the execution's own duration as stored (from CREATED to its end state): what the
engine spends, without the process's start-up and shutdown. A linear engine keeps the time per task
flat as N grows; the ratio seq2000 / seq100 is then about 20 (2,000 tasks against 100).

Sizes are alternated (a warm-up first) and medians reported. With --postgres, seq100 and fan1000
run on SQLite and on a fresh schema of that PostgreSQL database per run, alternated, side by side.

    .venv/bin/python bench/scaling.py [--runs 3] [--json results.json]
    .venv/bin/python bench/scaling.py --postgres postgresql://postgres@127.0.0.1/postgres [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

SEQUENCES = (100, 500, 1000, 2000)
FANOUTS = (1000, 2000, 4000)
# Measured as installed software runs: with its bytecode cached.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def sequence(size: int) -> str:
    first = '  - id: t0\n    type: io.kestra.plugin.core.debug.Return\n    format: "0"\n'
    rest = "".join(
        f"  - id: t{i}\n    type: io.kestra.plugin.core.debug.Return\n"
        f'    format: "{{{{ outputs.t{i - 1}.value }}}}"\n'
        for i in range(1, size)
    )
    return f"id: seq{size}\nnamespace: bench\ntasks:\n{first}{rest}"


def fanout(size: int) -> str:
    return f"""id: fan{size}
namespace: bench
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{{{ range(0, {size}) | list }}}}"
    concurrencyLimit: 0
    tasks:
      - id: item
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ taskrun.value }}}}"
  - id: collect
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.item | length }}}}"
"""


def engine_seconds(command: str, folder: Path, name: str, postgres: str | None = None) -> float:
    """The engine time of one run of workload `name` on a fresh store: an SQLite file, or a new
    schema of the `postgres` database (dropped after)."""
    if postgres is None:
        db = str(folder / f"{name}.db")
        for suffix in ("", "-wal", "-shm", ".lock"):
            Path(db + suffix).unlink(missing_ok=True)
        return _run(command, folder, name, db)
    import psycopg

    schema = f"bench_{os.getpid()}_{name}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        joiner = "&" if "?" in postgres else "?"
        return _run(command, folder, name, f"{postgres}{joiner}options=-csearch_path%3D{schema}")
    finally:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _run(command: str, folder: Path, name: str, db: str) -> float:
    done = subprocess.run(
        [command, "run", "--flows", str(folder / "flows"), "--db", db, "--json", "bench", name],
        capture_output=True,
        text=True,
        env=ENV,
    )
    if done.returncode != 0:
        sys.exit(f"{name} failed ({done.returncode}): {done.stderr[-2000:]}")
    state = json.loads(done.stdout)["state"]
    if state["current"] != "SUCCESS":
        sys.exit(f"{name} ended {state['current']}")
    dates = [history["date"] for history in state["histories"]]
    start, end = (datetime.fromisoformat(date.replace("Z", "+00:00")) for date in (dates[0], dates[-1]))
    return (end - start).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--postgres", help="seq100 and fan1000 on this PostgreSQL database beside SQLite")
    args = parser.parse_args()
    command = shutil.which("tiercel", path=str(Path(sys.executable).parent))
    if not command:
        sys.exit("tiercel is not installed beside this Python: run `make setup` first")
    if args.postgres:
        backends(command, args.postgres, args.runs, args.json)
        return
    workloads = {f"seq{n}": (n, sequence(n)) for n in SEQUENCES}
    workloads |= {f"fan{n}": (n, fanout(n)) for n in FANOUTS}
    with tempfile.TemporaryDirectory(prefix="tiercel-scaling-") as tmp:
        folder = Path(tmp)
        (folder / "flows").mkdir()
        for name, (_, text) in workloads.items():
            (folder / "flows" / f"{name}.yml").write_text(text)
        engine_seconds(command, folder, "seq100")  # warm-up: disk cache, bytecode
        times: dict[str, list[float]] = {name: [] for name in workloads}
        for _ in range(args.runs):
            for name in workloads:
                times[name].append(engine_seconds(command, folder, name))
    results = {}
    print(f"{'workload':<10} {'tasks':>6} {'engine time':>12} {'per task':>10}")
    for name, (size, _) in workloads.items():
        median = statistics.median(times[name])
        results[name] = {"tasks": size, "seconds": median, "runs": times[name]}
        print(f"{name:<10} {size:>6} {median:>10.3f} s {median / size * 1000:>7.3f} ms")
    ratio = results["seq2000"]["seconds"] / results["seq100"]["seconds"]
    print(f"seq2000 / seq100 = {ratio:.1f} (20 when linear)")
    if args.json:
        args.json.write_text(
            json.dumps({"runs": args.runs, "results": results, "seq_ratio": ratio}, indent=2)
        )


def backends(command: str, postgres: str, runs: int, out: Path | None) -> None:
    """seq100 and fan1000 on SQLite and on PostgreSQL, alternated run by run."""
    workloads = {"seq100": sequence(100), "fan1000": fanout(1000)}
    times: dict[str, dict[str, list[float]]] = {name: {"sqlite": [], "postgres": []} for name in workloads}
    with tempfile.TemporaryDirectory(prefix="tiercel-backends-") as tmp:
        folder = Path(tmp)
        (folder / "flows").mkdir()
        for name, text in workloads.items():
            (folder / "flows" / f"{name}.yml").write_text(text)
        engine_seconds(command, folder, "seq100")  # warm-up
        engine_seconds(command, folder, "seq100", postgres)
        for _ in range(runs):
            for name in workloads:
                times[name]["sqlite"].append(engine_seconds(command, folder, name))
                times[name]["postgres"].append(engine_seconds(command, folder, name, postgres))
    print(f"{'workload':<10} {'SQLite':>10} {'PostgreSQL':>12} {'ratio':>7}")
    results = {}
    for name in workloads:
        lite, pg = (statistics.median(times[name][backend]) for backend in ("sqlite", "postgres"))
        results[name] = {"sqlite_s": lite, "postgres_s": pg, "runs": times[name]}
        print(f"{name:<10} {lite:>8.3f} s {pg:>10.3f} s {pg / lite:>6.1f}x")
    if out:
        out.write_text(json.dumps({"runs": runs, "backends": results}, indent=2))


if __name__ == "__main__":
    main()
