"""ForEachItem run through the engine: its `_split`, `_items` and `_merge` task runs, one subflow
execution per batch, and their outputs, following Kestra's ForEachItemCaseTest and its flows
(core/src/test/resources/flows/valids/for-each-item*.yaml)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.engine.helpers import flow, logs_of, messages, one_run, running_engine
from tests.waiting import until
from tiercel.engine.engine import Engine
from tiercel.engine.ion import loads
from tiercel.engine.labels import CORRELATION_ID
from tiercel.engine.model import Execution, LogEntry, StateType
from tiercel.engine.parser import parse_flow
from tiercel.engine.tasks.files import split_batches

S = StateType
NS = "io.kestra.tests"
# Kestra's test file: 102 lines, each a number left-padded to 20 characters.
CONTENT = "".join(f"{value:>20}\n" for value in range(102))


def parent_flow(flow_id: str, each: str, after: str = "") -> str:
    """A flow with a FILE input `file` whose task `each` is the ForEachItem given (indented body)."""
    return flow(
        "inputs:\n  - {id: file, type: FILE}\ntasks:\n  - id: each\n" + each + after,
        flow_id=flow_id,
        namespace=NS,
    )


FOR_EACH_ITEM = parent_flow(
    "for-each-item",
    """    type: io.kestra.core.tasks.flows.ForEachItem
    items: "{{ inputs.file }}"
    batch:
      rows: 4
    namespace: io.kestra.tests
    flowId: for-each-item-subflow
    wait: true
    transmitFailed: true
    inputs:
      items: "{{ taskrun.items }}"
""",
)
SUBFLOW = flow(
    """
    inputs:
      - {id: items, type: STRING}
    tasks:
      - {id: per-item, type: io.kestra.core.tasks.log.Log, message: "{{ inputs.items }}"}
    """,
    flow_id="for-each-item-subflow",
    namespace=NS,
)


async def start(engine: Engine, flow_id: str, tmp_path: Path, content: str, name: str = "file.txt") -> str:
    local = tmp_path / name
    local.write_text(content)
    return await engine.trigger(NS, flow_id, {"file": str(local)}, local_files=True)


async def run_parent(
    tmp_path: Path, flows: list[str], content: str = CONTENT, name: str = "file.txt"
) -> tuple[Execution, list[Execution], list[LogEntry], dict[str, bytes]]:
    """Run the first flow on `content`; return it, its subflow executions (ended), its logs and the
    files of its execution in the internal storage, by URI."""
    async with running_engine(tmp_path, *flows) as engine:
        parent_id = await start(engine, flow_ids(flows[0]), tmp_path, content, name)
        parent = await asyncio.wait_for(engine.wait(parent_id), 60)
        children = await children_of(engine, parent_id)
        storage = engine.storage
        base = storage.execution_uri(parent.namespace, parent.flow_id, parent.id)
        files = {uri: storage.read_bytes(uri) for uri in storage.list(base)}
        return parent, children, await logs_of(engine, parent_id), files


def flow_ids(source: str) -> str:
    return source.split("\n", 1)[0].removeprefix("id: ")


async def children_of(engine: Engine, parent_id: str) -> list[Execution]:
    """The subflow executions a parent started, each waited for to its end, by iteration."""
    found: list[Execution] = []
    for summary in await engine.list_executions(limit=1000):
        execution = await engine.execution(summary.id)
        if execution is not None and execution.parent_id == parent_id:
            found.append(await asyncio.wait_for(engine.wait(execution.id), 60))
    return sorted(found, key=lambda child: int((child.trigger or {})["variables"]["taskRunIteration"]))


def outputs(execution: Execution, task_id: str) -> dict[str, Any] | None:
    run = one_run(execution, task_id)
    return dict(run.outputs) if run.outputs is not None else None


def task_ids(execution: Execution) -> list[str]:
    return [run.task_id for run in execution.task_runs]


async def test_one_subflow_execution_per_batch_of_rows(tmp_path: Path) -> None:
    """ForEachItemCaseTest.forEachItem, flows for-each-item.yaml and for-each-item-subflow.yaml: 102
    lines in batches of 4 start 26 subflow executions, iterations from 0, with the parent's
    correlation id; `_items` ends with the counts by state."""
    parent, children, _, files = await run_parent(tmp_path, [FOR_EACH_ITEM, SUBFLOW])
    assert parent.state.current is S.SUCCESS
    assert task_ids(parent) == ["each", "each_split", "each_items", "each_merge"]
    items = one_run(parent, "each_items")
    assert len(items.attempts) == 1 and items.attempts[0].state.current is S.SUCCESS
    assert items.outputs is not None
    assert items.outputs["numberOfBatches"] == 26
    assert items.outputs["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 26}
    assert len(children) == 26
    assert [child.trigger["variables"]["taskRunIteration"] for child in children if child.trigger] == list(
        range(26)
    )
    last = children[-1]
    assert last.state.current is S.SUCCESS and last.flow_id == "for-each-item-subflow"
    assert last.inputs["items"].startswith(f"kestra:///io/kestra/tests/for-each-item/executions/{parent.id}")
    assert "/tasks/each_split/" in last.inputs["items"] and last.inputs["items"].endswith(".txt")
    assert len(last.task_runs) == 1
    assert last.labels_map()[CORRELATION_ID] == parent.id
    assert last.trigger is not None and last.trigger["type"].endswith("ForEachItem$ForEachItemExecutable")
    assert last.trigger["id"] == "each_items"
    # Each batch holds its 4 lines, in order, each ending with the separator.
    assert files[children[0].inputs["items"]].decode() == CONTENT[: 4 * 21]
    assert files[last.inputs["items"]].decode() == CONTENT[100 * 21 :]
    assert outputs(parent, "each_merge") is None  # the subflow has no outputs


OUTPUTS_SUBFLOW = flow(
    """
    inputs:
      - {id: items, type: STRING}
      - {id: iteration, type: INT}
    tasks:
      - id: return
        type: io.kestra.plugin.core.debug.Return
        format: "{{ inputs.iteration }}:{{ read(inputs.items) | trim }}"
    outputs:
      - {id: value, type: STRING, value: "{{ outputs.return.value }}"}
    """,
    flow_id="for-each-item-outputs-subflow",
    namespace=NS,
)


async def test_the_subflow_outputs_are_merged_in_batch_order(tmp_path: Path) -> None:
    """ForEachItemCaseTest.forEachItemWithSubflowOutputs, flows for-each-item-outputs.yaml and
    for-each-item-outputs-subflow.yaml: each subflow's outputs are one Ion line of `_merge`'s
    `subflowOutputs`, which a later task reads; `taskrun.iteration` reaches the inputs too."""
    source = parent_flow(
        "for-each-item-outputs",
        """    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.file }}"
    batch: {rows: 2}
    namespace: io.kestra.tests
    flowId: for-each-item-outputs-subflow
    inputs:
      items: "{{ taskrun.items }}"
      iteration: "{{ taskrun.iteration }}"
