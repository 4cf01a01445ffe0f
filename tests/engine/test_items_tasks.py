"""storage.DeduplicateItems, FilterItems, Reverse and PurgeCurrentExecutionFiles, run through the engine
on Ion item files given as FILE inputs, following Kestra's tests of each task."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.engine.helpers import flow, logs_of, messages, one_run, running_engine
from tiercel.engine.ion import loads
from tiercel.engine.model import Execution, LogEntry, StateType

S = StateType
CORE = "io.kestra.plugin.core"


async def run_on_file(
    tmp_path: Path, tasks: str, content: str, name: str = "items.ion"
) -> tuple[Execution, list[LogEntry], dict[str, str | None]]:
    """Run a flow with a FILE input `file` holding `content`; return the execution, its logs and the
    text of every `uri` output (None for a file that is gone), read before the engine stops."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    local = tmp_path / name
    local.write_text(content)
    source = flow("inputs:\n  - {id: file, type: FILE}\ntasks:" + tasks)
    async with running_engine(tmp_path, source) as engine:
        execution_id = await engine.trigger("ns", "f", {"file": str(local)}, local_files=True)
        execution = await asyncio.wait_for(engine.wait(execution_id), 20)
        files: dict[str, str | None] = {}
        for run in execution.task_runs:
            uri = (run.outputs or {}).get("uri")
            if isinstance(uri, str):
                files[run.task_id] = engine.storage.read_text(uri) if engine.storage.exists(uri) else None
        return execution, await logs_of(engine, execution.id), files


def items(text: str | None) -> list[Any]:
    assert text is not None
    return [loads(line) for line in text.splitlines()]


def outputs(execution: Execution, task_id: str) -> dict[str, Any]:
    return dict(one_run(execution, task_id).outputs or {})


KEY_VALUES = "\n".join(
    [
        '{key:"k1",value:"v1"}',
        '{key:"k2",value:"v1"}',
        '{key:"k3",value:"v1"}',
        '{key:"k1",value:"v2"}',
        '{key:"k2",value:"v2"}',
        '{key:"k2",value:null}',
        '{key:"k3",value:"v2"}',
        '{key:"k1",value:"v3"}',
    ]
)


