"""Does a step cost what it changes? Engine time of sequences and fan-outs as they grow.

Workloads (generated, each run on a fresh database with `tiercel run --json`):
  seqN   N Return tasks in sequence, each returning the previous one's output (N = 100 ... 2,000)
  fanN   a ForEach over N values, all at once, one Return task each, then one reading them all

Engine time is the execution's own duration as stored (from CREATED to its end state): what the
engine spends, without the process's start-up and shutdown. A linear engine keeps the time per task
flat as N grows; the ratio seq2000 / seq100 is then about 20 (2,000 tasks against 100).

Sizes are alternated (a warm-up first) and medians reported.

    .venv/bin/python bench/scaling.py [--runs 3] [--json results.json]
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


def engine_seconds(command: str, folder: Path, name: str) -> float:
    db = folder / f"{name}.db"
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    done = subprocess.run(
        [command, "run", "--flows", str(folder / "flows"), "--db", str(db), "--json", "bench", name],
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
    args = parser.parse_args()
    command = shutil.which("tiercel", path=str(Path(sys.executable).parent))
    if not command:
        sys.exit("tiercel is not installed beside this Python: run `make setup` first")
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


if __name__ == "__main__":
    main()
