"""Profile `tiercel run` on the seq100 and fan1000 workloads with pyinstrument (from bench/.venv-profile).

pyinstrument is not a project dependency: `make bench-setup` installs it in its own environment, and
it is put on the path of the project's Python for the profiled process only.

    .venv/bin/python bench/profile.py [--top 30] [seq100 fan1000 ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def site_packages() -> Path:
    found = sorted((BENCH / ".venv-profile/lib").glob("python*/site-packages"))
    if not found:
        sys.exit("pyinstrument is not installed: run `make bench-setup` first")
    return found[0]


def profile(workload: str, top: int, folder: Path) -> str:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(site_packages())
    db, out = folder / f"{workload}.db", folder / f"{workload}.txt"
    command = [
        str(ROOT / ".venv/bin/python"),
        "-m",
        "pyinstrument",
        "--interval",
        "0.0002",
        "--renderer",
        "text",
        "-p",
        "flat=true",
        "-p",
        "time=percent_of_total",
        "--outfile",
        str(out),
        str(ROOT / ".venv/bin/tiercel"),
        "run",
        "--json",
        "--db",
        str(db),
        str(BENCH / "peers/tiercel" / f"{workload}.yml"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{workload} failed: {done.stderr[-2000:]}")
    lines = out.read_text().splitlines()
    body = [line for line in lines if "%" in line][:top]
    return "\n".join([f"== {workload}", *body])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("workloads", nargs="*", default=["seq100", "fan1000"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tiercel-profile-") as tmp:
        for workload in args.workloads:
            print(profile(workload, args.top, Path(tmp)))


if __name__ == "__main__":
    main()
