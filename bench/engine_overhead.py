"""Whole-process cost of `tiercel run` on trivial flows, and the engine's overhead per task.

Workloads (generated into a temporary folder, each run on a fresh database):
  empty    one Return task: start-up, parse, store and shutdown, the baseline
  seq100   100 Return tasks in sequence, each reading the previous one's output
  each1000 a ForEach over 1,000 values with one Return task each (concurrencyLimit 0)
  shell20  20 shell tasks running `echo hi`, compared with 20 bare `sh -c "echo hi"` spawns timed
           in this process in the same run: the overhead per shell task is
           (shell20 - empty) / 20 - one bare spawn
  python40 bench/peers/tiercel/python40.yml (a ForEach over 40 values, one at a time, a python
           Script task computing fib(10)), compared with 40 bare `python -c "print(1)"` spawns of
           the interpreter the tasks use, timed in this process in the same run

Runs are alternated between workloads (a warm-up first), and medians reported, so that noise on a
shared machine hits every workload alike. Per-task overhead = (seq100 - empty) / 100.

    .venv/bin/python bench/engine_overhead.py [--runs 7] [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent

WORKLOADS: dict[str, str] = {
    "empty": """
id: empty
namespace: bench
tasks:
  - id: only
    type: io.kestra.plugin.core.debug.Return
    format: "done"
""",
    "seq100": "id: seq100\nnamespace: bench\ntasks:\n"
    + '  - id: t0\n    type: io.kestra.plugin.core.debug.Return\n    format: "0"\n'
    + "".join(
        f"  - id: t{i}\n    type: io.kestra.plugin.core.debug.Return\n"
        f'    format: "{{{{ outputs.t{i - 1}.value }}}}-{i}"\n'
        for i in range(1, 100)
    ),
    "each1000": """
id: each1000
namespace: bench
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ range(0, 1000) | list }}"
    concurrencyLimit: 0
    tasks:
      - id: item
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
""",
    "shell20": "id: shell20\nnamespace: bench\ntasks:\n"
    + "".join(
        f'  - id: s{i}\n    type: io.kestra.plugin.scripts.shell.Commands\n    commands: ["echo hi"]\n'
        for i in range(20)
    ),
    "python40": (BENCH / "peers/tiercel/python40.yml").read_text(),
}


# Measured as installed software runs: with its bytecode cached.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def bare_spawns(argv: Sequence[str], count: int) -> list[float]:
    """The times of `count` spawns of `argv`, one after the other, read with asyncio as script tasks
    are (a session of their own, stdout and stderr piped)."""

    async def once() -> float:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env=ENV,
        )
        await proc.communicate()
        return time.perf_counter() - started

    async def many() -> list[float]:
        return [await once() for _ in range(count)]

    return asyncio.run(many())


def task_python() -> str:
    """The interpreter python tasks run: `python3` on PATH as the engine finds it, past any shim."""
    found = shutil.which("python3", path=ENV.get("PATH")) or sys.executable
    done = subprocess.run(
        [found, "-c", "import sys; print(sys.executable)"],
        capture_output=True,
        text=True,
        env=ENV,
        check=True,
    )
    return done.stdout.strip() or found


def tiercel() -> str:
    found = shutil.which("tiercel", path=str(Path(sys.executable).parent))
    if not found:
        sys.exit("tiercel is not installed beside this Python: run `make setup` first")
    return found


def run_once(command: str, folder: Path, name: str) -> float:
    db = folder / f"{name}.db"
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.run(
        [command, "run", "--flows", str(folder / "flows"), "--db", str(db), "--json", "bench", name],
        capture_output=True,
        text=True,
        env=ENV,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    execution = json.loads(proc.stdout)
    if execution["state"]["current"] != "SUCCESS":
        sys.exit(f"{name} ended {execution['state']['current']}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    command = tiercel()
    with tempfile.TemporaryDirectory(prefix="tiercel-bench-") as tmp:
        folder = Path(tmp)
        (folder / "flows").mkdir()
        for name, text in WORKLOADS.items():
            (folder / "flows" / f"{name}.yml").write_text(text)
        times: dict[str, list[float]] = {name: [] for name in WORKLOADS}
        for name in WORKLOADS:  # warm-up: disk cache, bytecode
            run_once(command, folder, name)
        python = task_python()
        shells: list[list[float]] = []
        pythons: list[list[float]] = []
        for _ in range(args.runs):
            for name in WORKLOADS:
                times[name].append(run_once(command, folder, name))
            shells.append(bare_spawns(["/bin/sh", "-c", "echo hi"], 20))
            pythons.append(bare_spawns([python, "-c", "print(1)"], 40))
    medians = {name: statistics.median(values) for name, values in times.items()}
    overhead_ms = (medians["seq100"] - medians["empty"]) / 100 * 1000
    each_ms = (medians["each1000"] - medians["empty"]) / 1000 * 1000
    print(f"{'workload':<10} {'median s':>9} {'min s':>7} {'max s':>7}  (runs={args.runs})")
    for name, values in times.items():
        print(f"{name:<10} {medians[name]:>9.3f} {min(values):>7.3f} {max(values):>7.3f}")
    print(f"per-task overhead, sequential: {overhead_ms:.2f} ms  ((seq100 - empty) / 100)")
    print(f"per-task overhead, ForEach:    {each_ms:.2f} ms  ((each1000 - empty) / 1000, 1,001 task runs)")
    # Medians over the runs: of one spawn, and of the whole series (what a workload is beside).
    spawn_ms = statistics.median(statistics.median(run) for run in shells) * 1000
    shell20_bare_s = statistics.median(sum(run) for run in shells)
    shell_ms = (medians["shell20"] - medians["empty"]) / 20 * 1000
    print(f"bare spawn of sh -c 'echo hi':  {spawn_ms:.2f} ms; 20 of them: {shell20_bare_s:.3f} s")
    print(f"per shell task: {shell_ms:.2f} ms, overhead over a bare spawn: {shell_ms - spawn_ms:.2f} ms")
    python_spawn_ms = statistics.median(statistics.median(run) for run in pythons) * 1000
    python40_bare_s = statistics.median(sum(run) for run in pythons)
    python_ms = (medians["python40"] - medians["empty"]) / 40 * 1000
    print(
        f"bare spawn of {python} -c 'print(1)': {python_spawn_ms:.2f} ms; 40 of them: {python40_bare_s:.3f} s"
    )
    print(f"python40: {medians['python40']:.3f} s whole process; per python task: {python_ms:.2f} ms")
    print(f"seq100 / empty: {medians['seq100'] / medians['empty']:.2f}x")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "medians_s": medians,
                    "runs": times,
                    "seq_overhead_ms": overhead_ms,
                    "foreach_overhead_ms": each_ms,
                    "bare_spawn_ms": spawn_ms,
                    "shell_task_ms": shell_ms,
                    "shell_overhead_ms": shell_ms - spawn_ms,
                    "shell20_bare_s": shell20_bare_s,
                    "python_interpreter": python,
                    "bare_python_ms": python_spawn_ms,
                    "python40_bare_s": python40_bare_s,
                    "python_task_ms": python_ms,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
