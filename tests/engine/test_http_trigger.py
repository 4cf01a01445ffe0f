"""Kestra's HTTP polling trigger (io.kestra.plugin.core.http.Trigger) against a real server on 127.0.0.1.

Each test runs a real engine whose flows poll the local server every PT0.2S. A second flow polling
another path (`/tick`, never firing) serves as the clock: "several polls went by" is counted in its
requests, never in seconds.
"""

from __future__ import annotations

import asyncio
import json
import socket
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.engine.helpers import flow, running_engine
from tests.waiting import HANG, until
from tiercel.engine.engine import Engine
from tiercel.engine.events import EngineError
from tiercel.engine.model import Execution, StateType
from tiercel.engine.parser import FlowParseError, parse_flow

HTTP_TRIGGER = "io.kestra.plugin.core.http.Trigger"


class Site:
    """What the server answers on each path, and how many requests each path received."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.ready = False
        self.headers: dict[str, str] = {}
        self.lock = threading.Lock()
        # /hold answers only once this is set (or after a while, so that no thread lingers).
        self.release = threading.Event()


class Server(ThreadingHTTPServer):
    site: Site


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        site = self.server.site
        path = self.path.split("?", 1)[0]
        with site.lock:
            site.hits[path] += 1
            site.headers = {name.lower(): value for name, value in self.headers.items()}
            ready = site.ready
        if path == "/hold":
            site.release.wait(30)
            self.reply(200, b"{}")
        elif path == "/tick":
            self.reply(503, b"not today")
        elif path == "/missing":
            self.reply(404, b"no such page")
        else:
            self.reply(200, json.dumps({"ready": ready, "price": 99}).encode())

    do_POST = do_GET

    def reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Served-By", "test")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def site() -> Iterator[tuple[Site, str]]:
    server = Server(("127.0.0.1", 0), Handler)
    server.site = Site()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.site, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


RETURN = """\
- id: show
  type: io.kestra.plugin.core.debug.Return
  format: "{{ trigger.code }} {{ json(trigger.body).price }} {{ trigger.headers['x-served-by'][0] }}"
"""
PAUSE = """\
- id: hold
  type: io.kestra.plugin.core.flow.Pause
