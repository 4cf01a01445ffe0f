"""Make the README's screenshots with the real app: `python -m tiercel.app.screenshots [OUT_DIR]`.

The dashboard runs under Textual's Pilot on a temporary copy of sample_flows and a temporary
database, runs real executions, and saves SVGs of the main screen, an execution's timeline and
logs, the run form, the kill confirmation, a flow's triggers after a backfill, that flow's history
charts, the graph of a flow's `dependsOn` tasks, the expression console, the resource figures of a
flow's tasks (its timeline, and its history's table of tasks), and the layout of an 80x24 terminal
with the detail pane focused.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input

from .app import TiercelApp
from .screens.backfill_form import BackfillFormScreen
from .screens.confirm import ConfirmScreen
from .screens.console import ConsoleScreen
from .screens.dag import DagScreen
from .screens.history import HistoryScreen
from .screens.run_form import RunFormScreen
from .screens.triggers import TriggersScreen
from .widgets.namespaces import NodeRef

REPO = Path(__file__).resolve().parents[1]
SIZE = (100, 30)
SLEEPY = """\
id: sleepy
namespace: acme.platform.ops
description: Waits a minute, long enough to be killed.
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""

# Tiercel's task-level dependsOn (not Kestra's): written here, not in sample_flows, which run on Kestra.
BRANCHING = """\
id: branching
namespace: acme.data
description: Two extracts side by side, joined, then loaded twice; a report when rows came in.
tasks:
  - id: orders
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo 1250 orders"]
  - id: customers
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["echo 310 customers"]
    dependsOn: []
  - id: join
    type: io.kestra.plugin.core.debug.Return
    format: "1250"
    dependsOn: [orders, customers]
  - id: warehouse
    type: io.kestra.plugin.core.log.Log
    message: "loaded {{ outputs.join.value }} rows"
  - id: search_index
    type: io.kestra.plugin.core.log.Log
    message: "indexed {{ outputs.join.value }} rows"
    dependsOn: [join]
  - id: report
    type: io.kestra.plugin.core.log.Log
    message: done
    dependsOn: [warehouse, search_index]
    conditions:
      - type: io.kestra.plugin.core.condition.Expression
        expression: "{{ outputs.join.value | number > 0 }}"
"""


# Tiercel's resource limits (not Kestra's): written here, not in sample_flows, which run on Kestra.
RESOURCES = """\
id: crunch
namespace: acme.data
description: Builds a lookup table in memory, then checks it; a greedy step hits its memory limit.
tasks:
  - id: build
    type: io.kestra.plugin.scripts.python.Script
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
      memory: 512Mi
      cpu: "1"
    script: |
      table = {n: str(n) * 4 for n in range(1_000_000)}
      print(len(table), "entries")
  - id: check
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sleep 0.3
      - echo checked
  - id: greedy
    type: io.kestra.plugin.scripts.python.Script
    allowFailure: true
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
      memory: 96Mi
    script: |
      blocks = [bytearray(8 << 20) for _ in range(64)]
"""


async def until(pilot: Pilot[None], predicate: Callable[[], object], timeout: float = 20.0) -> None:
    """Let the app run until `predicate` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the dashboard did not reach the expected state")
        await pilot.pause(0.05)


def latest_state(app: TiercelApp) -> str | None:
    selected = app.table.selected
    return selected.state if selected else None


async def select(app: TiercelApp, pilot: Pilot[None], ref: NodeRef) -> None:
    app.ns_tree.select_ref(ref)
    await until(pilot, lambda: app.selected_ref == ref)
    await pilot.pause(0.3)


async def run_flow(app: TiercelApp, pilot: Pilot[None], namespace: str, flow_id: str, state: str) -> None:
    await select(app, pilot, NodeRef("flow", namespace, flow_id))
    before = set(app.table.rows_by_id)
    await pilot.press("r")
    if app.selected_flow is not None and app.selected_flow.inputs:
        await until(pilot, lambda: isinstance(app.screen, RunFormScreen))
        await pilot.press("enter")
    await until(pilot, lambda: app.table.selected_id not in before and latest_state(app) == state)


async def backfill_nightly(app: TiercelApp, pilot: Pilot[None]) -> None:
    """Open nightly_pipeline's triggers and backfill the nights since three days ago."""
    await select(app, pilot, NodeRef("flow", "acme.platform.ops", "nightly_pipeline"))
    await pilot.press("T")
    await until(pilot, lambda: isinstance(app.screen, TriggersScreen))
    await pilot.press("b")
    await until(pilot, lambda: isinstance(app.screen, BackfillFormScreen))
    start = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    app.screen.query_one("#field-start", Input).value = start.strftime("%Y-%m-%d %H:%M")
    app.screen.query_one("#field-labels", Input).value = "reason=outage"
    await pilot.press("enter")

    def done() -> bool:
        states = app.trigger_list("acme.platform.ops", "nightly_pipeline")
        return bool(states) and states[0].backfill is not None and states[0].backfill.status == "DONE"

    await until(pilot, lambda: isinstance(app.screen, TriggersScreen) and done(), timeout=60)


