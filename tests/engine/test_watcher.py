"""The flows folder as the engine sees it: a watched folder of files becoming flow revisions."""

from __future__ import annotations

import asyncio
import os
import shutil
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.engine.helpers import run
from tests.postgres import engine_store
from tests.waiting import until
from tiercel.engine.engine import Engine
from tiercel.engine.events import FlowsChanged
from tiercel.engine.model import StateType
from tiercel.engine.store import Store


def flow_source(flow_id: str, message: str = "hello", namespace: str = "acme.team") -> str:
    return textwrap.dedent(
        f"""\
        id: {flow_id}
        namespace: {namespace}
        tasks:
          - id: say
            type: io.kestra.plugin.core.debug.Return
            format: "{message}"
        """
    )


@asynccontextmanager
async def watching(tmp_path: Path) -> AsyncIterator[Engine]:
    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=tmp_path / "flows")
    await engine.start(control=False, watch=True)
    assert engine.watcher is not None
    await asyncio.wait_for(engine.watcher.ready.wait(), 10)
    try:
        yield engine
    finally:
        await engine.stop()


def revision(engine: Engine, flow_id: str, namespace: str = "acme.team") -> int | None:
    flow = engine.flows.get((namespace, flow_id))
    return flow.revision if flow else None


async def test_edits_breaks_fixes_and_deletes_become_revisions_and_errors(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    file = folder / "report.yml"
    file.write_text(flow_source("report", "one"))
    async with watching(tmp_path) as engine:
        events = engine.events.subscribe()
        assert revision(engine, "report") == 1

        file.write_text(flow_source("report", "two"))
        started = time.monotonic()
        await until(lambda: revision(engine, "report") == 2)
        print(f"an edited flow became revision 2 after {(time.monotonic() - started) * 1000:.0f} ms")
        assert any(isinstance(event, FlowsChanged) for event in engine.events.drain(events))
        execution = await run(engine, "acme.team", "report")
        assert execution.flow_revision == 2
        assert execution.task_runs[0].outputs == {"value": "two"}

        # Saved again without a change: no new revision.
        file.write_text(flow_source("report", "two"))
        file.touch()
        await asyncio.sleep(1)
        assert revision(engine, "report") == 2

        # Broken: the error is recorded with its line, the last good revision keeps running.
        file.write_text("id: report\nnamespace: acme.team\ntasks:\n  - id: say\n    type: nope.Nope\n")
        await until(lambda: str(file) in engine.flow_errors)
        error = engine.flow_errors[str(file)][0]
        assert error.line == 5 and "nope.Nope" in error.message
        assert str(file) in await engine.store.flow_errors()
        assert revision(engine, "report") == 2
        assert (await run(engine, "acme.team", "report")).state.current is StateType.SUCCESS

        # Fixed: a new revision, and the error is gone from memory and from the store.
        file.write_text(flow_source("report", "three"))
        await until(lambda: revision(engine, "report") == 3)
        assert str(file) not in engine.flow_errors
        assert str(file) not in await engine.store.flow_errors()

        # Renamed id: the old flow is retired, the new one appears; revisions stay in the store.
        file.write_text(flow_source("summary", "four"))
        await until(lambda: revision(engine, "summary") == 1 and revision(engine, "report") is None)
        listed = {(row.namespace, row.flow_id) for row in await engine.store.list_flows()}
        assert ("acme.team", "report") not in listed and ("acme.team", "summary") in listed
        assert [r for r, _, _ in await engine.flow_revisions("acme.team", "report")] == [1, 2, 3]

        # A new file, then a deleted one.
        (folder / "nested").mkdir()
        (folder / "nested" / "other.yaml").write_text(flow_source("other"))
        await until(lambda: revision(engine, "other") == 1)
        file.unlink()
        await until(lambda: revision(engine, "summary") is None)
        assert revision(engine, "other") == 1


async def test_an_undone_break_clears_the_error_shown_and_keeps_the_revision(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    file = folder / "report.yml"
    file.write_text(flow_source("report", "one"))
    async with watching(tmp_path) as engine:
        file.write_text(flow_source("report", "one").replace("tasks:", "taskz:"))  # a typo
        await until(lambda: str(file) in engine.flow_errors)
        events = engine.events.subscribe()

        file.write_text(flow_source("report", "one"))  # undone: the stored revision again
        changed: list[bool] = []

        def announced() -> bool:
            changed.extend(isinstance(event, FlowsChanged) for event in engine.events.drain(events))
            return any(changed)

        # What the dashboard redraws on: the change is announced, with the error gone by then.
        await until(announced, what="FlowsChanged after the undo")
        assert engine.flow_errors == {}
        assert await engine.store.flow_errors() == {}
        assert revision(engine, "report") == 1
        assert [r for r, _, _ in await engine.flow_revisions("acme.team", "report")] == [1]


async def test_a_removed_folder_retires_its_flows(tmp_path: Path) -> None:
    folder = tmp_path / "flows" / "team"
    folder.mkdir(parents=True)
    (folder / "a.yml").write_text(flow_source("a"))
    (folder / "b.yml").write_text(flow_source("b"))
    async with watching(tmp_path) as engine:
        assert revision(engine, "a") == 1 and revision(engine, "b") == 1
        (folder / "a.yml").unlink()
        (folder / "b.yml").unlink()
        folder.rmdir()
        await until(lambda: not engine.flows)


async def test_changes_made_while_no_engine_ran_are_found_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "kept.yml").write_text(flow_source("kept", "good"))
    (folder / "gone.yml").write_text(flow_source("gone"))
    async with watching(tmp_path) as engine:
        assert revision(engine, "kept") == 1 and revision(engine, "gone") == 1
    (folder / "gone.yml").unlink()
    (folder / "kept.yml").write_text("id: kept\nnamespace: acme.team\ntasks: 3\n")
    async with watching(tmp_path) as engine:
        assert revision(engine, "gone") is None
        assert str(folder / "kept.yml") in engine.flow_errors
        # The last good revision of the broken file still runs.
        execution = await run(engine, "acme.team", "kept")
        assert execution.flow_revision == 1
        assert execution.task_runs[0].outputs == {"value": "good"}


@pytest.mark.slow
async def test_a_second_file_with_the_same_flow_gets_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "a.yml").write_text(flow_source("same", "from a"))
    async with watching(tmp_path) as engine:
        (folder / "b.yml").write_text(flow_source("same", "from b"))
        await until(lambda: str(folder / "b.yml") in engine.flow_errors)
        assert "also defined in" in engine.flow_errors[str(folder / "b.yml")][0].message
        assert (await run(engine, "acme.team", "same")).task_runs[0].outputs == {"value": "from a"}
        # Once the first file goes, the second one defines the flow.
        (folder / "a.yml").unlink()
        (folder / "b.yml").touch()
        await until(lambda: str(folder / "b.yml") not in engine.flow_errors and "same" in str(engine.flows))
        assert (await run(engine, "acme.team", "same")).task_runs[0].outputs == {"value": "from b"}