"""


def polling_flow(flow_id: str, uri: str, extra: str = "", tasks: str = RETURN) -> str:
    """A flow with one HTTP trigger polling `uri` every 0.2 s; `extra`: more trigger properties."""
    trigger = f"- id: poll\n  type: {HTTP_TRIGGER}\n  uri: {uri}\n  interval: PT0.2S\n"
    trigger += textwrap.indent(textwrap.dedent(extra).strip("\n") + "\n", "  ") if extra else ""
    return (
        f"id: {flow_id}\nnamespace: http\ntasks:\n{textwrap.indent(tasks, '  ')}"
        f"triggers:\n{textwrap.indent(trigger, '  ')}"
    )


def ticker(base: str) -> str:
    """The clock of these tests: a flow polling /tick, which answers 503 and so never fires."""
    return polling_flow("ticker", f"{base}/tick")


async def executions_of(engine: Engine, flow_id: str) -> list[Execution]:
    summaries = await engine.list_executions(namespace="http", flow_id=flow_id)
    found = [await engine.execution(summary.id) for summary in summaries]
    return [execution for execution in found if execution is not None]


async def polls_go_by(site: Site, count: int = 3) -> None:
    """Wait until the ticker flow polled `count` more times: several intervals went by."""
    start = site.hits["/tick"]
    await until(lambda: site.hits["/tick"] >= start + count, what=f"{count} polls of /tick")


async def ended(engine: Engine, flow_id: str, count: int = 1) -> list[Execution]:
    async def check() -> list[Execution] | None:
        found = await executions_of(engine, flow_id)
        done = [e for e in found if e.state.current.is_terminated]
        return found if len(done) >= count else None

    result = await until(check, what=f"{count} ended execution(s) of {flow_id}")
    assert result is not None
    return result


async def test_fires_when_the_condition_holds_and_passes_the_response_as_trigger_variables(
    tmp_path: Path, site: tuple[Site, str]
) -> None:
    """Kestra's core/src/main/java/io/kestra/plugin/core/http/Trigger.java (evaluate: the Request's
    outputs become the execution's `trigger` variables) and flows/valids/http-listen.yaml with its
    TriggerTest.shouldExecuteFlowForHttpTrigger (a flow polled with a condition on the status code)."""
    server, base = site
    extra = """
            responseCondition: "{{ response.statusCode == 200 and json(response.body).price <= 110 }}"
            headers:
              X-Flow: "{{ flow.id }}"
            stopAfter: [SUCCESS]
    """
    async with running_engine(tmp_path, polling_flow("price", f"{base}/price", extra)) as engine:
        [execution] = await ended(engine, "price")
        assert execution.state.current is StateType.SUCCESS
        trigger = execution.trigger or {}
        assert trigger["id"] == "poll"
        assert trigger["type"] == HTTP_TRIGGER
        variables = trigger["variables"]
        assert variables["code"] == 200
        assert variables["uri"] == f"{base}/price"
        assert json.loads(variables["body"]) == {"ready": False, "price": 99}
        [show] = execution.task_runs
        assert (show.outputs or {})["value"] == "200 99 test"
        assert server.headers["x-flow"] == "price"  # the trigger's properties are rendered
        states = {state.trigger_id: state for state in await engine.trigger_states()}
        assert states["poll"].type == HTTP_TRIGGER
        assert states["poll"].last_date is not None  # the listing shows when it last fired


async def test_does_not_fire_while_the_response_condition_is_false(
    tmp_path: Path, site: tuple[Site, str]
) -> None:
    """Kestra's Trigger.java: `responseCondition` is rendered with `response.body` after each call,
    and only a true result (TruthUtils.isTruthy) generates an execution; its default,
    `{{ response.statusCode < 400 }}`, keeps failed status codes (allowed for the call) from firing."""
    server, base = site
    extra = """
            responseCondition: "{{ json(response.body).ready }}"
    """
    sources = (polling_flow("wait_ready", f"{base}/ready", extra), polling_flow("missing", f"{base}/missing"))
    async with running_engine(tmp_path, *sources, ticker(base)) as engine:
        await polls_go_by(server)
        await until(lambda: server.hits["/ready"] >= 3 and server.hits["/missing"] >= 3, what="polls")
        assert await executions_of(engine, "wait_ready") == []
        assert await executions_of(engine, "missing") == []  # 404: the default condition is false
        assert await executions_of(engine, "ticker") == []  # 503
        server.ready = True
        [execution, *_] = await ended(engine, "wait_ready")
        assert json.loads(execution.trigger["variables"]["body"])["ready"] is True  # type: ignore[index]


async def test_stop_after_disables_the_trigger(tmp_path: Path, site: tuple[Site, str]) -> None:
    """Kestra's AbstractTrigger.stopAfter (an execution of the trigger ending in one of those states
    disables it), as in Trigger.java's example `http_price_alert` (`stopAfter: [SUCCESS]`)."""
    server, base = site
    once = polling_flow("once", f"{base}/once", "stopAfter: [SUCCESS]")
    async with running_engine(tmp_path, once, ticker(base)) as engine:
        await ended(engine, "once")

        async def disabled() -> bool:
            states = {state.flow_id: state for state in await engine.trigger_states()}
            return not states["once"].enabled

        await until(disabled, what="the trigger disabled by stopAfter")
        await polls_go_by(server)
        hits = server.hits["/once"]
        await polls_go_by(server)
        assert server.hits["/once"] == hits  # no more requests
        assert len(await executions_of(engine, "once")) == 1


async def test_no_new_execution_while_the_previous_one_runs(tmp_path: Path, site: tuple[Site, str]) -> None:
    """Kestra's scheduler locks a polling trigger on the execution it started (Trigger.executionId,
    AbstractScheduler) and evaluates it again once that execution ended, unless the trigger says
    `allowConcurrent: true` (AbstractTrigger.allowConcurrent)."""
    server, base = site
    sources = (
        polling_flow("serial", f"{base}/serial", tasks=PAUSE),
        polling_flow("parallel", f"{base}/parallel", "allowConcurrent: true", tasks=PAUSE),
        ticker(base),
    )
    async with running_engine(tmp_path, *sources) as engine:

        async def paused(flow_id: str, count: int) -> list[Execution] | None:
            found = await executions_of(engine, flow_id)
            held = [e for e in found if e.state.current is StateType.PAUSED]
            return held if len(held) >= count else None

        [first] = await until(lambda: paused("serial", 1), what="the first execution paused") or []
        hits = server.hits["/serial"]
        await polls_go_by(server)
        assert server.hits["/serial"] == hits  # not even polled while its execution runs
        assert len(await executions_of(engine, "serial")) == 1
        await until(lambda: paused("parallel", 3), what="concurrent executions of `parallel`")

        await engine.resume(first.id)
        await until(lambda: paused("serial", 1), what="a second execution once the first ended")
        found = await executions_of(engine, "serial")
        assert len(found) == 2
        assert {e.state.current for e in found} == {StateType.SUCCESS, StateType.PAUSED}


