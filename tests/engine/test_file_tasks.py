"""storage.* tasks, log.Fetch, LocalFiles, SECRET inputs, Node scripts, and the engine's memory bound
under a task that prints a lot."""

from __future__ import annotations

import io
import json
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.engine.helpers import flow, logs_of, messages, one_run, run, run_flow, running_engine, states
from tiercel.engine.ion import iter_lines
from tiercel.engine.model import StateType
from tiercel.engine.tasks.files import split_batches

S = StateType

MAKE_FILE = """
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["*.txt"]
    commands:
      - printf 'l1\\nl2\\nl3\\nl4\\nl5\\n' > rows.txt
      - printf 'tail\\n' > tail.txt
"""


async def test_size_concat_split_and_delete(tmp_path: Path) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            "tasks:"
            + MAKE_FILE
            + """
  - id: size
    type: io.kestra.plugin.core.storage.Size
    uri: "{{ outputs.make.outputFiles['rows.txt'] }}"
  - id: concat
    type: io.kestra.plugin.core.storage.Concat
    files:
      - "{{ outputs.make.outputFiles['rows.txt'] }}"
      - "{{ outputs.make.outputFiles['tail.txt'] }}"
  - id: split
    type: io.kestra.plugin.core.storage.Split
    from: "{{ outputs.concat.uri }}"
    rows: 2
  - id: parts
    type: io.kestra.plugin.core.log.Log
    message: "{{ read(outputs.split.uris[0]) }}|{{ read(outputs.split.uris[2]) }}"
  - id: delete
    type: io.kestra.plugin.core.storage.Delete
    uri: "{{ outputs.concat.uri }}"
  - id: gone
    type: io.kestra.plugin.core.storage.Size
    uri: "{{ outputs.concat.uri }}"
    allowFailure: true
"""
        ),
    )
    assert (one_run(execution, "size").outputs or {})["size"] == 15
    assert len((one_run(execution, "split").outputs or {})["uris"]) == 3
    assert "l1\nl2\n|l5\ntail\n" in messages(logs)
    assert (one_run(execution, "delete").outputs or {})["deleted"] is True
    assert states(execution)["gone"] is S.WARNING


async def test_log_fetch_writes_the_execution_logs_to_a_file(tmp_path: Path) -> None:
    async with running_engine(
        tmp_path,
        flow(
            """
            tasks:
              - {id: hello, type: io.kestra.plugin.core.log.Log, message: "hello there"}
              - {id: loud, type: io.kestra.plugin.core.log.Log, message: "careful", level: WARN}
              - {id: fetch, type: io.kestra.plugin.core.log.Fetch, level: WARN}
            """
        ),
    ) as engine:
        execution = await run(engine, "ns", "f")
        uri = (one_run(execution, "fetch").outputs or {})["uri"]
        lines = engine.storage.read_text(uri).splitlines()
    assert execution.state.current is S.SUCCESS
    assert [json.loads(line)["message"] for line in lines] == ["careful"]


async def test_local_files_inside_a_working_directory(tmp_path: Path) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: wd
                type: io.kestra.plugin.core.flow.WorkingDirectory
                tasks:
                  - id: files
                    type: io.kestra.plugin.core.storage.LocalFiles
                    inputs: {"in.txt": "from LocalFiles"}
                  - id: sh
                    type: io.kestra.plugin.scripts.shell.Commands
                    commands: ["tr a-z A-Z < in.txt > out.txt"]
                  - id: collect
                    type: io.kestra.plugin.core.storage.LocalFiles
                    outputs: ["out.txt"]
              - id: show
                type: io.kestra.plugin.core.log.Log
                message: "{{ read(outputs.collect.uris['out.txt']) }}"
            """
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    assert "FROM LOCALFILES" in messages(logs)


async def test_a_secret_input_is_usable_but_never_stored(tmp_path: Path) -> None:
    password = "hunter2-Correct-Horse"
    async with running_engine(
        tmp_path,
        flow(
            """
            inputs:
              - {id: password, type: SECRET}
            tasks:
              - id: use
                type: io.kestra.plugin.scripts.shell.Commands
                env: {PASSWORD: "{{ inputs.password }}"}
                commands: ['[ ${#PASSWORD} = 21 ] && echo "matches $PASSWORD"']
            """
        ),
    ) as engine:
        execution = await run(engine, "ns", "f", {"password": password})
        lines = messages(await logs_of(engine, execution.id))
        await engine.store.flush()
    assert execution.state.current is S.SUCCESS, lines
    assert "matches ******" in lines
    assert execution.inputs["password"] == "******"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_a_node_script(tmp_path: Path) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: js
                type: io.kestra.plugin.scripts.node.Script
                script: |
                  console.log("sum", [1, 2, 3].reduce((a, b) => a + b));
                  console.log('::' + JSON.stringify({outputs: {ok: true}}) + '::');
            """
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    assert "sum 6" in messages(logs)
    assert (one_run(execution, "js").outputs or {})["vars"] == {"ok": True}


