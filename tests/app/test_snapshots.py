"""SVG snapshots of the main screens (100x32 unless said), the 80x24 layout, history and Dag views,
from a store seeded with hand-built executions.

Everything on screen is fixed: execution ids, dates and durations come from the seed, times are
shown in UTC, and only finished or paused executions are seeded so nothing ticks.
Update after a deliberate change of the look: `pytest tests/app/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.screens.confirm import ConfirmScreen
from tiercel.app.screens.dag import DagScreen
from tiercel.app.screens.history import HistoryScreen
from tiercel.app.screens.run_form import RunFormScreen
from tiercel.app.widgets.namespaces import NodeRef
from tiercel.engine.model import Attempt, Execution, History, LogEntry, LogLevel, State, StateType, TaskRun
from tiercel.engine.store import Store

SIZE = (100, 32)
T0 = datetime(2026, 3, 2, 9, 30, 0, tzinfo=UTC)

LOG = "io.kestra.plugin.core.log.Log"
# The snapshots' own flows, so that changes to sample_flows do not move them.
FLOWS = {
    "acme/hello_world.yml": f"""
id: hello_world
namespace: acme
inputs:
  - {{id: name, type: STRING, defaults: world}}
tasks:
  - {{id: greet, type: {LOG}, message: "Hello, {{{{ inputs.name }}}}!"}}
""",
    "acme/waiting.yml": f"""
id: waiting
namespace: acme
tasks:
  - {{id: pause, type: io.kestra.plugin.core.flow.Pause}}
  - {{id: after, type: {LOG}, message: resumed}}
""",
    "acme/finance/reports/monthly_report.yml": f"""
id: monthly_report
namespace: acme.finance.reports
tasks:
  - {{id: report, type: {LOG}, message: report}}
""",
    "acme/marketing/analytics/campaign_fanout.yml": f"""
id: campaign_fanout
namespace: acme.marketing.analytics
tasks:
  - id: each_channel
    type: io.kestra.plugin.core.flow.ForEach
    values: ["email", "search", "social", "display"]
    tasks:
      - {{id: fetch, type: io.kestra.plugin.core.debug.Return, format: "{{{{ taskrun.value }}}}-rows"}}
      - {{id: score, type: {LOG}, message: scored}}
  - id: wrap_up
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - {{id: notify, type: {LOG}, message: Campaign team notified}}
""",
    "acme/platform/ops/flaky_sync.yml": f"""
id: flaky_sync
namespace: acme.platform.ops
tasks:
  - {{id: sync, type: {LOG}, message: sync}}
""",
    "acme/platform/ops/dagged.yml": f"""
id: dagged
namespace: acme.platform.ops
tasks:
  - id: graph
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {{id: extract, type: {LOG}, message: e}}
      - task: {{id: clean, type: {LOG}, message: c}}
        dependsOn: [extract]
      - task: {{id: enrich, type: {LOG}, message: n}}
        dependsOn: [extract]
      - task: {{id: load, type: {LOG}, message: l}}
        dependsOn: [clean, enrich]
""",
    "acme/platform/ops/nightly_pipeline.yml": f"""
id: nightly_pipeline
namespace: acme.platform.ops
tasks:
  - {{id: run, type: {LOG}, message: nightly}}
triggers:
  - {{id: nightly, type: io.kestra.plugin.core.trigger.Schedule, cron: "0 2 * * *"}}
