"""Per task of a flow, over its last executions: how long its runs took and what their programs used.

The flow history shows it as a table ("Monitor task durations", as the founding article asks): runs,
the median and 95th percentile of the durations, of the CPU time, and of the peak memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tiercel.engine import Execution, memory_text, visible

from .charts import percentile, short_duration

COLUMNS = ("task", "runs", "p50", "p95", "cpu p50", "cpu p95", "peak p50", "peak max")


@dataclass
class TaskFigures:
    """One task's figures over the task runs given (each ended task run counted once)."""

    task_id: str
    durations: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peaks: list[float] = field(default_factory=list)

    def cells(self) -> tuple[str, ...]:
        def seconds(fraction: float, values: list[float]) -> str:
            found = percentile(values, fraction)
            return short_duration(found) if found is not None else "-"

        def memory(fraction: float) -> str:
            found = percentile(self.peaks, fraction)
            return memory_text(int(found)) if found is not None else "-"

        return (
            visible(self.task_id),
            str(len(self.durations)),
            seconds(0.5, self.durations),
            seconds(0.95, self.durations),
            seconds(0.5, self.cpu) if self.cpu else "-",
            seconds(0.95, self.cpu) if self.cpu else "-",
            memory(0.5),
            memory(1.0),
        )


def task_figures(executions: Iterable[Execution]) -> list[TaskFigures]:
    """The figures of each task of these executions, in the order the tasks first ran."""
    figures: dict[str, TaskFigures] = {}
    for execution in executions:
        for run in sorted(execution.task_runs, key=lambda run: run.state.start_date):
            if not run.state.current.is_terminated:
                continue
            found = figures.setdefault(run.task_id, TaskFigures(run.task_id))
            found.durations.append(run.state.duration().total_seconds())
            usage = run.usage
            if usage is not None:
                found.cpu.append(usage.cpu_seconds)
                if usage.peak_memory is not None:
                    found.peaks.append(float(usage.peak_memory))
    return list(figures.values())
