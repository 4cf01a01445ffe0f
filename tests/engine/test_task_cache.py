"""A task's cache: the article's `cache` (keyed by the task's rendered properties) and Kestra's
`taskCache` (keyed by the execution's inputs and the task as written): a successful run's outputs are
reused within the ttl, the task run names the execution that filled the cache, and clearing it makes
the task run again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from tiercel.engine.engine import Engine
from tiercel.engine.model import StateType, utcnow
from tiercel.engine.store import Store
from tiercel.engine.store.task_cache import CachedOutputs

from .helpers import logs_of, messages, one_run, run, running_engine
from .test_parser import error_at, parse

TIERCEL = Path(sys.executable).parent / "tiercel"


def _flow(cache: str, commands: str = "echo {{ inputs.table }}", extra: str = "") -> str:
    """A flow whose task notes each real run in the `runs` file beside the database."""
    return f"""
id: extract
namespace: acme
inputs:
  - {{id: table, type: STRING, defaults: orders}}
  - {{id: note, type: STRING, defaults: a}}
tasks:
  - id: load
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner: {{type: io.kestra.plugin.core.runner.Process}}
    env: {{NOTE: "{{{{ inputs.note }}}}"}}
    commands:
      - "{commands}"
      - echo ran >> "$RUNS"
      - echo '::{{"outputs":{{"rows":42}}}}::'
{textwrap.indent(cache.strip(), "    ")}
{extra}
"""


@pytest.fixture(autouse=True)
def _runs_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the flows' task notes each real run (`$RUNS`)."""
    monkeypatch.setenv("RUNS", str(tmp_path / "runs"))


def _runs(folder: Path) -> int:
    path = folder / "runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


async def _run(engine: Engine, **inputs: str) -> tuple[str, StateType, str | None, object]:
    execution = await run(engine, "acme", "extract", inputs)
    assert execution.state.current is not StateType.FAILED, messages(await logs_of(engine, execution.id))
    load = one_run(execution, "load")
    return execution.id, load.state.current, load.cached_from, (load.outputs or {}).get("vars")


async def test_the_articles_cache_reuses_outputs_while_the_rendered_properties_are_the_same(
    tmp_path: Path,
) -> None:
    async with running_engine(tmp_path, _flow("cache: {enabled: true, ttl: PT1H}")) as engine:
        first, state, cached, outputs = await _run(engine)
        assert (state, cached, outputs, _runs(tmp_path)) == (StateType.SUCCESS, None, {"rows": 42}, 1)
        second, state, cached, outputs = await _run(engine)
        assert (state, cached, outputs, _runs(tmp_path)) == (StateType.SUCCESS, first, {"rows": 42}, 1)
        logs = messages(await logs_of(engine, second))
        assert any(f"Outputs taken from the cache (filled by execution {first}" in line for line in logs)
        # Another table renders another command: another key, a real run.
        _, _, cached, _ = await _run(engine, table="customers")
        assert (cached, _runs(tmp_path)) == (None, 2)
        # Every property keys it when `inputs` lists none: the environment too.
        _, _, cached, _ = await _run(engine, note="b")
        assert (cached, _runs(tmp_path)) == (None, 3)
        assert await engine.clear_task_cache("acme", "extract") == 3
        _, _, cached, _ = await _run(engine)
        assert (cached, _runs(tmp_path)) == (None, 4)


async def test_listed_inputs_alone_key_the_cache(tmp_path: Path) -> None:
    cache = "cache: {enabled: true, ttl: PT1H, inputs: [commands]}"
    async with running_engine(tmp_path, _flow(cache)) as engine:
        first, *_ = await _run(engine)
        _, _, cached, _ = await _run(engine, note="b")  # `env` is not listed
        assert (cached, _runs(tmp_path)) == (first, 1)
        _, _, cached, _ = await _run(engine, table="customers")
        assert (cached, _runs(tmp_path)) == (None, 2)


