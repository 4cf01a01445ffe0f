"""Subprocesses with real programs: line streaming, bounded memory, exit codes and killing the whole tree."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from tests.waiting import HANG
from tiercel.engine.processes.lines import LineSplitter
from tiercel.engine.processes.run import ProcessError, ProcessResult, run_process
from tiercel.engine.processes.tree import TOKEN_ENV, spawning

REPO = Path(__file__).resolve().parents[2]
LINUX = sys.platform.startswith("linux") and Path("/proc/self/environ").exists()
needs_proc = pytest.mark.skipif(not LINUX, reason="inspects /proc")


class Lines:
    """Collects what run_process delivers."""

    def __init__(self) -> None:
        self.all: list[tuple[str, bool]] = []

    def __call__(self, line: str, is_stderr: bool) -> None:
        self.all.append((line, is_stderr))

    @property
    def out(self) -> list[str]:
        return [line for line, is_stderr in self.all if not is_stderr]

    @property
    def err(self) -> list[str]:
        return [line for line, is_stderr in self.all if is_stderr]


async def run(
    argv: Sequence[str],
    lines: Lines | None = None,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    drain: Callable[[], Awaitable[None]] | None = None,
    kill_grace: float = 5.0,
    max_line_chars: int = 64 * 1024,
) -> ProcessResult:
    return await run_process(
        argv,
        cwd=cwd or Path.cwd(),
        env=env if env is not None else dict(os.environ),
        on_line=lines if lines is not None else Lines(),
        drain=drain,
        kill_grace=kill_grace,
        max_line_chars=max_line_chars,
    )


def sh(script: str) -> list[str]:
    return ["bash", "-c", script]


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (a dead child not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


def token_holders(token: str) -> list[int]:
    needle = f"{TOKEN_ENV}={token}".encode()
    holders = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes() and alive(int(entry.name)):
                holders.append(int(entry.name))
        except OSError:
            continue
    return holders


async def wait_for_line(lines: Lines, wanted: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while wanted not in lines.out:
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# Lines, exit codes, environment
# ---------------------------------------------------------------------------------------------


async def test_lines_arrive_in_order_per_stream_with_their_flag() -> None:
    script = textwrap.dedent(
        """
        import sys
        for i in range(200):
            print(f"out {i}", flush=True)
            print(f"err {i}", file=sys.stderr, flush=True)
        """
    )
    lines = Lines()
    result = await run([sys.executable, "-c", script], lines)
    assert lines.out == [f"out {i}" for i in range(200)]
    assert lines.err == [f"err {i}" for i in range(200)]
    assert (result.exit_code, result.stdout_lines, result.stderr_lines) == (0, 200, 200)


@pytest.mark.parametrize(
    ("script", "code"), [("exit 0", 0), ("exit 3", 3), ("kill -KILL $$", -signal.SIGKILL)]
)
async def test_exit_code_is_returned_as_is(script: str, code: int) -> None:
    assert (await run(sh(script))).exit_code == code


async def test_environment_is_passed_with_a_random_token(tmp_path: Path) -> None:
    lines = Lines()
    env = {"PATH": os.environ["PATH"], "GREETING": "hello world"}
    await run(sh(f'echo "$GREETING"; echo "${TOKEN_ENV}"; echo "${{HOME:-unset}}"'), lines, env=env)
    greeting, token, home = lines.out
    assert greeting == "hello world"
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert home == "unset"
    other = Lines()
    await run(sh(f'echo "${TOKEN_ENV}"'), other, env=env)
    assert other.out != [token]


async def test_working_directory_is_honoured(tmp_path: Path) -> None:
    lines = Lines()
    await run(["pwd"], lines, cwd=tmp_path)
    assert lines.out == [str(tmp_path)]


async def test_stdin_is_empty() -> None:
    lines = Lines()
    result = await run(["cat"], lines)
    assert (result.exit_code, lines.all) == (0, [])


async def test_line_endings_final_line_and_invalid_utf8() -> None:
    lines = Lines()
    result = await run(sh(r"printf 'dos\r\nbad \xff\xfe end\n\nun\rix\nlast'"), lines)
    assert lines.out == ["dos", "bad \ufffd\ufffd end", "", "un\rix", "last"]
    assert result.stdout_lines == 5


async def test_multibyte_character_split_across_writes() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        sys.stdout.buffer.write(b"caf\\xc3")
        sys.stdout.flush()
        time.sleep(0.1)
        sys.stdout.buffer.write(b"\\xa9\\n\\xe2\\x82")
        """
    )
    lines = Lines()
    await run([sys.executable, "-c", script], lines)
    assert lines.out == ["café", "\ufffd"]