def _peak_rss_kb_of_run(tmp_path: Path, megabytes: int) -> int:
    """Peak RSS of a `tiercel run` whose shell task prints `megabytes` MB in 1 KB lines."""
    lines = megabytes * 1000
    (tmp_path / f"big{megabytes}.yml").write_text(
        flow(
            f"""
            tasks:
              - id: print
                type: io.kestra.plugin.scripts.shell.Commands
                commands: ["python -c \\"[print('x' * 999) for _ in range({lines})]\\""]
            """,
            flow_id=f"big{megabytes}",
        )
    )
    tiercel = Path(sys.executable).parent / "tiercel"
    script = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = [
        str(tiercel),
        "run",
        "--db",
        str(tmp_path / f"{megabytes}.db"),
        str(tmp_path / f"big{megabytes}.yml"),
    ]
    out = subprocess.run(
        [sys.executable, "-c", script, *command], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.strip())


@pytest.mark.slow
def test_a_task_printing_100_mb_does_not_grow_the_engine(tmp_path: Path) -> None:
    small = _peak_rss_kb_of_run(tmp_path, 10)
    large = _peak_rss_kb_of_run(tmp_path, 100)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
    # Ten times the output, about the same memory: bounded by buffers, not by what the task prints.
    assert large - small < 40_000, (small, large)


async def test_namespace_files_reach_scripts_and_read(tmp_path: Path) -> None:
    files = tmp_path / "flows" / "_files" / "ns"
    (files / "sql").mkdir(parents=True)
    (files / "sql" / "query.sql").write_text("select 1")
    (files / "notes.md").write_text("private notes")
    (tmp_path / "flows" / "_files" / "other").mkdir()
    (tmp_path / "flows" / "_files" / "other" / "secret.txt").write_text("other namespace")
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: sh
                type: io.kestra.plugin.scripts.shell.Commands
                namespaceFiles: {enabled: true, exclude: ["*.md"]}
                commands: ["cat sql/query.sql && echo", "ls"]
              - id: direct
                type: io.kestra.plugin.core.log.Log
                message: "{{ read('sql/query.sql') }}"
              - id: escape
                type: io.kestra.plugin.core.log.Log
                message: "{{ read('../other/secret.txt') }}"
            """
        ),
    )
    lines = messages(logs)
    assert states(execution)["sh"] is S.SUCCESS, lines
    assert lines.count("select 1") == 2
    assert "notes.md" not in lines
    assert states(execution)["escape"] is S.FAILED
    assert "other namespace" not in lines


# Kestra's SplitTest (core/src/test/java/io/kestra/plugin/core/storage/SplitTest.java): lines of
# 20 characters (numbers left-padded), split by partitions, rows and bytes.
def _padded(count: int) -> bytes:
    return ("\n".join(str(value).rjust(20) for value in range(count)) + "\n").encode()


def split_chunks(data: bytes, separator: str, **how: Any) -> list[bytes]:
    return list(split_batches(iter_lines(io.BytesIO(data)), separator.encode(), **how))


def test_split_partitions_as_kestra_split_test() -> None:
    chunks = split_chunks(_padded(1000), "\n", partitions=8)
    assert len(chunks) == 8
    assert sum(chunk.count(b"\n") for chunk in chunks) == 1000
    # Round-robin: the first partition holds lines 0, 8, 16 ...
    assert chunks[0].splitlines()[:2] == [b"0".rjust(20), b"8".rjust(20)]


def test_split_rows_as_kestra_split_test() -> None:
    chunks = split_chunks(_padded(1000), "\n", rows=10)
    assert len(chunks) == 100
    assert b"".join(chunks) == _padded(1000)


def test_split_bytes_closes_a_batch_once_it_holds_the_size_or_more() -> None:
    # SplitTest.bytes: 12288 lines of 21 bytes, `bytes: 1KB` -> batches of 49 lines (1029 bytes).
    chunks = split_chunks(_padded(12288), "\n", size=1024)
    assert len(chunks) == 251
    assert len(chunks[0]) == 49 * 21
    assert b"".join(chunks) == _padded(12288)


def test_split_reads_lines_as_java_and_writes_each_with_the_separator() -> None:
    assert split_chunks(b"a\r\nb\rc\n\nd", "|", rows=9) == [b"a|b|c||d|"]
    assert split_chunks(b"a\n", "|", rows=9) == [b"a|"] and split_chunks(b"", "|", rows=1) == []
    # A last line without its end still gets the separator; CRLF lines are rewritten with `separator`.
    assert split_chunks(b"a\r\nb\r\nc", ";", rows=2) == [b"a;b;", b"c;"]


def test_split_partitions_drops_the_empty_ones() -> None:
    assert split_chunks(b"x\ny\n", "\n", partitions=4) == [b"x\n", b"y\n"]


def test_split_by_regex_groups_lines_by_the_first_group() -> None:
    data = b"[a] 1\n[b] 2\nno tag\n[a] 3\n"
    assert split_chunks(data, "\n", regex=re.compile(r"\[(\w+)\]")) == [b"[a] 1\n[a] 3\n", b"[b] 2\n"]


async def test_split_keeps_the_extension_of_its_file(tmp_path: Path) -> None:
    execution, _ = await run_flow(
        tmp_path,
        flow(
            "tasks:"
            + MAKE_FILE
            + """
  - id: split
    type: io.kestra.plugin.core.storage.Split
    from: "{{ outputs.make.outputFiles['rows.txt'] }}"
    bytes: 6B
"""
        ),
    )
    uris = (one_run(execution, "split").outputs or {})["uris"]
    # 'l1\n' is 3 bytes: a batch closes at 6, so two lines each, and the last alone.
    assert len(uris) == 3 and all(uri.endswith(".txt") for uri in uris)