async def test_kestras_task_cache_is_keyed_by_the_rendered_task(tmp_path: Path) -> None:
    async with running_engine(tmp_path, _flow("taskCache: {enabled: true, ttl: PT1H}")) as engine:
        first, *_ = await _run(engine, table="orders", note="a")
        _, _, cached, _ = await _run(engine, table="orders", note="a")
        assert (cached, _runs(tmp_path)) == (first, 1)
        _, _, cached, _ = await _run(engine, table="orders", note="b")  # the environment renders anew
        assert (cached, _runs(tmp_path)) == (None, 2)


async def test_a_failed_run_is_not_cached_nor_an_entry_past_its_ttl(tmp_path: Path) -> None:
    source = _flow("cache: {enabled: true, ttl: PT1H}", commands="exit {{ inputs.table }}")
    async with running_engine(tmp_path, source) as engine:
        failed = await run(engine, "acme", "extract", {"table": "3"})
        assert failed.state.current is StateType.FAILED
        again = await run(engine, "acme", "extract", {"table": "3"})
        assert one_run(again, "load").cached_from is None
        assert await engine.clear_task_cache("acme", "extract") == 0
        now = utcnow()
        stale = CachedOutputs("old", {"rows": 1}, now - timedelta(hours=2), now - timedelta(hours=1))
        await engine.store.cache_outputs("acme", "extract", "k", "load", stale)
        assert await engine.store.cached_outputs("acme", "extract", "k") is None


FILE_FLOW = """
id: files
namespace: acme
tasks:
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner: {type: io.kestra.plugin.core.runner.Process}
    commands: ["printf {{ execution.id }} > out.txt"]
    outputFiles: [out.txt]
    cache: {enabled: true, ttl: PT1H, inputs: [outputFiles]}
"""


async def test_cached_files_are_reused_while_they_exist(tmp_path: Path) -> None:
    async with running_engine(tmp_path, FILE_FLOW) as engine:
        first = await run(engine, "acme", "files")
        uri = one_run(first, "make").outputs["outputFiles"]["out.txt"]  # type: ignore[index]
        second = await run(engine, "acme", "files")
        assert one_run(second, "make").cached_from == first.id
        assert one_run(second, "make").outputs == one_run(first, "make").outputs
        assert engine.storage.read_text(uri) == first.id
        engine.storage.delete(uri)
        third = await run(engine, "acme", "files")
        assert one_run(third, "make").cached_from is None
        assert "The cached outputs name files that are gone: the task runs" in messages(
            await logs_of(engine, third.id)
        )


def test_the_cache_is_checked_where_it_is_written() -> None:
    head = "id: demo\nnamespace: company.team\ntasks:\n"
    on_flowable = head + (
        "  - id: group\n    type: io.kestra.plugin.core.flow.Sequential\n"
        "    taskCache: {enabled: true, ttl: PT1H}\n"
        "    tasks: [{id: a, type: io.kestra.plugin.core.log.Log, message: x}]\n"
    )
    error_at(on_flowable, "`taskCache` on flowable task `group`: its outputs come from its tasks", 6, 5)
    task = "  - id: q\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n"
    error_at(
        head + task + "    cache: {enabled: true, ttl: soon}\n",
        "`ttl` of the cache of task `q`: 'soon' is not an ISO 8601 duration",
        7,
        33,
    )
    error_at(
        head + task + "    cache: {enabled: true, ttl: PT1H, inputs: [formt]}\n",
        "`formt` is not a property of task `q` (io.kestra.plugin.core.debug.Return): the cache is keyed "
        "by the rendered values of the task's own properties. Did you mean `format`?",
        7,
        48,
    )
    error_at(
        head + task + "    cache: {ttl: PT1H}\n    taskCache: {ttl: PT1H}\n",
        "Task `q` has both `taskCache` and `cache`: keep one",
        7,
        5,
    )
    flow = parse(head + task + "    cache: {enabled: true, ttl: PT2H, inputs: [format]}\n")
    cache = flow.tasks[0].cache
    assert cache is not None and (cache.ttl, cache.properties) == (timedelta(hours=2), ("format",))
    assert any("`cache` is a Tiercel extension" in warning for warning in flow.warnings)
    # A WorkingDirectory's `cache` is its own (the files it keeps), not a task cache.
    working = parse(
        head + "  - id: wd\n    type: io.kestra.plugin.core.flow.WorkingDirectory\n"
        "    cache: {patterns: ['*.txt'], ttl: PT1H}\n"
        "    tasks: [{id: a, type: io.kestra.plugin.core.log.Log, message: x}]\n"
    )
    assert working.tasks[0].cache is None and working.tasks[0].props["cache"]["ttl"] == "PT1H"