# ---------------------------------------------------------------------------------------------
# Long lines and memory
# ---------------------------------------------------------------------------------------------


async def test_long_line_is_split_into_pieces_without_losing_characters() -> None:
    lines = Lines()
    script = (
        "printf '%*s' 10500 '' | tr ' ' a; printf '\\n'; printf '%*s\\r\\n' 2000 '' | tr ' ' b; echo short"
    )
    result = await run(sh(script), lines, max_line_chars=1000)
    assert [len(line) for line in lines.out] == [1000] * 10 + [500] + [1000, 1000] + [5]
    assert "".join(lines.out[:11]) == "a" * 10500
    assert "".join(lines.out[11:13]) == "b" * 2000
    assert lines.out[-1] == "short"
    assert result.stdout_lines == 14


@pytest.mark.parametrize("max_chars", [1, 3, 7])
def test_splitter_gives_the_same_lines_whatever_the_chunks(max_chars: int) -> None:
    data = "héllo wörld\r\n\r\nabcdefghij\rk\n€€€€\r".encode() + b"\xff tail"
    whole: list[str] = []
    splitter = LineSplitter(whole.append, max_chars)
    splitter.feed(data)
    splitter.close()
    by_byte: list[str] = []
    splitter = LineSplitter(by_byte.append, max_chars)
    for index in range(len(data)):
        splitter.feed(data[index : index + 1])
    splitter.close()
    assert by_byte == whole
    assert all(1 <= len(piece) <= max_chars for piece in whole if piece)
    assert "".join(whole) == "héllo wörldabcdefghij\rk€€€€\r\ufffd tail"


def test_splitter_keeps_an_output_protocol_line_whole_up_to_its_own_limit() -> None:
    lines: list[str] = []
    splitter = LineSplitter(lines.append, 8, max_protocol_chars=64)
    protocol = '::{"outputs": {"x": "' + "z" * 30 + '"}}::'
    splitter.feed(f"{protocol}\n{'a' * 20}\n::{{{'b' * 100}\n".encode())
    splitter.close()
    assert lines[0] == protocol
    assert lines[1:4] == ["a" * 8, "a" * 8, "a" * 4]  # other lines are cut at max_chars
    assert all(len(piece) <= 8 for piece in lines[4:])  # a protocol line over its limit is cut too
    assert "".join(lines[4:]) == "::{" + "b" * 100


