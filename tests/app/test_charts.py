"""The history charts as pure functions: plain runs and a fixed `now` in, Rich text out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from rich.text import Text

from tiercel.app.widgets.charts import Run, percentile, short_duration
from tiercel.app.widgets.flow_stats import flow_stats
from tiercel.app.widgets.history_chart import MAX_BARS, bar_heights, fit_runs, history_bars, history_summary
from tiercel.app.widgets.state_chart import DAY, HOUR, MINUTE, bucket_size, stack, state_buckets, state_chart

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Local time is UTC, so that the time labels are the same on every machine."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "UTC")
        time.tzset()
        yield
    time.tzset()


def run(state: str, minutes_ago: float, seconds: float | None) -> Run:
    """A run started `minutes_ago`, lasting `seconds` (None: still running)."""
    start = NOW - timedelta(minutes=minutes_ago)
    return Run(state, start, None if seconds is None else start + timedelta(seconds=seconds))


def lines(text: Text) -> list[Text]:
    return text.split("\n", allow_blank=True)


def style_at(line: Text, column: int) -> str:
    """The style of the character at `column` of a line (the last span over it wins)."""
    found = str(line.style)
    for span in line.spans:
        if span.start <= column < span.end:
            found = str(span.style)
    return found


def bar_columns(text: Text) -> dict[int, tuple[int, str]]:
    """Per column of the plot: how many rows hold a bar character, and the style of its bottom one."""
    rows = [line for line in lines(text) if "┤" in line.plain or "│" in line.plain]
    found: dict[int, tuple[int, str]] = {}
    for line in rows:
        start = line.plain.index("┤" if "┤" in line.plain else "│") + 1
        for column, char in enumerate(line.plain[start:], start):
            if char.strip():
                count, _ = found.get(column, (0, ""))
                found[column] = (count + 1, style_at(line, column))
    return found


# -- the build history (chart 1) ---------------------------------------------------------------------
def test_bar_heights_are_proportional_to_the_durations_and_never_zero() -> None:
    runs = [run("SUCCESS", 10, 10), run("SUCCESS", 9, 20), run("SUCCESS", 8, 40), run("SUCCESS", 7, 0)]
    assert bar_heights(runs, rows=8, resolution=8, now=NOW) == [16, 32, 64, 1]


def test_a_running_execution_grows_with_now() -> None:
    runs = [run("SUCCESS", 10, 60), run("RUNNING", 1, None)]
    assert bar_heights(runs, 4, 8, NOW) == [32, 32]  # both 60 s
    later = NOW + timedelta(seconds=60)
    assert bar_heights(runs, 4, 8, later) == [16, 32]  # now 60 s against 120 s


def test_bars_are_oldest_left_coloured_by_state_with_a_scale() -> None:
    runs = [
        run("FAILED", 1, 30),  # newest, given first: the chart orders by start
        run("SUCCESS", 5, 60),
        run("WARNING", 4, 15),
        run("KILLED", 3, 15),
        run("RUNNING", 0.5, None),
    ]
    chart = history_bars(runs, width=40, height=10, now=NOW)
    rows = lines(chart)
    assert len(rows) == 10
    assert rows[0].plain.startswith("1m00s ┤")  # the longest run, at the top of the scale
    assert "30s ┤" in rows[4].plain
    assert rows[8].plain.strip().startswith("0 └")
    assert rows[9].plain.split() == ["11:55:00", "11:59:30"]  # oldest and newest start
    by_column = sorted(bar_columns(chart).items())
    assert len(by_column) == 5 * 3
    # Wide bars (few runs): three columns each, a gap between; order and colour follow the starts.
    firsts = [by_column[i] for i in range(0, len(by_column), 3)]
    assert [style for _, (_, style) in firsts] == ["green", "yellow", "dim", "red", "cyan"]
    heights = [height for _, (height, _) in firsts]
    assert heights[0] == 8  # 60 s: every row of the plot
    assert heights[1] == heights[2] == 2  # 15 s: a quarter
    assert heights[3] == 4  # 30 s: half


def test_many_runs_fit_the_width_as_half_blocks_newest_kept() -> None:
    runs = [run("SUCCESS" if i % 7 else "FAILED", 1000 - i, 10 + i % 5) for i in range(10_000)]
    shown = fit_runs(runs, 80, NOW)
    assert 60 <= len(shown) <= 80 - 2
    assert shown[-1] is runs[-1] and shown[0] is runs[-len(shown)]
    assert len(fit_runs(runs, 300, NOW)) == MAX_BARS
    chart = history_bars(runs, 80, 12, NOW)
    assert "▌" in chart.plain and "█" not in chart.plain
    assert max(line.cell_len for line in lines(chart)) <= 80
    assert {style for _, style in bar_columns(chart).values()} == {"green", "red"}


def test_the_summary_gives_the_success_rate_percentiles_and_the_last_run() -> None:
    runs = [run("FAILED" if i in (3, 11) else "SUCCESS", 100 - i, i + 1) for i in range(20)]
    runs.append(run("RUNNING", 0.5, None))
    summary = history_summary(runs, NOW).plain
    assert summary.startswith("90% ok (18/20)")
    assert "p50 10s" in summary and "p95 19s" in summary
    assert summary.endswith("last ▶ RUNNING 11:59:30 for 30s")
    finished = history_summary(runs[:-1], NOW).plain
    assert finished.endswith("last ✔ SUCCESS 10:39:00 took 20s")


@pytest.mark.parametrize("width,height", [(80, 24), (120, 40), (20, 3)])
def test_no_executions_one_execution_and_huge_durations_draw_within_the_size(width: int, height: int) -> None:
    assert history_bars([], width, height, NOW).plain == "no executions yet"
    assert history_summary([], NOW).plain == "no executions yet"
    one = [run("SUCCESS", 1, 3)]
    assert len(lines(history_bars(one, width, height, NOW))) == max(height - 2, 1) + 2
    huge = [run("SUCCESS", 600_000, 400 * 86400.0), run("RUNNING", 1, None), run("FAILED", 2, 0.2)]
    chart = history_bars(huge, width, height, NOW)
    assert chart.plain.startswith("400d00h")
    assert max(line.cell_len for line in lines(chart)) <= max(width, 12)


def test_durations_and_percentiles_read_short() -> None:
    assert [short_duration(s) for s in (0.4, 3, 12, 185, 7380, 200_000)] == [
        "0.4s",
        "3s",
        "12s",
        "3m05s",
        "2h03m",
        "2d07h",
    ]
    assert percentile([], 0.5) is None
    assert percentile([5.0, 1.0, 3.0], 0.5) == 3.0


# -- executions per state over time (chart 2) --------------------------------------------------------
def test_the_bucket_is_the_shortest_that_reaches_back_to_the_oldest_run() -> None:
    assert bucket_size(NOW - timedelta(minutes=30), NOW, 36) == MINUTE
    assert bucket_size(NOW - timedelta(hours=30), NOW, 36) == HOUR
    assert bucket_size(NOW - timedelta(days=2), NOW, 36) == 3 * HOUR
    assert bucket_size(NOW - timedelta(days=20), NOW, 36) == DAY
    assert bucket_size(NOW - timedelta(days=3000), NOW, 36) % (30 * DAY) == 0


def test_runs_are_counted_per_state_in_hour_buckets_aligned_on_the_hour() -> None:
    runs = [
        run("SUCCESS", 30, 1),  # 11:30
        run("FAILED", 45, 1),  # 11:15
        run("SUCCESS", 90, 1),  # 10:30
        run("CANCELLED", 20 * 60, 1),  # 16:00 the day before
        run("RUNNING", 0, None),  # 12:00, in the newest bucket
        Run("CREATED", None),  # not started: counted at now
        run("SUCCESS", -5, 1),  # dated after now (another clock): counted at now
    ]
    buckets = state_buckets(runs, 36, NOW)
    assert buckets.size == HOUR
    assert buckets.start == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    assert len(buckets.counts) == 21
    assert dict(buckets.counts[0]) == {"STOPPED": 1}
    assert dict(buckets.counts[-3]) == {"SUCCESS": 1}  # 10:00-11:00
    assert dict(buckets.counts[-2]) == {"SUCCESS": 1, "FAILED": 1}
    assert dict(buckets.counts[-1]) == {"RUNNING": 2, "SUCCESS": 1}
    assert buckets.totals == {"SUCCESS": 3, "FAILED": 1, "STOPPED": 1, "RUNNING": 2}


def test_a_lone_run_still_gets_a_dozen_buckets() -> None:
    buckets = state_buckets([run("SUCCESS", 2, 1)], 36, NOW)
    assert (buckets.size, len(buckets.counts)) == (MINUTE, 12)


def test_a_stack_is_proportional_and_keeps_one_cell_for_a_rare_state() -> None:
    assert stack({"SUCCESS": 6, "FAILED": 2}, top=8, rows=8) == ["SUCCESS"] * 6 + ["FAILED"] * 2
    assert stack({"SUCCESS": 3, "FAILED": 1}, top=8, rows=8) == ["SUCCESS"] * 3 + ["FAILED"]
    assert stack({"SUCCESS": 99, "FAILED": 1}, top=100, rows=10) == ["SUCCESS"] * 9 + ["FAILED"]
    everything = {"SUCCESS": 1, "WARNING": 1, "FAILED": 1, "STOPPED": 1, "RUNNING": 1}
    assert stack(everything, top=100, rows=10) == ["SUCCESS", "WARNING", "FAILED", "STOPPED", "RUNNING"]
    assert stack({"SUCCESS": 50, "FAILED": 1}, top=51, rows=1) == ["SUCCESS"]
    assert stack({}, top=10, rows=10) == []


def test_the_state_chart_stacks_colours_with_a_scale_and_a_legend() -> None:
    # 20 hours back to the oldest run: hour buckets, 21 of them (16:00 the day before to 12:00).
    runs = [run("SUCCESS", 30, 1)] * 6 + [run("FAILED", 31, 1)] * 2 + [run("SUCCESS", 20 * 60, 1)] * 2
    chart = state_chart(runs, 80, 12, NOW)
    rows = lines(chart)
    assert len(rows) == 12
    assert rows[0].plain.startswith("8 ┤") and rows[4].plain.startswith("4 ┤")
    assert rows[-2].plain.split() == ["03-01", "16:00", "per", "hour", "03-02", "12:00"]
    legend = rows[-1]
    assert legend.plain == "█ SUCCESS 8  █ WARNING 0  █ FAILED 2  █ KILLED/CANCELLED 0  █ RUNNING 0"
    assert style_at(legend, legend.plain.index("█ FAILED")) == "red"
    columns = bar_columns(chart)
    # The 11:00 bucket: 8 runs fill the 9 rows (green below, red above); 16:00 holds 2 of 8.
    plot = [row for row in rows if "┤" in row.plain or "│" in row.plain]
    first_column, last_column = min(columns), max(columns)
    assert columns[first_column] == (2, "green")  # counted from the top: the bottom row's style
    assert [style_at(row, last_column) for row in reversed(plot)] == ["green"] * 7 + ["red"] * 2


@pytest.mark.parametrize("width,height", [(80, 24), (120, 40), (30, 4)])
def test_the_state_chart_draws_ten_thousand_runs_within_the_size(width: int, height: int) -> None:
    states = ("SUCCESS", "SUCCESS", "FAILED", "WARNING", "KILLED")
    runs = [run(states[i % 5], i * 7, 5) for i in range(10_000)]
    chart = state_chart(runs, width, height, NOW)
    assert max(line.cell_len for line in lines(chart)[:-1]) <= width
    assert len(lines(chart)) == max(height - 3, 1) + 3
    assert state_chart([], width, height, NOW).plain == "no executions yet"


def test_flow_stats_per_flow_of_a_namespace() -> None:
    rows = []
    for flow, state, ago in (
        ("a", "SUCCESS", 9),
        ("a", "FAILED", 5),
        ("b", "RUNNING", 1),
        ("a", "SUCCESS", 3),
    ):
        base = run(state, ago, None if state == "RUNNING" else 10)
        rows.append(_Named("acme.x", flow, base.state, base.start_date, base.end_date))
    stats = flow_stats(rows, NOW)
    assert [(s.flow_id, s.last.state, s.runs, s.ok, s.finished) for s in stats] == [
        ("a", "SUCCESS", 3, 2, 3),
        ("b", "RUNNING", 1, 0, 0),
    ]
    cells = stats[0].cells("acme", NOW)
    assert cells[0] == "x.a" and str(cells[1]) == "✔ SUCCESS" and cells[3] == "67%"
    assert stats[1].cells("acme", NOW)[3:6] == ("-", "-", "-")


class _Named:
    """A run that names its flow, as the engine's ExecutionSummary does."""

    def __init__(
        self, namespace: str, flow_id: str, state: str, start: datetime | None, end: datetime | None
    ) -> None:
        self.namespace, self.flow_id, self.state = namespace, flow_id, state
        self.start_date, self.end_date = start, end
