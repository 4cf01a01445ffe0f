"""The dashboard shows each flow's last state from the executions stored before it started."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.engine.model import Execution, State, StateType, new_id
from tiercel.engine.store import Store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ended(namespace: str, flow_id: str, state: StateType) -> Execution:
    return Execution(
        id=new_id(),
        namespace=namespace,
        flow_id=flow_id,
        flow_revision=1,
        state=State.new(StateType.CREATED, T0).to(state, T0 + timedelta(seconds=1)),
    )


def flow(folder: Path, namespace: str, flow_id: str) -> None:
    path = folder.joinpath(*namespace.split(".")) / f"{flow_id}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n"
        "  - {id: say, type: io.kestra.plugin.core.log.Log, message: hi}\n"
    )


async def test_each_flow_starts_with_the_state_of_its_newest_execution(tmp_path: Path) -> None:
    flows, db = tmp_path / "flows", tmp_path / "db" / "tiercel.db"
    for namespace, flow_id in (("acme", "hello"), ("acme.finance", "hello"), ("acme", "quiet")):
        flow(flows, namespace, flow_id)
    store = await Store.open(db)
    try:
        await store.save_execution(ended("acme", "hello", StateType.SUCCESS))
        await store.save_execution(ended("acme", "hello", StateType.FAILED))
        # Many newer executions of the same flow id one namespace below do not hide acme's.
        for _ in range(25):
            await store.save_execution(ended("acme.finance", "hello", StateType.WARNING))
        await store.save_execution(ended("gone", "old", StateType.KILLED))  # a flow no longer in the folder
    finally:
        await store.close()
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == 3)
        states = app.ns_tree.last_states
        assert states[("acme", "hello")] == "FAILED"
        assert states[("acme.finance", "hello")] == "WARNING"
        assert ("acme", "quiet") not in states
