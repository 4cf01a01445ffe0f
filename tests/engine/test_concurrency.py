"""A flow's concurrency limit: QUEUE, CANCEL and FAIL, with real executions."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.engine.helpers import logs_of, running_engine
from tests.postgres import engine_store
from tiercel.engine.engine import Engine
from tiercel.engine.events import ExecutionChanged
from tiercel.engine.model import Execution, StateType
from tiercel.engine.store import Store

WAITING = (StateType.CREATED, StateType.QUEUED)


def limited_flow(behavior: str, limit: int = 2, sleep: str = "PT0.05S") -> str:
    return f"""
        id: limited
        namespace: acme.ops
        concurrency:
          limit: {limit}
          behavior: {behavior}
        tasks:
          - id: wait
            type: io.kestra.plugin.core.flow.Sleep
            duration: {sleep}
        """


class Watch:
    """Follows every execution's state from the event bus: the most started at once, and start order."""

    def __init__(self, engine: Engine) -> None:
        self.queue = engine.events.subscribe()
        self.states: dict[str, StateType] = {}
        self.started: list[str] = []
        self.most_running = 0

    def take(self) -> None:
        while not self.queue.empty():
            event = self.queue.get_nowait()
            if not isinstance(event, ExecutionChanged):
                continue
            execution = event.execution
            state = execution.state.current
            if state not in WAITING and execution.id not in self.started:
                self.started.append(execution.id)
            self.states[execution.id] = state
            running = sum(1 for s in self.states.values() if s not in WAITING and not s.is_terminated)
            self.most_running = max(self.most_running, running)

    async def until_all_ended(self, ids: list[str], timeout: float = 60) -> None:
        async def ended() -> None:
            while True:
                self.take()
                if all(self.states.get(i, StateType.CREATED).is_terminated for i in ids):
                    return
                await asyncio.sleep(0.01)

        await asyncio.wait_for(ended(), timeout)


async def start_many(engine: Engine, count: int) -> list[str]:
    return list(await asyncio.gather(*(engine.trigger("acme.ops", "limited") for _ in range(count))))


async def test_queue_runs_at_most_the_limit_at_once_in_fifo_order(tmp_path: Path) -> None:
    async with running_engine(tmp_path, limited_flow("QUEUE")) as engine:
        watch = Watch(engine)
        ids = await start_many(engine, 50)
        await watch.until_all_ended(ids)
        print(f"most RUNNING at once: {watch.most_running}")
        assert watch.most_running == 2
        assert watch.started == ids  # first come, first started
        assert {watch.states[i] for i in ids} == {StateType.SUCCESS}
        queued = [e for e in [await engine.store.get_execution(i) for i in ids[2:]] if e is not None]
        assert all(StateType.QUEUED in [h.state for h in e.state.histories] for e in queued)
        assert len(queued) == 48


async def test_cancel_ends_the_executions_over_the_limit(tmp_path: Path) -> None:
    async with running_engine(tmp_path, limited_flow("CANCEL", sleep="PT0.5S")) as engine:
        watch = Watch(engine)
        ids = await start_many(engine, 50)
        await watch.until_all_ended(ids)
        ends = [watch.states[i] for i in ids]
        assert ends.count(StateType.CANCELLED) == 48
        assert ends[:2] == [StateType.SUCCESS, StateType.SUCCESS]
        assert watch.most_running == 2


async def test_fail_fails_the_executions_over_the_limit_with_a_reason(tmp_path: Path) -> None:
    async with running_engine(tmp_path, limited_flow("FAIL", limit=1, sleep="PT0.5S")) as engine:
        watch = Watch(engine)
        ids = await start_many(engine, 3)
        await watch.until_all_ended(ids)
        assert [watch.states[i] for i in ids] == [StateType.SUCCESS, StateType.FAILED, StateType.FAILED]
        messages = [entry.message for entry in await logs_of(engine, ids[1])]
        assert any("concurrency limit (1)" in message for message in messages)


async def wait_state(engine: Engine, execution_id: str, state: StateType, timeout: float = 10) -> Execution:
    async def reached() -> Execution:
        while True:
            execution = await engine.execution(execution_id)
            if execution is not None and execution.state.current is state:
                return execution
            await asyncio.sleep(0.01)

    return await asyncio.wait_for(reached(), timeout)


async def test_a_kill_frees_its_slot_at_once_and_a_queued_execution_can_be_killed(tmp_path: Path) -> None:
    async with running_engine(tmp_path, limited_flow("QUEUE", limit=1, sleep="PT60S")) as engine:
        first, second, third = await start_many(engine, 3)
        await wait_state(engine, first, StateType.RUNNING)
        await wait_state(engine, third, StateType.QUEUED)
        await engine.kill(third)
        await wait_state(engine, third, StateType.KILLED)
        await engine.kill(first)
        await wait_state(engine, first, StateType.KILLED)
        # The 60 s sleep of the first one did not hold the second one back.
        await wait_state(engine, second, StateType.RUNNING, timeout=5)
        await engine.kill(second)
        await wait_state(engine, second, StateType.KILLED)


async def test_a_paused_execution_holds_its_slot(tmp_path: Path) -> None:
    flow = """
        id: limited
        namespace: acme.ops
        concurrency:
          limit: 1
        tasks:
          - id: approve
            type: io.kestra.plugin.core.flow.Pause
        """
    async with running_engine(tmp_path, flow) as engine:
        first, second = await start_many(engine, 2)
        await wait_state(engine, first, StateType.PAUSED)
        await asyncio.sleep(0.3)
        assert (await engine.execution(second)).state.current is StateType.QUEUED  # type: ignore[union-attr]
        await engine.resume(first)
        await wait_state(engine, first, StateType.SUCCESS)
        await wait_state(engine, second, StateType.PAUSED)


async def test_queued_executions_start_in_order_after_a_restart(tmp_path: Path) -> None:
    async with running_engine(tmp_path, limited_flow("QUEUE", limit=1, sleep="PT60S")) as engine:
        ids = await start_many(engine, 4)
        await wait_state(engine, ids[3], StateType.QUEUED)
        await wait_state(engine, ids[0], StateType.RUNNING)
    # The first one was interrupted (it runs again under the recovery policy, until killed): the queue
    # then moves on in order.
    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=tmp_path / "flows")
    watch = Watch(engine)
    await engine.start(control=False)
    try:
        assert (await engine.execution(ids[1])).state.current is StateType.QUEUED  # type: ignore[union-attr]
        await engine.kill(ids[0])
        await wait_state(engine, ids[1], StateType.RUNNING)
        for execution_id in ids[2:]:
            assert (await engine.execution(execution_id)).state.current is StateType.QUEUED  # type: ignore[union-attr]
        await engine.kill(ids[1])
        await wait_state(engine, ids[2], StateType.RUNNING)
        assert (await engine.execution(ids[3])).state.current is StateType.QUEUED  # type: ignore[union-attr]
        watch.take()
        assert watch.most_running == 1
        for execution_id in ids[2:]:
            await engine.kill(execution_id)
    finally:
        await engine.stop()
