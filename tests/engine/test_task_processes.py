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
from tests.waiting import HANG
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
    async with asyncio.timeout(HANG):
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
        final = await asyncio.wait_for(engine.wait(execution_id), HANG)
        elapsed = time.monotonic() - started
    after = alive_with(marker)
    print(
        f"kill of a TERM-ignoring tree: {elapsed:.3f} s (grace {GRACE} s); processes {before} -> {len(after)}"
    )
    assert final.state.current is S.KILLED
    assert after == []
    assert elapsed >= GRACE, elapsed  # TERM was ignored: SIGKILL came after the grace


@pytest.mark.slow
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
        # The processes sleep for an hour: the run ends in its timeout only if the task's timeout cut them.
        execution = await run(engine, "ns", "f")
        lines = messages(await logs_of(engine, execution.id))
    assert states(execution)["escaping"] is S.FAILED
    assert any("Timeout" in line for line in lines)
    assert alive_with(marker) == []


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


# A fully detached orphan: it works in /, holds no pipe of the task and has no token.
DETACHED = "(cd / && env -i setsid sh -c 'exec sleep {n}' </dev/null >/dev/null 2>&1 &)"


def detached_flow(orphan: str, foreground: str | None, extra: str = "") -> str:
    commands = [DETACHED.format(n=orphan), "trap '' TERM"]
    if foreground is not None:
        commands.append(f"sleep {foreground}")
    body = "".join(f"\n      - {command}" for command in commands)
    return flow(
        f"""
        tasks:
          - id: detached
            type: io.kestra.plugin.scripts.shell.Commands
            {extra}
            commands:{{body}}
        """
    ).replace("{body}", body)


async def test_kill_reaches_an_orphan_that_shows_nothing_of_its_task(tmp_path: Path) -> None:
    async with engine_on(tmp_path, detached_flow("3011", "3012")) as engine:
        execution_id = await engine.trigger("ns", "f")
        await wait_for("3011", 1)
        await wait_for("3012", 1)
        started = time.monotonic()
        await engine.kill(execution_id)
        final = await asyncio.wait_for(engine.wait(execution_id), HANG)
        elapsed = time.monotonic() - started
    print(f"kill of the detached-orphan task: {elapsed:.3f} s (grace {GRACE} s)")
    assert final.state.current is S.KILLED
    assert alive_with("sleep 3011") == []
    assert alive_with("sleep 3012") == []
    assert elapsed >= GRACE, elapsed  # TERM was ignored: SIGKILL came after the grace


@pytest.mark.slow
async def test_timeout_reaches_an_orphan_that_shows_nothing_of_its_task(tmp_path: Path) -> None:
    source = detached_flow("3011.25", "3012.25", extra="timeout: PT1S")
    async with engine_on(tmp_path, source) as engine:
        # The processes sleep for an hour: the run ends in its timeout only if the task's timeout cut them.
        execution = await run(engine, "ns", "f")
    assert states(execution)["detached"] is S.FAILED
    assert alive_with("3011.25") == []
    assert alive_with("3012.25") == []


async def test_an_orphan_that_shows_nothing_is_killed_at_its_tasks_end(tmp_path: Path) -> None:
    async with engine_on(tmp_path, detached_flow("3011.5", None)) as engine:
        execution = await run(engine, "ns", "f")
    assert states(execution)["detached"] is S.SUCCESS
    assert alive_with("3011.5") == []


@pytest.mark.parametrize("first", ["a", "b", "both"])
async def test_an_orphan_started_while_two_tasks_ran_dies_once_both_ended(tmp_path: Path, first: str) -> None:
    source = flow(
        """
        inputs:
          - {id: orphan, type: STRING}
          - {id: foreground, type: STRING}
        tasks:
          - id: detached
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - "(cd / && env -i setsid sh -c 'exec sleep {{ inputs.orphan }}' </dev/null >/dev/null 2>&1 &)"
              - sleep {{ inputs.foreground }}
        """
    )
    a_orphan, a_sleep, b_orphan, b_sleep = "3013.1", "3013.2", "3013.3", "3013.4"
    async with engine_on(tmp_path, source) as engine:
        # a's orphan starts while only a runs; b starts later, so b's orphan starts while both run.
        a = await engine.trigger("ns", "f", {"orphan": a_orphan, "foreground": a_sleep})
        await wait_for(a_orphan, 1)
        await wait_for(a_sleep, 1)
        await asyncio.sleep(0.05)  # a clock tick (10 ms) apart
        b = await engine.trigger("ns", "f", {"orphan": b_orphan, "foreground": b_sleep})
        await wait_for(b_orphan, 1)
        await wait_for(b_sleep, 1)
        if first == "both":
            # Each ends while the other still runs: the last to finish must claim b's orphan.
            await asyncio.gather(engine.kill(a), engine.kill(b))
            await asyncio.wait_for(asyncio.gather(engine.wait(a), engine.wait(b)), 10)
            assert alive_with(a_orphan) == []
            assert alive_with(b_orphan) == []
            return
        killed, other = (a, b) if first == "a" else (b, a)
        await engine.kill(killed)
        await asyncio.wait_for(engine.wait(killed), 10)
        if first == "a":
            assert alive_with(a_orphan) == [], "a's own orphan dies with a"
            assert alive_with(b_orphan) != [], "b's orphan may be a's or b's: it waits for b"
        else:
            assert alive_with(a_orphan) != [], "a's orphan started before b: never b's"
            assert alive_with(b_orphan) != [], "b's orphan may be a's or b's: it waits for a"
        assert alive_with(b_sleep if first == "b" else a_sleep) == []
        await engine.kill(other)
        await asyncio.wait_for(engine.wait(other), 10)
        assert alive_with(a_orphan) == []
        assert alive_with(b_orphan) == []


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
