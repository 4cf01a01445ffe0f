"""The task run tree: the execution's progress, running times, and enter on a Subflow to open its child."""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets.tree import TreeNode

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.widgets.detail import DetailPane
from tiercel.app.widgets.namespaces import NodeRef
from tiercel.app.widgets.task_runs import TaskRunTree, fmt_elapsed, progress
from tiercel.engine.model import Attempt, Execution, History, State, StateType, TaskRun, utcnow

LOG = "io.kestra.plugin.core.log.Log"
FLOWS = {
    "steps": f"""
id: steps
namespace: acme
tasks:
  - {{id: first, type: {LOG}, message: one}}
  - {{id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT60S}}
  - {{id: after, type: {LOG}, message: three}}
""",
    "child": f"""
id: child
namespace: acme
tasks:
  - {{id: hello, type: {LOG}, message: from the child}}
""",
    "parent": f"""
id: parent
namespace: acme
tasks:
  - {{id: before, type: {LOG}, message: calling}}
  - {{id: call, type: io.kestra.plugin.core.flow.Subflow, namespace: acme, flowId: child, wait: true}}
""",
    "legacy": f"""
id: legacy
namespace: acme
tasks:
  - {{id: before, type: {LOG}, message: calling}}
  - {{id: call, type: io.kestra.core.tasks.flows.Flow, namespace: acme, flowId: child, wait: true}}
""",
}


class Recording(TiercelApp):
    """The dashboard, keeping the child executions the detail pane asked to open."""

    # A relative CSS path is read beside the module of the class that names it: here, the app's.
    CSS_PATH = str(Path(inspect.getfile(TiercelApp)).with_name("app.tcss"))
    opened: list[str]

    def on_detail_pane_open_execution(self, message: DetailPane.OpenExecution) -> None:
        self.opened = [*getattr(self, "opened", []), message.execution_id]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Recording, Pilot[None]]]:
    flows = tmp_path / "flows"
    (flows / "acme").mkdir(parents=True)
    for name, text in FLOWS.items():
        (flows / "acme" / f"{name}.yml").write_text(text)
    app = Recording(flows, tmp_path / "db" / "tiercel.db", control=False)
    app.opened = []
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == len(FLOWS))
        yield app, pilot


async def run_flow(app: TiercelApp, pilot: Pilot[None], flow_id: str) -> None:
    assert app.ns_tree.select_ref(NodeRef("flow", "acme", flow_id))
    await until_drawn(pilot, lambda: app.selected_flow is not None and app.selected_flow.id == flow_id)
    await pilot.press("r")
    await until_drawn(
        pilot, lambda: app.detail.execution is not None and app.detail.execution.flow_id == flow_id
    )


def tree(app: TiercelApp) -> TaskRunTree:
    return app.detail.query_one(TaskRunTree)


def node(app: TiercelApp, task_id: str) -> TreeNode[str] | None:
    """The tree's node of the (first) task run of a task."""
    shown = tree(app)
    nodes = [shown.get_node_at_line(line) for line in range(shown.last_line + 1)]
    return next((n for n in nodes if n is not None and f" {task_id}" in str(n.label)), None)


def label(app: TiercelApp, task_id: str) -> str:
    found = node(app, task_id)
    return str(found.label) if found is not None else ""


def task_run(app: TiercelApp, task_id: str) -> TaskRun:
    execution = app.detail.execution
    assert execution is not None
    return next(run for run in execution.task_runs if run.task_id == task_id)


async def test_progress_and_the_running_time_of_a_task_run(running: tuple[Recording, Pilot[None]]) -> None:
    app, pilot = running
    await run_flow(app, pilot, "steps")
    await until_drawn(pilot, lambda: "▶ nap" in label(app, "nap"), what="the running nap")
    # Three tasks, two task runs known so far: the first one done.
    assert tree(app).border_title == "1/2 done"
    assert re.fullmatch(r"✔ first \d+\.\ds", label(app, "first"))  # its duration, as before

    # The app's clock ticks every second: the running time grows on its own.
    first = label(app, "nap")
    await until_drawn(pilot, lambda: label(app, "nap") != first, what="a later running time")
    assert label(app, "nap").split()[-1].endswith("s")

    started = task_run(app, "nap").state.start_date
    app.detail.tick(started + timedelta(seconds=12.7))
    assert label(app, "nap") == "▶ nap 12s"
    app.detail.tick(started + timedelta(seconds=184))
    assert label(app, "nap") == "▶ nap 3m04s"

    execution = app.detail.execution
    assert execution is not None and app.engine is not None
    await app.engine.kill(execution.id)
    await until_drawn(pilot, lambda: "■ nap" in label(app, "nap"), what="the killed nap")
    assert tree(app).border_title == "2/2 done"
    ended = label(app, "nap")
    app.detail.tick(started + timedelta(hours=1))
    assert label(app, "nap") == ended and ended.split()[-1] != "3m04s"  # the time it took, fixed


def test_progress_counts_each_task_run_once() -> None:
    now = utcnow()

    def state(*kinds: StateType) -> State:
        return State(kinds[-1], tuple(History(kind, now) for kind in kinds))

    retried = state(StateType.CREATED, StateType.RUNNING, StateType.SUCCESS)
    runs = (
        TaskRun("a", "e", "acme", "f", "flaky", retried, attempts=(Attempt(retried),) * 3),
        TaskRun("b", "e", "acme", "f", "next", state(StateType.CREATED, StateType.RUNNING)),
        TaskRun("b", "e", "acme", "f", "next", state(StateType.CREATED, StateType.RUNNING)),
    )
    execution = Execution("e", "acme", "f", 1, state(StateType.CREATED, StateType.RUNNING), runs)
    assert progress(execution) == (1, 2)
    assert progress(None) == (0, 0)
    assert [fmt_elapsed(timedelta(seconds=s)) for s in (0.4, 12.9, 60, 184, 7300)] == [
        "0s",
        "12s",
        "1m00s",
        "3m04s",
        "2h01m",
    ]


@pytest.mark.parametrize("flow_id", ["parent", "legacy"])
async def test_enter_on_a_subflow_asks_to_open_its_child_execution(
    running: tuple[Recording, Pilot[None]], flow_id: str
) -> None:
    app, pilot = running
    await run_flow(app, pilot, flow_id)
    await until_drawn(
        pilot,
        lambda: (
            app.detail.execution is not None
            and app.detail.execution.id == app.detail.execution_id
            and app.detail.execution.state.current is StateType.SUCCESS
            and "✔ call" in label(app, "call")
        ),
        what="the parent's success",
    )
    call = task_run(app, "call")
    child = (call.outputs or {}).get("executionId")
    assert child and child != app.detail.execution_id
    assert label(app, "call").endswith("↵ open") and "↵ open" not in label(app, "before")

    shown = tree(app)
    shown.focus()
    before = node(app, "before")
    assert before is not None
    shown.move_cursor(before)
    await pilot.press("enter")  # an ordinary task run: its log only, as before
    await until_drawn(pilot, lambda: app.detail.task_filter == before.data)
    assert app.opened == []

    target = node(app, "call")
    assert target is not None
    shown.move_cursor(target)
    await pilot.press("enter")
    await until_drawn(pilot, lambda: app.opened == [child], what="the request to open the child")