_MEMORY_PROBE = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from pathlib import Path
    from tiercel.engine.processes.run import run_process

    def status(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise LookupError(field)

    counts = {"lines": 0, "chars": 0, "longest": 0}

    def on_line(line, is_stderr):
        counts["lines"] += 1
        counts["chars"] += len(line)
        counts["longest"] = max(counts["longest"], len(line))

    async def main():
        await run_process(["true"], cwd=Path.cwd(), env=dict(os.environ), on_line=on_line)
        before = status("VmRSS")
        await run_process(["bash", "-c", sys.argv[1]], cwd=Path.cwd(), env=dict(os.environ), on_line=on_line)
        counts["growth"] = status("VmHWM") - before
        print(json.dumps(counts))

    asyncio.run(main())
    """
)


@needs_proc
@pytest.mark.parametrize(
    ("script", "lines", "chars"),
    [
        # 100 MB in lines of 100 characters (plus newline).
        ("yes \"$(printf '%*s' 100 '' | tr ' ' x)\" | head -n 990099", 990099, 99_009_900),
        # 100 MB on a single line without a newline.
        ("head -c 100000000 /dev/zero | tr '\\0' y", 100_000_000 // (64 * 1024) + 1, 100_000_000),
    ],
    ids=["many-lines", "one-line"],
)
def test_memory_stays_bounded_with_100_mb_of_output(script: str, lines: int, chars: int) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    counts = json.loads(probe.stdout)
    assert counts["lines"] == lines
    assert counts["chars"] == chars
    assert counts["longest"] <= 64 * 1024
    assert counts["growth"] < 60 * 1024 * 1024, counts


# ---------------------------------------------------------------------------------------------
# Kill, timeout, leftovers
# ---------------------------------------------------------------------------------------------

_STUBBORN = (
    f"trap '' TERM; echo ${TOKEN_ENV}; echo $$; sleep 300 & echo $!; (setsid sleep 300 & echo $!); "
    "echo ready; printf 'last words'; sleep 300"
)


@needs_proc
async def test_cancel_kills_the_group_and_detached_token_holders() -> None:
    lines = Lines()
    task = asyncio.create_task(run(sh(_STUBBORN), lines, kill_grace=1.0))
    await wait_for_line(lines, "ready")
    token, *pids = lines.out[:4]
    assert all(alive(int(pid)) for pid in pids)
    await asyncio.sleep(0.2)  # lets "last words" reach the pipe
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    elapsed = time.monotonic() - started
    assert elapsed >= 1.0  # TERM was ignored: the kill came after the grace
    assert token_holders(token) == []
    assert not any(alive(int(pid)) for pid in pids)
    assert lines.out[-1] == "last words"


@needs_proc
async def test_a_second_cancel_does_not_cut_the_kill_short() -> None:
    lines = Lines()
    task = asyncio.create_task(run(sh(_STUBBORN), lines, kill_grace=0.5))
    await wait_for_line(lines, "ready")
    token = lines.out[0]
    task.cancel()
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert token_holders(token) == []


@needs_proc
async def test_timeout_raises_and_leaves_nothing_running() -> None:
    lines = Lines()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            await run(sh(f"echo ${TOKEN_ENV}; exec sleep 3600"), lines, kill_grace=1.0)
    assert time.monotonic() - started < HANG  # the hour-long program was killed, not waited for
    assert token_holders(lines.out[0]) == []


@needs_proc
async def test_background_children_are_killed_when_the_program_exits() -> None:
    lines = Lines()
    started = time.monotonic()
    script = f"echo ${TOKEN_ENV}; sleep 300 & echo $!; (setsid sleep 300 & echo $!); echo done"
    result = await run(sh(script), lines)
    assert time.monotonic() - started < HANG  # the children's sleeps were not waited for
    token, *pids, done = lines.out
    assert (result.exit_code, done) == (0, "done")
    assert token_holders(token) == []
    assert not any(alive(int(pid)) for pid in pids)


@needs_proc
async def test_a_pipe_held_by_a_process_outside_the_tree_does_not_block_forever(tmp_path: Path) -> None:
    lines = Lines()
    flag = tmp_path / "opened"
    # A process of the engine's own session (not the program's descendant) opens the program's stdout.
    script = f"echo $$; while [ ! -e {flag} ]; do sleep 0.01; done; echo bye"
    task = asyncio.create_task(run(sh(script), lines))
    async with asyncio.timeout(HANG):
        while not lines.out:
            await asyncio.sleep(0.01)
    hold = f"exec 3>/proc/{lines.out[0]}/fd/1; touch {flag}; exec sleep 3600"
    holder = subprocess.Popen(["sh", "-c", hold])
    try:
        # The holder keeps the pipe open for an hour: the run ends only if it does not wait for it.
        result = await asyncio.wait_for(task, HANG)
        assert result.exit_code == 0
        assert lines.out[-1] == "bye"
        assert holder.poll() is None, "a process outside the program's tree is never touched"
    finally:
        holder.kill()
        holder.wait()


ESCAPE = "env -i setsid sleep {n} & (env -i setsid sleep {n} > /dev/null 2>&1 &); "


def escaped(marker: str) -> list[int]:
    """Live processes whose command line holds `marker` (an unusual sleep duration)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.append(int(entry.name))
    return found


@needs_proc
@pytest.mark.parametrize("away", [False, True], ids=["working-in-its-folder", "holding-its-output"])
async def test_cancel_kills_double_forked_processes_with_a_cleared_environment(
    tmp_path: Path, away: bool
) -> None:
    marker = "301.125" if away else "301.0625"
    # A plain background job, and a double fork whose orphan leaves session, token and parent.
    escape = ESCAPE.format(n=marker)
    if away:
        # ... or whose orphan works in / (it still holds the program's output).
        escape = f"cd / && env -i setsid sleep {marker} & (cd / && env -i setsid sleep {marker} &); "
    lines = Lines()
    task = asyncio.create_task(
        run(sh(f"trap '' TERM; {escape}echo ready; sleep {marker}"), lines, cwd=tmp_path, kill_grace=0.5)
    )
    await wait_for_line(lines, "ready")
    async with asyncio.timeout(5):
        while len(escaped(marker)) < 3:
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert escaped(marker) == []


@needs_proc
async def test_normal_exit_kills_double_forked_processes_left_behind(tmp_path: Path) -> None:
    marker = "301.03125"
    await run(sh(f"{ESCAPE.format(n=marker)}sleep 0.2"), cwd=tmp_path)
    assert escaped(marker) == []


@needs_proc
async def test_adopted_orphans_are_reaped_and_other_children_left_alone(tmp_path: Path) -> None:
    marker = "301.015625"
    with spawning() as spawn:  # the engine's own child, registered as the engine registers its own
        other = subprocess.Popen(["sleep", "30"], start_new_session=True)
        spawn.started(other.pid)

    def zombies() -> set[int]:
        return {
            pid
            for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
            if (stat := _stat(pid)) is not None and stat[1] == os.getpid() and stat[0] == "Z"
        }

    before = zombies()  # other tests of this process may have left children of their own unreaped
    try:
        await run(sh(f"{ESCAPE.format(n=marker)}sleep 0.2"), cwd=tmp_path)
        assert zombies() - before == set()
        assert other.poll() is None
    finally:
        other.kill()
        assert other.wait() == -signal.SIGKILL, "its exit status is still its owner's to read"


@needs_proc
async def test_children_the_engine_starts_during_a_program_are_left_alone(tmp_path: Path) -> None:
    marker, stray = "301.0078125", "301.00390625"
    lines = Lines()
    task = asyncio.create_task(run(sh("echo ready; sleep 0.3"), lines, cwd=tmp_path))
    await wait_for_line(lines, "ready")
    # Both start while the program runs, in a session of their own, as children of the engine; only
    # the first is registered as the engine's own (as expression workers are).
    with spawning() as spawn:
        own = subprocess.Popen(["sleep", marker], start_new_session=True)
        spawn.started(own.pid)
    unregistered = subprocess.Popen(["sleep", stray], start_new_session=True)
    try:
        await task
        assert own.poll() is None, "the engine's own child is never touched"
        assert escaped(stray) == [], "any other child of the engine is an orphan of the program"
    finally:
        own.kill()
        assert own.wait() == -signal.SIGKILL, "its exit status is still its owner's to read"
        unregistered.kill()
        unregistered.wait()


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1])


