"""Python tasks forked from a warm interpreter (engine.processes.forkserver) behave as spawned ones.

Each behaviour is checked on twin tasks through a real engine: the same script as a plain
python.Script (forked) and with a `beforeCommands` line (which always spawns `/bin/sh` then
`python`), their outputs and logs compared; then what only a process shows: kill and timeout reach
the task and its descendants, an engine's stop leaves no forkserver, and the cases that must be
spawned are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.engine.helpers import logs_of, one_run, run, run_flow, running_engine
from tests.waiting import HANG, until
from tiercel.engine.engine import Engine
from tiercel.engine.model import LogEntry, LogLevel, StateType
from tiercel.engine.processes.forkserver import SERVER, ForkServers, usable
from tiercel.engine.tasks.toolbox import settle_python, warm_python

pytestmark = pytest.mark.skipif(not usable(), reason="Python tasks are forked on Linux with dash as /bin/sh")

S = StateType
INFO = LogLevel.INFO
DOCKER = "io.kestra.plugin.scripts.runner.docker.Docker"

# What a script can see of the interpreter it runs in, sent back as the task's outputs.
PROBE = """
import json, os, signal, sys, threading
state = {
    "name": __name__, "file": __file__, "argv": sys.argv, "orig_argv": sys.orig_argv,
    "path": sys.path, "executable": sys.executable, "cwd": os.getcwd(),
    "env": sorted((k, v) for k, v in os.environ.items() if k != "TIERCEL_PROCESS_TOKEN"),
    "token": os.environ.get("TIERCEL_PROCESS_TOKEN", ""),
    "globals": sorted(globals()), "loader": type(__loader__).__name__,
    "spec": repr(__spec__), "package": repr(__package__), "cached": repr(__cached__),
    "flags": list(sys.flags), "fds": sorted(os.listdir("/proc/self/fd")),
    "signals": {
        int(s): str(signal.getsignal(s))
        for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)
    },
    "threads": threading.active_count(), "stdin": sys.stdin.read(),
    "stdio": [
        (s.encoding, s.errors, s.line_buffering, s.write_through, s.isatty(), type(s.buffer).__name__)
        for s in (sys.stdin, sys.stdout, sys.stderr)
    ],
    "modules": sorted(sys.modules),
    "parent": open(f"/proc/{os.getppid()}/cmdline", "rb").read().split(b"\\0")[1].decode(),
    "group": os.getpgrp() == os.getpid(),
}
print("::" + json.dumps({"outputs": {"state": state}}) + "::")
"""

# The command line of the process that started this one: the forkserver's script, or /bin/sh's `-c`.
PARENT = "import os\nprint(open(f'/proc/{os.getppid()}/cmdline', 'rb').read().split(b'\\0')[1].decode())"

# How a script ends, and the exit code a spawned `python` gives for it.
ENDINGS = {
    "normal": ("print('fine')", 0),
    "exit_3": ("import sys; sys.exit(3)", 3),
    "exit_message": ("import sys; sys.exit('bye now')", 1),
    "exit_none": ("import sys; print('x'); sys.exit()", 0),
    "uncaught": ("def f():\n    raise ValueError('boom')\nf()", 1),
    "chained": ("try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    raise KeyError('k') from e", 1),
    "syntax": ("x = (", 1),
    "interrupt": ("raise KeyboardInterrupt", 128 + signal.SIGINT),
    "killed": ("import os, signal\nprint('going', flush=True)\nos.kill(os.getpid(), signal.SIGKILL)", 137),
    "atexit": ("import atexit\natexit.register(print, 'at exit')\nprint('body')", 0),
    "thread": (
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('late', flush=True))).start()",
        0,
    ),
    "unclosed": (
        "import os\nf = open(os.environ['OUT'], 'w')\nf.write('kept')\nprint('written')",
        0,
    ),
    "stderr": ("import sys\nprint('to stderr', file=sys.stderr)", 0),
    # Modules the forkserver itself uses are the script's own to import, use and leave.
    "server_modules": (
        "import atexit, gc, select, signal, socket\na, b = socket.socketpair()\na.send(b'x')\n"
        "print(b.recv(1), select.select([b], [], [], 0)[0] == [b], signal.SIGTERM.name, gc.collect() >= 0)",
        0,
    ),
    "kestra_helper": ("from kestra import Kestra\nKestra.outputs({'k': 1})\nKestra.logger().warning('w')", 0),
    "raise_in_atexit": ("import atexit\ndef bye():\n    raise ValueError('late')\natexit.register(bye)", 0),
}


def script_task(task_id: str, script: str, *, spawned: bool = False, extra: str = "") -> str:
    """A python.Script task; `spawned` adds a harmless beforeCommands line, which always spawns."""
    before = '\n    beforeCommands: ["true"]' if spawned else ""
    return (
        f"  - id: {task_id}\n    type: io.kestra.plugin.scripts.python.Script"
        f"{before}{extra}\n    script: |\n{textwrap.indent(script.strip(), '      ')}\n"
    )


# The first Python task of a worker is spawned while its forkserver starts; the next ones are forked.
WARM_UP = script_task("warm_up", PARENT)


def twins(cases: dict[str, str], extra: str = "\n    allowFailure: true") -> str:
    tasks = WARM_UP + "".join(
        script_task(f"f_{name}", script, extra=extra)
        + script_task(f"s_{name}", script, spawned=True, extra=extra)
        for name, script in cases.items()
    )
    return f"id: twins\nnamespace: fork\ntasks:\n{tasks}"


def normalized(text: str) -> str:
    """Paths that differ between two attempts (their folders, their script files) made alike."""
    text = re.sub(r"/tmp/tiercel-task-[^/\s'\"]+", "<folder>", text)
    text = re.sub(r" at 0x[0-9a-f]+", " at <address>", text)
    return re.sub(r"\.script-\w+\.py", ".script.py", text)


def outputs_of(execution: Any, task_id: str) -> Mapping[str, Any]:
    outputs = one_run(execution, task_id).outputs
    assert outputs is not None, task_id
    return outputs


def task_logs(logs: list[LogEntry], execution: Any, task_id: str) -> list[tuple[str, str]]:
    run_id = one_run(execution, task_id).id
    return [(entry.level.value, normalized(entry.message)) for entry in logs if entry.task_run_id == run_id]


async def test_a_forked_script_sees_what_a_spawned_one_sees(tmp_path: Path) -> None:
    execution, logs = await run_flow(tmp_path, twins({"probe": PROBE}))
    assert task_logs(logs, execution, "warm_up") == [("INFO", "-c")], "spawned while the forkserver starts"
    forked = outputs_of(execution, "f_probe")["vars"]["state"]
    spawned = outputs_of(execution, "s_probe")["vars"]["state"]
    # Which way each ran: forked by the forkserver, or spawned by /bin/sh.
    assert forked.pop("parent") == str(SERVER)
    assert spawned.pop("parent") == "-c"
    # A forked child leads its own group (there is no shell in between to lead it).
    assert forked.pop("group") is True
    assert spawned.pop("group") is False
    for task_id, state in (("f_probe", forked), ("s_probe", spawned)):
        assert state.pop("token").startswith(f"{one_run(execution, task_id).id}.0."), "the attempt's token"
    assert forked["name"] == "__main__" and forked["stdin"] == ""
    assert normalized(repr(forked)) == normalized(repr(spawned))


async def test_exit_codes_tracebacks_and_shutdown_are_those_of_a_spawned_python(tmp_path: Path) -> None:
    out = tmp_path / "unclosed"
    flow = twins(
        {name: script for name, (script, _) in ENDINGS.items()},
        extra=f"\n    allowFailure: true\n    env:\n      OUT: {out}",
    )
    async with running_engine(tmp_path, flow) as engine:
        execution = await run(engine, "fork", "twins", timeout=HANG)
        logs = await logs_of(engine, execution.id)
    for name, (_, code) in ENDINGS.items():
        forked, spawned = outputs_of(execution, f"f_{name}"), outputs_of(execution, f"s_{name}")
        assert forked["exitCode"] == spawned["exitCode"] == code, name
        assert one_run(execution, f"f_{name}").state.current == one_run(execution, f"s_{name}").state.current
        assert task_logs(logs, execution, f"f_{name}") == task_logs(logs, execution, f"s_{name}"), name
    assert any("Traceback" in message for _, message in task_logs(logs, execution, "f_uncaught"))
    assert ("ERROR", "bye now") in task_logs(logs, execution, "f_exit_message")
    assert ("INFO", "late") in task_logs(logs, execution, "f_thread")
    assert out.read_text() == "kept", "a file left open is flushed at the end, as by a spawned python"


async def test_arguments_and_environment_are_each_tasks_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_HIDDEN", "c2VjcmV0")
    show = "import os, sys\nprint(sys.argv[1:], os.environ.get('ONLY_A'), os.environ.get('SECRET_HIDDEN'))"
    source = f"""
