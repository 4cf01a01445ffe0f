"""The sample flows a newcomer runs first must parse and end as their descriptions promise."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.engine.helpers import logs_of, messages, run
from tiercel.engine.engine import Engine
from tiercel.engine.model import StateType
from tiercel.engine.parser import parse_flow_file
from tiercel.engine.store import Store

SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"
EXPECTED = {
    ("acme", "hello_world"): StateType.SUCCESS,
    ("acme.finance.reports", "monthly_report"): StateType.SUCCESS,
    ("acme.finance.reports", "archive_report"): StateType.SUCCESS,
    ("acme.marketing.analytics", "campaign_fanout"): StateType.SUCCESS,
    ("acme.platform.ops", "flaky_sync"): StateType.FAILED,  # retried, then the error branch on purpose
    ("acme.platform.ops", "nightly_pipeline"): StateType.SUCCESS,
}


def test_every_sample_flow_parses_and_is_listed_here() -> None:
    found = {parse_flow_file(path).uid for path in SAMPLES.rglob("*.yml")}
    assert found == set(EXPECTED)


@pytest.mark.parametrize(("namespace", "flow_id"), sorted(EXPECTED))
async def test_sample_flow_ends_as_described(tmp_path: Path, namespace: str, flow_id: str) -> None:
    shutil.copytree(SAMPLES, tmp_path / "flows")
    store = await Store.open(tmp_path / "tiercel.db")
    engine = Engine(store, flows_dir=tmp_path / "flows")
    await engine.start(control=False)
    try:
        execution = await run(engine, namespace, flow_id)
        lines = messages(await logs_of(engine, execution.id))
    finally:
        await engine.stop()
    assert execution.state.current is EXPECTED[(namespace, flow_id)], lines
    assert lines, "every sample flow logs something"
    assert not any("Unable to find" in line for line in lines if flow_id != "flaky_sync")


async def test_a_successful_monthly_report_is_archived_by_its_flow_trigger(tmp_path: Path) -> None:
    shutil.copytree(SAMPLES, tmp_path / "flows")
    store = await Store.open(tmp_path / "tiercel.db")
    engine = Engine(store, flows_dir=tmp_path / "flows")
    await engine.start(control=False)
    try:
        report = await run(engine, "acme.finance.reports", "monthly_report", {"region": "AMER"})
        assert report.state.current is StateType.SUCCESS

        async def archived() -> list[str]:
            while True:
                rows = await engine.store.list_executions(flow_id="archive_report")
                if rows and (rows[0].state == "SUCCESS"):
                    return messages(await logs_of(engine, rows[0].id))
                await asyncio.sleep(0.02)

        lines = await asyncio.wait_for(archived(), 10)
    finally:
        await engine.stop()
    assert lines == ["ACME Corp files 'Revenue AMER October 2026' in /srv/finance/archive (EUR)"]
