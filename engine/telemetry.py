"""What a server tells Prometheus and a health checker: `/metrics` and `/health`.

The figures come from the engine's event bus, as a dashboard sees them, so they need no query and
hold for whatever worker ran the task (in this process or elsewhere in a cluster): executions ended
by flow and state, executions and task runs in progress by state (a task run CREATED waits for a
worker: the queue's depth), task run durations, log lines by level, and the lag of the engine's
event loop (how late a timer fires: what every request and every step waits on top of its work).
The exposition is prometheus-client's, into a registry of this engine's own.

Health follows the liveness/readiness split of Kestra's (Micronaut's) `/health`: alive while the
event loop answers; ready while it also keeps up, the store answers a read, and (in a cluster) the
server has not been declared gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from .events import EngineError, Event, EventBus, ExecutionChanged, LogsAppended, TaskRunChanged
from .httpserver import Handler, Request, Response
from .model import Execution, StateType, TaskRun

__all__ = ["Telemetry"]

# How often the loop's lag is measured, and the lag past which the engine is not ready.
LAG_PROBE_SECONDS = 0.5
NOT_READY_LAG_SECONDS = 5.0
# How long the store may take to answer the readiness read.
STORE_CHECK_SECONDS = 2.0
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, float("inf"))


class Observed(Protocol):
    """The engine as telemetry watches it."""

    @property
    def events(self) -> EventBus: ...


class Telemetry:
    """Prometheus figures and health of one engine, kept from its events while started.

    Args:
        engine: Its event bus is followed.
        store_check: A read of the store, awaited by the readiness check.
        gone: Whether this server was declared gone by its cluster (never, outside one).
    """

    def __init__(
        self,
        engine: Observed,
        store_check: Callable[[], Awaitable[Any]],
        gone: Callable[[], bool] = lambda: False,
    ) -> None:
        # Without a `_created` series beside each counter: a scraper needs none, and they double the output.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # (not annotated upstream)
        self._engine = engine
        self._store_check = store_check
        self._gone = gone
        self.registry = CollectorRegistry(auto_describe=True)
        flow = ["namespace", "flow_id"]
        self._ended = Counter(
            "tiercel_executions_ended", "Executions that reached an end state", [*flow, "state"],
            registry=self.registry,
        )  # fmt: skip
        self._active = Gauge(
            "tiercel_executions_active", "Executions not ended, by their current state", [*flow, "state"],
            registry=self.registry,
        )  # fmt: skip
        self._task_runs = Gauge(
            "tiercel_task_runs_active",
            "Task runs not ended, by state (CREATED: waiting for a worker, the queue's depth)",
            [*flow, "state"],
            registry=self.registry,
        )
        self._durations = Histogram(
            "tiercel_task_run_duration_seconds", "Task runs' time from start to end, by end state",
            [*flow, "task_id", "state"], buckets=_DURATION_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._lines = Counter("tiercel_log_lines", "Log lines written", ["level"], registry=self.registry)
        self._errors = Counter(
            "tiercel_engine_errors",
            "Errors the engine reported outside any execution (a failing trigger poll, an API error)",
            registry=self.registry,
        )
        self._lag = Gauge(
            "tiercel_event_loop_lag_seconds", "How late the engine's event loop last ran a due timer",
            registry=self.registry,
        )  # fmt: skip
        self._executions = _InProgress(self._active)
        self._runs = _InProgress(self._task_runs)
        self._last_lag = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._queue: asyncio.Queue[Event] | None = None

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Follow the engine's events and measure the loop's lag, until `stop`."""
        self._queue = self._engine.events.subscribe()
        self._tasks = [asyncio.create_task(self._follow(self._queue)), asyncio.create_task(self._probe())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._queue is not None:
            self._engine.events.unsubscribe(self._queue)
            self._queue = None

    # -- what is served -------------------------------------------------------------------------
    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The figures and their content type: the format the scraper's Accept header asks for
        (Prometheus' text format, or OpenMetrics)."""
        if self._queue is not None:  # what happened up to this request counts
            for event in EventBus.drain(self._queue):
                self.observe(event)
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type

    def liveness(self) -> dict[str, Any]:
        """UP: the event loop runs (this answer is made on it)."""
        return {"status": "UP", "checks": {"eventLoop": {"status": "UP", "lagSeconds": self._last_lag}}}

    async def readiness(self) -> dict[str, Any]:
        """UP when the loop keeps up, the store answers a read and the cluster counts this server."""
        checks: dict[str, dict[str, Any]] = {}
        lagging = self._last_lag > NOT_READY_LAG_SECONDS
        checks["eventLoop"] = {"status": "DOWN" if lagging else "UP", "lagSeconds": self._last_lag}
        try:
            await asyncio.wait_for(self._store_check(), STORE_CHECK_SECONDS)
            checks["store"] = {"status": "UP"}
        except Exception as error:  # whatever the store's failure, it is what the check reports
            # Only the kind of failure: the answer is open to anyone, the error's text may name hosts.
            reason = "no answer in time" if isinstance(error, TimeoutError) else type(error).__name__
            checks["store"] = {"status": "DOWN", "error": reason}
        checks["cluster"] = {"status": "DOWN" if self._gone() else "UP"}
        up = all(check["status"] == "UP" for check in checks.values())
        return {"status": "UP" if up else "DOWN", "checks": checks}

    def routes(self) -> dict[str, Handler]:
        """`/metrics`, `/health` (readiness, as Kestra's `/health` sums every check),
        `/health/liveness` and `/health/readiness`: GET or HEAD; a DOWN answer has status 503."""

        def only_reading(answer: Callable[[Request], Awaitable[Response]]) -> Handler:
            async def handler(request: Request) -> Response:
                if request.method not in ("GET", "HEAD"):
                    message = {"message": f"Method {request.method} not allowed"}
                    return Response(405, message, {"Allow": "GET, HEAD"})
                return await answer(request)

            return handler

        async def metrics(request: Request) -> Response:
            body, content_type = self.exposition(request.header("accept") or "")
            return Response(200, body, content_type=content_type)

        async def liveness(request: Request) -> Response:
            return Response(200, self.liveness())

        async def readiness(request: Request) -> Response:
            health = await self.readiness()
            return Response(200 if health["status"] == "UP" else 503, health)

        return {
            "/metrics": only_reading(metrics),
            "/health": only_reading(readiness),
            "/health/liveness": only_reading(liveness),
            "/health/readiness": only_reading(readiness),
        }

    # -- from the events ------------------------------------------------------------------------
    async def _follow(self, queue: asyncio.Queue[Event]) -> None:
        while True:
            self.observe(await queue.get())
            for event in EventBus.drain(queue):
                self.observe(event)

    def observe(self, event: Event) -> None:
        """Count one event of the engine."""
        if isinstance(event, ExecutionChanged) and not event.elsewhere:
            self._execution(event.execution)
        elif isinstance(event, TaskRunChanged):
            self._task_run(event.task_run)
        elif isinstance(event, LogsAppended):
            for entry in event.entries:
                self._lines.labels(entry.level.value).inc()
        elif isinstance(event, EngineError):
            self._errors.inc()

    def _execution(self, execution: Execution) -> None:
        state = execution.state.current
        if self._executions.moved(execution.id, execution.namespace, execution.flow_id, state):
            self._ended.labels(execution.namespace, execution.flow_id, state.value).inc()

    def _task_run(self, run: TaskRun) -> None:
        state = run.state.current
        if self._runs.moved(run.id, run.namespace, run.flow_id, state):
            started = run.state.first_date(StateType.RUNNING) or run.state.start_date
            seconds = max(0.0, ((run.state.end_date or started) - started).total_seconds())
            self._durations.labels(run.namespace, run.flow_id, run.task_id, state.value).observe(seconds)

    # -- the loop's lag -------------------------------------------------------------------------
    async def _probe(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            self._last_lag = max(0.0, time.monotonic() - asked - LAG_PROBE_SECONDS)
            self._lag.set(self._last_lag)


class _InProgress:
    """The objects (executions or task runs) in progress, each counted in a gauge under its flow and
    state, and the end states of the last ones that ended: an end announced twice counts once."""

    REMEMBERED = 10_000

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._open: dict[str, tuple[str, str, str]] = {}
        self._ended: OrderedDict[str, str] = OrderedDict()

    def moved(self, key: str, namespace: str, flow_id: str, state: StateType) -> bool:
        """Take the object's state into account; True when it has just ended."""
        before = self._open.get(key)
        if (before is not None and before[2] == state.value) or self._ended.get(key) == state.value:
            return False
        if before is not None:
            self._gauge.labels(*before).dec()
            del self._open[key]
        if state.is_terminated:
            self._ended[key] = state.value
            self._ended.move_to_end(key)
            if len(self._ended) > self.REMEMBERED:
                self._ended.popitem(last=False)
            return True
        self._ended.pop(key, None)  # restarted
        self._open[key] = (namespace, flow_id, state.value)
        self._gauge.labels(*self._open[key]).inc()
        return False