""",
        """  - id: return
    type: io.kestra.core.tasks.debugs.Return
    format: "{{ outputs.each_merge.subflowOutputs }}"
""",
    )
    content = "a\nb\nc\nd\ne\n"
    async with running_engine(tmp_path, source, OUTPUTS_SUBFLOW) as engine:
        parent_id = await start(engine, "for-each-item-outputs", tmp_path, content)
        parent = await asyncio.wait_for(engine.wait(parent_id), 60)
        merged = outputs(parent, "each_merge")
        assert merged is not None
        lines = engine.storage.read_text(merged["subflowOutputs"]).splitlines()
    assert parent.state.current is S.SUCCESS
    assert task_ids(parent) == ["each", "each_split", "each_items", "each_merge", "return"]
    assert [loads(line) for line in lines] == [{"value": "0:a\nb"}, {"value": "1:c\nd"}, {"value": "2:e"}]
    assert outputs(parent, "return") == {"value": merged["subflowOutputs"]}
    items = outputs(parent, "each_items")
    assert items is not None and items["numberOfBatches"] == 3
    assert merged["subflowOutputs"].startswith(
        f"kestra:///io/kestra/tests/for-each-item-outputs/executions/{parent_id}/tasks/each_merge/"
    )
    assert items["subflowOutputsBaseUri"].startswith(
        f"/io/kestra/tests/for-each-item-outputs/executions/{parent_id}/tasks/each_items/"
    )


BATCH_SUBFLOW = flow(
    """
    inputs:
      - {id: items, type: FILE}
    tasks:
      - {id: content, type: io.kestra.plugin.core.debug.Return, format: "{{ read(inputs.items) }}"}
    outputs:
      - {id: content, type: STRING, value: "{{ outputs.content.value }}"}
    """,
    flow_id="batch",
    namespace=NS,
)


def batching_flow(batch: str) -> str:
    return parent_flow(
        "batching",
        f"""    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{{{ inputs.file }}}}"
    batch: {batch}
    namespace: io.kestra.tests
    flowId: batch
    inputs:
      items: "{{{{ taskrun.items }}}}"
