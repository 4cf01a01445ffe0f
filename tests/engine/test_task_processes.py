"""Task processes through a real engine: kill and timeout reach every descendant, however it left;
task programs inherit no secret variable; no rendered secret shows in any process's command line."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine.helpers import flow, logs_of, messages, one_run, run, run_flow, states
from tiercel.engine.engine import Engine
from tiercel.engine.model import StateType
from tiercel.engine.store import Store

S = StateType
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects /proc")

GRACE = 1.0
# A TERM-ignoring shell that leaves a background job with a cleared environment in a session of its
# own, and a double-forked one (its parent exits at once) with its output closed, then waits.
ESCAPING = (
    "trap '' TERM; env -i setsid sleep {n} & (env -i setsid sleep {n} > /dev/null 2>&1 &); "
    "echo started; sleep {n}"
)


def alive_with(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line holds `marker`, an unusual sleep duration."""
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


@contextlib.asynccontextmanager
async def engine_on(tmp_path: Path, source: str) -> AsyncIterator[Engine]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "f.yml").write_text(source)
    store = await Store.open(tmp_path / "t.db")
    engine = Engine(store, flows_dir=flows, kill_grace=GRACE)
    await engine.start(control=False)
    try:
        yield engine
    finally:
        await engine.stop()


async def wait_for(marker: str, count: int) -> None:
    async with asyncio.timeout(10):
        while len(alive_with(marker)) < count:
            await asyncio.sleep(0.02)


async def test_kill_reaches_a_double_forked_process_with_a_cleared_environment(tmp_path: Path) -> None:
    marker = "301.5"
    source = flow(
        f"""
        tasks:
          - id: escaping
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["{ESCAPING.format(n=marker)}"]
        """
    )
    async with engine_on(tmp_path, source) as engine:
        execution_id = await engine.trigger("ns", "f")
        await wait_for(marker, 3)
        before = len(alive_with(marker))
        started = time.monotonic()
        await engine.kill(execution_id)
        final = await asyncio.wait_for(engine.wait(execution_id), 10)
        elapsed = time.monotonic() - started
    after = alive_with(marker)
    print(
        f"kill of a TERM-ignoring tree: {elapsed:.3f} s (grace {GRACE} s); processes {before} -> {len(after)}"
    )
    assert final.state.current is S.KILLED
    assert after == []
    assert GRACE <= elapsed < GRACE + 1.0, elapsed


async def test_timeout_reaches_a_double_forked_process_with_a_cleared_environment(tmp_path: Path) -> None:
    marker = "301.25"
    source = flow(
        f"""
        tasks:
          - id: escaping
            type: io.kestra.plugin.scripts.shell.Commands
            timeout: PT1S
            commands: ["{ESCAPING.format(n=marker)}"]
        """
    )
    async with engine_on(tmp_path, source) as engine:
        started = time.monotonic()
        execution = await run(engine, "ns", "f")
        elapsed = time.monotonic() - started
        lines = messages(await logs_of(engine, execution.id))
    assert states(execution)["escaping"] is S.FAILED
    assert any("Timeout" in line for line in lines)
    assert alive_with(marker) == []
    assert elapsed < 1 + GRACE + 1.0, elapsed


async def test_what_a_finished_task_leaves_behind_is_killed(tmp_path: Path) -> None:
    marker = "301.75"
    source = flow(
        f"""
        tasks:
          - id: leaves
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["env -i setsid sleep {marker} & (env -i setsid sleep {marker} > /dev/null 2>&1 &)"]
        """
    )
    async with engine_on(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
    assert states(execution)["leaves"] is S.SUCCESS
    assert alive_with(marker) == []


SECRET = "s3cr3t-Argv-7b1d"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SECRET_API_TOKEN", base64.b64encode(SECRET.encode()).decode())
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text("FILE_TOKEN=from-the-file\n")
    monkeypatch.setenv("TIERCEL_SECRETS_FILE", str(secrets_file))


@pytest.mark.usefixtures("secret_env")
async def test_task_programs_inherit_no_secret_variable(tmp_path: Path) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: env
                type: io.kestra.plugin.scripts.shell.Commands
                env: {ASKED: "{{ secret('API_TOKEN') }}"}
                commands:
                  - 'echo "::{\\"outputs\\":{\\"names\\":\\"$(env | cut -d= -f1 | tr "\\n" " ")\\"}}::"'
                  - 'echo "::{\\"outputs\\":{\\"asked\\":\\"$ASKED\\"}}::"'
            """
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    outputs = (one_run(execution, "env").outputs or {})["vars"]
    names = outputs["names"].split()
    assert "PATH" in names
    assert not [name for name in names if name.startswith("SECRET_") or name == "TIERCEL_SECRETS_FILE"]
    assert outputs["asked"] == SECRET, "a secret the task's own env asks for still arrives"


@pytest.mark.usefixtures("secret_env")
@pytest.mark.parametrize(
    ("task_type", "extra"),
    [
        ("io.kestra.plugin.scripts.shell.Script", ""),
        ("io.kestra.plugin.scripts.shell.Commands", ""),
        ("io.kestra.plugin.scripts.shell.Commands", 'interpreter: ["/bin/bash", "-o", "pipefail", "-c"]'),
    ],
)
async def test_no_rendered_secret_shows_in_a_command_line(tmp_path: Path, task_type: str, extra: str) -> None:
    marker = "302.125"
    # The sleep is not the last command: no shell may exec it in its own place.
    lines = ["echo {{ secret('API_TOKEN') }} > /dev/null", f"sleep {marker}", "echo done"]
    body = (
        "script: |\n" + "".join(f"  {line}\n" for line in lines)
        if task_type.endswith("Script")
        else f"commands: {lines}"
    )
    source = flow(
        f"""
        tasks:
          - id: quiet
            type: {task_type}
            {extra}
            {{body}}
        """
    ).replace("{body}", body.replace("\n", "\n    "))
    async with engine_on(tmp_path, source) as engine:
        execution_id = await engine.trigger("ns", "f")
        await wait_for(marker, 1)
        command_lines = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    command_lines.append((entry / "cmdline").read_bytes())
        await engine.kill(execution_id)
        await asyncio.wait_for(engine.wait(execution_id), 10)
    assert not [line for line in command_lines if SECRET.encode() in line]
    assert alive_with(marker) == []


async def test_interpreters_keep_kestras_semantics(tmp_path: Path) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: python
                type: io.kestra.plugin.scripts.shell.Commands
                interpreter: ["python3", "-c"]
                failFast: false
                commands: ["import sys", "print('from python')"]
              - id: zero
                type: io.kestra.plugin.scripts.shell.Commands
                interpreter: ["/bin/bash", "-c"]
                beforeCommands: ["set -u"]
                commands: ['echo "zero=$0"', 'exit 3', 'echo unreachable']
            """
        ),
    )
    lines = messages(logs)
    assert states(execution)["python"] is S.SUCCESS, lines
    assert "from python" in lines
    assert "zero=/bin/bash" in lines, "the program runs in the interpreter's own shell, as with -c"
    assert "unreachable" not in lines
    assert (one_run(execution, "zero").outputs or {})["exitCode"] == 3
