"""`tiercel eval`: an expression rendered against an execution, by an engine started for it or by
the engine that owns the database (through its control channel)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from tiercel.engine.engine import Engine
from tiercel.engine.store import Store

TIERCEL = Path(sys.executable).parent / "tiercel"

FLOW = """
id: totals
namespace: acme
tasks:
  - id: extract
    type: io.kestra.plugin.core.debug.Return
    format: "{{ 6 * 7 }}"
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [x, y]
    tasks:
      - id: echo
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("TIERCEL_DB", "NO_COLOR")}


def tiercel(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TIERCEL), *map(str, args)], env=_env(), capture_output=True, text=True, timeout=60, check=False
    )


def test_eval_prints_the_result_or_the_error_with_a_caret(tmp_path: Path) -> None:
    db, flow = tmp_path / "t.db", tmp_path / "totals.yml"
    flow.write_text(FLOW.lstrip())
    assert tiercel("run", "--db", db, flow).returncode == 0
    execution_id = json.loads(tiercel("executions", "--db", db, "--json").stdout)[0]["id"]

    shown = tiercel("eval", "--db", db, execution_id[:8], "total={{ outputs.extract.value }}")
    assert (shown.returncode, shown.stdout) == (0, "total=42\n"), shown.stderr
    task = tiercel("eval", "--db", db, "--task", "echo", execution_id, "{{ task.id }}/{{ taskrun.value }}")
    assert task.stdout == "echo/y\n"  # the latest task run of the task

    failed = tiercel("eval", "--db", db, execution_id, "sum {{ outputs.extrct.value }}")
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.splitlines() == [
        "tiercel: Unable to find `extrct` used in the expression `sum {{ outputs.extrct.value }}`",
        "  sum {{ outputs.extrct.value }}",
        "                 ^",
    ]
    answer = json.loads(tiercel("eval", "--db", db, "--json", execution_id, "{{ 1 + }}").stdout)
    assert answer["result"] is None and "Unexpected end of expression" in answer["error"]
    assert answer["position"] == {"line": 1, "column": None}

    unknown = tiercel("eval", "--db", db, "--task", "nope", execution_id, "{{ 1 }}")
    assert unknown.returncode == 1 and "has no task run of task `nope`" in unknown.stderr
    escaped = tiercel("eval", "--db", db, execution_id, "{{ '\x1b[2J' }}")
    assert "\x1b" not in escaped.stdout and "\\x1b[2J" in escaped.stdout


async def test_eval_goes_to_the_engine_that_owns_the_database(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "totals.yml").write_text(FLOW.lstrip())
    db = tmp_path / "t.db"
    engine = Engine(await Store.open(db), flows_dir=flows)
    await engine.start()  # with its control channel: `tiercel eval` cannot open the store itself
    try:
        execution_id = await engine.trigger("acme", "totals")
        await engine.wait(execution_id)
        expression = "{{ outputs.echo.x.value }}{{ kv('k', errorOnMissing=false) }}"  # kv(): the engine's
        process = await asyncio.create_subprocess_exec(
            str(TIERCEL), "eval", "--db", str(db), execution_id, expression,
            env=_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await engine.stop()
    assert (process.returncode, out.decode()) == (0, "x\n"), err.decode()