""",
    )


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        # bytes: a batch is closed once it holds the size or more (StorageService.split).
        ("{bytes: '10'}", ["aaaa\nbbbb\n", "cccc\ndddd\n", "eeee\n"]),
        # partitions: the lines are dealt round-robin (StorageService.partition).
        ("{partitions: 2}", ["aaaa\ncccc\neeee\n", "bbbb\ndddd\n"]),
        # rows, with another separator written after each line.
        ("{rows: 3, separator: ';'}", ["aaaa;bbbb;cccc;", "dddd;eeee;"]),
        # rows is 1 by default.
        ("{}", ["aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n"]),
        # regexPattern comes first (rows has a default): lines grouped by the first group's value, in
        # the order the values first appear; a line it does not match is left out.
        ("{regexPattern: '^([a-c])', rows: 2}", ["aaaa\n", "bbbb\n", "cccc\n"]),
        ("{regexPattern: '([ae])\\1'}", ["aaaa\n", "eeee\n"]),
    ],
)
async def test_batches_by_bytes_partitions_or_rows(tmp_path: Path, batch: str, expected: list[str]) -> None:
    """ForEachItem.Batch and Kestra's StorageService.split: `regexPattern`, then `bytes`, then
    `partitions`, then `rows` (default 1), each line ending with `separator`; the batch files keep
    the items' extension."""
    parent, children, _, _ = await run_parent(
        tmp_path, [batching_flow(batch), BATCH_SUBFLOW], "aaaa\nbbbb\r\ncccc\ndddd\neeee", "items.csv"
    )
    assert parent.state.current is S.SUCCESS
    assert [child.outputs for child in children] == [{"content": text} for text in expected]
    assert all(child.inputs["items"].endswith(".csv") for child in children)
    items = outputs(parent, "each_items")
    assert items is not None and items["numberOfBatches"] == len(expected)


def test_split_batches_follows_kestra() -> None:
    """StorageService.split and partition, on lines as Java's readLine gives them."""
    lines = [b"1", b"22", b"333"]
    assert list(split_batches(lines, b"\n", rows=2)) == [b"1\n22\n", b"333\n"]
    # A batch closes once it holds `size` bytes or more: "1\n" is 2 bytes.
    assert list(split_batches(lines, b"\n", size=3)) == [b"1\n22\n", b"333\n"]
    assert list(split_batches(lines, b"\n", size=2)) == [b"1\n", b"22\n", b"333\n"]
    assert list(split_batches(lines, b"|", partitions=5)) == [b"1|", b"22|", b"333|"]
    assert list(split_batches([], b"\n", rows=1)) == []


FAILING_SUBFLOW = flow(
    """
    inputs:
      - {id: items, type: STRING}
    tasks:
      - {id: per-item, type: io.kestra.plugin.core.execution.Fail}
    """,
    flow_id="for-each-item-subflow-failed",
    namespace=NS,
)


def failing_flow(flow_id: str, extra: str = "", after: str = "") -> str:
    return parent_flow(
        flow_id,
        f"""    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{{{ inputs.file }}}}"
    batch:
      rows: 4
    namespace: io.kestra.tests
    flowId: for-each-item-subflow-failed
    inputs:
      items: "{{{{ taskrun.items }}}}"
{extra}""",
        after,
    )


EIGHT_LINES = "".join(f"{value}\n" for value in range(8))


async def test_a_failing_batch_fails_the_items_task_and_the_execution(tmp_path: Path) -> None:
    """ForEachItemCaseTest.forEachItemFailed, flows for-each-item-failed.yaml and
    for-each-item-subflow-failed.yaml: every subflow fails, so `_items` fails with FAILED counted,
    the merge never runs, and the execution fails."""
    parent, children, _, _ = await run_parent(
        tmp_path, [failing_flow("for-each-item-failed"), FAILING_SUBFLOW], EIGHT_LINES
    )
    assert parent.state.current is S.FAILED
    assert task_ids(parent) == ["each", "each_split", "each_items"]
    items = one_run(parent, "each_items")
    assert items.state.current is S.FAILED
    assert len(items.attempts) == 1 and items.attempts[0].state.current is S.FAILED
    assert items.outputs is not None
    assert items.outputs["iterations"] == {"CREATED": 0, "RUNNING": 0, "FAILED": 2}
    assert items.outputs["numberOfBatches"] == 2
    assert [child.state.current for child in children] == [S.FAILED, S.FAILED]


