"""After a crash: kill the task programs an earlier engine on the same database left running.

Their records (engine.processes.record) tell which processes were theirs; engine.processes.tree
finds those still alive without ever taking an unrelated process that reuses a pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterable

from .record import ProcessRecord
from .tree import HAS_PROC, leftovers

__all__ = ["kill_leftovers"]

# Seconds between looks for processes still alive.
_POLL = 0.02


async def kill_leftovers(
    records: Iterable[ProcessRecord], *, token_prefixes: Iterable[str] = (), timeout: float = 10.0
) -> int:
    """SIGKILL every process still alive of programs an earlier engine started; return how many.

    A program's group is killed only while its leader is gone or still the process recorded (same
    start time); descendants that left the group are found by their token, by working in the task
    folder of their attempt, or as descendants of those. Processes started before the program never
    match by group or token, so a reused pid is never hit. Processes of `token_prefixes` (programs
    started just before a crash, not recorded yet) are killed too. Without /proc nothing can be
    checked and nothing is killed.
    """
    records = [record for record in records if record.start_ticks > 0]
    prefixes = [prefix for prefix in token_prefixes if prefix]
    if not HAS_PROC or not (records or prefixes):
        return 0
    groups = {record.pgid: record.start_ticks for record in records}
    tokens = {record.token: record.start_ticks for record in records}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    killed: set[int] = set()
    while True:
        live = leftovers(groups, tokens, prefixes)
        if not live:
            break
        for pid in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed |= live
        if loop.time() >= deadline:
            break
        await asyncio.sleep(_POLL)
    return len(killed)
