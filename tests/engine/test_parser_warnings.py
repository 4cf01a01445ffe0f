"""What a flow asks for that this engine accepts but does not do is a validation warning.

The flow stays valid (it runs here and on Kestra), and `tiercel validate` / `tiercel run` say, at the
property's line, what happens instead: a Docker or cloud task runner runs the script as a local
process, dependencies are not installed, flow `checks` are not evaluated.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tiercel.engine.parser import parse_flow

FLOW = """\
id: w
namespace: ns
checks:
  - {condition: "{{ true }}", message: hi}
tasks:
  - id: py
    type: io.kestra.plugin.scripts.python.Script
    containerImage: python:3.11
    dependencies: [pandas]
    taskRunner:
      type: io.kestra.plugin.scripts.runner.docker.Docker
    script: print("hello")
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner: {type: io.kestra.plugin.core.runner.Process}
    logToFile: false
    commands: [echo ok]
"""


def test_each_unhonoured_property_is_a_warning_at_its_line() -> None:
    flow = parse_flow(FLOW, "w.yml")
    assert [warning.split(": ", 2)[:2] for warning in flow.warnings] == [
        ["w.yml:3:1", "checks"],
        ["w.yml:8:5", "tasks[0].containerImage"],
        ["w.yml:9:5", "tasks[0].dependencies"],
        ["w.yml:11:7", "tasks[0].taskRunner"],
    ]
    assert "runs as a local process" in flow.warnings[3]
    assert "installed" in flow.warnings[2]


def test_a_flow_that_asks_for_nothing_else_has_no_warning() -> None:
    flow = parse_flow(
        FLOW.split("checks:")[0] + "tasks:\n  - {id: t, type: io.kestra.plugin.core.log.Log, message: x}\n"
    )
    assert flow.warnings == ()


def test_validate_prints_the_warnings_and_still_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "w.yml"
    path.write_text(FLOW)
    done = subprocess.run(
        [sys.executable, "-m", "tiercel.app.cli.main", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"OK {path} (ns.w)"
    assert sum(line.startswith(f"warning: {path}:") for line in lines) == 4


def test_the_common_properties_of_kestras_task_are_accepted_with_a_warning() -> None:
    """Kestra's Task has `assets` and `pluginDefaultsRef`; this engine does neither."""
    task = (
        "  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: x\n"
        "    assets: {inputs: []}\n    pluginDefaultsRef: team\n"
    )
    flow = parse_flow("id: c\nnamespace: ns\ntasks:\n" + task, "c.yml")
    assert [warning.split(": ")[1] for warning in flow.warnings] == [
        "tasks[0].assets",
        "tasks[0].pluginDefaultsRef",
    ]


def test_a_subflow_schedule_date_is_a_warning() -> None:
    """Kestra's Subflow and ForEachItem `scheduleDate` holds the child execution until that date;
    here the child starts at once, and validation says so at the property."""
    tasks = (
        "  - id: sub\n    type: io.kestra.plugin.core.flow.Subflow\n    namespace: ns\n    flowId: child\n"
        "    scheduleDate: \"{{ now() | dateAdd(1, 'HOURS') }}\"\n"
        '  - id: each\n    type: io.kestra.plugin.core.flow.ForEachItem\n    items: "{{ inputs.f }}"\n'
        "    namespace: ns\n    flowId: child\n    scheduleDate: '2030-01-01T00:00:00Z'\n"
    )
    flow = parse_flow("id: c\nnamespace: ns\ntasks:\n" + tasks, "c.yml")
    assert [warning.split(": ")[:2] for warning in flow.warnings] == [
        ["c.yml:8:5", "tasks[0].scheduleDate"],
        ["c.yml:14:5", "tasks[1].scheduleDate"],
    ]
    assert all("starts at once" in warning for warning in flow.warnings)
