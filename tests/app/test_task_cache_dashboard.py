"""The dashboard and a task's cache: a task run that reused cached outputs says so in the task run
tree, and the palette clears a flow's cache."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.app.test_dashboard_features import palette
from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.widgets.task_runs import run_label

FLOW = """
id: cached
namespace: acme
tasks:
  - id: load
    type: io.kestra.plugin.core.debug.Return
    format: "rows"
    cache: {enabled: true, ttl: PT1H}
"""


async def test_a_cached_task_run_is_marked_and_the_palette_clears_the_cache(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "cached.yml").write_text(FLOW.lstrip())
    app = TiercelApp(flows, tmp_path / "db" / "tiercel.db", control=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == 1)
        engine = app.engine
        assert engine is not None
        runs = []
        for _ in range(2):
            execution_id = await engine.trigger("acme", "cached")
            execution = await asyncio.wait_for(engine.wait(execution_id), 20)
            runs.append(execution.task_runs[0])
        assert runs[0].cached_from is None and runs[1].cached_from == runs[0].execution_id
        assert run_label(runs[1]).plain.endswith(" load cached")
        assert not run_label(runs[0]).plain.endswith("cached")
        await palette(pilot, app, "ctrl+p", "clear task cache of flow acme.cached")
        await until_drawn(pilot, lambda: any("1 cached entry of acme.cached cleared" in str(n.message)
                                             for n in app._notifications))  # fmt: skip
        assert await engine.clear_task_cache("acme", "cached") == 0
