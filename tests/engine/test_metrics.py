"""Task metrics: Kestra's counters and timers, from scripts (the `::{"metrics": ...}::` protocol and
Python's `Kestra.counter`/`Kestra.timer`) to the store, run through a real engine and processes."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tiercel.engine.model import Metric, MetricError, Metrics, StateType
from tiercel.engine.model.metrics import MetricEntry

from .helpers import flow, logs_of, messages, one_run, run, running_engine

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

REPORTING = flow(
    """
    tasks:
      - id: py
        type: io.kestra.plugin.scripts.python.Script
        script: |
          import time
          from kestra import Kestra
          Kestra.counter("rows", 3, {"table": "orders"})
          Kestra.counter("rows", 4, {"table": "orders"})
          Kestra.counter("rows", 1, {"table": "users"})
          Kestra.timer("load", 0.25)
          Kestra.timer("nap", lambda: time.sleep(0.05))
      - id: sh
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - >-
            echo '::{"metrics": [{"name": "files", "type": "counter", "value": 2,
            "tags": {"kind": "csv"}}]}::'
          - >-
            echo '::{"metrics": [{"name": "odd", "type": "gauge", "value": 1},
            {"name": "n", "type": "counter", "value": "x"}, {"name": "ok", "type": "timer", "value": 1.5}]}::'
          - 'echo ''::{"metrics": {"name": "not a list"}}::'''
    """,
    flow_id="reporting",
)


def reported(entries: list[MetricEntry]) -> list[MetricEntry]:
    """The metrics the task reported, without the figures of its programs (test_task_resources.py)."""
    return [entry for entry in entries if not entry.name.startswith("process.")]


@pytest.mark.asyncio
async def test_script_metrics_are_stored_per_task_run_added_up_by_name_and_tags(tmp_path: Path) -> None:
    async with running_engine(tmp_path, REPORTING) as engine:
        execution = await run(engine, "ns", "reporting")
        assert execution.state.current is StateType.SUCCESS
        entries = reported(await engine.metrics(execution.id))
        shown = [(e.task_id, e.type, e.name, e.value, dict(e.tags)) for e in entries]
        timed = {e.name: e.value for e in entries if e.type == "timer"}
        assert shown[:3] == [
            ("py", "counter", "rows", 7.0, {"table": "orders"}),
            ("py", "counter", "rows", 1.0, {"table": "users"}),
            ("py", "timer", "load", 250.0, {}),  # Kestra stores a timer's duration in milliseconds
        ]
        assert 50.0 <= timed["nap"] < 5000.0  # the time the callable took, not what it returned
        assert shown[4:] == [
            ("sh", "counter", "files", 2.0, {"kind": "csv"}),
            ("sh", "timer", "ok", 1500.0, {}),
        ]
        py, sh = one_run(execution, "py"), one_run(execution, "sh")
        assert {e.task_run_id for e in entries} == {py.id, sh.id}
        assert [e.name for e in reported(await engine.metrics(execution.id, task_run_id=sh.id))] == [
            "files",
            "ok",
        ]
        assert [e.name for e in reported(await engine.metrics(execution.id, task_id="py"))] == [
            "rows",
            "rows",
            "load",
            "nap",
        ]
        # Kestra's MetricEntry as its API serves it.
        assert entries[0].to_json() == {
            "namespace": "ns",
            "flowId": "reporting",
            "taskId": "py",
            "executionId": execution.id,
            "taskRunId": py.id,
            "type": "counter",
            "name": "rows",
            "value": 7.0,
            "timestamp": entries[0].to_json()["timestamp"],
            "tags": {"table": "orders"},
        }
        warnings = [m for m in messages(await logs_of(engine, execution.id)) if "metric" in m.lower()]
        assert warnings == [
            "Invalid metric: metric type must be `counter` or `timer`, not `gauge`",
            "Invalid metric: metric `n`: the value must be a finite number, not `x`",
            "Invalid metrics `{'name': 'not a list'}`: expected a list",
        ]


@pytest.mark.asyncio
async def test_a_failed_attempt_keeps_what_it_reported_and_each_retry_its_own(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: flaky
            type: io.kestra.plugin.scripts.shell.Commands
            retry:
              type: constant
              interval: PT0.01S
              maxAttempts: 2
            commands:
              - 'echo ''::{"metrics": [{"name": "tries", "type": "counter", "value": 1}]}::'''
              - exit 3
        """,
        flow_id="flaky",
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "flaky")
        assert execution.state.current is StateType.FAILED
        entries = reported(await engine.metrics(execution.id))
        assert [(e.name, e.value) for e in entries] == [("tries", 1.0), ("tries", 1.0)]


@pytest.mark.asyncio
async def test_metrics_of_an_execution_are_read_back_from_the_store_after_a_restart(tmp_path: Path) -> None:
    async with running_engine(tmp_path, REPORTING) as engine:
        execution = await run(engine, "ns", "reporting")
        before = await engine.metrics(execution.id)
    async with running_engine(tmp_path, REPORTING) as engine:
        assert await engine.metrics(execution.id) == before
        assert await engine.metrics("no-such-execution") == []


def test_metric_reports_are_checked() -> None:
    assert Metric.of("COUNTER", "rows", 2, {"b": 1, "a": True}) == Metric(
        "counter", "rows", 2.0, (("a", "true"), ("b", "1"))
    )
    refused = [
        ("gauge", "x", 1, None, "must be `counter` or `timer`"),
        ("counter", "", 1, None, "needs a name"),
        ("counter", 5, 1, None, "needs a name"),
        ("counter", "x", True, None, "finite number"),
        ("counter", "x", "1", None, "finite number"),
        ("counter", "x", math.nan, None, "finite number"),
        ("timer", "x", 1e308, None, "finite number"),  # as milliseconds it is no longer finite
        ("counter", "x", 10**400, None, "finite number"),
        ("counter", "x", 1, ["a"], "tags must be a map"),
    ]
    for kind, name, value, tags, reason in refused:
        with pytest.raises(MetricError, match=reason):
            Metric.of(kind, name, value, tags)


def test_totals_that_overflow_are_refused_and_the_total_kept() -> None:
    metrics = Metrics()
    metrics.add(Metric.of("counter", "big", 1e308), NOW)
    with pytest.raises(MetricError, match="too large"):
        metrics.add(Metric.of("counter", "big", 1e308), NOW)
    (entry,) = metrics.entries(execution_id="e", namespace="n", flow_id="f", task_id="t", task_run_id="r")
    assert entry.value == 1e308


def test_values_are_shown_as_counts_and_durations() -> None:
    def entry(kind: str, value: float) -> MetricEntry:
        return MetricEntry("e", "n", "f", "t", "r", kind, "m", value, NOW, {})

    assert entry("counter", 7.0).shown() == "7"
    assert entry("counter", 0.125).shown() == "0.125"
    assert entry("counter", 1e20).shown() == "1e+20"
    assert entry("timer", 250.0).shown() == "250 ms"
    assert entry("timer", 0.3125).shown() == "0.312 ms"
    assert entry("timer", 1250.0).shown() == "1.250 s"
    assert entry("timer", 90_000.0).shown() == "1.5 min"
    assert entry("timer", 7_200_000.0).shown() == "2 h"
