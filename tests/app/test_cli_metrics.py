"""`tiercel metrics`: the counters and timers an execution's tasks reported, as a table or as Kestra's
metric entries, read from the store beside (or without) a running engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TIERCEL = Path(sys.executable).parent / "tiercel"

FLOW = """
id: counted
namespace: acme
tasks:
  - id: extract
    type: io.kestra.plugin.scripts.python.Script
    script: |
      from kestra import Kestra
      Kestra.counter("rows", 120, {"table": "orders"})
      Kestra.timer("query", 1.25)
  - id: quiet
    type: io.kestra.plugin.core.log.Log
    message: nothing to count
"""


def tiercel(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TIERCEL_DB", "NO_COLOR")}
    return subprocess.run(
        [str(TIERCEL), *map(str, args)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_metrics_as_a_table_as_json_and_for_one_task(tmp_path: Path) -> None:
    db, flow = tmp_path / "t.db", tmp_path / "counted.yml"
    flow.write_text(FLOW.lstrip())
    ran = tiercel("run", "--db", db, flow)
    assert ran.returncode == 0, ran.stderr
    execution_id = json.loads(tiercel("executions", "--db", db, "--json").stdout)[0]["id"]

    shown = tiercel("metrics", "--db", db, execution_id[:8])  # a prefix, as everywhere
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["TASK", "NAME", "TYPE", "VALUE", "TAGS"]
    assert [line.split() for line in lines[1:] if "process." not in line] == [
        ["extract", "rows", "counter", "120", "table=orders"],
        ["extract", "query", "timer", "1.250", "s"],
    ]
    # The figures of the script's program come after what it reported.
    assert lines[3].split()[:3] == ["extract", "process.cpu.time", "timer"]
    entries = json.loads(tiercel("metrics", "--db", db, "--json", execution_id).stdout)
    entries = [e for e in entries if not e["name"].startswith("process.")]
    assert [(e["taskId"], e["name"], e["type"], e["value"], e["tags"]) for e in entries] == [
        ("extract", "rows", "counter", 120.0, {"table": "orders"}),
        ("extract", "query", "timer", 1250.0, {}),
    ]
    assert {e["executionId"] for e in entries} == {execution_id}

    none = tiercel("metrics", "--db", db, "--task", "quiet", execution_id)
    assert (none.returncode, none.stdout) == (0, "")
    assert f"no metrics for execution {execution_id}" in none.stderr
    assert json.loads(tiercel("metrics", "--db", db, "--json", "--task", "quiet", execution_id).stdout) == []

    missing = tiercel("metrics", "--db", db, "zzzzzzzzzzzzzzzzzzzzzz")
    assert missing.returncode != 0
    assert "zzzzzzzzzzzzzzzzzzzzzz" in missing.stderr
