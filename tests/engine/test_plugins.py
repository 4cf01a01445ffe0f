"""Third-party task types arrive through the `tiercel.tasks` entry point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "hello"
TIERCEL = Path(sys.executable).parent / "tiercel"
FLOW = """
id: greet
namespace: acme
tasks:
  - id: hello
    type: io.example.tasks.Hello
    name: Ada
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.hello.greeting }}"
"""


def test_a_plugin_task_type_validates_and_runs(tmp_path: Path) -> None:
    (tmp_path / "greet.yml").write_text(FLOW)
    env = {**os.environ, "PYTHONPATH": f"{PLUGIN}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = subprocess.run(
        [str(TIERCEL), "run", "--db", str(tmp_path / "t.db"), "--json", str(tmp_path / "greet.yml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    execution = json.loads(run.stdout)
    outputs = {r["taskId"]: r["outputs"] for r in execution["taskRunList"]}
    assert outputs["echo"] == {"value": "Hello Ada"}


def test_without_the_plugin_the_type_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "greet.yml").write_text(FLOW)
    check = subprocess.run(
        [str(TIERCEL), "validate", str(tmp_path / "greet.yml")], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 1
    assert "io.example.tasks.Hello" in check.stdout + check.stderr
