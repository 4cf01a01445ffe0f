"""Whole-process `tiercel run` times of this checkout against an earlier revision, in the same run.

A machine's speed changes from day to day (a shared host, another CPU), so a figure in RESULTS.md
from another day says little about a change. This installs REV in a temporary git worktree with
its own venv, then times bench/engine_overhead.py's workloads with both installs, alternated run by
run (which goes first alternates too), on fresh databases, and prints medians and head/base ratios.

    .venv/bin/python bench/versus.py --base 845b005 [--runs 7] [--workloads empty,seq100]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from engine_overhead import WORKLOADS, run_once, tiercel

REPOSITORY = Path(__file__).resolve().parents[1]


def install(revision: str, folder: Path) -> str:
    """REV checked out into `folder` with a venv of its own; the path of its `tiercel`."""
    subprocess.run(
        ["git", "-C", str(REPOSITORY), "worktree", "add", "-q", "--detach", str(folder), revision], check=True
    )
    subprocess.run([sys.executable, "-m", "venv", str(folder / ".venv")], check=True)
    subprocess.run(
        [str(folder / ".venv/bin/pip"), "install", "-q", "-e", str(folder)], check=True, capture_output=True
    )
    return str(folder / ".venv/bin/tiercel")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args()
    names = args.workloads.split(",")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        try:
            tools = {"base": install(args.base, work / "base"), "head": tiercel()}
            (work / "flows").mkdir()
            for name in names:
                (work / "flows" / f"{name}.yml").write_text(WORKLOADS[name])
            times: dict[tuple[str, str], list[float]] = {(t, n): [] for t in tools for n in names}
            for command in tools.values():  # warm-up: bytecode compiled, files cached
                for name in names:
                    run_once(command, work, name)
            for turn in range(args.runs):
                for name in names:
                    order = list(tools.items())
                    for tool, command in order if turn % 2 == 0 else reversed(order):
                        times[(tool, name)].append(run_once(command, work, name))
        finally:
            subprocess.run(
                ["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(work / "base")]
            )
    print(f"{'workload':10} {'base s':>8} {'head s':>8} {'head/base':>10}  (medians of {args.runs} runs)")
    for name in names:
        base = statistics.median(times[("base", name)])
        head = statistics.median(times[("head", name)])
        print(f"{name:10} {base:8.3f} {head:8.3f} {head / base:9.2f}x")


if __name__ == "__main__":
    main()
