"""The catalog across restarts: an unchanged flow file is recognised by its content hash, and is
parsed when first used rather than at start."""

from __future__ import annotations

import sqlite3
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.postgres import engine_store
from tiercel.engine.engine import Engine
from tiercel.engine.events import FlowsChanged
from tiercel.engine.flows.table import FlowTable, StoredFlow
from tiercel.engine.model import Flow
from tiercel.engine.store import Store, source_hash
from tiercel.engine.tasks.registry import plugins_fingerprint

SCHEDULE = "io.kestra.plugin.core.trigger.Schedule"


def flow_source(flow_id: str, message: str = "hello") -> str:
    return textwrap.dedent(
        f"""\
        id: {flow_id}
        namespace: acme.team
        tasks:
          - id: say
            type: io.kestra.plugin.core.debug.Return
            format: "{message}"
        """
    )


async def start_and_stop(tmp_path: Path) -> dict[str, tuple[int, str | None]]:
    """Start an engine on the folder, stop it, and return what the store holds: id -> (revision, hash)."""
    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=tmp_path / "flows")
    await engine.start(control=False, triggers=False)
    rows = await store.list_flows()
    await engine.stop()  # closes the store too
    return {row.flow_id: (row.revision, row.source_hash) for row in rows}


async def test_each_flow_keeps_the_content_hash_of_its_current_revision(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "a.yml").write_text(flow_source("a"))
    (folder / "b.yml").write_text(flow_source("b"))
    assert await start_and_stop(tmp_path) == {
        "a": (1, source_hash(flow_source("a"))),
        "b": (1, source_hash(flow_source("b"))),
    }
    # Unchanged files are the same revisions after a restart; a file edited meanwhile is a new one.
    (folder / "b.yml").write_text(flow_source("b", "changed while nothing ran"))
    assert await start_and_stop(tmp_path) == {
        "a": (1, source_hash(flow_source("a"))),
        "b": (2, source_hash(flow_source("b", "changed while nothing ran"))),
    }


async def test_a_file_moved_while_nothing_ran_keeps_its_revision_and_learns_its_path(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    (folder / "old").mkdir(parents=True)
    (folder / "old" / "a.yml").write_text(flow_source("a"))
    await start_and_stop(tmp_path)
    (folder / "new").mkdir()
    (folder / "old" / "a.yml").rename(folder / "new" / "a.yml")
    assert (await start_and_stop(tmp_path))["a"][0] == 1
    store = await Store.open(engine_store(tmp_path), readonly=True)
    try:
        [row] = await store.list_flows()
    finally:
        await store.close()
    assert row.path == str(folder / "new" / "a.yml")


SCHEDULED = """\
id: nightly
namespace: acme.team
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: "night"
triggers:
  - id: cron
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 3 * * *"
"""


def parsed(engine: Engine) -> set[str]:
    return {flow_id for (_, flow_id) in engine.flows if engine.flows.is_parsed((_, flow_id))}


async def test_a_restart_parses_only_the_flows_with_triggers_and_the_others_when_used(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / f"{name}.yml").write_text(flow_source(name))
    (folder / "nightly.yml").write_text(SCHEDULED)
    await start_and_stop(tmp_path)

    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=folder)
    await engine.start(control=False)
    try:
        assert set(engine.flows) == {("acme.team", name) for name in ("a", "b", "c", "nightly")}
        assert parsed(engine) == {"nightly"}  # the scheduler needed it; the others wait until used
        assert [state.trigger_id for state in engine.scheduler.triggers()] == ["cron"]
        flow = engine.flows[("acme.team", "b")]
        assert (flow.revision, flow.path, flow.source) == (1, str(folder / "b.yml"), flow_source("b"))
        assert parsed(engine) == {"nightly", "b"}
        execution_id = await engine.trigger("acme.team", "c")
        execution = await engine.wait(execution_id)
        assert execution.state.current.value == "SUCCESS"
        assert execution.task_runs[0].outputs == {"value": "hello"}
    finally:
        await engine.stop()


async def test_files_changed_or_broken_while_nothing_ran_are_checked_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / f"{name}.yml").write_text(flow_source(name))
    await start_and_stop(tmp_path)
    (folder / "b.yml").write_text(flow_source("b", "edited"))
    (folder / "c.yml").write_text(flow_source("c").replace("tasks:", "taskz:"))

    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=folder)
    await engine.start(control=False, triggers=False)
    try:
        # The edited file, and the broken one's last good revision (read back from the store); not a.
        assert parsed(engine) == {"b", "c"}
        assert engine.flows[("acme.team", "b")].revision == 2
        assert list(engine.flow_errors) == [str(folder / "c.yml")]
        assert engine.flows[("acme.team", "c")].source == flow_source("c")
    finally:
        await engine.stop()


async def test_flows_are_checked_again_at_start_when_namespace_defaults_changed(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "a.yml").write_text(flow_source("a"))
    await start_and_stop(tmp_path)
    (folder / "_namespace.yml").write_text(
        "id: acme.team\npluginDefaults:\n  - type: io.kestra.plugin.core.debug.Return\n"
        "    values:\n      format: from defaults\n"
    )
    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=folder)
    await engine.start(control=False, triggers=False)
    try:
        assert parsed(engine) == {"a"}  # its outline was checked with other defaults: not trusted
    finally:
        await engine.stop()
    # Checked with these defaults now: the next start trusts it again.
    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=folder)
    await engine.start(control=False, triggers=False)
    try:
        assert parsed(engine) == set()
    finally:
        await engine.stop()


