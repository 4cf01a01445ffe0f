"""The server's `/metrics` and `/health`, from a real engine's events: what is in progress, what ended
(once each, however often it is announced), how long task runs took, and health checks that fail."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tiercel.engine.events import ExecutionChanged
from tiercel.engine.httpserver import Request
from tiercel.engine.model import StateType
from tiercel.engine.telemetry import Telemetry

from ..waiting import until
from .helpers import flow, run, running_engine

pytestmark = pytest.mark.asyncio

SLOW = flow(
    """
    tasks:
      - id: nap
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT30S
    """,
    flow_id="slow",
)
QUICK = flow(
    """
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: hello
        level: WARN
    """,
    flow_id="quick",
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(telemetry: Telemetry) -> Samples:
    body, _ = telemetry.exposition()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def of(flow_id: str, state: str, **more: str) -> frozenset[tuple[str, str]]:
    return frozenset({("namespace", "ns"), ("flow_id", flow_id), ("state", state), *more.items()})


async def test_in_progress_and_ended_executions_and_task_runs(tmp_path: Path) -> None:
    async with running_engine(tmp_path, SLOW, QUICK) as engine:
        telemetry = Telemetry(engine, lambda: engine.list_executions(limit=1))
        telemetry.start()
        try:
            slow_id = await engine.trigger("ns", "slow", {}, [])
            await until(
                lambda: samples(telemetry).get(("tiercel_task_runs_active", of("slow", "RUNNING"))) == 1
            )
            assert samples(telemetry)[("tiercel_executions_active", of("slow", "RUNNING"))] == 1
            quick = await run(engine, "ns", "quick")
            # An end announced again (a second save, a reload) is not counted twice.
            engine.events.publish(ExecutionChanged(quick))
            await engine.kill(slow_id)
            await asyncio.wait_for(engine.wait(slow_id), 20)
            await until(
                lambda: ("tiercel_executions_ended_total", of("slow", "KILLED")) in samples(telemetry)
            )
            found = samples(telemetry)
            assert found[("tiercel_executions_ended_total", of("quick", "SUCCESS"))] == 1
            assert found[("tiercel_executions_ended_total", of("slow", "KILLED"))] == 1
            assert found[("tiercel_executions_active", of("slow", "RUNNING"))] == 0
            assert found[("tiercel_task_runs_active", of("slow", "RUNNING"))] == 0
            assert (
                found[("tiercel_task_run_duration_seconds_count", of("quick", "SUCCESS", task_id="say"))] == 1
            )
            assert (
                found[("tiercel_task_run_duration_seconds_count", of("slow", "KILLED", task_id="nap"))] == 1
            )
            warned = ("tiercel_log_lines_total", frozenset({("level", "WARN")}))
            await until(lambda: samples(telemetry).get(warned, 0) >= 1)  # announced as they are written
        finally:
            await telemetry.stop()


async def test_health_is_down_when_the_store_fails_or_the_cluster_let_go(tmp_path: Path) -> None:
    async with running_engine(tmp_path, QUICK) as engine:
        gone = False

        async def broken_store() -> None:
            raise OSError("disk on fire")

        telemetry = Telemetry(engine, broken_store, lambda: gone)
        telemetry.start()
        try:
            routes = telemetry.routes()
            get = Request("GET", "/health", "HTTP/1.1")
            down = await routes["/health"](get)
            assert down.status == 503
            assert down.body["status"] == "DOWN"
            assert down.body["checks"]["store"] == {"status": "DOWN", "error": "OSError"}
            alive = await routes["/health/liveness"](get)
            assert (alive.status, alive.body["status"]) == (200, "UP")

            healthy = Telemetry(engine, lambda: engine.list_executions(limit=1), lambda: gone)
            ready = await healthy.routes()["/health/readiness"](get)
            assert (ready.status, ready.body["status"]) == (200, "UP")
            gone = True
            left = await healthy.routes()["/health/readiness"](get)
            assert (left.status, left.body["checks"]["cluster"]) == (503, {"status": "DOWN"})

            refused = await routes["/metrics"](Request("DELETE", "/metrics", "HTTP/1.1"))
            assert (refused.status, refused.headers) == (405, {"Allow": "GET, HEAD"})
        finally:
            await telemetry.stop()


async def test_a_state_seen_before_is_counted_again_after_a_restart(tmp_path: Path) -> None:
    """A restarted execution ends again: each end is an end (Kestra counts them so)."""
    failing = flow(
        """
        tasks:
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
        """,
        flow_id="failing",
    )
    async with running_engine(tmp_path, failing) as engine:
        telemetry = Telemetry(engine, lambda: engine.list_executions(limit=1))
        telemetry.start()
        try:
            first = await run(engine, "ns", "failing")
            assert first.state.current is StateType.FAILED
            await engine.restart(first.id)
            await until(
                lambda: (
                    samples(telemetry).get(("tiercel_executions_ended_total", of("failing", "FAILED"))) == 2
                )
            )
        finally:
            await telemetry.stop()
