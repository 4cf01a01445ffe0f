"""No escape sequence from a task, a webhook or a flow file reaches the terminal through the CLI.

The real `tiercel` command runs as a subprocess; its output is read as bytes. Control characters
must arrive as `\\xNN` text, while `--json` output keeps the data byte for byte (JSON escapes them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TIERCEL = Path(sys.executable).parent / "tiercel"

# A task printing a window title, a clipboard write, a screen clear, a C1 CSI and a lone CR, then
# returning an output that holds a title sequence; a Log task echoes that output.
HOSTILE = r"""
id: hostile
namespace: acme
tasks:
  - id: shout
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - printf 'title \033]0;PWNED\007 clip \033]52;c;aGk=\033\\ clear \033[2J csi \302\233 end\n'
      - printf 'over\rwritten\n'
      - printf '::{"outputs":{"raw":"\\u001b]0;PWNED\\u0007"}}::\n'
      - >-
        printf '::{"metrics":[{"name":"m\\u001b]0;PWNED\\u0007","type":"counter","value":1,
        "tags":{"t":"\\u001b[2J"}}]}::\n'
  - id: echo
    type: io.kestra.plugin.core.log.Log
    message: "echo {{ outputs.shout.vars.raw }}"
"""
# YAML's "\e" and "\a" escapes put ESC and BEL in an id and a type: their errors quote them.
BAD_IDS = r"""
id: "bad\e]0;PWNED\a"
namespace: acme
tasks:
  - id: t
    type: "io.kestra.Nope\e[2J"
"""
RAW_CONTROLS = (b"\x1b", b"\x07", b"\r", b"\xc2\x9b")


def tiercel(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "TIERCEL_DB"}
    return subprocess.run(
        [str(TIERCEL), *map(str, args)], env=env, capture_output=True, timeout=60, check=False
    )


def assert_no_raw_controls(output: bytes) -> None:
    for raw in RAW_CONTROLS:
        assert raw not in output, f"{raw!r} reached the terminal: {output!r}"


@pytest.fixture
def hostile(flows_dir: Path) -> Path:
    path = flows_dir / "hostile.yml"
    path.write_text(HOSTILE.lstrip())
    return path


def test_run_logs_and_metrics_show_task_escapes_as_text(hostile: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    ran = tiercel("run", "--db", db, hostile)
    assert ran.returncode == 0, ran.stderr
    printed = ran.stdout + ran.stderr
    assert_no_raw_controls(printed)
    assert b"title \\x1b]0;PWNED\\x07 clip \\x1b]52;c;aGk=\\x1b\\ clear \\x1b[2J csi \\x9b end" in printed
    assert b"over\\x0dwritten" in printed
    assert b"echo \\x1b]0;PWNED\\x07" in printed
    execution_id = json.loads(tiercel("executions", "--db", db, "--json").stdout)[0]["id"]
    logs = tiercel("logs", "--db", db, execution_id)
    assert logs.returncode == 0, logs.stderr
    assert_no_raw_controls(logs.stdout + logs.stderr)
    assert b"title \\x1b]0;PWNED\\x07" in logs.stdout and b"over\\x0dwritten" in logs.stdout
    metrics = tiercel("metrics", "--db", db, execution_id)
    assert metrics.returncode == 0, metrics.stderr
    assert_no_raw_controls(metrics.stdout + metrics.stderr)
    assert b"m\\x1b]0;PWNED\\x07" in metrics.stdout and b"t=\\x1b[2J" in metrics.stdout
    listed = json.loads(tiercel("metrics", "--db", db, "--json", execution_id).stdout)
    [entry] = [found for found in listed if not found["name"].startswith("process.")]
    assert (entry["name"], entry["tags"]) == ("m\x1b]0;PWNED\x07", {"t": "\x1b[2J"})


def test_json_output_keeps_the_data_byte_for_byte(hostile: Path, tmp_path: Path) -> None:
    ran = tiercel("run", "--json", "--db", tmp_path / "t.db", hostile)
    assert ran.returncode == 0, ran.stderr
    assert_no_raw_controls(ran.stdout + ran.stderr)
    execution = json.loads(ran.stdout)
    shout = next(run for run in execution["taskRunList"] if run["taskId"] == "shout")
    assert shout["outputs"]["vars"]["raw"] == "\x1b]0;PWNED\x07"
    listed = tiercel("executions", "--db", tmp_path / "t.db", "--json")
    assert_no_raw_controls(listed.stdout)
    assert json.loads(listed.stdout)[0]["taskRunList"][0]["outputs"]["vars"]["raw"] == "\x1b]0;PWNED\x07"


def test_validate_and_flows_show_escapes_in_ids_and_types_as_text(flows_dir: Path) -> None:
    (flows_dir / "bad.yml").write_text(BAD_IDS.lstrip())
    checked = tiercel("validate", flows_dir)
    assert checked.returncode == 1
    assert_no_raw_controls(checked.stdout + checked.stderr)
    assert b"Flow id `bad\\x1b]0;PWNED\\x07`" in checked.stdout
    assert b"`io.kestra.Nope\\x1b[2J`" in checked.stdout
    listed = tiercel("flows", "--flows", flows_dir, "--db", flows_dir.parent / "none.db")
    assert_no_raw_controls(listed.stdout + listed.stderr)
    assert b"INVALID" in listed.stdout and b"bad\\x1b]0;PWNED\\x07" in listed.stdout
    as_json = tiercel("flows", "--flows", flows_dir, "--db", flows_dir.parent / "none.db", "--json")
    assert_no_raw_controls(as_json.stdout)
    assert "bad\x1b]0;PWNED\x07" in json.loads(as_json.stdout)[0]["errors"][0]
