"""A trigger's fire is data the store writes in the execution's own transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.postgres import engine_store
from tiercel.engine.model import Execution, State
from tiercel.engine.store import AlreadyFiredError, ScheduleFire, Store, TriggerRow, WindowsFire


def _execution(execution_id: str) -> Execution:
    return Execution(execution_id, "acme", "nightly", 1, State.new())


async def test_a_date_fires_once_and_a_second_fire_stores_nothing(tmp_path: Path) -> None:
    store = await Store.open(engine_store(tmp_path))
    try:
        date = datetime(2026, 1, 1, tzinfo=UTC)
        row = TriggerRow("acme", "nightly", "daily", last_date=date)
        first, second = _execution("first"), _execution("second")
        await store.save_execution(first, fire=ScheduleFire(row, "2026-01-01T00:00:00Z", first.id))
        with pytest.raises(AlreadyFiredError):
            await store.save_execution(second, fire=ScheduleFire(row, "2026-01-01T00:00:00Z", second.id))
        assert await store.get_execution(first.id) is not None
        assert await store.get_execution(second.id) is None
        assert await store.trigger_fires("acme", "nightly", "daily") == [("2026-01-01T00:00:00Z", "first")]
        assert [r.last_date for r in await store.trigger_rows()] == [date]
    finally:
        await store.close()


async def test_a_flow_trigger_resets_its_windows_with_the_execution_it_starts(tmp_path: Path) -> None:
    store = await Store.open(engine_store(tmp_path))
    try:
        key = ("acme", "nightly", "after_etl", "upstream")
        start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
        await store.update_flow_trigger_windows([(key, (start, end, ["etl"], {"rows": 1}))])
        started = _execution("started")
        await store.save_execution(started, fire=WindowsFire(((key, None),)))
        assert await store.get_execution(started.id) is not None
        assert await store.flow_trigger_window(*key) is None
    finally:
        await store.close()
