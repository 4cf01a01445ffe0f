"""The deprecated state.Get, state.Set and state.Delete, run through the engine, following Kestra's
StateTest, StateNamespaceTest and StateStoreTest."""

from __future__ import annotations

from pathlib import Path

from tests.engine.helpers import flow, logs_of, messages, one_run, run, run_flow, running_engine, states
from tiercel.engine.model import StateType
from tiercel.engine.tasks.state import merge, murmur3_128_hex, slugify

S = StateType
STATE = "io.kestra.plugin.core.state"


async def test_set_merges_get_reads_and_delete_removes_the_state(tmp_path: Path) -> None:
    """StateTest.run: Get finds nothing, Set {"{{ inputs.key }}": "{{ inputs.inc }}"} stores "1",
    a second Set merges (count 2), Delete removes it, and Get finds nothing again."""
    source = flow(
        f"""
        inputs:
          - {{id: key, type: STRING, defaults: test}}
          - {{id: inc, type: INT, defaults: 1}}
        tasks:
          - {{id: get0, type: {STATE}.Get}}
          - id: set1
            type: {STATE}.Set
            data: {{"{{{{ inputs.key }}}}": "{{{{ inputs.inc }}}}"}}
          - {{id: get1, type: {STATE}.Get}}
          - id: set2
            type: {STATE}.Set
            data: {{"{{{{ inputs.key }}}}": "2", test2: "3"}}
          - {{id: get2, type: io.kestra.core.tasks.states.Get}}
          - {{id: delete, type: {STATE}.Delete}}
          - {{id: get3, type: {STATE}.Get}}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS, messages(logs)

    def out(task_id: str) -> dict[str, object]:
        return dict(one_run(execution, task_id).outputs or {})

    assert out("get0") == {"count": 0, "data": {}}
    assert out("set1") == {"count": 1, "key": "f_states_tasks-states_default"}
    assert out("get1") == {"count": 1, "data": {"test": "1"}}
    assert out("set2")["count"] == 2
    assert out("get2") == {"count": 2, "data": {"test": "2", "test2": "3"}}
    assert out("delete") == {"deleted": True}
    assert out("get3") == {"count": 0, "data": {}}


async def test_a_namespace_state_is_shared_by_the_flows_of_the_namespace(tmp_path: Path) -> None:
    """StateNamespaceTest.run: a state set with `namespace: true` is read by another flow with
    `namespace: true`, not by its own flow-scoped Get; the state lives in the namespace's KV store."""
    writer = flow(f"tasks:\n  - {{id: set, type: {STATE}.Set, namespace: true, data: {{john: doe}}}}\n", "w")
    reader = flow(
        f"""
        tasks:
          - {{id: shared, type: {STATE}.Get, namespace: true}}
          - {{id: own, type: {STATE}.Get}}
        """,
        "r",
    )
    async with running_engine(tmp_path, writer, reader) as engine:
        written = await run(engine, "ns", "w")
        read = await run(engine, "ns", "r")
        keys = await engine.store.kv_keys("ns")
    assert (one_run(written, "set").outputs or {}) == {"count": 1, "key": "states_tasks-states_default"}
    assert (one_run(read, "shared").outputs or {}) == {"count": 1, "data": {"john": "doe"}}
    assert (one_run(read, "own").outputs or {}) == {"count": 0, "data": {}}
    assert keys == ["states_tasks-states_default"]


async def test_error_on_missing_fails_get_and_delete(tmp_path: Path) -> None:
    """StateTest.getThrow and deleteThrow: with errorOnMissing, a missing state fails the task."""
    source = flow(
        f"""
        tasks:
          - {{id: get, type: {STATE}.Get, name: nothing, errorOnMissing: true, allowFailure: true}}
          - {{id: delete, type: {STATE}.Delete, name: nothing, errorOnMissing: true, allowFailure: true}}
          - {{id: quiet, type: {STATE}.Delete, name: nothing}}
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        lines = messages(await logs_of(engine, execution.id))
    assert states(execution)["get"] is S.WARNING
    assert states(execution)["delete"] is S.WARNING
    assert "State f_states_tasks-states_nothing not found" in lines
    assert "Unable to find the state file 'nothing'" in lines
    assert (one_run(execution, "quiet").outputs or {}) == {"deleted": False}


async def test_each_loop_value_has_its_own_state_unless_taskrun_value_is_false(tmp_path: Path) -> None:
    """AbstractState.taskrunValue and StateStoreTest.all: inside a loop the key ends with the murmur3
    hash of taskrun.value; with `taskrunValue: false` every iteration shares one state."""
    source = flow(
        f"""
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["my-taskrun-value", "other"]
            concurrencyLimit: 1
            tasks:
              - id: own
                type: {STATE}.Set
                name: loop
                data: {{"{{{{ taskrun.value }}}}": "x"}}
              - id: shared
                type: {STATE}.Set
                name: loop
                taskrunValue: false
                data: {{"{{{{ taskrun.value }}}}": "x"}}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is S.SUCCESS, messages(logs)
    own = one_run(execution, "own", "my-taskrun-value").outputs or {}
    # Guava's murmur3_128 of "my-taskrun-value", the value of Kestra's StateStoreTest.
    assert own == {"count": 1, "key": "f_states_tasks-states_loop_32b4a3f29706cc501a47e0bbd94b0ce3"}
    assert (one_run(execution, "own", "other").outputs or {})["count"] == 1
    counts = sorted((run.outputs or {})["count"] for run in execution.task_runs if run.task_id == "shared")
    assert counts == [1, 2]


def test_murmur3_slugify_and_merge_are_kestras() -> None:
    """Guava's murmur3_128 test vector, Kestra's Slugify.of and MapUtils.merge (MapUtilsTest.merge:
    maps merge deeply, lists concatenate, a null keeps the old value)."""
    fox = "The quick brown fox jumps over the lazy dog"
    assert murmur3_128_hex(fox) == "6c1b07bc7bbc4be347939ac4a93c437a"
    assert murmur3_128_hex("") == "0" * 32
    assert slugify("My Flow_Id") == "my-flow-id"
    merged = merge(
        {"a": 1, "m": {"x": 1, "y": 2}, "l": [1], "k": "keep"},
        {"a": 2, "m": {"y": 3}, "l": [2], "k": None, "n": "new"},
    )
    assert merged == {"a": 2, "m": {"x": 1, "y": 3}, "l": [1, 2], "k": "keep", "n": "new"}
