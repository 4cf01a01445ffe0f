"""Rows per second through the plugin families, beside plain Python doing the same reading.

A table of N rows (default 1,000,000: an integer, a text, a numeric(10,2) and a timestamp with a time
zone) in PostgreSQL and in an SQLite file, and the same rows as a CSV file. Each workload runs a real
`tiercel run` of a one-task flow; its figure is the task run's duration (from `--json`), what the user
waits on past the process's start. The baselines, in the same run and process kind:

| workload | Tiercel | baseline (rows discarded) |
| --- | --- | --- |
| postgresql | jdbc.postgresql.Query, fetchType STORE (an Ion file) | psycopg's server-side fetch loop |
| sqlite | jdbc.sqlite.Query, fetchType STORE | sqlite3's own fetch loop |
| csv | serdes.csv.CsvToIon | the csv module's reader over the file |

The baselines only read: the ratio is what converting each value as Kestra does and writing it as Ion
text costs on top of the driver. Rows per second and the ratio, median of --runs (alternating).

    .venv/bin/python bench/plugin_rows.py [--rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
TIERCEL = ROOT / ".venv/bin/tiercel"
PG = "host=127.0.0.1 port=5432 dbname=test user=postgres"
COLUMNS = "id int, name text, amount numeric(10,2), created timestamptz"


def flow(task: str) -> str:
    head = "id: rows\nnamespace: bench\ninputs:\n  - id: file\n    type: FILE\n    required: false\n"
    return f"{head}tasks:\n{task}"


def task_seconds(folder: Path, source: str, inputs: list[str]) -> float:
    """Run the flow with `tiercel run --json`: the task run's duration, from its state history."""
    path = folder / "rows.yml"
    path.write_text(source)
    database = folder / f"{uuid.uuid4().hex}.db"
    done = subprocess.run(
        [str(TIERCEL), "run", "--db", str(database), "--json", *inputs, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"tiercel run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    run = json.loads(done.stdout)["taskRunList"][0]
    history = run["state"]["histories"]
    started = datetime.fromisoformat(history[0]["date"])
    ended = datetime.fromisoformat(history[-1]["date"])
    return (ended - started).total_seconds()


def timed(work: Callable[[], int]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def prepare(folder: Path, rows: int, table: str) -> tuple[Path, Path]:
    """The rows in PostgreSQL, in an SQLite file and in a CSV file."""
    with psycopg.connect(PG, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {table} ({COLUMNS})")
        connection.execute(
            f"INSERT INTO {table} SELECT i, 'name ' || i, i * 0.25, "
            "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' FROM generate_series(1, %s) i",
            (rows,),
        )
    sqlite_file, csv_file = folder / "rows.sqlite", folder / "rows.csv"
    database = sqlite3.connect(sqlite_file)
    database.execute("CREATE TABLE t (id INTEGER, name TEXT, amount NUMERIC, created DATETIME)")
    with psycopg.connect(PG) as connection, csv_file.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "name", "amount", "created"])
        cursor = connection.cursor(name="export")
        created = "to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
        cursor.execute(f"SELECT id, name, amount, {created} FROM {table}")
        while batch := cursor.fetchmany(10000):
            writer.writerows(batch)
            database.executemany(
                "INSERT INTO t VALUES (?, ?, ?, ?)", [(i, n, float(a), c) for i, n, a, c in batch]
            )
    database.commit()
    database.close()
    return sqlite_file, csv_file


def baselines(table: str, sqlite_file: Path, csv_file: Path) -> dict[str, Callable[[], int]]:
    def postgresql() -> int:
        count = 0
        with psycopg.connect(PG) as connection:
            cursor = connection.cursor(name="baseline")
            cursor.itersize = 10000
            cursor.execute(f"SELECT * FROM {table}")
            for _ in cursor:
                count += 1
        return count

    def sqlite() -> int:
        database = sqlite3.connect(sqlite_file)
        count = sum(1 for _ in database.execute("SELECT * FROM t"))
        database.close()
        return count

    def csv_reader() -> int:
        with csv_file.open(newline="") as source:
            return sum(1 for _ in csv.reader(source)) - 1

    return {"postgresql": postgresql, "sqlite": sqlite, "csv": csv_reader}


def tiercel_flows(table: str, sqlite_file: Path) -> dict[str, str]:
    return {
        "postgresql": flow(
            "  - id: q\n    type: io.kestra.plugin.jdbc.postgresql.Query\n"
            "    url: jdbc:postgresql://127.0.0.1:5432/test\n    username: postgres\n"
            f"    sql: SELECT * FROM {table}\n    fetchType: STORE\n"
        ),
        "sqlite": flow(
            f"  - id: q\n    type: io.kestra.plugin.jdbc.sqlite.Query\n    url: jdbc:sqlite:{sqlite_file}\n"
            "    sql: SELECT * FROM t\n    fetchType: STORE\n"
        ),
        "csv": flow(
            '  - id: q\n    type: io.kestra.plugin.serdes.csv.CsvToIon\n    from: "{{ inputs.file }}"\n'
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    table = f"bench_rows_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="tiercel-bench-rows-") as scratch:
        folder = Path(scratch)
        try:
            sqlite_file, csv_file = prepare(folder, args.rows, table)
            plain = baselines(table, sqlite_file, csv_file)
            flows = tiercel_flows(table, sqlite_file)
            results: dict[str, dict[str, float]] = {}
            for name in plain:
                inputs = ["--input", f"file={csv_file}"] if name == "csv" else []
                base, ours = [], []
                for _ in range(args.runs):
                    base.append(timed(plain[name]))
                    ours.append(task_seconds(folder, flows[name], inputs))
                base_s, ours_s = statistics.median(base), statistics.median(ours)
                results[name] = {
                    "baseline_rows_per_s": args.rows / base_s,
                    "tiercel_rows_per_s": args.rows / ours_s,
                    "ratio": ours_s / base_s,
                }
                print(
                    f"{name:10} baseline {args.rows / base_s:>12,.0f} rows/s"
                    f"   tiercel {args.rows / ours_s:>10,.0f} rows/s"
                    f"   ({ours_s / base_s:.1f}x the baseline's time; medians of {args.runs})"
                )
        finally:
            with psycopg.connect(PG, autocommit=True) as connection:
                connection.execute(f"DROP TABLE IF EXISTS {table}")
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "runs": args.runs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
