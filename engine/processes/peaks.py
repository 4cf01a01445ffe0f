"""The peak resident memory of a running program's processes, read from /proc while they run.

The kernel's own figure (ru_maxrss, at the program's end) cannot tell a program's peak from the
size of the engine that started it (see `ResourceUsage.of`); ``VmHWM`` in ``/proc/<pid>/status`` can,
as it starts afresh when the process runs a new program, but only while the process lives: it is
sampled (after 10 ms, then at doubling waits up to every 0.1 s), so what a process reaches in its
last moments may be missed, and a program that ends within 10 ms is not seen at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource

from ..model.resources import ResourceUsage
from .tree import HAS_PROC, PROC

__all__ = ["PeakSampler", "own_peak", "resident_peak"]

# Seconds before the first look at a program's processes, doubled up to the longest wait between two:
# a short program is seen a few times, a long one ten times a second.
_FIRST_LOOK = 0.01
_INTERVAL = 0.1


def resident_peak(pid: int | str) -> int | None:
    """The peak resident memory of a process since it started its program, in bytes; None if gone."""
    try:
        with open(f"{PROC}/{pid}/status", "rb") as file:
            for line in file:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def own_peak() -> int:
    """The engine's own peak resident memory, in bytes (from rusage where there is no /proc)."""
    found = resident_peak("self") if HAS_PROC else None
    if found is None:
        found = ResourceUsage.of(resource.getrusage(resource.RUSAGE_SELF)).peak_memory
    return found or 0


def _family(pid: int) -> list[int]:
    """The process and its descendants, as their parents list them."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for thread in os.listdir(f"{PROC}/{current}/task"):
                with open(f"{PROC}/{current}/task/{thread}/children", "rb") as file:
                    pending.extend(int(child) for child in file.read().split())
    return found


class PeakSampler:
    """Samples the largest ``VmHWM`` among a program and its descendants until stopped, or until the
    program is gone (waited for)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak: int | None = None
        self._task = asyncio.ensure_future(self._sample()) if HAS_PROC else None

    async def _sample(self) -> None:
        wait = _FIRST_LOOK
        while True:
            await asyncio.sleep(wait)
            wait = min(wait * 2, _INTERVAL)
            if not os.path.exists(f"{PROC}/{self._pid}"):
                return
            for pid in _family(self._pid):
                peak = resident_peak(pid)
                # 0 while a process sets up a new program (or tears one down): nothing to go by.
                if peak and (self.peak is None or peak > self.peak):
                    self.peak = peak

    def stop(self) -> int | None:
        """Stop sampling; the largest peak seen, if any."""
        if self._task is not None:
            self._task.cancel()
        return self.peak
