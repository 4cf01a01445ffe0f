"""The task programs a worker runs, recorded on its own machine (where they can be killed).

Each worker keeps its records in a file of a folder per store on its machine, beside a lock file it
holds (flock) while it lives. A worker starting on the machine kills the programs of every file no
live worker holds, then removes it: a worker killed with its programs running leaves none behind
once a worker starts again there. The file also names the attempts the worker runs, noted before
their first program starts, so that a program started just before its worker died, and not recorded
yet, is found by its token all the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import IO

from ..processes.leftovers import kill_leftovers
from ..processes.record import ProcessRecord


class LocalProcessBook:
    """The `ProcessBook` of a worker: a JSON file of its running programs, under its lock."""

    def __init__(self, folder: Path, worker_id: str) -> None:
        self.folder = folder
        self.records_file = folder / f"{worker_id}.json"
        self.lock_file = folder / f"{worker_id}.lock"
        self._lock: IO[bytes] | None = None
        self._records: dict[tuple[int, int], ProcessRecord] = {}
        self._attempts: set[str] = set()  # the token prefixes of the attempts running

    def open(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = self.lock_file.open("wb")
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._write()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.records_file.unlink()
            self.lock_file.unlink()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    async def kill_leftovers(self) -> int:
        """Kill the programs of the workers of this machine that died; return how many processes."""
        killed = 0
        for lock_file in sorted(self.folder.glob("*.lock")):
            if lock_file == self.lock_file:
                continue
            with lock_file.open("rb") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its worker lives
                records_file = lock_file.with_suffix(".json")
                records, attempts = _read(records_file)
                killed += await kill_leftovers(records, token_prefixes=attempts)
                with contextlib.suppress(OSError):
                    records_file.unlink()
                lock_file.unlink()
        return killed

    def note_attempt(self, token_prefix: str) -> None:
        """An attempt about to start its programs (`attempt_token_prefix`)."""
        self._attempts.add(token_prefix)
        self._write()

    def forget_attempt(self, token_prefix: str) -> None:
        if token_prefix in self._attempts:
            self._attempts.discard(token_prefix)
            self._write()

    async def record_process(self, task_run_id: str, attempt: int, process: ProcessRecord) -> None:
        self._records[(process.pid, process.start_ticks)] = process
        self._write()

    def forget_process_nowait(self, process: ProcessRecord) -> None:
        if self._records.pop((process.pid, process.start_ticks), None) is not None:
            self._write()

    def _write(self) -> None:
        rows = [[r.pid, r.pgid, r.start_ticks, r.token] for r in self._records.values()]
        partial = self.records_file.with_suffix(".part")
        partial.write_text(
            json.dumps({"processes": rows, "attempts": sorted(self._attempts)}), encoding="utf-8"
        )
        os.replace(partial, self.records_file)


def _read(records_file: Path) -> tuple[list[ProcessRecord], list[str]]:
    """The programs and the attempts' token prefixes of a records file (a list: programs only)."""
    try:
        data = json.loads(records_file.read_text(encoding="utf-8"))
        rows, attempts = (data, []) if isinstance(data, list) else (data["processes"], data["attempts"])
        return [ProcessRecord(int(a), int(b), int(c), str(d)) for a, b, c, d in rows], [
            str(x) for x in attempts
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return [], []
