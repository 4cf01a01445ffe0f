"""A flow's build history: one bar per execution, oldest left, as tall as it took, coloured by state.

Bars are full cells with eighth-block tops (▁▂▃▄▅▆▇) and a gap between them while the width allows;
when every column is needed (70 bars at 80 columns), each bar is a left half-block (▌, with ▖ for a
half row on top), so that neighbours stay apart at half the height resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.text import Text

from .charts import (
    RunLike,
    RunsChart,
    axis_rows,
    baseline,
    colour,
    finish,
    oldest_first,
    percentile,
    seconds,
    short_duration,
    spread,
    success_rate,
    units,
    y_labels,
)
from .states import GLYPHS, fmt_start

#: More bars than this are not read one by one anyway.
MAX_BARS = 100
#: The widest bar: a few executions should look like bars, not like walls.
MAX_BAR_WIDTH = 3
_EIGHTHS = " ▁▂▃▄▅▆▇█"


def fit_runs(runs: Sequence[RunLike], width: int, now: datetime) -> list[RunLike]:
    """The newest runs that fit `width` columns as bars (at most MAX_BARS), oldest first."""
    if not runs or width <= 0:
        return []
    ordered = oldest_first(runs, now)[-MAX_BARS:]
    label_width, _ = _scale(ordered, now, 10)
    room = max(width - label_width - 2, 1)
    return ordered[-room:]


def bar_heights(runs: Sequence[RunLike], rows: int, resolution: int, now: datetime) -> list[int]:
    """Each run's bar height in 1/`resolution` of a row, the longest run `rows` rows tall."""
    durations = [seconds(run, now) for run in runs]
    top = max(durations, default=0.0)
    return [units(value, top, rows, resolution) for value in durations]


def history_bars(runs: Sequence[RunLike], width: int, height: int, now: datetime) -> Text:
    """The bar chart of the newest runs fitting `width`, `height` lines tall (scale and axis included)."""
    shown = fit_runs(runs, width, now)
    if not shown:
        return Text("no executions yet", style="dim")
    rows = max(height - 2, 1)
    label_width, labels = _scale(shown, now, rows)
    plot_width = max(width - label_width - 2, 1)
    slot = max(plot_width // len(shown), 1)
    dense = slot < 2
    bar_width = 1 if dense else min(slot - 1, MAX_BAR_WIDTH)
    step = 1 if dense else bar_width + 1
    resolution = 2 if dense else 8
    heights = bar_heights(shown, rows, resolution, now)
    plot = [Text() for _ in range(rows)]
    for run, height_units in zip(shown, heights, strict=True):
        style = colour(run.state)
        for row in range(rows):
            level = rows - 1 - row  # rows count from the top, levels from the bottom
            filled = min(max(height_units - level * resolution, 0), resolution)
            plot[row].append(_cell(filled, resolution, dense) * bar_width, style=style)
            if not dense:
                plot[row].append(" ")
    lines: list[Text] = []
    axis_rows(lines, label_width, labels, plot)
    used = len(shown) * step - (0 if dense else 1)
    lines.append(baseline(label_width, used))
    first, last = when_label(shown[0], now), when_label(shown[-1], now)
    lines.append(spread(first, last, label_width + 2, label_width + 2 + max(used, len(last))))
    return finish(lines)


def history_summary(runs: Sequence[RunLike], now: datetime) -> Text:
    """One line: the success rate, p50 and p95 of the finished runs' durations, and the last run."""
    if not runs:
        return Text("no executions yet", style="dim")
    ordered = oldest_first(runs, now)
    ok, finished = success_rate(ordered)
    done = [seconds(run, now) for run in ordered if run.end_date is not None]
    summary = Text()
    if finished:
        rate = round(100 * ok / finished)
        style = "green" if ok == finished else "yellow" if rate >= 80 else "red"
        summary.append(f"{rate}% ok", style=f"bold {style}")
        summary.append(f" ({ok}/{finished})", style="dim")
    else:
        summary.append("none finished", style="dim")
    p50, p95 = percentile(done, 0.5), percentile(done, 0.95)
    if p50 is not None and p95 is not None:
        summary.append(f" · p50 {short_duration(p50)} · p95 {short_duration(p95)}")
    last = ordered[-1]
    char, style = GLYPHS.get(last.state, ("?", ""))
    summary.append(" · last ")
    summary.append(f"{char} {last.state}", style=style)
    summary.append(f" {when_label(last, now)}", style="dim")
    took = short_duration(seconds(last, now))
    summary.append(f" for {took}" if last.end_date is None else f" took {took}", style="dim")
    return summary


def when_label(run: RunLike, now: datetime) -> str:
    """When a run started, in local time (time of day when it is today); "not started" otherwise."""
    return fmt_start(run.start_date, now.astimezone()) if run.start_date else "not started"


def _scale(runs: Sequence[RunLike], now: datetime, rows: int) -> tuple[int, dict[int, str]]:
    top = max((seconds(run, now) for run in runs), default=0.0)
    return y_labels(rows, short_duration(top), short_duration(top / 2))


def _cell(filled: int, resolution: int, dense: bool) -> str:
    """The character of one cell of a bar filled to `filled` of `resolution`."""
    if dense:
        return "▌" if filled >= resolution else "▖" if filled else " "
    return _EIGHTHS[filled]


class HistoryChart(RunsChart):
    """The summary line above the bar chart of `runs`, redrawn to the widget's size."""

    DEFAULT_CSS = "HistoryChart { height: 1fr; min-height: 6; text-wrap: nowrap; text-overflow: ellipsis; }"

    @property
    def running(self) -> bool:
        """Whether a bar grows while time passes (a run not finished)."""
        return any(run.end_date is None for run in self.runs)

    def render(self) -> Text:
        now = self.clock()
        width, height = max(self.size.width, 20), max(self.size.height, 3)
        shown = fit_runs(self.runs, width, now)
        summary = history_summary(shown, now)
        text = Text("\n").join([summary, history_bars(shown, width, height - 1, now)]) if shown else summary
        text.no_wrap, text.overflow = True, "ellipsis"
        return text
