"""1,000 malformed flow files dropped at once into the folder a running engine watches."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.engine.clock import ManualClock
from tests.waiting import HANG
from tiercel.engine.engine import Engine
from tiercel.engine.events import ExecutionChanged
from tiercel.engine.model import StateType
from tiercel.engine.store import Store

pytestmark = pytest.mark.reliability

FILES = 1_000
START = datetime(2026, 3, 1, 0, 0, 30, tzinfo=UTC)

BEAT = """\
id: beat
namespace: rel.folder
tasks:
  - id: tick
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.date }}"
triggers:
  - id: every_minute
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * *"
"""


def truncated(i: int) -> bytes:
    whole = (
        f"id: cut{i}\nnamespace: rel.bad\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n"
        f'    message: "a message that never ends {i}\n'
    )
    return whole.encode()


def wrong_types(i: int) -> bytes:
    body = [
        "tasks: 5\n",
        "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n    timeout: [1, 2]\n",
        "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
        "    retry:\n      type: constant\n      maxAttempt: many\n      interval: PT1S\n",
        "labels: 7\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n",
    ][(i // 6) % 4]
    return f"id: types{i}\nnamespace: rel.bad\n{body}".encode()


def unknown_type(i: int) -> bytes:
    return f"id: unknown{i}\nnamespace: rel.bad\ntasks:\n  - id: a\n    type: io.kestra.nope.T{i}\n".encode()


def duplicate_ids(i: int) -> bytes:
    if (i // 6) % 2:  # the same flow id as the valid flow: the file that had it first keeps it
        return BEAT.replace('cron: "* * * * *"', f'cron: "{i % 60} * * * *"').encode()
    task = "  - id: same\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    return f"id: dup{i}\nnamespace: rel.bad\ntasks:\n{task}{task}".encode()


def bad_cron(i: int) -> bytes:
    cron = ["61 * * * *", "* * * *", "every minute", "*/0 * * * *", "0 25 * * *"][(i // 6) % 5]
    return (
        f"id: cron{i}\nnamespace: rel.bad\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n"
        f"    message: hi\ntriggers:\n  - id: t\n    type: io.kestra.plugin.core.trigger.Schedule\n"
        f'    cron: "{cron}"\n'
    ).encode()


def garbage(i: int) -> bytes:
    rng = random.Random(i)
    variant = (i // 6) % 3
    if variant == 0:  # arbitrary bytes
        return rng.randbytes(200 + i % 3000)
    if variant == 1:  # valid UTF-8 text of control characters and punctuation
        alphabet = [*range(1, 9), *range(14, 32), *range(33, 127)]
        return "".join(chr(rng.choice(alphabet)) for _ in range(500)).encode()
    return b"id: g\nnamespace: x\n" + rng.randbytes(300)


KINDS: list[Callable[[int], bytes]] = [truncated, wrong_types, unknown_type, duplicate_ids, bad_cron, garbage]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_a_thousand_malformed_files_at_once(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "aaa_beat.yml").write_text(BEAT)  # sorted first: this file owns rel.folder.beat
    clock = ManualClock(START)
    store = await Store.open(tmp_path / "db" / "tiercel.db")
    engine = Engine(store, flows_dir=flows, clock=clock)
    await engine.start(control=False, watch=True)
    assert engine.watcher is not None
    await asyncio.wait_for(engine.watcher.ready.wait(), 10)
    fired: dict[str, float] = {}  # trigger date -> when its execution was announced
    events = engine.events.subscribe()
    try:
        payloads = {flows / f"bad_{i:04d}.yml": KINDS[i % len(KINDS)](i) for i in range(FILES)}
        baseline = rss_mb()
        peak = baseline
        ticks: dict[str, float] = {}
        started = time.perf_counter()
        for path, payload in payloads.items():
            path.write_bytes(payload)
        wanted = {str(path) for path in payloads}
        next_tick = started
        while not wanted <= set(engine.flow_errors):
            now = time.perf_counter()
            assert now - started < HANG, f"{len(wanted - set(engine.flow_errors))} files not reported"
            if now >= next_tick:  # the schedule keeps time meanwhile: a minute every 100 ms
                clock.advance(timedelta(minutes=1))
                ticks[clock.now().replace(second=0).strftime("%Y-%m-%dT%H:%M:%SZ")] = now
                next_tick = now + 0.1
            peak = max(peak, rss_mb())
            for event in engine.events.drain(events):
                if isinstance(event, ExecutionChanged) and event.execution.flow_id == "beat":
                    date = str((event.execution.trigger or {}).get("variables", {}).get("date"))
                    fired.setdefault(date, time.perf_counter())
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started

        errors = {key: engine.flow_errors[key] for key in wanted}
        without_line = [str(e) for found in errors.values() for e in found if e.line is None]
        wrong_path = [str(e) for key, found in errors.items() for e in found if e.path != key]
        unexpected = [str(e) for found in errors.values() for e in found if "Unexpected error" in e.message]
        print(
            f"\n{FILES} malformed files: all reported in {elapsed:.2f} s, RSS growth "
            f"{peak - baseline:.1f} MB, {sum(len(v) for v in errors.values())} errors in all"
        )
        for index in range(len(KINDS)):
            print(" ", errors[str(flows / f"bad_{index:04d}.yml")][0])
        assert all(errors.values())
        assert not without_line, without_line[:5]
        assert not wrong_path, wrong_path[:5]
        assert not unexpected, unexpected[:5]
        assert peak - baseline < 100

        # The valid flow kept its file and its schedule: every minute passed fired once and succeeded.
        assert engine.flows[("rel.folder", "beat")].path == str(flows / "aaa_beat.yml")
        assert set(engine.flows) == {("rel.folder", "beat")}
        await asyncio.wait_for(engine.scheduler.settled(), 30)
        while not engine.is_idle():
            await asyncio.sleep(0.01)
        await store.flush()
        rows = await store.list_executions(flow_id="beat", limit=1000)
        assert len(rows) == len(ticks) >= 3
        found = [await engine.execution(row.id) for row in rows]
        dates = sorted(str((e.trigger or {})["variables"]["date"]) for e in found if e)
        assert dates == sorted(ticks), (dates, sorted(ticks))
        assert all(e is not None and e.state.current is StateType.SUCCESS for e in found)
        for event in engine.events.drain(events):
            if isinstance(event, ExecutionChanged) and event.execution.flow_id == "beat":
                date = str((event.execution.trigger or {}).get("variables", {}).get("date"))
                fired.setdefault(date, time.perf_counter())
        late = [fired[date] - ticks[date] for date in ticks if date in fired]
        print(f"schedule during the burst: {len(ticks)} slots fired, worst delay {max(late) * 1000:.0f} ms")
    finally:
        engine.events.unsubscribe(events)
        await engine.stop()
        for path in flows.glob("bad_*.yml"):
            os.unlink(path)