id: env
namespace: fork
tasks:
  - id: a
    type: io.kestra.plugin.scripts.python.Commands
    env:
      ONLY_A: "set for a"
    inputFiles:
      main.py: |
{textwrap.indent(show, " " * 8)}
    commands:
      - python main.py one two=2
  - id: b
    type: io.kestra.plugin.scripts.python.Script
    script: |
{textwrap.indent(show, " " * 6)}
"""
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    assert task_logs(logs, execution, "a") == [("INFO", "['one', 'two=2'] set for a None")]
    assert task_logs(logs, execution, "b") == [("INFO", "[] None None")]


def forkservers_of(pid: int) -> list[int]:
    """Live forkservers whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_bytes()
            fields = stat[stat.rfind(b")") + 2 :].split()
            if (
                fields[0] != b"Z"
                and int(fields[1]) == pid
                and str(SERVER).encode() in (entry / "cmdline").read_bytes()
            ):
                found.append(int(entry.name))
    return found


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rfind(b")") + 2 :].split()[1])


def alive_with(marker: str) -> list[int]:
    """Live processes whose command line holds `marker` (an unusual sleep duration)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_bytes()
            if stat[stat.rfind(b")") + 2 :].split()[0] == b"Z":
                continue
            if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                found.append(int(entry.name))
    return found


async def test_stopping_the_engine_stops_its_forkserver(tmp_path: Path) -> None:
    source = "id: one\nnamespace: fork\ntasks:\n" + WARM_UP + script_task("t", "print('hi')")
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "fork", "one", timeout=HANG)
        assert execution.state.current is S.SUCCESS
        assert len(forkservers_of(os.getpid())) == 1
    assert forkservers_of(os.getpid()) == []


# A task leaving a child in its group and a double-forked grandchild in a session of its own.
ESCAPING = """
import os, subprocess, time
subprocess.Popen(["sleep", "{child}"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "{grandchild}"])
    os._exit(0)
