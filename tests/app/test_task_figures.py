"""What a task run's programs used, as the dashboard shows it: the task tree, the timeline and a flow
history's table of tasks, from executions stored in a real SQLite store."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from tests.app.test_history_screen import NOW, engine, execution, screen_text, shown
from tests.waiting import until_drawn
from tiercel.app.screens.history import HistoryScreen
from tiercel.app.widgets.task_figures import task_figures
from tiercel.app.widgets.task_runs import tree_label
from tiercel.app.widgets.timeline import timeline_text
from tiercel.engine.engine import Engine
from tiercel.engine.model import Attempt, Execution, History, State, StateType, TaskRun
from tiercel.engine.model.resources import ResourceUsage

__all__ = ["engine"]  # the fixture, shared with the history screen's tests

MIB = 1 << 20


def with_tasks(base: Execution, figures: dict[str, tuple[float, ResourceUsage | None]]) -> Execution:
    """`base` with one ended task run per entry: its duration in seconds and its attempt's figures."""
    start = base.state.start_date
    runs = []
    for index, (task_id, (took, usage)) in enumerate(figures.items()):
        begun = start + timedelta(seconds=index)
        state = State(
            StateType.SUCCESS,
            (History(StateType.RUNNING, begun), History(StateType.SUCCESS, begun + timedelta(seconds=took))),
        )
        runs.append(
            TaskRun(
                f"{base.id}-{index}",
                base.id,
                base.namespace,
                base.flow_id,
                task_id,
                state,
                attempts=(Attempt(state, usage),),
            )
        )
    return dataclasses.replace(base, task_runs=tuple(runs))


def test_the_figures_of_each_task_are_its_runs_percentiles() -> None:
    runs = [
        with_tasks(
            execution(i, "acme", "etl", StateType.SUCCESS, 60 - i),
            {"extract": (2.0 + i, ResourceUsage(0.5 * (i + 1), (10 + i) * MIB)), "log": (0.1, None)},
        )
        for i in range(4)
    ]
    extract, log = task_figures(runs)
    # Durations 2-5 s, CPU 0.5-2 s, peaks 10-13 MiB: nearest-rank medians and the largest.
    assert extract.cells() == ("extract", "4", "3s", "5s", "1s", "2s", "11M", "13M")
    assert log.cells() == ("log", "4", "0.1s", "0.1s", "-", "-", "-", "-")


def test_the_tree_and_the_timeline_show_cpu_time_and_peak_memory() -> None:
    shown_run = with_tasks(
        execution(1, "acme", "etl", StateType.SUCCESS, 5),
        {"crunch": (3.0, ResourceUsage(2.5, 150 * MIB)), "note": (0.2, None)},
    )
    crunch, note = shown_run.task_runs
    assert "2.50s 150M" in tree_label(crunch, NOW).plain
    assert "M" not in tree_label(note, NOW).plain.split("note")[1]
    lines = timeline_text(shown_run, 100, now=NOW).plain.splitlines()
    assert lines[0].split()[-2:] == ["cpu", "peak"]
    assert lines[1].split()[-2:] == ["2.50s", "150M"]
    # Too narrow for the bars and the figures: the bars keep the room.
    assert "peak" not in timeline_text(shown_run, 50, now=NOW).plain


async def test_a_flows_history_has_a_table_of_its_tasks(engine: Engine) -> None:
    runs = [
        with_tasks(
            execution(i, "acme", "etl", StateType.SUCCESS, 60 - i),
            {"extract": (4.0, ResourceUsage(1.0, 64 * MIB)), "load": (1.0, ResourceUsage(0.25, 8 * MIB))},
        )
        for i in range(6)
    ]
    running = execution(9, "acme", "etl", StateType.RUNNING, 1)
    for stored in [*runs, running]:
        await engine.store.save_execution(stored, stored.task_runs)
    screen = HistoryScreen(engine, "acme", "etl", clock=lambda: NOW)
    async with shown(screen, (100, 30)) as pilot:
        await until_drawn(pilot, lambda: screen.tasks_loaded >= 1, what="the table of tasks")
        await pilot.pause()
        text = screen_text(pilot)
        for column in ("task", "runs", "cpu p50", "peak max"):
            assert column in text
        rows = [" ".join(line.strip("█ ").split()) for line in text.splitlines()]
        assert "extract 6 4s 4s 1s 1s 64M 64M" in rows
        assert "load 6 1s 1s 0.2s 0.2s 8.0M 8.0M" in rows