async def test_deduplicate_keeps_the_last_item_of_each_key(tmp_path: Path) -> None:
    """DeduplicateItemsTest.shouldDeduplicateFileGivenKeyExpression: expr " {{ key }} "."""
    execution, logs, files = await run_on_file(
        tmp_path,
        f"""
  - id: dedup
    type: {CORE}.storage.DeduplicateItems
    from: "{{{{ inputs.file }}}}"
    expr: " {{{{ key }}}} "
""",
        KEY_VALUES + "\n",
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    out = outputs(execution, "dedup")
    assert (out["numKeys"], out["droppedItemsTotal"], out["processedItemsTotal"]) == (3, 5, 8)
    assert items(files["dedup"]) == [
        {"key": "k2", "value": None},
        {"key": "k3", "value": "v2"},
        {"key": "k1", "value": "v3"},
    ]
    # The kept lines are copied as they were written.
    assert files["dedup"] == '{key:"k2",value:null}\n{key:"k3",value:"v2"}\n{key:"k1",value:"v3"}\n'
    assert str(out["uri"]).endswith(".ion")


async def test_deduplicate_on_a_composite_key_under_the_old_name(tmp_path: Path) -> None:
    """DeduplicateItemsTest.shouldDeduplicateFileGivenKeyExpressionReturningArray: expr
    " {{ key }}-{{ v1 }}"; the task's alias io.kestra.core.tasks.storages.DeduplicateItems."""
    content = "\n".join(
        [
            '{key:"k1",v1:"k1",v2:"v1"}',
            '{key:"k2",v1:"k2",v2:"v1"}',
            '{key:"k3",v1:"k3",v2:"v1"}',
            '{key:"k1",v1:"k1",v2:"v2"}',
            '{key:"k2",v1:"k2",v2:null}',
            '{key:"k3",v1:"k3",v2:"v2"}',
            '{key:"k1",v1:"k1",v2:"v3"}',
        ]
    )
    execution, logs, files = await run_on_file(
        tmp_path,
        """
  - id: dedup
    type: io.kestra.core.tasks.storages.DeduplicateItems
    from: "{{ inputs.file }}"
    expr: " {{ key }}-{{ v1 }}"
""",
        content,
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    out = outputs(execution, "dedup")
    assert (out["numKeys"], out["droppedItemsTotal"], out["processedItemsTotal"]) == (3, 4, 7)
    assert [item["v2"] for item in items(files["dedup"])] == [None, "v2", "v3"]


VALID = '{key:"k1",value:1}\n{key:"k2",value:2}\n{key:"k3",value:3}\n{key:"k4",value:4}\n'
INVALID = '{key:"k1",value:1}\n{key:"k2",value:"dummy"}\n{key:"k3",value:3}\n{key:"k4",value:4}\n'


def filter_task(condition: str, filter_type: str | None = None, on_error: str | None = None) -> str:
    lines = [
        "",
        "  - id: filter",
        f"    type: {CORE}.storage.FilterItems",
        '    from: "{{ inputs.file }}"',
        f'    filterCondition: "{condition}"',
    ]
    if filter_type:
        lines.append(f"    filterType: {filter_type}")
    if on_error:
        lines.append(f"    errorOrNullBehavior: {on_error}")
    return "\n".join(lines) + "\n"


async def test_filter_includes_the_matching_items(tmp_path: Path) -> None:
    """FilterItemsTest.shouldFilterGivenValidBooleanExpressionForInclude."""
    execution, _, files = await run_on_file(tmp_path, filter_task(" {{ value % 2 == 0 }} ", "INCLUDE"), VALID)
    out = outputs(execution, "filter")
    assert (out["droppedItemsTotal"], out["processedItemsTotal"]) == (2, 4)
    assert items(files["filter"]) == [{"key": "k2", "value": 2}, {"key": "k4", "value": 4}]


async def test_filter_excludes_the_matching_items(tmp_path: Path) -> None:
    """FilterItemsTest.shouldFilterGivenValidBooleanExpressionForExclude."""
    execution, _, files = await run_on_file(tmp_path, filter_task(" {{ value % 2 == 0 }} ", "EXCLUDE"), VALID)
    out = outputs(execution, "filter")
    assert (out["droppedItemsTotal"], out["processedItemsTotal"]) == (2, 4)
    assert items(files["filter"]) == [{"key": "k1", "value": 1}, {"key": "k3", "value": 3}]


async def test_filter_fails_on_an_item_the_condition_cannot_evaluate(tmp_path: Path) -> None:
    """FilterItemsTest.shouldThrowExceptionGivenInvalidRecordsForFail (FAIL is the default)."""
    execution, logs, _ = await run_on_file(tmp_path, filter_task(" {{ value % 2 == 0 }}", "INCLUDE"), INVALID)
    assert execution.state.current is S.FAILED
    assert any("dummy" in line for line in messages(logs))


async def test_filter_includes_or_excludes_the_items_in_error(tmp_path: Path) -> None:
    """FilterItemsTest.shouldFilterGivenInvalidRecordsForInclude and ...ForExclude."""
    execution, _, files = await run_on_file(
        tmp_path, filter_task(" {{ value % 2 == 0 }}", "INCLUDE", "INCLUDE"), INVALID
    )
    out = outputs(execution, "filter")
    assert (out["droppedItemsTotal"], out["processedItemsTotal"]) == (2, 4)
    assert items(files["filter"]) == [{"key": "k2", "value": "dummy"}, {"key": "k4", "value": 4}]

    execution, _, files = await run_on_file(
        tmp_path / "exclude", filter_task(" {{ value % 2 == 0 }}", "INCLUDE", "EXCLUDE"), INVALID
    )
    out = outputs(execution, "filter")
    assert (out["droppedItemsTotal"], out["processedItemsTotal"]) == (3, 4)
    assert items(files["filter"]) == [{"key": "k4", "value": 4}]


async def test_filter_reads_a_non_boolean_value_by_its_truth(tmp_path: Path) -> None:
    """FilterItemsTest.shouldFilterWithNotMatchGivenNonBooleanValue, plus the falsy texts of
    Kestra's TruthUtils (0 and an empty value drop the item under the old name of the task)."""
    execution, _, files = await run_on_file(tmp_path, filter_task("{{ value }}", "INCLUDE", "FAIL"), VALID)
    out = outputs(execution, "filter")
    assert (out["droppedItemsTotal"], out["processedItemsTotal"]) == (0, 4)
    assert len(items(files["filter"])) == 4

    falsy = '{value:0}\n{value:""}\n{value:false}\n{value:-0}\n{value:"x"}\n'
    _, _, files = await run_on_file(
        tmp_path / "falsy",
        filter_task("{{ value }}").replace(f"{CORE}.storage", "io.kestra.core.tasks.storages"),
        falsy,
    )
    assert items(files["filter"]) == [{"value": "x"}]


async def test_filter_sees_the_flow_variables_beside_the_item(tmp_path: Path) -> None:
    """The doc example's `{{ value == null }}` with EXCLUDE, and a flow variable in the condition
    (Kestra renders the condition with the item merged over the task's variables)."""
    content = '{value:null}\n{value:"a"}\n{value:"b"}\n'
    task = filter_task("{{ value == null }}", "EXCLUDE", "EXCLUDE")
    _, _, files = await run_on_file(tmp_path, task, content)
    assert items(files["filter"]) == [{"value": "a"}, {"value": "b"}]

    _, _, files = await run_on_file(
        tmp_path / "vars", filter_task("{{ value == flow.id ~ 'x' }}"), '{value:"fx"}\n{value:"a"}\n'
    )
    assert items(files["filter"]) == [{"value": "fx"}]


async def test_reverse_puts_the_last_line_first_and_keeps_the_extension(tmp_path: Path) -> None:
    """ReverseTest.run: 1\\n2\\n3\\n becomes 3\\n2\\n1\\n, the output keeps the input's .yml; a
    `separator` ends each line."""
    execution, logs, files = await run_on_file(
        tmp_path,
        f"""
  - id: reverse
    type: {CORE}.storage.Reverse
    from: "{{{{ inputs.file }}}}"
  - id: joined
    type: io.kestra.core.tasks.storages.Reverse
    from: "{{{{ inputs.file }}}}"
    separator: ";"
""",
        "1\n2\n3\n",
        name="get.yml",
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    assert files["reverse"] == "3\n2\n1\n"
    assert str(outputs(execution, "reverse")["uri"]).endswith(".yml")
    assert files["joined"] == "3;2;1;"


async def test_purge_deletes_every_file_of_the_execution(tmp_path: Path) -> None:
    """PurgeCurrentExecutionFilesTest.run: the input file and a task's output file are deleted and
    listed in `uris` with their folders; the old name PurgeExecution purges too."""
    execution, logs, files = await run_on_file(
        tmp_path,
        f"""
  - id: reverse
    type: {CORE}.storage.Reverse
    from: "{{{{ inputs.file }}}}"
  - id: purge
    type: {CORE}.storage.PurgeCurrentExecutionFiles
  - id: again
    type: io.kestra.plugin.core.storage.PurgeExecution
""",
        "a\nb\n",
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    uris = outputs(execution, "purge")["uris"]
    reversed_uri = outputs(execution, "reverse")["uri"]
    folder = f"kestra:///ns/f/executions/{execution.id}"
    assert execution.inputs["file"] in uris and reversed_uri in uris
    assert uris[-1] == folder and all(uri.startswith(folder) for uri in uris)
    assert uris.index(reversed_uri) < uris.index(reversed_uri.rsplit("/", 1)[0])  # files before folders
    assert files["reverse"] is None
    assert outputs(execution, "again")["uris"] == []