time.sleep({child})
"""


@contextlib.asynccontextmanager
async def escaping_task(
    tmp_path: Path, markers: tuple[str, str], extra: str = ""
) -> AsyncIterator[tuple[Engine, str]]:
    script = ESCAPING.format(child=markers[0], grandchild=markers[1])
    source = "id: esc\nnamespace: fork\ntasks:\n" + WARM_UP + script_task("t", script, extra=extra)
    async with running_engine(tmp_path, source) as engine:
        execution_id = await engine.trigger("fork", "esc")
        try:
            yield engine, execution_id
        finally:
            for marker in markers:
                for pid in alive_with(marker):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)


async def test_kill_reaches_a_forked_task_and_its_descendants(tmp_path: Path) -> None:
    markers = ("3171.5", "3172.5")
    async with escaping_task(tmp_path, markers) as (engine, execution_id):
        await until(lambda: all(alive_with(marker) for marker in markers), what="the task's processes")
        task = parent_of(alive_with(markers[0])[0])
        assert str(SERVER).encode() in Path(f"/proc/{parent_of(task)}/cmdline").read_bytes(), "forked"
        await engine.kill(execution_id)
        execution = await asyncio.wait_for(engine.wait(execution_id), HANG)
        assert one_run(execution, "t").state.current is S.KILLED
        assert [alive_with(marker) for marker in markers] == [[], []]
        assert not any(entry.level.value == "ERROR" for entry in await logs_of(engine, execution_id)), (
            "the end of a task killed by the engine is not reported on its stderr (nor by /bin/sh)"
        )


async def test_a_timeout_reaches_a_forked_task_and_its_descendants(tmp_path: Path) -> None:
    markers = ("3173.5", "3174.5")
    async with escaping_task(tmp_path, markers, extra="\n    timeout: PT1S") as (engine, execution_id):
        execution = await asyncio.wait_for(engine.wait(execution_id), HANG)
        logs = await logs_of(engine, execution_id)
        assert one_run(execution, "t").state.current is S.FAILED
        assert any("Timeout" in entry.message for entry in logs)
        assert [alive_with(marker) for marker in markers] == [[], []]


def parent_of_python(task_id: str, body: str) -> str:
    return f"  - id: {task_id}\n    type: io.kestra.plugin.scripts.python.Commands\n{body}"


async def test_other_interpreters_options_and_runners_are_spawned(tmp_path: Path) -> None:
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(sys.executable)
    files = f"    inputFiles:\n      main.py: |\n{textwrap.indent(PARENT, ' ' * 8)}\n"
    tasks = {
        "plain": "      - python main.py",
        "option": "      - python -u main.py",
        "quoted": "      - python 'main.py'",
        "two_commands": "      - true\n      - python main.py",
        "venv_first_on_path": f"      - python main.py\n    env:\n      PATH: {venv}:/usr/bin:/bin",
        "docker": "      - python main.py\n    taskRunner:\n      type: " + DOCKER,
    }
    source = (
        "id: ways\nnamespace: fork\ntasks:\n"
        + WARM_UP
        + "".join(
            parent_of_python(name, files + "    commands:\n" + commands + "\n")
            for name, commands in tasks.items()
        )
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS
    parents = {
        name: [message for level, message in task_logs(logs, execution, name) if level == "INFO"][-1]
        for name in tasks
    }
    assert parents == {name: str(SERVER) if name == "plain" else "-c" for name in tasks}


async def test_an_interpreter_that_cannot_serve_is_spawned_instead(tmp_path: Path) -> None:
    # An executable binary named `python` that is not Python: its forkserver never says hello.
    tools = tmp_path / "tools"
    tools.mkdir()
    true = shutil.which("true")
    assert true is not None
    shutil.copy(true, tools / "python")
    (tmp_path / "main.py").write_text("print(1)\n")
    servers = ForkServers()
    try:
        started = await servers.start(
            ["python", "main.py"], tmp_path, ["/bin/sh", "-c", "python main.py"], str(tools / "python"),
            {"PATH": str(tools)},
        )  # fmt: skip
        assert started is None
    finally:
        await servers.close()
    assert forkservers_of(os.getpid()) == []


async def test_many_python_tasks_at_once_each_get_their_own_output_and_exit_code(tmp_path: Path) -> None:
    source = f"""