async def test_a_failing_line_handler_stops_the_program() -> None:
    def on_line(line: str, is_stderr: bool) -> None:
        raise RuntimeError(f"cannot store {line}")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="cannot store first"):
        await run_process(
            sh("echo first; sleep 300"), cwd=Path.cwd(), env=dict(os.environ), on_line=on_line, kill_grace=1.0
        )
    assert time.monotonic() - started < HANG  # the program was stopped, not waited for


# ---------------------------------------------------------------------------------------------
# Back-pressure
# ---------------------------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import sys, time
    for i in range(2000):
        sys.stdout.write(f"{i:05d} " + "z" * 994 + "\\n")
    sys.stdout.flush()
    print(time.time(), file=sys.stderr, flush=True)
    """
)


async def test_drain_is_awaited_and_a_slow_drain_slows_the_program() -> None:
    calls = 0

    async def slow_drain() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.03)

    lines = Lines()
    started = time.time()
    result = await run([sys.executable, "-c", _WRITER], lines, drain=slow_drain)
    finished_writing = float(lines.err[0]) - started
    assert [int(line[:5]) for line in lines.out] == list(range(2000))
    assert result.stdout_lines == 2000
    # 2 MB through 64 KiB reads with 30 ms per drain: the writer blocks until most is read.
    assert calls >= 25
    assert finished_writing >= 0.5


# ---------------------------------------------------------------------------------------------
# Start failures
# ---------------------------------------------------------------------------------------------


async def test_missing_program_is_a_process_error() -> None:
    with pytest.raises(ProcessError, match="cannot start `no-such-program-xyz`"):
        await run(["no-such-program-xyz"])


async def test_program_without_execute_permission_is_a_process_error(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(ProcessError, match=r"cannot start `.*script\.sh`: Permission denied"):
        await run([str(script)])


async def test_missing_working_directory_is_a_process_error(tmp_path: Path) -> None:
    with pytest.raises(ProcessError, match=r"cannot start `pwd`: working directory .*gone"):
        await run(["pwd"], cwd=tmp_path / "gone")


def _running(marker: str) -> list[int]:
    """Live processes whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "cmdline").read_bytes():
                    stat = (entry / "stat").read_text()
                    if stat.rpartition(")")[2].split()[0] != "Z":
                        found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="reads /proc")
@pytest.mark.parametrize("steps", range(8))
async def test_a_start_cancelled_at_any_step_leaves_no_program_running(steps: int) -> None:
    marker = f"31.{os.getpid()}{steps}"
    started = asyncio.ensure_future(run(["sleep", marker], kill_grace=0.5))
    for _ in range(steps):
        await asyncio.sleep(0)
    started.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await started
    assert _running(marker) == []