async def test_transmit_failed_false_ends_the_items_task_successfully(tmp_path: Path) -> None:
    """ExecutableUtils.manageIterations: without `transmitFailed`, the task run ends SUCCESS
    whatever its subflows did, and the merge runs."""
    source = failing_flow("no-transmit", "    transmitFailed: false\n")
    parent, children, _, _ = await run_parent(tmp_path, [source, FAILING_SUBFLOW], EIGHT_LINES)
    assert parent.state.current is S.SUCCESS
    assert task_ids(parent) == ["each", "each_split", "each_items", "each_merge"]
    items = outputs(parent, "each_items")
    assert items is not None and items["iterations"]["FAILED"] == 2
    assert [child.state.current for child in children] == [S.FAILED, S.FAILED]


@pytest.mark.parametrize(
    ("extra", "end"),
    [
        ("    allowFailure: true\n", S.WARNING),
        ("    allowFailure: true\n    allowWarning: true\n", S.SUCCESS),
    ],
)
async def test_allow_failure_on_the_for_each_item(tmp_path: Path, extra: str, end: StateType) -> None:
    """TaskWithAllowFailureTest and TaskWithAllowWarningTest.executableTask_ForEachItem, flows
    task-allow-failure-executable-foreachitem.yml and task-allow-warning-executable-foreachitem.yml:
    `_items` fails, the ForEachItem is allowed to, and the next task runs (4 task runs)."""
    after = "  - {id: log-allowed, type: io.kestra.plugin.core.log.Log, message: I'm allowed}\n"
    source = failing_flow("allow-failure", extra, after)
    parent, _, _, _ = await run_parent(tmp_path, [source, FAILING_SUBFLOW], EIGHT_LINES)
    assert parent.state.current is end
    assert task_ids(parent) == ["each", "each_split", "each_items", "log-allowed"]
    assert one_run(parent, "each_items").state.current is S.FAILED


SLEEPING_SUBFLOW = flow(
    """
    inputs:
      - {id: items, type: STRING}
      - {id: sleep, type: STRING, defaults: PT0.5S}
    tasks:
      - {id: sleep, type: io.kestra.plugin.core.flow.Sleep, duration: "{{ inputs.sleep }}"}
      - {id: per-item, type: io.kestra.plugin.core.log.Log, message: "{{ inputs.items }}"}
    """,
    flow_id="for-each-item-subflow-sleep",
    namespace=NS,
)


async def test_without_wait_the_items_task_ends_once_the_subflows_are_started(tmp_path: Path) -> None:
    """ForEachItemCaseTest.forEachItemNoWait, flow for-each-item-no-wait.yaml: the parent ends
    without waiting; `iterations` has no CREATED count, RUNNING 0 and every batch SUCCESS."""
    source = parent_flow(
        "for-each-item-no-wait",
        """    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.file }}"
    batch:
      rows: 4
    namespace: io.kestra.tests
    flowId: for-each-item-subflow-sleep
    wait: false
    inputs:
      items: "{{ taskrun.items }}"
      sleep: PT2S
""",
    )
    async with running_engine(tmp_path, source, SLEEPING_SUBFLOW) as engine:
        parent_id = await start(engine, "for-each-item-no-wait", tmp_path, EIGHT_LINES)
        parent = await asyncio.wait_for(engine.wait(parent_id), 60)
        children = await children_of(engine, parent_id)
    assert parent.state.current is S.SUCCESS
    assert task_ids(parent) == ["each", "each_split", "each_items", "each_merge"]
    items = one_run(parent, "each_items")
    assert len(items.attempts) == 1 and items.attempts[0].state.current is S.SUCCESS
    assert items.outputs is not None
    assert items.outputs["iterations"] == {"RUNNING": 0, "SUCCESS": 2}
    assert items.outputs["numberOfBatches"] == 2
    assert len(children) == 2 and all(child.state.current is S.SUCCESS for child in children)
    assert all(len(child.task_runs) == 2 for child in children)
    assert parent.state.end_date is not None
    assert all(child.state.end_date and child.state.end_date > parent.state.end_date for child in children)


async def test_an_empty_file_starts_no_subflow(tmp_path: Path) -> None:
    """ForEachItemCaseTest.forEachItemEmptyItems: no batch, no subflow execution, `_items` without
    outputs, and the execution succeeds with its four task runs."""
    parent, children, _, _ = await run_parent(tmp_path, [FOR_EACH_ITEM, SUBFLOW], "")
    assert parent.state.current is S.SUCCESS
    assert task_ids(parent) == ["each", "each_split", "each_items", "each_merge"]
    assert outputs(parent, "each_items") is None
    assert outputs(parent, "each_merge") is None
    assert children == []


