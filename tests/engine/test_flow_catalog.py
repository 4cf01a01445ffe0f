"""The catalog across restarts: an unchanged flow file is recognised by its content hash."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tiercel.engine.engine import Engine
from tiercel.engine.store import Store, source_hash


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
    store = await Store.open(tmp_path / "tiercel.db")
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
    store = await Store.open(tmp_path / "tiercel.db", readonly=True)
    try:
        [row] = await store.list_flows()
    finally:
        await store.close()
    assert row.path == str(folder / "new" / "a.yml")
