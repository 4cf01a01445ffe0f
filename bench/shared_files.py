"""What keeping the files of executions in PostgreSQL costs, beside a folder the machines share.

Two machines' internal storages (each its own folder) share a new PostgreSQL database: machine a
writes a file, machine b reads it a first time (fetched from the database into b's folder) and again
(b's copy, once one query has told it is current). The peer, measured in the same run, is a folder
both machines see (`--storage` on a shared mount; here a folder of the same disk, so it is the best
case a mount can reach): a write, then reads. Sizes of 1 KiB (an output file), 1 MiB and 64 MiB;
times per file, median and p95, alternating the two stores.

    .venv/bin/python bench/shared_files.py [--postgres postgresql://postgres@127.0.0.1/postgres]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import psycopg

from tiercel.engine.internal_storage import Storage
from tiercel.engine.store import Store
from tiercel.engine.store.postgres.files import PostgresFiles

SIZES = {"1 KiB": (1024, 200), "1 MiB": (1024 * 1024, 30), "64 MiB": (64 * 1024 * 1024, 4)}


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(a: Storage, b: Storage, size: int, count: int, tag: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"write": [], "first read elsewhere": [], "read again": []}
    payload = os.urandom(size)
    for index in range(count):
        base = a.task_uri("bench", "files", f"{tag}{index}", "t", "r")
        uri = f"{base}/out.bin"
        found["write"].append(timed(lambda base=base: a.put_bytes(base, "out.bin", payload)))
        found["first read elsewhere"].append(timed(lambda uri=uri: b.read_bytes(uri, size + 1)))
        found["read again"].append(timed(lambda uri=uri: b.read_bytes(uri, size + 1)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1/postgres")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    database = f"tiercel_files_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = f"{args.postgres.rsplit('/', 1)[0]}/{database}?options={quote('-csearch_path=public')}"
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        asyncio.run(_create(url))
        shared = PostgresFiles(url, "tiercel bench")
        with tempfile.TemporaryDirectory(prefix="tiercel-files-") as scratch:
            folder = Path(scratch)
            in_db = Storage(folder / "a", shared=shared), Storage(folder / "b", shared=shared)
            mount = Storage(folder / "mount")
            for name, (size, count) in SIZES.items():
                times: dict[str, dict[str, list[float]]] = {"database": {}, "shared folder": {}}
                for round_ in range(2):  # alternated, half the files each
                    for store, (a, b) in (("database", in_db), ("shared folder", (mount, mount))):
                        found = measure(a, b, size, count // 2, f"{name[0]}{round_}{store[0]}")
                        for step, values in found.items():
                            times[store].setdefault(step, []).extend(values)
                for store, steps in times.items():
                    for step, values in steps.items():
                        results.setdefault(name, {})[f"{store}: {step}"] = {
                            "p50_ms": statistics.median(values) * 1000,
                            "p95_ms": percentile(values, 0.95) * 1000,
                        }
        shared.close()
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    for name, steps in results.items():
        print(name)
        for step, figures in steps.items():
            print(f"  {step:<36} p50 {figures['p50_ms']:9.2f} ms   p95 {figures['p95_ms']:9.2f} ms")
    if args.json:
        args.json.write_text(json.dumps({"sizes": results}, indent=2))


async def _create(url: str) -> None:
    await (await Store.open(url)).close()


if __name__ == "__main__":
    main()