@pytest.mark.sqlite_only
async def test_flows_stored_without_an_outline_are_parsed_once_and_outlined(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "a.yml").write_text(flow_source("a"))
    (folder / "nightly.yml").write_text(SCHEDULED)
    await start_and_stop(tmp_path)
    with sqlite3.connect(tmp_path / "tiercel.db") as conn:  # as a database from before outlines
        conn.execute("UPDATE flows SET trigger_types = NULL, checked_with = NULL")
    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=folder)
    await engine.start(control=False, triggers=False)
    try:
        assert parsed(engine) == {"a", "nightly"}
        rows = {row.flow_id: row for row in await store.list_flows()}
    finally:
        await engine.stop()
    assert rows["a"].trigger_types == () and rows["nightly"].trigger_types == (SCHEDULE,)
    assert rows["a"].checked_with is not None and rows["a"].revision == 1
    assert rows["nightly"].revision == 1


def test_a_flow_table_entry_that_no_longer_parses_is_left_out() -> None:
    broken: list[str] = []

    def parse(entry: StoredFlow) -> Flow:
        broken.append(entry.path)
        raise KeyError(entry.uid)

    table = FlowTable(parse)
    table.add_stored(StoredFlow(("ns", "x"), 3, "id: x", "x.yml", frozenset({SCHEDULE})))
    assert ("ns", "x") in table and len(table) == 1 and table.with_triggers(SCHEDULE) == [("ns", "x")]
    assert table.get(("ns", "x")) is None
    assert broken == ["x.yml"] and ("ns", "x") not in table and table.with_triggers() == []


async def test_flows_not_parsed_yet_follow_their_files_edited_or_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.yml").write_text(flow_source(name))
    await start_and_stop(tmp_path)
    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=folder)
    await engine.start(control=False, triggers=False)
    try:
        assert parsed(engine) == set()
        (folder / "a.yml").write_text(flow_source("a", "edited"))
        (folder / "b.yml").unlink()
        await engine.sync_flows({folder / "a.yml", folder / "b.yml"})
        assert set(engine.flows) == {("acme.team", "a")}
        assert engine.flows[("acme.team", "a")].revision == 2
        assert engine.flows[("acme.team", "a")].source == flow_source("a", "edited")
        assert {row.flow_id for row in await store.list_flows()} == {"a"}
    finally:
        await engine.stop()


BROKEN = "id: a\nnamespace: acme.team\ntasks: 3\n"


@pytest.mark.parametrize("restarted", [False, True], ids=["same engine", "after a restart"])
async def test_undoing_a_break_clears_the_error_and_announces_it_without_a_new_revision(
    tmp_path: Path, restarted: bool
) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    file = folder / "a.yml"
    file.write_text(flow_source("a"))
    if restarted:  # the flow is then taken from the store unparsed, by its content hash
        await start_and_stop(tmp_path)
    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=folder)
    await engine.start(control=False, triggers=False)
    events = engine.events.subscribe()
    try:
        file.write_text(BROKEN)
        await engine.sync_flows({file})
        assert str(file) in engine.flow_errors
        assert str(file) in await store.flow_errors()
        engine.events.drain(events)

        file.write_text(flow_source("a"))  # the undo: exactly the stored revision again
        await engine.sync_flows({file})
        assert engine.flow_errors == {}
        assert await store.flow_errors() == {}
        assert any(isinstance(event, FlowsChanged) for event in engine.events.drain(events))
        assert engine.flows[("acme.team", "a")].source == flow_source("a")
        assert [revision for revision, _, _ in await engine.flow_revisions("acme.team", "a")] == [1]
    finally:
        await engine.stop()


async def test_a_file_broken_while_nothing_ran_then_undone_clears_its_error(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    file = folder / "a.yml"
    file.write_text(flow_source("a"))
    await start_and_stop(tmp_path)
    file.write_text(BROKEN)
    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=folder)
    await engine.start(control=False, triggers=False)
    events = engine.events.subscribe()
    try:
        assert str(file) in engine.flow_errors
        file.write_text(flow_source("a"))
        await engine.sync_flows({file})
        assert engine.flow_errors == {} and await store.flow_errors() == {}
        assert any(isinstance(event, FlowsChanged) for event in engine.events.drain(events))
        assert engine.flows[("acme.team", "a")].revision == 1
        assert [revision for revision, _, _ in await engine.flow_revisions("acme.team", "a")] == [1]
    finally:
        await engine.stop()


def test_the_plugins_fingerprint_names_each_entry_point_with_its_distributions_version() -> None:
    """Read from the metadata's headers, the version is the one importlib finds in the whole file."""
    entries = list(entry_points(group="tiercel.tasks"))
    assert entries  # the plugin families are entry points of the package itself
    expected = sorted(f"{e.name}={e.value} {e.dist.version if e.dist else ''}" for e in entries)
    assert plugins_fingerprint().split("\n") == expected