async def test_namespaces_inherit_variables_and_plugin_defaults_from_their_parents(tmp_path: Path) -> None:
    """Namespace variables read as `{{ namespace.x }}`, Kestra's form (Enterprise docs, "Namespace
    variables"); `{{ namespace.variables.x }}` stays an alias."""
    folder = tmp_path / "flows"
    (folder / "acme" / "finance").mkdir(parents=True)
    (folder / "acme" / "_namespace.yaml").write_text(
        textwrap.dedent(
            """\
            description: The whole company
            variables:
              region: eu
              owner: it
              db: {host: main, port: 5432}
            pluginDefaults:
              - type: io.kestra.plugin.core.log.Log
                values:
                  level: WARN
            """
        )
    )
    (folder / "acme" / "finance" / "_namespace.yml").write_text(
        "id: acme.finance\nvariables:\n  owner: finance\n  db: {host: ledger}\n"
    )
    (folder / "acme" / "finance" / "report.yml").write_text(
        textwrap.dedent(
            """\
            id: report
            namespace: acme.finance.reports
            tasks:
              - id: log
                type: io.kestra.plugin.core.log.Log
                message: "{{ namespace.id }} {{ namespace.region }} {{ namespace.owner }}"
              - id: db
                type: io.kestra.plugin.core.debug.Return
                format: "{{ namespace.db.host }}:{{ namespace.variables.db.port }}"
            """
        )
    )
    async with watching(tmp_path) as engine:
        execution = await run(engine, "acme.finance.reports", "report")
        assert execution.state.current is StateType.SUCCESS
        await engine.flush_logs()
        await engine.store.flush()
        lines = [entry for _, entry in await engine.store.logs(execution.id)]
        said = [entry for entry in lines if entry.task_id == "log"]
        assert [(entry.level.name, entry.message) for entry in said] == [
            ("WARN", "acme.finance.reports eu finance")
        ]
        assert execution.task_runs[1].outputs == {"value": "ledger:5432"}

        # Editing a declaration reaches the flows below it.
        (folder / "acme" / "finance" / "_namespace.yml").write_text("variables:\n  owner: audit\n")
        await until(lambda: engine.catalog.namespaces.variables("acme.finance")["owner"] == "audit")
        inherited = engine.catalog.namespaces.variables("acme.finance.reports")
        assert inherited["db"] == {"host": "main", "port": 5432}

        (folder / "acme" / "_namespace.yaml").write_text("variables: [1, 2]\n")
        await until(lambda: str(folder / "acme" / "_namespace.yaml") in engine.flow_errors)
        assert "`variables`" in engine.flow_errors[str(folder / "acme" / "_namespace.yaml")][0].message