id: fan
namespace: fork
tasks:
{WARM_UP}  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{{{ range(0, 40) | list }}}}"
    concurrencyLimit: 0
    tasks:
      - id: square
        type: io.kestra.plugin.scripts.python.Script
        allowFailure: true
        script: |
          import sys, time
          n = {{{{ taskrun.value }}}}
          time.sleep(0.01 * (n % 5))
          print(n * n)
          sys.exit(n % 3)
"""
    execution, logs = await run_flow(tmp_path, source)
    squares = [run for run in execution.task_runs if run.task_id == "square"]
    assert len(squares) == 41, "Pebble's range includes its end"
    for run_ in squares:
        n = int(run_.value or "")
        assert run_.outputs is not None and run_.outputs["exitCode"] == n % 3
        printed = [entry.message for entry in logs if entry.task_run_id == run_.id and entry.level == INFO]
        assert printed == [str(n * n)]


def warmed(tmp_path: Path, source: str) -> None:
    """Start the forkserver a flow file's Python tasks need, as `tiercel run` does on reading it."""
    file = tmp_path / "run" / "flow.yml"
    file.parent.mkdir(exist_ok=True)
    file.write_text(source)
    warm_python(file)


def first_task_parent(source: str) -> str:
    return f"id: first\nnamespace: fork\ntasks:\n{script_task('t', PARENT)}{source}"


async def test_a_flow_file_warmed_first_forks_its_first_python_task(tmp_path: Path) -> None:
    cold = first_task_parent("")
    execution, logs = await run_flow(tmp_path / "cold", cold)
    assert task_logs(logs, execution, "t") == [("INFO", "-c")], "spawned while the forkserver starts"
    warmed(tmp_path, cold)
    async with running_engine(tmp_path / "warm", cold) as engine:
        execution = await run(engine, "fork", "first", timeout=HANG)
        assert task_logs(await logs_of(engine, execution.id), execution, "t") == [("INFO", str(SERVER))]
        assert len(forkservers_of(os.getpid())) == 1, "the early forkserver, taken: no second one"
    assert forkservers_of(os.getpid()) == []


async def test_an_early_forkserver_no_task_takes_is_stopped_with_the_engine(tmp_path: Path) -> None:
    # The task's own PYTHONHASHSEED is read as its interpreter starts: it needs another forkserver.
    source = first_task_parent("").replace("    script:", '    env:\n      PYTHONHASHSEED: "7"\n    script:')
    warmed(tmp_path, source)
    execution, logs = await run_flow(tmp_path, source)
    assert task_logs(logs, execution, "t") == [("INFO", "-c")]
    assert forkservers_of(os.getpid()) == []


@pytest.mark.parametrize(
    "source",
    [
        "id: shell\nnamespace: fork\ntasks:\n  - id: s\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        "    commands: [python x.py]\n",
        "id: broken\nnamespace: fork\ntasks: [\n",
        "- io.kestra.plugin.scripts.python.Script\n",
    ],
    ids=["no_python_task", "broken_yaml", "a_list"],
)
def test_a_file_without_python_tasks_starts_no_forkserver(tmp_path: Path, source: str) -> None:
    warmed(tmp_path, source)
    settle_python()  # waits for a warm-up under way, if one was started
    assert forkservers_of(os.getpid()) == []


async def test_an_early_forkserver_gives_tasks_the_engines_umask_not_a_passing_one(tmp_path: Path) -> None:
    script = "import os\nmask = os.umask(0)\nprint(oct(mask))"
    source = f"id: first\nnamespace: fork\ntasks:\n{script_task('t', script)}"
    own = os.umask(0o027)
    try:
        warmed(tmp_path, source)
        os.umask(0o077)  # as the engine does for a moment while it opens its files
        settle_python()  # the warm-up has started its forkserver by then
        os.umask(0o027)
        execution, logs = await run_flow(tmp_path, source)
    finally:
        os.umask(own)
    assert task_logs(logs, execution, "t") == [("INFO", "0o27")]
