"""The dashboard's expression console (`x` in the detail pane), driven by keys on a real engine."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input, Label, Select, Static

from tests.app.test_dashboard import REPO, only_state, select_flow
from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.screens.console import ConsoleScreen
from tiercel.app.widgets.task_runs import TaskRunTree
from tiercel.engine import Evaluation, Execution


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[TiercelApp, Pilot[None]]]:
    """The dashboard on the sample flows, with the monthly report run once."""
    shutil.copytree(REPO / "sample_flows", tmp_path / "flows")
    app = TiercelApp(tmp_path / "flows", tmp_path / "tiercel.db", control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
        await select_flow(app, pilot, "acme.finance.reports", "monthly_report")
        await pilot.press("r", "enter")
        await until_drawn(pilot, lambda: only_state(app) == "SUCCESS" and app.detail.execution is not None)
        yield app, pilot


async def submit(pilot: Pilot[None], screen: ConsoleScreen, expression: str) -> None:
    screen.query_one("#console-input", Input).value = expression
    await pilot.press("enter")


def entries(screen: ConsoleScreen) -> list[str]:
    return [str(entry.content) for entry in screen.query(".console-entry").results(Static)]


async def test_expressions_render_against_the_execution_and_the_chosen_task_run(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    await pilot.press("3", "x")
    await until_drawn(pilot, lambda: isinstance(app.screen, ConsoleScreen))
    screen = app.screen
    assert isinstance(screen, ConsoleScreen)
    assert "monthly_report" in str(screen.query_one("#console-title", Label).content)

    await pilot.press(*"{{ outputs.summary.values.amount }}", "enter")
    await until_drawn(pilot, lambda: len(entries(screen)) == 1)
    assert entries(screen)[0].splitlines() == ["› {{ outputs.summary.values.amount }}", "125000.5 EUR"]

    await pilot.press(*"{{ outputs.sumary.values }}", "enter")
    await until_drawn(pilot, lambda: len(entries(screen)) == 2)
    error = entries(screen)[1].splitlines()
    assert error[1] == " " * 13 + "^" and "Unable to find `sumary`" in error[2]

    await submit(pilot, screen, "{{ secret('X') }}")
    await until_drawn(pilot, lambda: len(entries(screen)) == 3)
    assert "secret() is not available here" in entries(screen)[2]

    await pilot.press("up", "up")  # the expressions typed before come back
    assert screen.query_one("#console-input", Input).value == "{{ outputs.sumary.values }}"

    execution = app.detail.execution
    assert execution is not None
    publish = next(run for run in execution.task_runs if run.task_id == "publish")
    screen.query_one("#console-run", Select).value = publish.id
    await pilot.pause()
    await submit(pilot, screen, "{{ task.id }}")
    await until_drawn(pilot, lambda: len(entries(screen)) == 4)
    assert entries(screen)[3].splitlines()[1] == "publish"
    await pilot.press("escape")
    await until_drawn(pilot, lambda: not isinstance(app.screen, ConsoleScreen))


async def test_the_console_opens_on_the_task_run_under_the_cursor(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    tree = app.detail.query_one(TaskRunTree)
    tree.focus()
    summary = next(node for node in tree.root.children if "summary" in str(node.label))
    tree.move_cursor(summary)
    await pilot.press("x")
    await until_drawn(pilot, lambda: isinstance(app.screen, ConsoleScreen))
    screen = app.screen
    assert isinstance(screen, ConsoleScreen)
    await submit(pilot, screen, f"{{{{ taskrun.id == '{summary.data}' }}}}")
    await until_drawn(pilot, lambda: len(entries(screen)) == 1)
    assert entries(screen)[0].splitlines()[1] == "true"


RUN = {"state": {"current": "SUCCESS", "histories": [{"state": "SUCCESS", "date": "2026-01-01T00:00:00Z"}]}}


class Host(App[None]):
    def __init__(self, screen: ConsoleScreen) -> None:
        super().__init__()
        self.shown = screen

    def on_mount(self) -> None:
        self.push_screen(self.shown)


async def test_loop_values_in_the_task_run_list_are_text_not_markup() -> None:
    runs = [
        {
            "id": f"r{index}",
            "executionId": "e1",
            "namespace": "n",
            "flowId": "f",
            "taskId": "load",
            "value": value,
            **RUN,
        }
        for index, value in enumerate(("[dev]", "[/]", "[b]bold"))
    ]
    execution = Execution.from_json(
        {"id": "e1", "namespace": "n", "flowId": "f", "flowRevision": 1, "taskRunList": runs, **RUN}
    )

    async def unused(execution_id: str, task_run_id: str | None, expression: str) -> Evaluation:
        raise AssertionError("nothing is rendered here")

    screen = ConsoleScreen(execution, "r1", unused)
    async with Host(screen).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        select = screen.query_one("#console-run", Select)
        assert select.value == "r1"
        await pilot.press("tab", "enter")
        await pilot.pause()
        shown = [
            getattr(option.prompt, "plain", "") for option in select.query("SelectOverlay").first().options
        ]
        assert shown[1:] == ["load [[dev]] · SUCCESS", "load [[/]] · SUCCESS", "load [[b]bold] · SUCCESS"]
