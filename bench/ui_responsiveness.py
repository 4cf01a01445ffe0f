"""How responsive the dashboard stays: event-loop lag under a log storm, and time to first paint.

lag          The real app (headless, Pilot) with 20 executions running together, each a shell task
             printing 100 lines/s for `--seconds` (2,000 lines/s in all); one of them is shown in
             the detail pane. A coroutine sleeps 10 ms in a loop and records how late it wakes up:
             p50 / p99 / max of that lag (target: p99 under 100 ms).
first-paint  10,000 executions in the store; the time from creating the app to the executions
             table showing its first page (target: under 1.5 s). Median of `--runs` starts.

    .venv/bin/python bench/ui_responsiveness.py [--seconds 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tiercel.app.app import TiercelApp, create_app  # noqa: E402
from tiercel.app.widgets.namespaces import NodeRef  # noqa: E402
from tiercel.engine.errors import EngineCommandError  # noqa: E402
from tiercel.engine.model import Execution, History, State, StateType  # noqa: E402
from tiercel.engine.store import Store  # noqa: E402

EXECUTIONS = 20
LINES_PER_SECOND = 100  # per execution
HEARTBEAT = 0.010


def chatty_flow(seconds: float) -> str:
    count = int(seconds * LINES_PER_SECOND)
    script = (
        "import sys, time\n"
        f"start = time.monotonic()\n"
        f"for i in range({count}):\n"
        f"    print(f'line {{i}} of the log storm, some payload to make it realistic', flush=True)\n"
        f"    time.sleep(max(0.0, start + (i + 1) / {LINES_PER_SECOND} - time.monotonic()))\n"
    )
    command = f"{shlex.quote(sys.executable)} -u -c {shlex.quote(script)}"
    return (
        "id: chatty\nnamespace: bench\ntasks:\n"
        "  - id: talk\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        f"    commands:\n      - {json_string(command)}\n"
    )


def json_string(text: str) -> str:
    import json

    return json.dumps(text)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def until(pilot: object, predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the dashboard did not reach the expected state")
        await asyncio.sleep(0.02)


async def lag_under_logs(seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        flows = Path(tmp) / "flows"
        flows.mkdir()
        (flows / "chatty.yml").write_text(chatty_flow(seconds))
        app: TiercelApp = create_app(flows, Path(tmp) / "db" / "t.db", control=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == 1)
            app.ns_tree.select_ref(NodeRef("flow", "bench", "chatty"))
            await pilot.pause(0.2)
            assert app.engine is not None
            ids = [await app.engine.trigger("bench", "chatty") for _ in range(EXECUTIONS)]
            await until(pilot, lambda: app.detail.execution_id in ids)
            lags: list[float] = []
            started = time.perf_counter()
            while True:
                before = time.perf_counter()
                await asyncio.sleep(HEARTBEAT)
                now = time.perf_counter()
                lags.append(max(0.0, now - before - HEARTBEAT))
                if now - started > seconds:
                    break
            shown = len(app.detail.log_widget.lines)
            for execution_id in ids:
                with contextlib.suppress(EngineCommandError):  # it may have ended already
                    await app.engine.kill(execution_id)
            await pilot.pause(0.5)
        return {
            "p50_ms": percentile(lags, 0.50) * 1000,
            "p99_ms": percentile(lags, 0.99) * 1000,
            "max_ms": max(lags) * 1000,
            "samples": len(lags),
            "lines_shown": shown,
        }


async def seed(db: Path, count: int) -> None:
    store = await Store.open(db)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        batch = []
        for i in range(count):
            at = start + timedelta(seconds=i * 30)
            state = State(StateType.SUCCESS, (History(StateType.CREATED, at), History(StateType.SUCCESS, at)))
            flow = f"flow_{i % 20}"
            batch.append(store.save_execution(Execution(f"bench{i:017d}", "bench.many", flow, 1, state)))
            if len(batch) == 500:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)
    finally:
        await store.close()


async def first_paint(runs: int, count: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        flows = Path(tmp) / "flows"
        flows.mkdir()
        for i in range(20):
            (flows / f"flow_{i}.yml").write_text(
                f"id: flow_{i}\nnamespace: bench.many\ntasks:\n"
                "  - {id: t, type: io.kestra.plugin.core.debug.Return, format: x}\n"
            )
        db = Path(tmp) / "db" / "t.db"
        await seed(db, count)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            app = create_app(flows, db, control=False)
            async with app.run_test(size=(120, 40)) as pilot:
                await until(pilot, lambda app=app: app.engine is not None and app.ns_tree.flow_count == 20)
                app.ns_tree.select_ref(NodeRef("namespace", "bench"))
                await until(
                    pilot, lambda app=app: app.table.row_count > 0 and app.detail.execution is not None
                )
                await pilot.pause()  # one refresh with the rows on screen
                times.append(time.perf_counter() - started)
        return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--executions", type=int, default=10_000)
    args = parser.parse_args(argv)
    lag = asyncio.run(lag_under_logs(args.seconds))
    rate = EXECUTIONS * LINES_PER_SECOND
    print(
        f"lag with {EXECUTIONS} executions printing {rate} lines/s for {args.seconds:.0f} s: "
        f"p50 {lag['p50_ms']:.1f} ms, p99 {lag['p99_ms']:.1f} ms, max {lag['max_ms']:.1f} ms "
        f"({lag['samples']:.0f} heartbeats, {lag['lines_shown']:.0f} lines in the log pane); "
        "target p99 < 100 ms"
    )
    paints = asyncio.run(first_paint(args.runs, args.executions))
    print(
        f"first paint with {args.executions} executions: median {statistics.median(paints):.2f} s "
        f"(runs: {', '.join(f'{t:.2f}' for t in paints)}); target < 1.5 s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
