"""Engine queries for the dashboard: what has been announced can be read back at once."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tests.engine.helpers import running_engine
from tiercel.engine.events import LogsAppended

CHATTY = """
id: chatty
namespace: acme.q
tasks:
  - id: talk
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ range(0, 20) }}"
    tasks:
      - id: line
        type: io.kestra.plugin.core.log.Log
        message: "line {{ taskrun.value }}"
"""


async def test_every_announced_log_line_is_in_the_history_read_right_after(tmp_path: Path) -> None:
    async with running_engine(tmp_path, CHATTY) as engine:
        events = engine.events.subscribe()
        execution_id = await engine.trigger("acme.q", "chatty")
        announced: list[str] = []
        checks = 0
        while len(announced) < 20:
            event = await asyncio.wait_for(events.get(), 10)
            if isinstance(event, LogsAppended):
                announced += [e.message for e in event.entries if e.execution_id == execution_id]
                # A reader that switches to this execution now must see every line announced so far.
                stored = [entry.message for _, entry in await engine.logs(execution_id)]
                assert set(announced) <= set(stored)
                checks += 1
        assert checks >= 1
        rows = await engine.list_executions(namespace="acme")
        assert [row.id for row in rows] == [execution_id]


async def test_a_waiter_that_gives_up_leaves_nothing_behind(tmp_path: Path) -> None:
    paused = """
    id: waits
    namespace: acme.q
    tasks:
      - id: approve
        type: io.kestra.plugin.core.flow.Pause
    """
    async with running_engine(tmp_path, paused) as engine:
        execution_id = await engine.trigger("acme.q", "waits")
        for _ in range(50):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(engine.wait(execution_id), 0.01)
        assert engine.loop.waiting(execution_id) == 0
