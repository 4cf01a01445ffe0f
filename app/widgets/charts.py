"""What the history charts share: the data they read, state categories and colours, durations, scales.

The charts take plain data (anything with a state, a start and an end date, such as the engine's
`ExecutionSummary`) and a fixed `now`, so that they draw the same picture every time for the same
input and are tested without an app.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Unpack

from rich.text import Text
from textual.widget import Widget

from tiercel.engine import utcnow

from . import WidgetArgs

#: The categories the charts colour, bottom of a stack first; every state falls in one of them.
CATEGORIES: tuple[str, ...] = ("SUCCESS", "WARNING", "FAILED", "STOPPED", "RUNNING")
COLOURS: dict[str, str] = {
    "SUCCESS": "green",
    "WARNING": "yellow",
    "FAILED": "red",
    "STOPPED": "dim",
    "RUNNING": "cyan",
}
#: How the legend names each category.
CATEGORY_NAMES: dict[str, str] = {
    "SUCCESS": "SUCCESS",
    "WARNING": "WARNING",
    "FAILED": "FAILED",
    "STOPPED": "KILLED/CANCELLED",
    "RUNNING": "RUNNING",
}
SHORT_NAMES: dict[str, str] = {**CATEGORY_NAMES, "STOPPED": "KILLED"}
_STOPPED = frozenset({"KILLED", "CANCELLED", "SKIPPED", "RETRIED"})
#: Finished states that count as a success in the rates (a WARNING run exits 0, as `tiercel run` says).
OK_STATES = frozenset({"SUCCESS", "WARNING"})
FINISHED = frozenset({"SUCCESS", "WARNING", "FAILED"}) | _STOPPED


class RunLike(Protocol):
    """One execution as the charts need it; the engine's `ExecutionSummary` is one."""

    @property
    def state(self) -> str: ...

    @property
    def start_date(self) -> datetime | None: ...

    @property
    def end_date(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class Run:
    """A plain execution for the charts: its final (or current) state and its dates."""

    state: str
    start_date: datetime | None
    end_date: datetime | None = None


def category(state: str) -> str:
    """The chart category of a state: anything not finished (running, queued, paused) is RUNNING."""
    if state in ("SUCCESS", "WARNING", "FAILED"):
        return state
    if state in _STOPPED:
        return "STOPPED"
    return "RUNNING"


def colour(state: str) -> str:
    """The Rich style a state is drawn in."""
    return COLOURS[category(state)]


def seconds(run: RunLike, now: datetime) -> float:
    """How long a run took, or has taken so far; a run not started yet took nothing."""
    start = run.start_date
    if start is None:
        return 0.0
    end = run.end_date or now
    return max((end - start).total_seconds(), 0.0)


def when(run: RunLike, now: datetime) -> datetime:
    """When a run started; a run not started yet is placed at `now`."""
    return run.start_date or now


def oldest_first(runs: Iterable[RunLike], now: datetime) -> list[RunLike]:
    """The runs by start date, oldest first (stable: equal dates keep their order)."""
    return sorted(runs, key=lambda run: when(run, now))


def short_duration(value: float) -> str:
    """A duration in at most two units: 0.4s, 12s, 3m05s, 2h03m, 4d07h."""
    value = max(value, 0.0)
    if value < 10:
        return f"{value:.1f}s" if value % 1 else f"{value:.0f}s"
    if value < 60:
        return f"{value:.0f}s"
    minutes, sec = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (`fraction` of 1) of the values, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


def success_rate(runs: Iterable[RunLike]) -> tuple[int, int]:
    """How many runs ended well, out of how many ended (running ones are not counted)."""
    ok = finished = 0
    for run in runs:
        if run.state in FINISHED:
            finished += 1
            ok += run.state in OK_STATES
    return ok, finished


def units(value: float, top: float, rows: int, resolution: int) -> int:
    """The height of a bar in 1/`resolution` of a row, proportional to `value` of `top`.

    A bar is never shorter than one unit, so that a run of no time still shows.
    """
    if top <= 0:
        return 1
    return min(max(round(value / top * rows * resolution), 1), rows * resolution)


def y_labels(rows: int, top: str, middle: str | None) -> tuple[int, dict[int, str]]:
    """The width of the scale's labels and the label of each labelled row (0 is the top row)."""
    labels = {0: top}
    if middle is not None and rows >= 4:
        labels[rows // 2] = middle
    return max(len(label) for label in (*labels.values(), "0")), labels


def axis_rows(lines: list[Text], width: int, labels: dict[int, str], plot: list[Text]) -> None:
    """Append the plot's rows to `lines`, each behind its scale label (`width` wide) and tick."""
    for row, body in enumerate(plot):
        label = labels.get(row)
        line = Text(f"{label or '':>{width}} ", style="dim")
        line.append("┤" if label is not None else "│", style="dim")
        line.append_text(body)
        lines.append(line)


def baseline(width: int, plot_width: int) -> Text:
    """The zero of the scale and the horizontal axis."""
    return Text(f"{'0':>{width}} └" + "─" * plot_width, style="dim")


def spread(left: str, right: str, indent: int, width: int, middle: str = "") -> Text:
    """Labels under the axis: one at its left end, one at its right end, one between, as they fit."""
    room = width - indent
    if len(left) + len(right) + len(middle) + 4 <= room:
        gap = room - len(left) - len(right) - len(middle)
        inner = " " * (gap // 2) + middle + " " * (gap - gap // 2)
        return Text(" " * indent + left + inner + right, style="dim")
    if len(left) + len(right) + 1 <= room:
        return Text(" " * indent + left + right.rjust(room - len(left)), style="dim")
    return Text(" " * indent + right.rjust(room), style="dim")


def finish(lines: list[Text]) -> Text:
    """The lines as one Text that never wraps (a chart cut at the edge beats a garbled one)."""
    text = Text("\n").join(lines)
    text.no_wrap = True
    text.overflow = "crop"
    return text


class RunsChart(Widget):
    """A chart of runs, redrawn to the widget's size; subclasses render `self.runs` at `self.clock()`."""

    def __init__(self, clock: Callable[[], datetime] = utcnow, **kwargs: Unpack[WidgetArgs]) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.runs: list[RunLike] = []

    def show(self, runs: Sequence[RunLike]) -> None:
        self.runs = list(runs)
        self.refresh()
