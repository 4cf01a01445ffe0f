"""What `tiercel run` prints: task run lines and a live progress line on a terminal (a real pseudo-
terminal here), plain lines into a pipe, and a warning for inputs the flow does not declare."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

from tests.app.test_cli import APPROVAL, TIERCEL, clean_env, executions, run_json, tiercel, write
from tests.waiting import HANG

ERASE = "\r\x1b[K"
PROGRESS = re.compile(r"\[(\d+)/(\d+) task runs done, (\d+) running, \d+\.\d s\]")

LOOP = """
id: loop
namespace: acme
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "Hello, {{ inputs.name }}"
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: "item {{ taskrun.value }}"
"""

NO_INPUTS = """
id: bare
namespace: acme
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: hello
"""


def terminal_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in clean_env().items() if k != "NO_COLOR"}
    env["TERM"] = "xterm"
    env.update(extra)
    return env


def run_on_terminal(*args: str | Path, env: dict[str, str], stderr_too: bool = True) -> tuple[int, str, str]:
    """Run `tiercel` with stdout (and stderr, unless not `stderr_too`) on a new pseudo-terminal;
    its exit code, what the terminal received, and stderr when it went to a pipe."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))  # rows, columns
    proc = subprocess.Popen(
        [str(TIERCEL), *map(str, args)],
        stdin=slave,
        stdout=slave,
        stderr=slave if stderr_too else subprocess.PIPE,
        env=env,
    )
    os.close(slave)
    received = b""
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    _, err = proc.communicate(timeout=HANG)
    return proc.returncode, received.decode(), (err or b"").decode()


def test_run_on_a_terminal_shows_task_runs_and_a_progress_line_it_erases(
    flows_dir: Path, tmp_path: Path
) -> None:
    flow = write(flows_dir, "loop.yml", LOOP)
    code, shown, _ = run_on_terminal("run", "--db", tmp_path / "t.db", flow, env=terminal_env())
    assert code == 0, shown
    assert "Hello, world" in shown and "item b" in shown
    for label in ("greet", "each", "say[a]", "say[b]"):
        assert re.search(rf"TASK  {re.escape(label)} +started", shown), shown
        assert re.search(rf"TASK  {re.escape(label)} +\x1b\[32mSUCCESS\x1b\[0m in \d+\.\d{{3}} s", shown), (
            shown
        )
    drawn = list(PROGRESS.finditer(shown))
    assert drawn, shown
    assert drawn[-1].groups() == ("4", "4", "0")  # every task run done
    assert all(shown[m.start() - len(ERASE) : m.start()] == ERASE for m in drawn)  # redrawn in place
    # Erased at the end, before the final line.
    assert drawn[-1].end() <= shown.rindex(ERASE) < shown.index("ended \x1b[32mSUCCESS")


def test_no_color_keeps_the_progress_line_but_no_colours(flows_dir: Path, tmp_path: Path) -> None:
    flow = write(flows_dir, "loop.yml", LOOP)
    code, shown, _ = run_on_terminal("run", "--db", tmp_path / "t.db", flow, env=terminal_env(NO_COLOR="1"))
    assert code == 0, shown
    assert PROGRESS.search(shown) and ERASE in shown
    assert "\x1b[3" not in shown and "\x1b[0m" not in shown
    assert re.search(r"TASK  greet +SUCCESS in", shown), shown


def test_run_into_a_pipe_writes_plain_lines_only(flows_dir: Path, tmp_path: Path) -> None:
    flow = write(flows_dir, "loop.yml", LOOP)
    result = subprocess.run(
        [str(TIERCEL), "run", "--db", str(tmp_path / "t.db"), str(flow)],
        env=terminal_env(),
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x1b" not in result.stderr and "\r" not in result.stderr
    assert "item a" in result.stdout and "TASK" not in result.stdout
    assert re.search(r"TASK  say\[b\] +started", result.stderr), result.stderr
    assert re.search(r"TASK  each +SUCCESS in \d+\.\d{3} s", result.stderr), result.stderr
    assert not PROGRESS.search(result.stderr + result.stdout)
    # The loop ends after its task runs.
    lines = result.stderr.splitlines()
    ends = [i for i, line in enumerate(lines) if "SUCCESS in" in line and "TASK" in line]
    assert "each" in lines[ends[-1]], result.stderr


def test_run_json_on_a_terminal_prints_only_the_execution(flows_dir: Path, tmp_path: Path) -> None:
    flow = write(flows_dir, "loop.yml", LOOP)
    code, shown, err = run_on_terminal(
        "run", "--json", "--db", tmp_path / "t.db", flow, env=terminal_env(), stderr_too=False
    )
    assert code == 0, err
    assert "\x1b" not in shown
    assert json.loads(shown)["state"]["current"] == "SUCCESS"
    assert "item a" in err and "TASK" not in err


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "warning" in line]


def test_an_undeclared_input_is_warned_about_and_the_flow_runs(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    flow = write(flows_dir, "loop.yml", LOOP)
    result = tiercel("run", "--db", db, flow, "--input", "nmae=Ada")
    assert result.returncode == 0, result.stderr
    [warning] = warnings(result.stderr)
    assert "`nmae`" in warning and "acme.loop" in warning and "its inputs: name" in warning
    assert "Hello, world" in result.stdout
    assert executions(db)[0]["inputs"] == {"name": "world"}

    bare = write(flows_dir, "bare.yml", NO_INPUTS)
    code, execution = run_json(bare, "--db", db, "--input", "a=1", "--input", "b=2")
    assert code == 0 and execution["state"]["current"] == "SUCCESS"
    quiet = tiercel("run", "--db", db, flow, "--input", "name=Ada")
    assert warnings(quiet.stderr) == [] and "Hello, Ada" in quiet.stdout
    both = tiercel("run", "--db", db, bare, "--input", "a=1", "--input", "b=2")
    [warning] = warnings(both.stderr)
    assert "`a`, `b`" in warning and "declares no inputs" in warning


def test_an_undeclared_on_resume_input_is_warned_about(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    code, paused = run_json(write(flows_dir, "approval.yml", APPROVAL), "--db", db)
    assert code == 3
    result = tiercel("resume", "--db", db, paused["id"], "--input", "count=3", "--input", "extra=1")
    assert result.returncode == 0, result.stderr
    [warning] = warnings(result.stderr)
    assert "`extra`" in warning and "`wait`" in warning and "onResume inputs: count" in warning
    assert executions(db)[0]["state"]["current"] == "SUCCESS"


RETRIED = """
id: flaky
namespace: acme
retry:
  behavior: CREATE_NEW_EXECUTION
  type: constant
  interval: PT0.2S
  maxAttempt: 3
tasks:
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
"""


def test_run_follows_the_new_executions_of_a_retry(flows_dir: Path, tmp_path: Path) -> None:
    """With `behavior: CREATE_NEW_EXECUTION` each attempt is a new execution: the run shows them all
    and ends with the last one's state."""
    flow = write(flows_dir, "flaky.yml", RETRIED)
    result = tiercel("run", "--db", tmp_path / "t.db", flow, timeout=HANG)
    assert result.returncode == 1, result.stderr
    notes = re.findall(r"Execution (\w+) RETRIED: attempt (\d) is (\w+)", result.stdout + result.stderr)
    assert [attempt for _, attempt, _ in notes] == ["2", "3"]
    assert notes[0][2] == notes[1][0]  # each note names the attempt the next one follows
    assert re.search(rf"Execution {notes[1][2]} ended FAILED", result.stdout + result.stderr)