@pytest.mark.slow
async def test_a_flows_folder_removed_and_made_again_is_still_watched(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "a.yml").write_text(flow_source("a"))
    async with watching(tmp_path) as engine:
        assert revision(engine, "a") == 1
        shutil.rmtree(folder)
        await until(lambda: not engine.flows)
        folder.mkdir()  # a checkout or a deploy puts a new folder in its place
        (folder / "b.yml").write_text(flow_source("b"))
        await until(lambda: revision(engine, "b") == 1)
        (folder / "c.yml").write_text(flow_source("c"))  # and later saves are seen too
        await until(lambda: revision(engine, "c") == 1)


async def test_a_same_size_save_within_one_clock_tick_is_not_missed(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    file = folder / "a.yml"
    file.write_text(flow_source("a", "one"))
    async with running_engine_on(tmp_path) as engine:
        stamp = file.stat().st_mtime_ns
        file.write_text(flow_source("a", "two"))  # same size
        os.utime(file, ns=(stamp, stamp))  # and, on a coarse clock, the same modification time
        await engine.sync_flows([file])
        assert revision(engine, "a") == 2


@asynccontextmanager
async def running_engine_on(tmp_path: Path) -> AsyncIterator[Engine]:
    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=tmp_path / "flows")
    await engine.start(control=False)
    try:
        yield engine
    finally:
        await engine.stop()


@pytest.mark.slow
async def test_a_flows_folder_swapped_at_once_is_still_watched(tmp_path: Path) -> None:
    # `rm -rf flows; mkdir flows` in one go: ext4 hands the freed inode number to the new folder, so
    # the folder's (device, inode) alone cannot tell the new folder from the old one.
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "a.yml").write_text(flow_source("a"))
    async with watching(tmp_path) as engine:
        for round_ in range(3):
            shutil.rmtree(folder)
            folder.mkdir()
            (folder / f"b{round_}.yml").write_text(flow_source(f"b{round_}"))
            await until(lambda n=f"b{round_}": revision(engine, n) == 1)
            (folder / f"c{round_}.yml").write_text(flow_source(f"c{round_}"))  # later saves too
            await until(lambda n=f"c{round_}": revision(engine, n) == 1)
        assert revision(engine, "a") is None


@pytest.mark.slow
async def test_a_link_to_an_ancestor_is_not_followed_and_new_folders_are_watched(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "up").symlink_to("..")  # a loop, and a way out to everything around the folder
    (tmp_path / "elsewhere").mkdir()
    async with watching(tmp_path) as engine:
        assert engine.watcher is not None
        assert all(path.is_relative_to(folder.resolve()) for path in engine.watcher.watched)
        (folder / "team").mkdir()
        await until(lambda: folder.resolve() / "team" in engine.watcher.watched)  # type: ignore[union-attr]
        (folder / "team" / "a.yml").write_text(flow_source("a"))
        await until(lambda: revision(engine, "a") == 1)
        (folder / "team" / "deep").mkdir()
        (folder / "team" / "deep" / "b.yml").write_text(flow_source("b"))  # at once: no wait for the watch
        await until(lambda: revision(engine, "b") == 1)
        (tmp_path / "elsewhere" / "c.yml").write_text(flow_source("c"))  # outside: not a flow of the folder
        await asyncio.sleep(1.5)
        assert revision(engine, "c") is None
