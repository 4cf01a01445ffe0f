"""10,000 flow files: the engine is ready quickly at start, and again at a restart (nothing re-stored)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tiercel.engine.engine import Engine
from tiercel.engine.store import Store

pytestmark = pytest.mark.reliability

FLOWS = 10_000
NAMESPACES = 100
# A restart took 23.9 s before unchanged files were recognised (and owners indexed); now a few seconds.
RESTART_BOUND_SECONDS = 15.0

SOURCE = """\
id: flow_{i}
namespace: bench.ns{n}
description: One of many flows in one folder.
labels:
  team: platform
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "Hello, {{{{ inputs.name }}}}!"
  - id: greeting
    type: io.kestra.plugin.core.debug.Return
    format: "Hello {{{{ inputs.name | upper }}}}"
"""


async def ready_in(tmp_path: Path) -> float:
    """Seconds from opening the store to a started, watching engine with every flow loaded."""
    started = time.perf_counter()
    store = await Store.open(tmp_path / "tiercel.db")
    engine = Engine(store, flows_dir=tmp_path / "flows")
    await engine.start(watch=True)
    took = time.perf_counter() - started
    try:
        assert len(engine.flows) == FLOWS
        assert not engine.flow_errors
    finally:
        await engine.stop()
    return took


async def test_a_restart_with_10000_flows_is_ready_in_seconds(tmp_path: Path) -> None:
    for i in range(FLOWS):
        folder = tmp_path / "flows" / f"ns{i % NAMESPACES}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"flow_{i}.yml").write_text(SOURCE.format(i=i, n=i % NAMESPACES))
    first = await ready_in(tmp_path)
    again = await ready_in(tmp_path)
    print(f"\n{FLOWS} flows: ready in {first:.1f} s at the first start, {again:.1f} s at a restart")
    assert again < RESTART_BOUND_SECONDS
