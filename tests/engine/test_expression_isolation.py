"""Costly expression filters run in worker processes under the time limit, never holding the event loop."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine.helpers import flow, logs_of
from tests.postgres import engine_store
from tests.waiting import HANG
from tiercel.engine.engine import Engine
from tiercel.engine.expressions import ExpressionError, Renderer
from tiercel.engine.expressions.costly import Job, is_cheap
from tiercel.engine.expressions.offload import shared_pool
from tiercel.engine.model import StateType
from tiercel.engine.store import Store

RUNAWAY_JQ = "{{ 1 | jq('last(range(3e8))') }}"
RUNAWAY_RE = "{{ body | replace({'^(a+)+$': 'x'}, regexp=true) }}"
BODY = "a" * 29 + "!"  # 30 characters: 2^29 ways for ^(a+)+$ to fail


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


class LoopLag:
    """A 10 ms ticker on the event loop: how often it ran, and its worst lag beyond 10 ms (printed).

    A loop held by a costly expression runs no tick until it is free again.
    """

    def __init__(self) -> None:
        self.worst = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            self.ticks += 1
            self.worst = max(self.worst, time.perf_counter() - before - 0.01)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.mark.parametrize(
    ("template", "what"), [(RUNAWAY_JQ, "jq 'last(range(3e8))'"), (RUNAWAY_RE, "'^(a+)+$'")]
)
def test_a_runaway_filter_fails_at_the_limit_and_its_worker_is_killed(template: str, what: str) -> None:
    renderer = Renderer(timeout_s=1)
    pool = shared_pool()
    before = set(pool.pids())
    started = time.perf_counter()
    with pytest.raises(ExpressionError) as failure:
        renderer.render(template, {"body": BODY})
    elapsed = time.perf_counter() - started
    message = str(failure.value)
    assert "expression took longer than 1 s" in message
    assert f"`{template}`" in message and what in message
    # The worker that ran it was killed and reaped; idle workers are all that is left.
    assert set(pool.pids()) <= before
    print(f"\n{template}: failed after {elapsed:.2f} s: {message}")


async def test_prefetch_runs_the_filter_off_the_loop_and_the_render_then_fails_at_once() -> None:
    renderer = Renderer(timeout_s=1)
    with LoopLag() as lag:
        started = time.perf_counter()
        await renderer.prefetch({"format": RUNAWAY_RE, "other": ["{{ body }}"]}, {"body": BODY})
        waited = time.perf_counter() - started
        ticks_while_prefetching = lag.ticks
        workers = set(shared_pool().pids())
        started = time.perf_counter()
        with pytest.raises(ExpressionError, match="expression took longer than 1 s"):
            renderer.render(RUNAWAY_RE, {"body": BODY})
        rendered = time.perf_counter() - started
    print(
        f"\nprefetch {waited:.2f} s, then render {rendered * 1000:.1f} ms; "
        f"worst event loop lag {lag.worst * 1000:.0f} ms"
    )
    assert waited > 0.9  # the prefetch waited for the limit
    # The loop kept ticking through the second the filter ran: the filter ran off the loop.
    assert ticks_while_prefetching >= 3
    # The render used the prefetched failure: running the filter again would have killed a worker.
    assert set(shared_pool().pids()) == workers


async def test_prefetched_results_are_the_filters_results() -> None:
    renderer = Renderer()
    context = {"js": json.dumps({"a": {"b": [1, 2]}}), "text": "john smith"}
    templates = {
        "{{ js | jq('.a.b | map(. * 2)') | first }}": "[2,4]",
        "{{ text | replace({'(\\w+) (\\w+)': '$2, $1'}, regexp=true) }}": "smith, john",
        "{{ 'a , b,c' | split('\\s*,\\s*') }}": '["a","b","c"]',
    }
    await renderer.prefetch(list(templates), context)
    for template, expected in templates.items():
        assert renderer.render(template, context) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ js | jq('.a.b | map(. * 2)') }}", "[[2,4]]"),
        ("{{ js | jq('[.a.b[] | select(. > 1)]') | first }}", "[2]"),
        ("{{ 'a1b22c' | split('\\d+') }}", '["a","b","c"]'),
        ("{{ 'aXbXXc' | replace({'X+': '-'}, regexp=true) }}", "a-b-c"),
    ],
)
def test_filters_in_a_worker_keep_their_results(template: str, expected: str) -> None:
    assert Renderer().render(template, {"js": json.dumps({"a": {"b": [1, 2]}})}) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'x' | jq('map(') }}", "invalid jq expression 'map('"),
        ("{{ 'x' | jq('map(.)') }}", "unable to apply jq 'map(.)'"),
        ("{{ 'x' | split('(+') }}", "invalid regular expression '(+'"),
        ("{{ 'ab' | replace({'(a)+': '$2'}, regexp=true) }}", "invalid replacement '$2'"),
    ],
)
def test_filters_in_a_worker_keep_their_error_messages(template: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)):
        Renderer().render(template, {})


def test_large_json_and_yaml_are_parsed_in_a_worker_with_the_same_rules() -> None:
    renderer = Renderer()
    items = [{"n": index, "text": "x" * 20} for index in range(40_000)]
    big_json = json.dumps(items)
    assert len(big_json) > 1_000_000
    assert renderer.render("{{ (fromJson(data) | last).n }}", {"data": big_json}) == "39999"
    big_yaml = "a: &x [1, 2]\nb: *x\n" + "".join(f"k{index}: v{index}\n" for index in range(8_000))
    assert len(big_yaml) > 64_000
    with pytest.raises(ExpressionError, match="YAML aliases are not allowed"):
        renderer.render("{{ yaml(data) }}", {"data": big_yaml})
    assert renderer.render("{{ yaml(data).k7999 }}", {"data": big_yaml.split("\n", 2)[2]}) == "v7999"


def test_a_runaway_filter_on_constants_is_not_run_while_compiling() -> None:
    workers = set(shared_pool().pids())
    Renderer(timeout_s=0.5).validate(RUNAWAY_JQ)
    # Run, it would have reached the limit and its worker would have been killed.
    assert set(shared_pool().pids()) == workers


def test_workers_do_not_see_the_engines_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_EXPRESSION_TEST", "c2VjcmV0")
    shared_pool().close()  # the next job starts a worker with today's environment
    assert Renderer().render("{{ 1 | jq('$ENV.SECRET_EXPRESSION_TEST') }}", {}) == "[null]"


@pytest.mark.parametrize(
    ("job", "cheap"),
    [
        (Job("jq", (".a.b[0] | keys, length", "{}")), True),
        (Job("jq", ('.["x"]?.y | first', "{}")), True),
        (Job("jq", ("last(range(3e8))", "1")), False),
        (Job("jq", ("[..]", "{}")), False),
        (Job("jq", ("$ENV", "{}")), False),
        (Job("jq", (".a", "x" * 300_000)), False),
        (Job("split", (",", "a,b", 0)), True),
        (Job("split", ("\\s*,", "a,b", 0)), False),
        (Job("replace", ("^(a+)+$", "x", "aaa", 100)), False),
        (Job("replace", ("a|b", "x", "aaa", 100)), False),
        (Job("json", ("{}",)), True),
    ],
)
def test_only_calls_bounded_by_their_input_run_in_place(job: Job, cheap: bool) -> None:
    assert is_cheap(job) is cheap


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    flows = tmp_path / "flows"
    flows.mkdir()
    body = "tasks:\n  - id: t\n    type: io.kestra.plugin.core.debug.Return\n    format: {}\n"
    (flows / "bad.yml").write_text(flow(body.format(json.dumps(RUNAWAY_JQ)), "bad"))
    quick = "{{ 'ab' | replace({'(a)(b)': '$2$1'}, regexp=true) }}"
    (flows / "good.yml").write_text(flow(body.format(json.dumps(quick)), "good"))
    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=flows, renderer=Renderer(timeout_s=2))
    await engine.start(control=False, triggers=False)
    try:
        yield engine
    finally:
        await engine.stop()


async def test_other_executions_run_while_a_runaway_expression_fails_at_the_limit(engine: Engine) -> None:
    with LoopLag() as lag:
        bad = await engine.trigger("ns", "bad", {})
        await asyncio.sleep(0.5)  # the worker has started and is running the program
        started = time.perf_counter()
        good = await asyncio.wait_for(engine.wait(await engine.trigger("ns", "good", {})), HANG)
        answered = time.perf_counter() - started
        ticks_before_the_failure = lag.ticks
        failed = await asyncio.wait_for(engine.wait(bad), HANG)
    print(
        f"\nanother execution ended in {answered * 1000:.0f} ms while jq ran; "
        f"worst event loop lag {lag.worst * 1000:.0f} ms"
    )
    assert good.state.current is StateType.SUCCESS
    assert good.task_runs[0].outputs == {"value": "ba"}
    assert failed.state.current is StateType.FAILED
    # The other execution ended while jq still ran, and the loop ticked on meanwhile.
    assert good.state.end_date is not None and failed.state.end_date is not None
    assert good.state.end_date < failed.state.end_date
    assert ticks_before_the_failure >= 3
    messages = [entry.message for entry in await logs_of(engine, failed.id)]
    assert any("expression took longer than 2 s" in m and RUNAWAY_JQ in m for m in messages), messages
