"""kv() in expressions reads the KV store before rendering, off the event loop's synchronous path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tiercel.engine.model import StateType

from .helpers import one_run, run, running_engine

FLOW = """
id: reads
namespace: acme
inputs:
  - {id: which, type: STRING, defaults: color}
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{ kv('go') == 'yes' }}"
    then:
      - id: literal
        type: io.kestra.plugin.core.debug.Return
        format: "{{ kv('color') }}"
      - id: from_input
        type: io.kestra.plugin.core.debug.Return
        format: "{{ kv(inputs.which) }}"
      - id: elsewhere
        type: io.kestra.plugin.core.debug.Return
        format: "{{ kv('color', 'other') }}"
      - id: chained
        type: io.kestra.plugin.core.debug.Return
        format: "{{ kv(kv('pointer')) }}"
      - id: missing
        type: io.kestra.plugin.core.debug.Return
        format: "{{ kv('nothing', errorOnMissing=false) is null }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    runIf: "{{ kv('go') == 'yes' }}"
    format: done
"""


async def test_kv_values_are_read_before_rendering_and_never_synchronously(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_engine(tmp_path, FLOW) as engine:
        for namespace, key, value in [
            ("acme", "go", "yes"),
            ("acme", "color", "red"),
            ("other", "color", "green"),
            ("acme", "pointer", "color"),
        ]:
            await engine.store.kv_set(namespace, key, value)

        def blocking_read(namespace: str, key: str) -> tuple[bool, Any]:
            raise AssertionError(f"kv('{key}') in {namespace} was read synchronously on the loop")

        monkeypatch.setattr(engine.store, "kv_get_now", blocking_read)
        execution = await run(engine, "acme", "reads")
    assert execution.state.current is StateType.SUCCESS, execution.state.current
    tasks = ("literal", "from_input", "elsewhere", "chained")
    outputs = {task: one_run(execution, task).outputs for task in tasks}
    assert outputs == {
        "literal": {"value": "red"},
        "from_input": {"value": "red"},
        "elsewhere": {"value": "green"},
        "chained": {"value": "red"},
    }
    assert one_run(execution, "missing").outputs == {"value": "true"}
    assert one_run(execution, "after").state.current is StateType.SUCCESS


async def test_a_value_changed_between_two_tasks_is_read_again(tmp_path: Path) -> None:
    source = """
    id: twice
    namespace: acme
    tasks:
      - {id: first, type: io.kestra.plugin.core.debug.Return, format: "{{ kv('n') }}"}
      - {id: change, type: io.kestra.plugin.core.kv.Set, key: n, value: "2"}
      - {id: second, type: io.kestra.plugin.core.debug.Return, format: "{{ kv('n') }}"}
    """
    async with running_engine(tmp_path, source) as engine:
        await engine.store.kv_set("acme", "n", "1")
        execution = await run(engine, "acme", "twice")
    assert execution.state.current is StateType.SUCCESS
    assert one_run(execution, "first").outputs == {"value": "1"}
    assert one_run(execution, "second").outputs == {"value": "2"}
