"""A ForEach over 20,000 values runs beside other executions without holding them up, and gives its
memory back when it ends. (100,000 values take about 90 s here: measured by hand, see the README.)"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest

from tests.waiting import HANG
from tiercel.engine.engine import Engine
from tiercel.engine.store import Store

pytestmark = pytest.mark.reliability

VALUES = 20_000
BIG = f"""
id: big
namespace: rel.fanout
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    concurrencyLimit: 0
    values: "{{{{ range(1, {VALUES}) }}}}"
    tasks:
      - id: ret
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ taskrun.value }}}}"
"""
SMALL = """
id: small
namespace: rel.fanout
tasks:
  - {id: hello, type: io.kestra.plugin.core.debug.Return, format: hi}
"""


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def test_a_large_foreach_stays_fair_and_gives_its_memory_back(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "big.yml").write_text(BIG)
    (flows / "small.yml").write_text(SMALL)
    engine = Engine(await Store.open(tmp_path / "tiercel.db"), flows_dir=flows)
    await engine.start(control=False)
    try:
        await engine.wait(await engine.trigger("rel.fanout", "small"))
        before = rss_mb()
        began = time.monotonic()
        big_id = await engine.trigger("rel.fanout", "big")
        latencies: list[float] = []
        during = before
        while big_id in engine.live_execution_ids():
            start = time.monotonic()
            await asyncio.wait_for(engine.wait(await engine.trigger("rel.fanout", "small")), 30)
            latencies.append(time.monotonic() - start)
            during = max(during, rss_mb())
            await asyncio.sleep(0.1)
            assert time.monotonic() - began < 4 * HANG, "the ForEach did not end"
        took = time.monotonic() - began
        state = (await engine.wait(big_id)).state.current.value
        await asyncio.sleep(2)  # the engine gives memory back a second after a large execution ends
        after = rss_mb()
    finally:
        await engine.stop()
    print(
        f"ForEach over {VALUES:,} values: {took:.1f} s; another execution end to end: median "
        f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms over "
        f"{len(latencies)} runs; RSS before {before:.0f} MB, during {during:.0f} MB, after {after:.0f} MB"
    )
    assert state == "SUCCESS"
    # Fair: other executions kept starting and ending, one after another, while the ForEach ran.
    assert len(latencies) >= 3
    assert after - before < 120