""",
}


def state(*steps: tuple[StateType, float]) -> State:
    """A state history from (state, seconds after T0) steps."""
    histories = tuple(History(kind, T0 + timedelta(seconds=at)) for kind, at in steps)
    return State(histories[-1].state, histories)


def run(
    execution_id: str, flow_id: str, run_id: str, task_id: str, start: float, end: float, **extra: Any
) -> TaskRun:
    final = extra.pop("final", StateType.SUCCESS)
    states = state((StateType.CREATED, start), (StateType.RUNNING, start), (final, end))
    return TaskRun(
        run_id,
        execution_id,
        extra.pop("namespace"),
        flow_id,
        task_id,
        states,
        attempts=(Attempt(states),),
        **extra,
    )


def campaign(execution_id: str, offset: float) -> tuple[Execution, list[LogEntry]]:
    """A finished campaign_fanout execution with nested loop runs and their log lines."""
    ns, flow = "acme.marketing.analytics", "campaign_fanout"
    runs = [
        run(execution_id, flow, f"{execution_id}-each", "each_channel", offset, offset + 4.2, namespace=ns)
    ]
    lines: list[LogEntry] = []
    for i, channel in enumerate(("email", "search", "social", "display")):
        start = offset + 0.2 + i * 0.9
        fetch = run(
            execution_id,
            flow,
            f"{execution_id}-f{i}",
            "fetch",
            start,
            start + 0.4,
            namespace=ns,
            parent_task_run_id=f"{execution_id}-each",
            value=channel,
        )
        score = run(
            execution_id,
            flow,
            f"{execution_id}-s{i}",
            "score",
            start + 0.4,
            start + 0.8,
            namespace=ns,
            parent_task_run_id=f"{execution_id}-each",
            value=channel,
        )
        runs += [fetch, score]
        when = T0 + timedelta(seconds=start + 0.6)
        message = f"Scored {channel} from {channel}-rows"
        lines.append(LogEntry(execution_id, ns, flow, when, LogLevel.INFO, message, "score", score.id, 1))
    runs.append(
        run(execution_id, flow, f"{execution_id}-wrap", "wrap_up", offset + 4.2, offset + 5.0, namespace=ns)
    )
    when = T0 + timedelta(seconds=offset + 4.9)
    lines.append(
        LogEntry(execution_id, ns, flow, when, LogLevel.INFO, "Campaign team notified", "notify", None, 1)
    )
    execution = Execution(
        execution_id,
        ns,
        flow,
        1,
        state((StateType.CREATED, offset), (StateType.RUNNING, offset), (StateType.SUCCESS, offset + 5.0)),
        tuple(runs),
        inputs={"channels": ["email", "search", "social", "display"]},
    )
    return execution, lines


def simple(
    execution_id: str, ns: str, flow: str, final: StateType, offset: float, seconds: float, **extra: Any
) -> Execution:
    steps = [(StateType.CREATED, offset), (StateType.RUNNING, offset)]
    if final is not StateType.PAUSED:
        steps.append((final, offset + seconds))
    else:
        steps.append((StateType.PAUSED, offset + seconds))
    return Execution(execution_id, ns, flow, 1, state(*steps), **extra)


async def seed(db: Path) -> None:
    store = await Store.open(db)
    try:
        first, first_logs = campaign("5c0ffee0a1b2c3d4e5f6a7", 0.0)
        await store.save_execution(first, first.task_runs, first_logs)
        schedule = {"id": "nightly", "type": "io.kestra.plugin.core.trigger.Schedule"}
        executions = [
            simple(
                "3f9d2b7e81c04a55b6d0e1",
                "acme.platform.ops",
                "nightly_pipeline",
                StateType.SUCCESS,
                60,
                42.0,
                trigger=schedule,
            ),
            simple("7a41c9e2d3b54f6a8c7d90", "acme.platform.ops", "flaky_sync", StateType.FAILED, 120, 3.4),
            simple("9e8d7c6b5a4f3e2d1c0b9a", "acme", "hello_world", StateType.SUCCESS, 180, 0.6),
        ]
        for execution in executions:
            await store.save_execution(execution)
        pause = TaskRun(
            "b1c2d3e4-pause",
            "b1c2d3e4f5a6b7c8d9e0f1",
            "acme",
            "waiting",
            "pause",
            state((StateType.CREATED, 240), (StateType.RUNNING, 240), (StateType.PAUSED, 240.1)),
        )
        paused = simple(
            "b1c2d3e4f5a6b7c8d9e0f1", "acme", "waiting", StateType.PAUSED, 240, 0.1, task_runs=(pause,)
        )
        await store.save_execution(paused, paused.task_runs)
    finally:
        await store.close()


@pytest.fixture
def utc() -> Iterator[None]:
    """Show times in UTC whatever the machine's zone."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "UTC")
        time.tzset()
        yield
    time.tzset()


@pytest.fixture
def seeded(tmp_path: Path, utc: None) -> TiercelApp:
    flows = tmp_path / "flows"
    for name, text in FLOWS.items():
        (flows / name).parent.mkdir(parents=True, exist_ok=True)
        (flows / name).write_text(text)
    db = tmp_path / "db" / "tiercel.db"
    asyncio.run(seed(db))
    return TiercelApp(flows, db, control=False)


