"""200 executions started within a second: all succeed, the event loop stays responsive, nothing is lost."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.waiting import until
from tiercel.app.app import TiercelApp
from tiercel.app.widgets.namespaces import NodeRef
from tiercel.engine.engine import Engine
from tiercel.engine.model import StateType
from tiercel.engine.store import Store

pytestmark = pytest.mark.reliability

EXECUTIONS = 200
HEARTBEAT = 0.010
SPACING = 0.004
BRANCHES = ("alpha", "beta", "gamma")

BRANCH = """\
      - id: {name}
        type: io.kestra.plugin.core.log.Log
        message: "{name} of {{{{ execution.id }}}}"
"""
FLOW = (
    "id: fan\nnamespace: rel.load\ntasks:\n  - id: parallel\n    type: io.kestra.plugin.core.flow.Parallel\n"
    "    tasks:\n" + "".join(BRANCH.format(name=name) for name in BRANCHES)
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


@dataclass
class Load:
    """What one load run measured."""

    accepted: float  # seconds from the first start to the last one accepted
    elapsed: float  # seconds from the first start to the last end
    lags: list[float]  # how late each 10 ms heartbeat woke up, in seconds

    def report(self, where: str) -> None:
        p50, p99 = (percentile(self.lags, share) * 1000 for share in (0.5, 0.99))
        print(
            f"\n{where}: {EXECUTIONS} executions accepted in {self.accepted * 1000:.0f} ms, all ended in "
            f"{self.elapsed:.2f} s; loop lag p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
            f"max {max(self.lags) * 1000:.1f} ms ({len(self.lags)} samples)"
        )


async def load(engine: Engine) -> Load:
    """Start the executions one every SPACING seconds while a heartbeat measures the loop's lag."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(HEARTBEAT)
            lags.append(max(0.0, time.perf_counter() - before - HEARTBEAT))

    # What earlier tests in this process left behind is not the dashboard's: keep the collector
    # from walking it during the measurement, as it would not in a dashboard started afresh.
    gc.collect()
    gc.freeze()
    beating = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    launches = []
    for index in range(EXECUTIONS):
        # Paced from the start, so that one late wake-up does not delay all the starts after it.
        await asyncio.sleep(max(0.0, started + index * SPACING - time.perf_counter()))
        launches.append(asyncio.create_task(engine.trigger("rel.load", "fan")))
    ids = await asyncio.gather(*launches)
    accepted = time.perf_counter() - started
    ended = await asyncio.wait_for(asyncio.gather(*(engine.wait(i) for i in ids)), 120)
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.3)  # subscribers catch up with the last events
    stop.set()
    await beating
    gc.unfreeze()
    assert len(set(ids)) == EXECUTIONS
    assert [e.state.current for e in ended] == [StateType.SUCCESS] * EXECUTIONS
    return Load(accepted, elapsed, lags)


def check_database(db: Path) -> None:
    """Exactly what ran: one Parallel run and three branch runs per execution, each log line once."""
    succeeded = count(db, "SELECT count(*) FROM executions WHERE flow_id = 'fan' AND state = 'SUCCESS'")
    assert succeeded == EXECUTIONS
    runs = count(db, "SELECT count(*) FROM task_runs")
    assert runs == EXECUTIONS * (1 + len(BRANCHES)), runs
    assert count(db, "SELECT count(*) FROM task_runs WHERE state = 'SUCCESS'") == runs
    lines = count(db, "SELECT count(*) FROM logs")
    assert lines == EXECUTIONS * len(BRANCHES), lines
    assert count(db, "SELECT count(DISTINCT execution_id || message) FROM logs") == lines
    print(f"database: {EXECUTIONS} executions, {runs} task runs, {lines} log lines, as expected")


def write_flow(tmp_path: Path) -> Path:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "fan.yml").write_text(FLOW)
    return flows


async def test_two_hundred_executions_of_a_parallel_flow_on_the_engine(tmp_path: Path) -> None:
    flows = write_flow(tmp_path)
    db = tmp_path / "db" / "tiercel.db"
    engine = Engine(await Store.open(db), flows_dir=flows)
    await engine.start(control=False, triggers=False)
    try:
        measured = await load(engine)
    finally:
        await engine.stop()
    measured.report("engine alone")
    check_database(db)


async def test_two_hundred_executions_of_a_parallel_flow_under_the_dashboard(tmp_path: Path) -> None:
    flows = write_flow(tmp_path)
    db = tmp_path / "db" / "tiercel.db"
    app: TiercelApp = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(lambda: app.engine is not None and app.ns_tree.flow_count == 1, what="the dashboard")
        assert app.engine is not None
        app.ns_tree.select_ref(NodeRef("flow", "rel.load", "fan"))
        await pilot.pause(0.2)
        measured = await load(app.engine)
        shown = app.table.row_count
    measured.report(f"dashboard ({shown} rows shown)")
    check_database(db)
    assert shown == EXECUTIONS
    # The figures are printed (run with -s), not asserted: on a busy machine any bound on them fails
    # a correct engine. Pacing the starts alone takes 0.8 s and the dashboard measures 0.85-0.95 s;
    # its lag p99 was 260-330 ms before the table was rebuilt once per batch, 40-80 ms since.
