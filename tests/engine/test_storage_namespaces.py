"""Which execution files an execution may read: its namespace's, its parent namespaces', its starter's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.engine.helpers import logs_of, run, running_engine
from tiercel.engine.internal_storage import Storage, StorageError
from tiercel.engine.model import StateType

UPSTREAM = {"variables": {"namespace": "other.team", "flowId": "producer", "executionId": "p1"}}


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(tmp_path / "storage")


@pytest.mark.parametrize(
    "uri",
    [
        "kestra:///acme/web/flow/executions/e1/tasks/t/r/out.txt",  # its own namespace
        "kestra:///acme/web/other_flow/executions/e2/inputs/doc/a.csv",  # another flow of it
        "kestra:///acme/flow/executions/e1/tasks/t/r/out.txt",  # a parent namespace
    ],
)
def test_its_own_and_parent_namespaces_files_are_readable(storage: Storage, uri: str) -> None:
    storage.check_readable(uri, "acme.web")


@pytest.mark.parametrize(
    ("uri", "owner"),
    [
        ("kestra:///other/team/flow/executions/e1/tasks/t/r/out.txt", "namespace `other.team`"),
        ("kestra:///acme/other/flow/executions/e1/out.txt", "namespace `acme.other`"),  # a sibling
        ("kestra:///acme/web/sub/flow/executions/e1/out.txt", "namespace `acme.web.sub`"),  # a child
        ("kestra:///acme/webx/flow/executions/e1/out.txt", "namespace `acme.webx`"),
        ("kestra:///acme/web/notes.txt", "not an execution file"),
    ],
)
def test_other_namespaces_files_are_refused_with_the_reason(storage: Storage, uri: str, owner: str) -> None:
    with pytest.raises(StorageError, match="reads only the execution files of its own namespace") as refused:
        storage.check_readable(uri, "acme.web")
    assert owner in str(refused.value)


def test_the_files_of_the_execution_that_started_it_are_readable(storage: Storage) -> None:
    storage.check_readable(
        "kestra:///other/team/producer/executions/p1/tasks/t/r/out.csv", "acme.web", UPSTREAM
    )
    with pytest.raises(StorageError, match="and of the execution that started it"):
        storage.check_readable("kestra:///other/team/producer/executions/p2/out.csv", "acme.web", UPSTREAM)
    # A webhook's variables (body, headers, parameters) name no execution.
    webhook = {"variables": {"body": {"namespace": "other.team", "flowId": "producer", "executionId": "p1"}}}
    with pytest.raises(StorageError):
        storage.check_readable("kestra:///other/team/producer/executions/p1/out.csv", "acme.web", webhook)


READER = """
id: reader
namespace: acme.web
inputs:
  - {id: uri, type: STRING}
tasks:
  - {id: show, type: io.kestra.plugin.core.log.Log, message: "{{ read(inputs.uri) }}"}
"""


async def test_read_refuses_another_namespaces_execution_file(tmp_path: Path) -> None:
    async with running_engine(tmp_path, READER) as engine:
        theirs = engine.storage.put_bytes(
            engine.storage.execution_uri("other.team", "payroll", "e1"), "salaries.csv", b"alice,100"
        )
        parents = engine.storage.put_bytes(
            engine.storage.execution_uri("acme", "shared", "e2"), "common.txt", b"for everyone in acme"
        )
        refused = await run(engine, "acme.web", "reader", {"uri": theirs})
        assert refused.state.current is StateType.FAILED
        messages = [entry.message for entry in await logs_of(engine, refused.id)]
        assert not [m for m in messages if "alice,100" in m]
        assert [m for m in messages if "belongs to namespace `other.team`" in m], messages
        allowed = await run(engine, "acme.web", "reader", {"uri": parents})
        assert allowed.state.current is StateType.SUCCESS
        assert "for everyone in acme" in [entry.message for entry in await logs_of(engine, allowed.id)]


PARENT = """
id: parent
namespace: acme.web
inputs:
  - {id: doc, type: FILE}
tasks:
  - id: child
    type: io.kestra.plugin.core.flow.Subflow
    namespace: other.team
    flowId: child
    inputs:
      doc: "{{ inputs.doc }}"
"""
CHILD = """
id: child
namespace: other.team
inputs:
  - {id: doc, type: FILE}
tasks:
  - {id: show, type: io.kestra.plugin.core.log.Log, message: "{{ read(inputs.doc) }}"}
"""


async def test_a_subflow_in_another_namespace_reads_its_parents_file(tmp_path: Path) -> None:
    local = tmp_path / "report.csv"
    local.write_text("a,b\n")
    async with running_engine(tmp_path, PARENT, CHILD) as engine:
        parent_id = await engine.trigger("acme.web", "parent", {"doc": str(local)}, local_files=True)
        parent = await asyncio.wait_for(engine.wait(parent_id), 20)
        assert parent.state.current is StateType.SUCCESS
        [child] = await engine.store.list_executions(flow_id="child")
        assert "a,b\n" in [entry.message for entry in await logs_of(engine, child.id)]
