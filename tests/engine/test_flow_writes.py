"""Flows written into the flows folder by the engine (engine.flows.writing: the REST API's writes and
`TaskContext.flows`): saved into their file or a new one, refused with their problems and nothing
left behind, a block of changes put back whole when one fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiercel.engine import parsed_flow
from tiercel.engine.engine import Engine
from tiercel.engine.store import Store
from tiercel.engine.tasks.services import FlowWriteError

from ..postgres import engine_store
from .helpers import running_engine

HELLO = """id: hello
namespace: team.a
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


async def test_a_new_flow_gets_a_file_of_its_namespace_and_an_update_keeps_it(tmp_path: Path) -> None:
    async with running_engine(tmp_path) as engine:
        files = engine.folder.files
        saved = await files.save_flow(HELLO)
        path = tmp_path / "flows" / "team" / "a" / "hello.yml"
        assert (saved.namespace, saved.id) == ("team.a", "hello") and path.read_text() == HELLO
        await files.save_flow(HELLO.replace("hi", "hello again"))
        assert "hello again" in path.read_text()
        assert [(flow.namespace, flow.id) for flow in files.flow_sources("team", children=True)] == [
            ("team.a", "hello")
        ]
        assert files.flow_sources("team") == []  # its children only when asked
        assert await files.delete_flow("team.a", "hello") and not path.exists()
        assert not await files.delete_flow("team.a", "hello")


async def test_a_refused_flow_leaves_nothing_and_a_failed_block_is_put_back(tmp_path: Path) -> None:
    async with running_engine(tmp_path) as engine:
        files = engine.folder.files
        await files.save_flow(HELLO)
        with pytest.raises(FlowWriteError) as refused:
            await files.save_flow(HELLO.replace("io.kestra.plugin.core.log.Log", "nope"))
        assert refused.value.invalid and "nope" in str(refused.value)
        assert "message: hi" in (tmp_path / "flows" / "team" / "a" / "hello.yml").read_text()
        other = HELLO.replace("id: hello", "id: other")
        with pytest.raises(RuntimeError):
            async with files.changes() as changes:
                await changes.remove("team.a", "hello")
                await changes.save(parsed_flow(other))
                raise RuntimeError("the block fails after its writes")
        assert (tmp_path / "flows" / "team" / "a" / "hello.yml").exists()  # removed, then put back
        assert not (tmp_path / "flows" / "team" / "a" / "other.yml").exists()


async def test_without_a_flows_folder_a_valid_flow_is_refused_as_not_writable_here(tmp_path: Path) -> None:
    engine = Engine(await Store.open(engine_store(tmp_path)))
    await engine.start(control=False)
    try:
        with pytest.raises(FlowWriteError) as refused:
            await engine.folder.files.save_flow(HELLO)
        assert not refused.value.invalid and "no flows folder" in str(refused.value)
    finally:
        await engine.stop()
