"""The timeline (a Gantt chart) of an execution's task runs."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Unpack

from rich.text import Text
from textual.widget import Widget

from tiercel.engine import Execution, Masker, utcnow

from . import WidgetArgs
from .shown import masker_of
from .states import GLYPHS, fmt_duration
from .task_runs import nested_runs, run_label

# The width of the CPU time and of the peak memory columns (``12.3s``, ``213M``).
FIGURE_WIDTH = 6


def timeline_text(
    execution: Execution | None, width: int, now: datetime | None = None, masker: Masker | None = None
) -> Text:
    """A Gantt chart of the task runs: one row each, bars scaled to the execution's duration, then each
    task run's duration and, when any task run ran programs, their CPU time and peak memory."""
    if execution is None or not execution.task_runs:
        return Text("no task runs yet", style="dim")
    now = now or utcnow()
    start = execution.state.start_date
    end = execution.state.end_date or now
    total = max((end - start).total_seconds(), 0.001)
    label_width = min(30, max(10, width * 2 // 5))
    duration_width = 7
    # CPU time and peak memory: shown when a task run has them and the bars keep some room.
    figures = any(run.usage is not None for run in execution.task_runs) and width >= 60
    figures_width = 2 * (FIGURE_WIDTH + 1) if figures else 0
    bar_width = max(width - label_width - duration_width - figures_width - 2, 4)
    axis = Text(" " * (label_width + 1) + "0", style="dim")
    axis.append(fmt_duration(end - start).rjust(bar_width - 1) + " " * (duration_width + 1))
    if figures:
        axis.append(" " + "cpu".rjust(FIGURE_WIDTH) + " " + "peak".rjust(FIGURE_WIDTH))
    lines = [axis]
    for run, depth in nested_runs(execution):
        label = run_label(run, depth, masker)
        label.truncate(label_width, overflow="ellipsis", pad=True)
        run_start = run.state.start_date
        run_end = min(run.state.end_date or now, end)
        first = int((run_start - start).total_seconds() / total * bar_width)
        first = min(max(first, 0), bar_width - 1)
        last = math.ceil((run_end - start).total_seconds() / total * bar_width)
        last = min(max(last, first + 1), bar_width)
        style = GLYPHS.get(run.state.current.value, ("", ""))[1] or "white"
        line = Text.assemble(label, " ", " " * first, ("█" * (last - first), style), " " * (bar_width - last))
        line.append(" " + fmt_duration(run.state.duration(now)).rjust(duration_width), style="dim")
        if figures and run.usage is not None:
            cpu, peak = run.usage.cpu_text, run.usage.memory_text
            line.append(" " + cpu.rjust(FIGURE_WIDTH) + " " + peak.rjust(FIGURE_WIDTH), style="cyan")
        lines.append(line)
    text = Text("\n").join(lines)
    text.no_wrap = True
    text.overflow = "crop"
    return text


class Timeline(Widget):
    """The timeline of the shown execution, redrawn on every change and every second while running."""

    DEFAULT_CSS = "Timeline { height: auto; }"

    def __init__(self, **kwargs: Unpack[WidgetArgs]) -> None:
        super().__init__(**kwargs)
        self.execution: Execution | None = None

    def show(self, execution: Execution | None) -> None:
        self.execution = execution
        self.refresh(layout=True)

    def render(self) -> Text:
        return timeline_text(self.execution, max(self.size.width, 30), masker=masker_of(self))