async def take(out: Path) -> list[Path]:
    """Run the dashboard and save the screenshots into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        flows = Path(tmp) / "flows"
        shutil.copytree(REPO / "sample_flows", flows)
        (flows / "acme" / "platform" / "ops" / "sleepy.yml").write_text(SLEEPY)
        (flows / "acme" / "data" / "branching.yml").write_text(BRANCHING)
        (flows / "acme" / "data" / "crunch.yml").write_text(RESOURCES)
        app = TiercelApp(flows, Path(tmp) / "db" / "tiercel.db", control=False)
        async with app.run_test(size=SIZE) as pilot:

            async def save(name: str) -> None:
                await pilot.pause(0.3)
                saved.append(Path(app.save_screenshot(name, str(out))))

            await until(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
            await run_flow(app, pilot, "acme", "hello_world", "SUCCESS")
            await run_flow(app, pilot, "acme.marketing.analytics", "campaign_fanout", "SUCCESS")
            await until(pilot, lambda: any("notified" in line for line in app.detail.log_widget.lines))
            await pilot.press("3", "v")
            await save("execution.svg")
            await pilot.press("v", "1")
            await select(app, pilot, NodeRef("namespace", "acme"))
            await until(pilot, lambda: len(app.table.rows_by_id) >= 2)
            await save("main.svg")
            await select(app, pilot, NodeRef("flow", "acme.finance.reports", "monthly_report"))
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, RunFormScreen))
            await save("run_form.svg")
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, RunFormScreen))
            await run_flow(app, pilot, "acme.platform.ops", "sleepy", "RUNNING")
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await save("kill_confirm.svg")
            await pilot.press("y")
            await until(pilot, lambda: latest_state(app) == "KILLED")
            await backfill_nightly(app, pilot)
            await save("triggers.svg")
            await pilot.press("escape", "1", "H")
            await until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.tasks_loaded > 0)
            await save("history.svg")
            await pilot.press("escape")
            await run_flow(app, pilot, "acme.data", "branching", "SUCCESS")
            await pilot.press("D")
            await until(pilot, lambda: isinstance(app.screen, DagScreen))
            await save("task_graph.svg")
            await pilot.press("escape", "3", "x")
            await until(pilot, lambda: isinstance(app.screen, ConsoleScreen))
            for expression in (
                "{{ outputs.join.value | number * 2 }}",
                "{{ outputs.orders.exitCode }}",
                "{{ outputs.jion.value }}",
            ):
                app.screen.query_one("#console-input", Input).value = expression
                await pilot.press("enter")
            await until(pilot, lambda: len(app.screen.query(".console-entry")) == 3)
            await save("expression_console.svg")
            await pilot.press("escape")
            for _ in range(3):
                await run_flow(app, pilot, "acme.data", "crunch", "WARNING")
            await pilot.press("3", "v")
            await save("resources_timeline.svg")
            await pilot.press("v", "1", "H")
            await until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.tasks_loaded > 0)
            await save("resources_history.svg")
            await pilot.press("escape")
            await pilot.resize_terminal(80, 24)
            await select(app, pilot, NodeRef("flow", "acme.marketing.analytics", "campaign_fanout"))
            await until(pilot, lambda: app.detail.execution is not None)
            await pilot.press("3")
            await save("narrow_80x24.svg")
            await pilot.press("q")
    return saved


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else REPO / "screenshots"
    for path in asyncio.run(take(out)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
