"""What a task's programs used: CPU time and peak memory, as the kernel accounts them."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CPU_TIME_METRIC", "PEAK_MEMORY_METRIC", "ResourceUsage", "memory_text"]

# The metrics every attempt that ran programs reports: a timer, and a counter of bytes.
CPU_TIME_METRIC = "process.cpu.time"
PEAK_MEMORY_METRIC = "process.memory.peak"
# ru_maxrss is in kibibytes on Linux, in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


@dataclass(frozen=True, slots=True)
class ResourceUsage:
    """The resources one attempt's programs used.

    Attributes:
        cpu_seconds: User and system CPU time of all of its processes together (each counted once it
            has been waited for).
        peak_memory: The peak resident memory of its largest process, in bytes (what ``time -v`` calls
            the maximum resident set size); None when it is not known.
    """

    cpu_seconds: float
    peak_memory: int | None

    @staticmethod
    def of(rusage: Any, baseline: int = 0) -> ResourceUsage:
        """From a `resource.struct_rusage` (what `os.wait4` gives).

        A program's ru_maxrss is at least the resident size of the process that started it, which
        the kernel counts as the program's own when it replaces that process: a figure not above
        `baseline` (that size) says nothing of the program, and the peak is left unknown.
        """
        peak = int(rusage.ru_maxrss) * _MAXRSS_UNIT
        return ResourceUsage(rusage.ru_utime + rusage.ru_stime, peak if peak > baseline else None)

    @staticmethod
    def parse(utime: str, stime: str, maxrss: str) -> ResourceUsage:
        """From the three figures a forkserver reports (seconds, seconds, ru_maxrss's unit)."""
        return ResourceUsage(float(utime) + float(stime), int(maxrss) * _MAXRSS_UNIT)

    def __add__(self, other: ResourceUsage) -> ResourceUsage:
        """Two sets of processes together: their CPU times add up, the larger peak stays."""
        peak = _larger(self.peak_memory, other.peak_memory)
        return ResourceUsage(self.cpu_seconds + other.cpu_seconds, peak)

    def with_peak(self, peak: int | None) -> ResourceUsage:
        """With a peak seen otherwise (sampled while it ran), if larger."""
        return ResourceUsage(self.cpu_seconds, _larger(self.peak_memory, peak))

    @property
    def cpu_text(self) -> str:
        """``0.42s``, ``12.3s``, ``2m05s``, ``3h07m``: at most six characters."""
        seconds = self.cpu_seconds
        if seconds < 60:
            return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
        minutes, rest = divmod(round(seconds), 60)
        if minutes < 60:
            return f"{minutes}m{rest:02d}s"
        hours, minutes = divmod(minutes, 60)
        return f"{hours}h{minutes:02d}m" if hours < 100 else f"{hours}h"

    @property
    def memory_text(self) -> str:
        return memory_text(self.peak_memory)

    def described(self) -> str:
        """``cpu 0.42s, peak 38M``: what the log, the CLI and the dashboard say of it."""
        return f"cpu {self.cpu_text}, peak {self.memory_text}"

    def to_json(self) -> dict[str, Any]:
        return {"cpuSeconds": round(self.cpu_seconds, 6), "peakMemoryBytes": self.peak_memory}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> ResourceUsage:
        peak = data.get("peakMemoryBytes")
        return ResourceUsage(float(data.get("cpuSeconds") or 0.0), int(peak) if peak is not None else None)


def memory_text(size: int | None) -> str:
    """A size as the figures show it: ``900K``, ``38M``, ``1.2G`` (binary units); ``-`` when unknown."""
    if size is None:
        return "-"
    scaled = float(size)
    for unit in ("K", "M", "G", "T"):
        scaled /= 1024
        if scaled < 1024 or unit == "T":
            break
    return f"{scaled:.1f}{unit}" if scaled < 10 else f"{scaled:.0f}{unit}"


def _larger(one: int | None, other: int | None) -> int | None:
    if one is None or other is None:
        return other if one is None else one
    return max(one, other)