async def test_items_must_be_an_internal_storage_uri(tmp_path: Path) -> None:
    """ForEachItemSplit.run: a value that is not a kestra:// URI fails the split with Kestra's message."""
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEachItem
            items: "/tmp/items.txt"
            namespace: io.kestra.tests
            flowId: for-each-item-subflow
        """,
        flow_id="not-a-uri",
        namespace=NS,
    )
    async with running_engine(tmp_path, source, SUBFLOW) as engine:
        execution_id = await engine.trigger(NS, "not-a-uri")
        parent = await asyncio.wait_for(engine.wait(execution_id), 60)
        logs = await logs_of(engine, execution_id)
    assert parent.state.current is S.FAILED
    assert task_ids(parent) == ["each", "each_split"]
    assert "Unable to split the items from /tmp/items.txt, this is not an internal storage URI!" in messages(
        logs
    )


async def test_a_for_each_item_in_an_if(tmp_path: Path) -> None:
    """ForEachItemCaseTest.forEachItemInIf: below an If, the same task runs and outputs."""
    source = parent_flow(
        "for-each-item-in-if",
        """    type: io.kestra.plugin.core.flow.If
    condition: "true"
    then:
      - id: each
        type: io.kestra.plugin.core.flow.ForEachItem
        items: "{{ inputs.file }}"
        batch: {rows: 4}
        namespace: io.kestra.tests
        flowId: for-each-item-subflow
        inputs:
          items: "{{ taskrun.items }}"
""",
    ).replace(
        "  - id: each\n    type: io.kestra.plugin.core.flow.If",
        "  - id: if\n    type: io.kestra.plugin.core.flow.If",
    )
    parent, children, _, _ = await run_parent(tmp_path, [source, SUBFLOW], EIGHT_LINES)
    assert parent.state.current is S.SUCCESS
    assert task_ids(parent) == ["if", "each", "each_split", "each_items", "each_merge"]
    items = outputs(parent, "each_items")
    assert items is not None and items["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 2}
    assert len(children) == 2


async def test_a_kill_of_the_parent_kills_the_subflow_executions(tmp_path: Path) -> None:
    """A kill reaches the subflow executions a task waits for (Kestra's killSubflowExecutions in the
    executor's kill queue); `_items` then ends KILLED with the kills counted (findTerminalState)."""
    source = parent_flow(
        "for-each-item-kill",
        """    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.file }}"
    batch: {rows: 4}
    namespace: io.kestra.tests
    flowId: for-each-item-subflow-sleep
    inputs:
      items: "{{ taskrun.items }}"
      sleep: PT60S
""",
    )
    async with running_engine(tmp_path, source, SLEEPING_SUBFLOW) as engine:
        parent_id = await start(engine, "for-each-item-kill", tmp_path, EIGHT_LINES)

        async def two_sleeping() -> bool:
            found = []
            for summary in await engine.list_executions(flow_id="for-each-item-subflow-sleep"):
                child = await engine.execution(summary.id)
                if child and any(
                    r.task_id == "sleep" and r.state.current is S.RUNNING for r in child.task_runs
                ):
                    found.append(child)
            return len(found) == 2

        await until(two_sleeping, what="both subflow executions sleeping")
        await engine.kill(parent_id)
        parent = await asyncio.wait_for(engine.wait(parent_id), 60)
        children = await children_of(engine, parent_id)
    assert parent.state.current is S.KILLED
    assert [child.state.current for child in children] == [S.KILLED, S.KILLED]
    items = one_run(parent, "each_items")
    assert items.state.current is S.KILLED
    assert items.outputs is not None and items.outputs["iterations"]["KILLED"] == 2
    assert "each_merge" not in task_ids(parent)


def test_the_internal_tasks_are_tasks_of_the_flow() -> None:
    """ForEachItem.getTasks: `<id>_split`, `<id>_items` and `<id>_merge`, of Kestra's internal types."""
    parsed = parse_flow(FOR_EACH_ITEM)
    tasks = parsed.tasks_by_id
    assert tasks["each"].type == "io.kestra.plugin.core.flow.ForEachItem"
    assert tasks["each_split"].type == "io.kestra.plugin.core.flow.ForEachItem$ForEachItemSplit"
    assert tasks["each_items"].type == "io.kestra.plugin.core.flow.ForEachItem$ForEachItemExecutable"
    assert tasks["each_merge"].type == "io.kestra.plugin.core.flow.ForEachItem$ForEachItemMergeOutputs"
    assert tasks["each_items"].props["flowId"] == "for-each-item-subflow"
    assert tasks["each_split"].props["batch"] == {"rows": 4}