async def test_a_request_error_is_reported_and_polling_goes_on(
    tmp_path: Path, site: tuple[Site, str]
) -> None:
    """Kestra's AbstractScheduler logs a failed evaluation of a trigger and evaluates it again at the
    next date; one trigger's failure does not keep the others from firing."""
    _, base = site
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    async with running_engine(tmp_path) as engine:
        queue = engine.events.subscribe()
        flows_dir = tmp_path / "flows"
        (flows_dir / "broken.yml").write_text(polling_flow("broken", f"http://127.0.0.1:{closed}/x"))
        (flows_dir / "healthy.yml").write_text(polling_flow("healthy", f"{base}/healthy"))
        await engine.sync_flows()
        errors: list[str] = []

        def reported() -> bool:
            errors.extend(e.message for e in engine.events.drain(queue) if isinstance(e, EngineError))
            return len([m for m in errors if "`poll` of http.broken" in m]) >= 3

        await until(reported, what="three failed polls reported")
        assert "cannot connect" in next(m for m in errors if "http.broken" in m)
        await ended(engine, "healthy", 2)
        engine.events.unsubscribe(queue)


async def test_flow_edits_are_followed(tmp_path: Path, site: tuple[Site, str]) -> None:
    """Kestra's AbstractScheduler follows flow changes: a changed polling trigger is evaluated with
    its new properties, a removed one no more (FlowService.findUpdatedTrigger / findRemovedTrigger)."""
    server, base = site
    async with running_engine(tmp_path, polling_flow("moving", f"{base}/tick"), ticker(base)) as engine:
        path = tmp_path / "flows" / "flow_0.yml"
        await until(lambda: server.hits["/tick"] >= 2, what="the first polls")
        path.write_text(polling_flow("moving", f"{base}/moved"))
        await engine.sync_flows()
        await ended(engine, "moving")
        path.unlink()
        await engine.sync_flows()
        await polls_go_by(server)
        hits = server.hits["/moved"]
        await polls_go_by(server)
        assert server.hits["/moved"] == hits


async def test_stopping_cancels_the_polls_and_their_requests(tmp_path: Path, site: tuple[Site, str]) -> None:
    """Kestra's AbstractScheduler.close stops the evaluation of triggers; here a poll whose request
    is still waiting for its response is cancelled too, rather than waited for."""
    server, base = site
    try:
        async with running_engine(tmp_path, polling_flow("held", f"{base}/hold")) as engine:
            await until(lambda: server.hits["/hold"] >= 1, what="a request under way")
            await asyncio.wait_for(engine.scheduler.stop(), HANG)
            polls = [
                task for task in asyncio.all_tasks() if task.get_name().startswith("tiercel-polling-trigger")
            ]
            assert polls == []
            assert await executions_of(engine, "held") == []
    finally:
        server.release.set()


def test_parser_reports_bad_http_trigger_properties() -> None:
    """Kestra's Trigger.java: `uri` is @NotNull, `interval` a Duration (PT60S by default); the
    AbstractTrigger properties (stopAfter states, allowConcurrent) are checked as for schedules."""
    source = flow(
        f"""
        tasks:
          - id: t
            type: io.kestra.plugin.core.log.Log
            message: hi
        triggers:
          - id: poll
            type: {HTTP_TRIGGER}
            interval: every minute
            stopAfter: [DONE]
            responseCode: 200
          - id: zero
            type: io.kestra.plugin.fs.http.Trigger
            uri: ftp://example.com/file
            interval: PT0S
            responseCondition: "{{{{ response.statusCode < }}}}"
        """
    )
    with pytest.raises(FlowParseError) as raised:
        parse_flow(source)
    text = str(raised.value)
    assert "HTTP trigger `poll` has no `uri`" in text
    assert "`interval`: 'every minute' is not an ISO 8601 duration" in text
    assert "Unknown state `DONE` in HTTP trigger `poll`" in text
    assert "Unknown property `responseCode` on HTTP trigger `poll`" in text
    assert "`uri` must be an http:// or https:// URL" in text
    assert "`interval` must be a positive duration" in text
    assert "Invalid expression `{{ response.statusCode < }}`" in text


def test_parser_accepts_the_alias_and_defaults() -> None:
    """Kestra's Trigger.java declares the alias io.kestra.plugin.fs.http.Trigger."""
    source = polling_flow("alias", "https://example.com").replace(
        HTTP_TRIGGER, "io.kestra.plugin.fs.http.Trigger"
    )
    parsed = parse_flow(source)
    [trigger] = parsed.triggers
    assert trigger.type == HTTP_TRIGGER
