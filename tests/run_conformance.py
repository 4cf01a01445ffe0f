"""Run Kestra's conformance cases (../shared/conformance) when this checkout has them beside it.

The suite ships with the project's own machines, not with the repository: a clone elsewhere has no
`../shared`, so this says in one line that it skipped the suite and exits 0. CI checks that the
suite is present before it calls this (`.ci/run`), so it can never be skipped silently there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SUITE = Path(__file__).resolve().parent.parent.parent / "shared" / "conformance" / "run.py"


def main() -> int:
    if not SUITE.is_file():
        print(f"conformance suite skipped: {SUITE.parent} not found (it ships beside the project's checkout)")
        return 0
    # `tiercel` must resolve to the interpreter's own install (the checkout's .venv).
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run([sys.executable, str(SUITE), *sys.argv[1:]], env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
