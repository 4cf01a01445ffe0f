"""`tiercel logs` streams a log in batches: every line once and in order, with its filters and --follow."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.reliability.large_logs import append, create, message
from tiercel.engine.model import StateType, utcnow
from tiercel.engine.store import LOG_BATCH, Store

TIERCEL = Path(sys.executable).parent / "tiercel"
LINES = 2 * LOG_BATCH + 17


def messages(stdout: str) -> list[str]:
    return [line.split(None, 3)[3] for line in stdout.splitlines()]


async def test_every_line_once_in_order_across_batches(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    execution_id = await create(db, LINES)
    every = subprocess.run(
        [TIERCEL, "logs", "--db", db, execution_id], capture_output=True, text=True, timeout=120
    )
    assert every.returncode == 0, every.stderr
    assert messages(every.stdout) == [message(index) for index in range(LINES)]

    errors = subprocess.run(
        [TIERCEL, "logs", "--db", db, "--level", "ERROR", execution_id], capture_output=True, text=True
    )
    assert messages(errors.stdout) == [message(index) for index in range(999, LINES, 1000)]
    load = subprocess.run(
        [TIERCEL, "logs", "--db", db, "--task", "load", execution_id], capture_output=True, text=True
    )
    assert messages(load.stdout) == [message(index) for index in range(2, LINES, 3)]


async def test_follow_streams_new_lines_until_the_execution_ends(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    execution_id = await create(db, LOG_BATCH + 3, running=True)
    follower = subprocess.Popen(
        [TIERCEL, "logs", "--db", db, "--follow", execution_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        first = follower.stdout.readline()
        assert first.rstrip("\n").endswith(message(0))
        append(db, execution_id, LOG_BATCH + 3, LINES - LOG_BATCH - 3)
        time.sleep(0.5)
        async with await Store.open(db) as store:
            execution = await store.get_execution(execution_id)
            assert execution is not None
            await store.save_execution(execution.to(StateType.SUCCESS, utcnow()))
        out = follower.stdout.read()  # to the end: the command exits once the execution ended
        follower.wait(timeout=60)
        err = follower.stderr.read() if follower.stderr is not None else ""
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    assert messages(first + out) == [message(index) for index in range(LINES)]


async def test_a_reader_that_leaves_early_ends_the_command_quietly(tmp_path: Path) -> None:
    # `tiercel logs ID | head -1` on a log of several batches: the next batch is being read when the
    # write fails, and that read must end with the command, not as an error printed after it.
    db = tmp_path / "t.db"
    execution_id = await create(db, LINES)
    logs = subprocess.Popen(
        [TIERCEL, "logs", "--db", db, execution_id], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert logs.stdout is not None and logs.stderr is not None
    assert logs.stdout.readline().rstrip(b"\n").endswith(message(0).encode())
    logs.stdout.close()  # the reader leaves, as `head -1` does
    errors = logs.stderr.read().decode()
    assert logs.wait(timeout=60) == 128 + signal.SIGPIPE  # as a program stopped by SIGPIPE
    assert errors == ""
