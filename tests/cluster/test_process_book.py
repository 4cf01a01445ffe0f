"""A worker's book of its programs on its machine: what a worker starting there kills of a dead one's."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from tests.waiting import blocking_until
from tiercel.engine.cluster.processes import LocalProcessBook
from tiercel.engine.processes.record import attempt_token_prefix


def alive(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is None


async def test_a_program_started_before_it_was_recorded_is_killed_by_the_next_worker(tmp_path: Path) -> None:
    dead = LocalProcessBook(tmp_path, "dead")
    dead.open()
    prefix = attempt_token_prefix("run1", 0)
    dead.note_attempt(prefix)  # as the worker does before the attempt starts its first program
    token = prefix + secrets.token_hex(16)
    program = subprocess.Popen(
        ["sleep", "300"], env={**os.environ, "TIERCEL_PROCESS_TOKEN": token}, start_new_session=True
    )
    try:
        assert dead._lock is not None
        dead._lock.close()  # the worker dies before recording it: its lock goes, its file stays
        dead._lock = None
        other = LocalProcessBook(tmp_path, "next")
        other.open()
        try:
            assert await other.kill_leftovers() == 1
            blocking_until(lambda: not alive(program), what="the unrecorded program to end")
            assert not (tmp_path / "dead.json").exists()
        finally:
            other.close()
    finally:
        if alive(program):
            program.kill()
        program.wait()


async def test_an_ended_attempt_is_forgotten_and_a_live_workers_programs_are_left_alone(
    tmp_path: Path,
) -> None:
    live = LocalProcessBook(tmp_path, "live")
    live.open()
    prefix = attempt_token_prefix("run2", 1)
    live.note_attempt(prefix)
    token = prefix + secrets.token_hex(16)
    program = subprocess.Popen(
        ["sleep", "300"], env={**os.environ, "TIERCEL_PROCESS_TOKEN": token}, start_new_session=True
    )
    other = LocalProcessBook(tmp_path, "other")
    other.open()
    try:
        assert await other.kill_leftovers() == 0 and alive(program)  # its worker holds its lock
        live.forget_attempt(prefix)
        assert prefix not in (tmp_path / "live.json").read_text()
    finally:
        other.close()
        live.close()
        program.kill()
        program.wait()
