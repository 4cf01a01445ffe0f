"""Task handlers see the store only through the small protocols of tasks/services.py: the KV tasks
run against any `KeyValueStore`, not only the SQLite Store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml

from tiercel.engine.expressions import Renderer
from tiercel.engine.expressions.variables import build_context
from tiercel.engine.model import Execution, State, TaskRun, new_id
from tiercel.engine.parser import parse_flow
from tiercel.engine.plugin import KeyValueStore, StoreError, TaskContext, TaskFailure
from tiercel.engine.tasks import core

KV = "io.kestra.plugin.core.kv"


class DictKeyValueStore:
    """A second backend of the KV protocol, kept in a dict (expiry is not needed here)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], Any] = {}

    async def kv_set(
        self, namespace: str, key: str, value: Any, *, ttl: timedelta | None = None, overwrite: bool = True
    ) -> None:
        if not overwrite and (namespace, key) in self.values:
            raise StoreError(f"key {key!r} already exists")
        self.values[namespace, key] = value

    async def kv_get(self, namespace: str, key: str) -> tuple[bool, Any]:
        found = (namespace, key) in self.values
        return found, self.values.get((namespace, key))

    async def kv_delete(self, namespace: str, key: str) -> bool:
        return self.values.pop((namespace, key), None) is not None

    async def kv_keys(self, namespace: str, prefix: str | None = None) -> list[str]:
        return sorted(k for ns, k in self.values if ns == namespace and k.startswith(prefix or ""))


def context(kv: KeyValueStore | None, task_type: str, **props: Any) -> TaskContext:
    source = {"id": "f", "namespace": "acme", "tasks": [{"id": "t", "type": task_type, **props}]}
    flow = parse_flow(yaml.safe_dump(source, sort_keys=False))
    spec = flow.tasks_by_id["t"]
    execution = Execution(
        id=new_id(), namespace="acme", flow_id="f", flow_revision=flow.revision, state=State.new()
    )
    run = TaskRun(
        id=new_id(), execution_id=execution.id, namespace="acme", flow_id="f", task_id="t", state=State.new()
    )
    execution = execution.with_task_run(run)
    return TaskContext(
        flow=flow,
        execution=execution,
        task=spec,
        run=run,
        renderer=Renderer(),
        variables=build_context(flow, execution, spec, run),
        emit=lambda level, message: None,
        kv=kv,
    )


async def test_the_kv_tasks_run_against_any_key_value_store() -> None:
    kv = DictKeyValueStore()
    await core.kv_set(context(kv, f"{KV}.Set", key="colour", value="blue"))
    assert kv.values == {("acme", "colour"): "blue"}
    assert await core.kv_get(context(kv, f"{KV}.Get", key="colour")) == {"value": "blue"}
    assert await core.kv_get_keys(context(kv, f"{KV}.GetKeys", prefix="co")) == {"keys": ["colour"]}
    with pytest.raises(TaskFailure, match="already exists"):
        await core.kv_set(context(kv, f"{KV}.Set", key="colour", value="red", overwrite=False))
    assert await core.kv_delete(context(kv, f"{KV}.Delete", key="colour")) == {"deleted": True}
    assert kv.values == {}


async def test_a_task_without_a_key_value_store_fails_clearly() -> None:
    with pytest.raises(TaskFailure, match="needs a database"):
        await core.kv_get(context(None, f"{KV}.Get", key="colour"))