async def select(app: TiercelApp, pilot: Pilot[None], ref: NodeRef, rows: int) -> None:
    await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
    # The flow the dashboard starts on shows first: its execution stays selected in a namespace.
    await until_drawn(pilot, lambda: app.executions_pane.loads > 0 and app.detail.execution is not None)
    assert app.ns_tree.select_ref(ref)
    await until_drawn(pilot, lambda: len(app.table.rows_by_id) == rows and app.detail.execution is not None)
    await pilot.pause(0.2)


Before = Callable[[Pilot[None]], Awaitable[None]]


def test_main_screen(snap_compare: Any, seeded: TiercelApp) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await select(seeded, pilot, NodeRef("namespace", "acme"), 5)

    assert snap_compare(seeded, terminal_size=SIZE, run_before=before)


@pytest.mark.slow
def test_execution_with_timeline_and_logs(snap_compare: Any, seeded: TiercelApp) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await select(seeded, pilot, NodeRef("flow", "acme.marketing.analytics", "campaign_fanout"), 1)
        await until_drawn(pilot, lambda: any("notified" in line for line in seeded.detail.log_widget.lines))
        await pilot.press("3", "v")
        await pilot.pause(0.2)

    assert snap_compare(seeded, terminal_size=SIZE, run_before=before)


@pytest.mark.slow
def test_run_form(snap_compare: Any, seeded: TiercelApp) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await select(seeded, pilot, NodeRef("flow", "acme", "hello_world"), 1)
        await pilot.press("r")
        await until_drawn(pilot, lambda: isinstance(seeded.screen, RunFormScreen))
        await pilot.pause(0.2)

    assert snap_compare(seeded, terminal_size=SIZE, run_before=before)


def test_kill_confirmation(snap_compare: Any, seeded: TiercelApp) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await select(seeded, pilot, NodeRef("flow", "acme", "waiting"), 1)
        await pilot.press("2", "K")
        await until_drawn(pilot, lambda: isinstance(seeded.screen, ConfirmScreen))
        await pilot.pause(0.2)

    assert snap_compare(seeded, terminal_size=SIZE, run_before=before)


def test_narrow_terminal_with_the_detail_pane_focused(snap_compare: Any, seeded: TiercelApp) -> None:
    """80x24: the tree gives its columns to the detail pane while that has the focus."""

    async def before(pilot: Pilot[None]) -> None:
        await select(seeded, pilot, NodeRef("flow", "acme.marketing.analytics", "campaign_fanout"), 1)
        await until_drawn(pilot, lambda: any("notified" in line for line in seeded.detail.log_widget.lines))
        await pilot.press("3")
        await pilot.pause(0.2)

    assert snap_compare(seeded, terminal_size=(80, 24), run_before=before)


@pytest.mark.slow
def test_main_screen_at_120x40(snap_compare: Any, seeded: TiercelApp) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await select(seeded, pilot, NodeRef("namespace", ""), 5)

    assert snap_compare(seeded, terminal_size=(120, 40), run_before=before)


@pytest.mark.slow
def test_namespace_history(snap_compare: Any, seeded: TiercelApp) -> None:
    """The charts of a namespace's executions, as of a fixed moment after the seeded runs."""

    async def before(pilot: Pilot[None]) -> None:
        await select(seeded, pilot, NodeRef("namespace", "acme"), 5)
        assert seeded.engine is not None
        screen = HistoryScreen(seeded.engine, "acme", clock=lambda: T0 + timedelta(hours=1))
        await seeded.push_screen(screen)
        await until_drawn(pilot, lambda: screen.loaded > 0)
        await pilot.pause(0.2)

    assert snap_compare(seeded, terminal_size=(120, 40), run_before=before)


@pytest.mark.slow
def test_dag_graph(snap_compare: Any, seeded: TiercelApp) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await until_drawn(pilot, lambda: seeded.engine is not None and seeded.ns_tree.flow_count > 0)
        assert seeded.ns_tree.select_ref(NodeRef("flow", "acme.platform.ops", "dagged"))
        await until_drawn(pilot, lambda: seeded.selected_flow is not None)
        await pilot.press("D")
        await until_drawn(pilot, lambda: isinstance(seeded.screen, DagScreen))
        await pilot.pause(0.2)

    assert snap_compare(seeded, terminal_size=(80, 24), run_before=before)
