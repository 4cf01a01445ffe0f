"""Run a command as a whole process and measure its wall time and the peak memory of its process tree.

Peak memory is the larger of two figures: the sum of the resident set sizes of the process and all
its descendants, sampled from /proc every few milliseconds (this catches helper processes such as
Prefect's temporary API server), and the process's own high-water mark (VmHWM) at its last sample
(this catches a peak between two samples). Not `ru_maxrss` from wait4: Linux carries the peak of
the process a child was forked from across its exec, so it would report the benchmark's own size.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE")
TIMED_OUT = -1000


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found.extend(int(child) for child in text.split())
    except OSError:
        pass
    return found


def _rss(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * _PAGE


def high_water(pid: int) -> int:
    """The peak resident set size of `pid` since its exec, in bytes (0 once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(root: int) -> int:
    """The summed resident set size of `root` and its live descendants, in bytes."""
    total, pending, seen = 0, [root], set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _rss(pid)
        pending.extend(_children(pid))
    return total


def measure(
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    interval: float = 0.02,
) -> Measured:
    """Run `command` to its end; its output is captured in temporary files, not pipes."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=cwd)
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, tree_rss(proc.pid), high_water(proc.pid))
                stop.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout, proc.kill) if timeout is not None else None
        if killer is not None:
            killer.start()
        _, status, _ = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        if killer is not None:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
        timed_out = timeout is not None and elapsed >= timeout
        out.seek(0)
        err.seek(0)
        return Measured(
            seconds=elapsed,
            peak_rss_bytes=peak,
            returncode=TIMED_OUT if timed_out else proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )
