"""Executions per state over time: one stacked column per time bucket, with a legend.

The bucket is the shortest of minute, 5 and 15 minutes, half hour, hour, 3, 6 and 12 hours, day and
week (then 30-day multiples) that lets the columns reach back to the oldest execution given. Buckets
are aligned on local time (an hour bucket starts on the hour, a day bucket at midnight) and the
newest one holds `now`, so the same executions and `now` always draw the same chart.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rich.text import Text

from .charts import (
    CATEGORIES,
    CATEGORY_NAMES,
    COLOURS,
    SHORT_NAMES,
    RunLike,
    RunsChart,
    axis_rows,
    baseline,
    category,
    finish,
    spread,
    when,
    y_labels,
)

MINUTE, HOUR, DAY = 60, 3600, 86400
BUCKETS: dict[int, str] = {
    MINUTE: "minute",
    5 * MINUTE: "5 minutes",
    15 * MINUTE: "15 minutes",
    30 * MINUTE: "30 minutes",
    HOUR: "hour",
    3 * HOUR: "3 hours",
    6 * HOUR: "6 hours",
    12 * HOUR: "12 hours",
    DAY: "day",
    7 * DAY: "week",
}
#: The fewest buckets drawn, and the widest column (a bar and its gap).
MIN_BUCKETS = 12
MAX_SLOT = 4
#: Which state keeps its cell when a column is too short for all of its states: the alarming first.
_PRIORITY = ("FAILED", "WARNING", "RUNNING", "STOPPED", "SUCCESS")


@dataclass(frozen=True, slots=True)
class Buckets:
    """Counts of runs per category in consecutive buckets of `size` seconds from `start` (local)."""

    size: int
    start: datetime
    counts: tuple[Mapping[str, int], ...]

    @property
    def totals(self) -> Counter[str]:
        """The counts of every bucket added up, per category."""
        total: Counter[str] = Counter()
        for counts in self.counts:
            total.update(counts)
        return total


def bucket_name(size: int) -> str:
    """How a bucket size reads after "per": hour, 15 minutes, 60 days."""
    return BUCKETS.get(size) or f"{size // DAY} days"


def bucket_size(oldest: datetime, now: datetime, columns: int) -> int:
    """The shortest bucket that fits the span from `oldest` to `now` in `columns` buckets."""
    columns = max(columns, 1)
    for size in BUCKETS:
        if _index(now, size) - _index(oldest, size) < columns:
            return size
    span_days = math.ceil((now - oldest).total_seconds() / DAY) + 1
    return math.ceil(span_days / columns / 30) * 30 * DAY


def state_buckets(runs: Sequence[RunLike], columns: int, now: datetime) -> Buckets:
    """At most `columns` buckets, back to the oldest run, ending with the one holding `now`.

    There are at least MIN_BUCKETS (when `columns` allows) so that a lone run stands in its hour.
    A run not started yet counts at `now`, as does one dated after it (another machine's clock).
    """
    columns = max(columns, 1)
    oldest = min((when(run, now) for run in runs), default=now)
    size = bucket_size(min(oldest, now), now, columns)
    last = _index(now, size)
    count = min(max(last - _index(min(oldest, now), size) + 1, MIN_BUCKETS), columns)
    first = last - count + 1
    counts: list[Counter[str]] = [Counter() for _ in range(count)]
    for run in runs:
        index = min(_index(when(run, now), size), last) - first
        if index >= 0:
            counts[index][category(run.state)] += 1
    offset = _offset(now)
    start = datetime.fromtimestamp(first * size - offset, now.tzinfo)
    return Buckets(size, start, tuple(counts))


def stack(counts: Mapping[str, int], top: int, rows: int) -> list[str]:
    """The category of each cell of a column, bottom up: as tall as its total is of `top`.

    Every category present gets at least one cell while the rows allow, so that one failure among a
    hundred successes still shows; the rest is shared in proportion (largest remainders first).
    """
    present = {name: counts.get(name, 0) for name in CATEGORIES if counts.get(name, 0) > 0}
    total = sum(present.values())
    if total == 0 or top <= 0 or rows <= 0:
        return []
    cells = min(max(round(total / top * rows), 1, len(present)), rows)
    if len(present) > cells:
        kept = sorted(present, key=lambda name: (-present[name], _PRIORITY.index(name)))[:cells]
        present = {name: present[name] for name in CATEGORIES if name in kept}
        total = sum(present.values())
    quota = {name: count / total * cells for name, count in present.items()}
    share = {name: max(int(value), 1) for name, value in quota.items()}
    while sum(share.values()) > cells:
        name = max((n for n in share if share[n] > 1), key=lambda n: share[n] - quota[n])
        share[name] -= 1
    while sum(share.values()) < cells:
        name = max(share, key=lambda n: quota[n] - share[n])
        share[name] += 1
    return [name for name in CATEGORIES if name in share for _ in range(share[name])]


def state_chart(runs: Sequence[RunLike], width: int, height: int, now: datetime) -> Text:
    """Stacked columns of runs per state over time, `height` lines with the axis and the legend."""
    if not runs:
        return Text("no executions yet", style="dim")
    rows = max(height - 3, 1)
    # The scale's labels are counts: the widest is known once the buckets are, so guess then check.
    label_width = 3
    buckets = state_buckets(runs, max((width - label_width - 2) // 2, 1), now)
    top = max(sum(counts.values()) for counts in buckets.counts)
    label_width, labels = y_labels(rows, str(top), str(top // 2) if top >= 4 else None)
    plot_width = max(width - label_width - 2, 2)
    if len(buckets.counts) > plot_width // 2:
        buckets = state_buckets(runs, plot_width // 2, now)
        top = max(sum(counts.values()) for counts in buckets.counts)
    slot = min(max(plot_width // len(buckets.counts), 2), MAX_SLOT)
    plot = [Text() for _ in range(rows)]
    for counts in buckets.counts:
        cells = stack(counts, top, rows)
        for row in range(rows):
            level = rows - 1 - row
            if level < len(cells):
                plot[row].append(" " + "█" * (slot - 1), style=COLOURS[cells[level]])
            else:
                plot[row].append(" " * slot)
    lines: list[Text] = []
    axis_rows(lines, label_width, labels, plot)
    used = slot * len(buckets.counts)
    lines.append(baseline(label_width, used))
    first, last = _time_labels(buckets)
    middle = f"per {bucket_name(buckets.size)}"
    lines.append(spread(first, last, label_width + 3, label_width + 2 + used, middle))
    lines.append(legend(buckets, width))
    return finish(lines)


def legend(buckets: Buckets, width: int) -> Text:
    """Each category's colour and count over the chart; shorter (no zero counts) when it is too long."""
    totals = buckets.totals
    for names, keep_zero in ((CATEGORY_NAMES, True), (SHORT_NAMES, True), (SHORT_NAMES, False)):
        line = Text()
        for name in CATEGORIES:
            if keep_zero or totals[name]:
                line.append("█ ", style=COLOURS[name])
                line.append(f"{names[name]} {totals[name]}  ")
        line.rstrip()
        if line.cell_len <= width:
            break
    return line


def _time_labels(buckets: Buckets) -> tuple[str, str]:
    """The local start of the first and of the last bucket, as precise as the buckets are."""
    first = buckets.start.astimezone()
    last = (buckets.start + timedelta(seconds=buckets.size * (len(buckets.counts) - 1))).astimezone()
    if buckets.size >= DAY:
        return first.strftime("%m-%d"), last.strftime("%m-%d")
    if first.date() != last.date():
        return first.strftime("%m-%d %H:%M"), last.strftime("%m-%d %H:%M")
    return first.strftime("%H:%M"), last.strftime("%H:%M")


def _offset(moment: datetime) -> int:
    """The local time zone's offset from UTC at `moment`, in seconds."""
    delta = moment.astimezone().utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def _index(moment: datetime, size: int) -> int:
    """The number of the `size`-second bucket (aligned on local time) that holds `moment`."""
    return (int(moment.timestamp()) + _offset(moment)) // size


class StateChart(RunsChart):
    """Runs per state over time, redrawn to the widget's size."""

    DEFAULT_CSS = "StateChart { height: 1fr; min-height: 6; text-wrap: nowrap; text-overflow: clip; }"

    def render(self) -> Text:
        return state_chart(self.runs, max(self.size.width, 20), max(self.size.height, 4), self.clock())