def test_tiercel_cache_clear(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TIERCEL_DB", "NO_COLOR")}
    env["RUNS"] = str(tmp_path / "runs")
    db, flow = tmp_path / "t.db", tmp_path / "extract.yml"
    flow.write_text(_flow("cache: {enabled: true, ttl: PT1H}"))

    def tiercel(*args: str | Path) -> subprocess.CompletedProcess[str]:
        command = [str(TIERCEL), *map(str, args)]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)

    assert tiercel("run", "--db", db, flow).returncode == 0
    shown = tiercel("run", "--db", db, "--json", flow)
    assert shown.returncode == 0, shown.stderr
    [load] = [run for run in json.loads(shown.stdout)["taskRunList"] if run["taskId"] == "load"]
    assert "cachedFrom" in load and _runs(tmp_path) == 1
    cleared = tiercel("cache", "clear", "--db", db, "acme", "extract")
    said = (cleared.returncode, cleared.stdout)
    assert said == (0, "1 cached entry of acme.extract cleared\n"), cleared.stderr
    assert tiercel("run", "--db", db, flow).returncode == 0
    assert _runs(tmp_path) == 2


async def test_the_store_keeps_one_entry_per_key(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "t.db") as store:
        now = utcnow()
        for value in (1, 2):
            entry = CachedOutputs(f"e{value}", {"v": value}, now, now + timedelta(hours=1))
            await store.cache_outputs("acme", "f", "k", "t", entry)
        found = await store.cached_outputs("acme", "f", "k")
        assert found is not None and (found.execution_id, found.outputs) == ("e2", {"v": 2})
        assert await store.clear_task_cache("acme", "f", "other") == 0
        assert await store.clear_task_cache("acme", "f", "t") == 1


UPSTREAM = """
id: chain
namespace: acme
inputs:
  - {id: day, type: STRING}
tasks:
  - id: today
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.day }}"
  - id: use
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner: {type: io.kestra.plugin.core.runner.Process}
    commands:
      - echo "{{ outputs.today.value }}" > {{ workingDir }}/day.txt
      - echo "::{\\"outputs\\":{\\"day\\":\\"$(cat day.txt)\\"}}::"
      - echo ran >> "$RUNS"
      - echo careful >&2
    taskCache: {enabled: true}
"""


async def test_task_cache_renders_the_task_as_it_would_run(tmp_path: Path) -> None:
    # The key is the rendered task: an upstream output that changes changes it (as Kestra hashes
    # the rendered task), `{{ workingDir }}` does not; a WARNING is cached and given back as such.
    async with running_engine(tmp_path, UPSTREAM) as engine:
        ran = [await run(engine, "acme", "chain", {"day": day}) for day in ("mon", "mon", "tue")]
    uses = [one_run(execution, "use") for execution in ran]
    assert [use.state.current for use in uses] == [StateType.WARNING] * 3
    assert [use.cached_from for use in uses] == [None, ran[0].id, None]
    assert [use.outputs["vars"] for use in uses] == [{"day": "mon"}, {"day": "mon"}, {"day": "tue"}]  # type: ignore[index]
    assert _runs(tmp_path) == 2
