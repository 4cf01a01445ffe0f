"""Script tasks as real processes: the output protocol, files through kestra:// URIs, kill, timeout,
secrets that never reach the disk in clear, and path traversal refused."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from tests.engine.helpers import flow, logs_of, messages, one_run, run, run_flow, running_engine, states
from tests.waiting import HANG, until
from tiercel.engine.model import StateType

S = StateType


def _processes_with(marker: str) -> list[int]:
    """Pids whose command line holds `marker` (the test's own unique sleep duration)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def test_outputs_protocol_logs_and_exit_code(tmp_path: Path) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: sh
                type: io.kestra.plugin.scripts.shell.Commands
                warningOnStdErr: false
                commands:
                  - echo first line
                  - >-
                    echo '::{"outputs":{"answer":42,"nested":{"a":[1,2]}},
                    "logs":[{"level":"WARN","message":"from protocol"}]}::'
                  - echo to stderr >&2
            """
        ),
    )
    assert execution.state.current is S.SUCCESS
    outputs = one_run(execution, "sh").outputs or {}
    assert outputs["exitCode"] == 0
    assert outputs["vars"] == {"answer": 42, "nested": {"a": [1, 2]}}
    by_message = {entry.message: entry.level.value for entry in logs}
    assert by_message["first line"] == "INFO"
    assert by_message["to stderr"] == "ERROR"
    assert by_message["from protocol"] == "WARN"
    assert not any(line.startswith("::") for line in by_message)


async def test_an_output_line_longer_than_a_log_line_is_read_whole(tmp_path: Path) -> None:
    # Log lines are cut at 64 KiB; an output protocol line is data and reaches the next task whole.
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: big
                type: io.kestra.plugin.scripts.python.Script
                script: |
                  import json
                  print("::" + json.dumps({"outputs": {"blob": "y" * 1_000_000}}) + "::")
              - id: use
                type: io.kestra.plugin.core.log.Log
                message: "length {{ outputs.big.vars.blob | length }}"
            """
        ),
    )
    assert execution.state.current is S.SUCCESS
    assert "length 1000000" in messages(logs)
    assert not any("yyyy" in entry.message for entry in logs)


async def test_stderr_makes_a_warning_by_default(tmp_path: Path) -> None:
    execution, _ = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: sh
                type: io.kestra.plugin.scripts.shell.Commands
                commands: ["echo oops >&2"]
            """
        ),
    )
    assert states(execution)["sh"] is S.WARNING


async def test_a_non_zero_exit_fails_but_keeps_outputs(tmp_path: Path) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: sh
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - echo '::{"outputs":{"before":"exit"}}::'
                  - exit 3
            """
        ),
    )
    run_ = one_run(execution, "sh")
    assert run_.state.current is S.FAILED
    assert run_.outputs == {"exitCode": 3, "vars": {"before": "exit"}}
    assert "Command failed with exit code 3" in messages(logs)


async def test_fail_fast_stops_at_the_first_failing_command(tmp_path: Path) -> None:
    source = """
        tasks:
          - id: sh
            type: io.kestra.plugin.scripts.shell.Commands
            failFast: {fast}
            commands: ["false", "echo still here"]
        """
    strict, logs = await run_flow(tmp_path / "a", flow(source.format(fast="true")))
    loose, loose_logs = await run_flow(tmp_path / "b", flow(source.format(fast="false")))
    assert states(strict)["sh"] is S.FAILED and "still here" not in messages(logs)
    assert states(loose)["sh"] is S.SUCCESS and "still here" in messages(loose_logs)


async def test_env_before_commands_and_interpreter(tmp_path: Path) -> None:
    _, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: sh
                type: io.kestra.plugin.scripts.shell.Commands
                interpreter: ["/bin/bash", "-c"]
                env: {GREETING: "hi {{ flow.id }}"}
                beforeCommands: ["export EXTRA=before"]
                commands: ['echo "$GREETING $EXTRA ${BASH_VERSION:+bash}"']
            """
        ),
    )
    assert "hi f before bash" in messages(logs)


async def test_files_round_trip_through_kestra_uris(tmp_path: Path) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: make
                type: io.kestra.plugin.scripts.shell.Commands
                inputFiles:
                  in/data.csv: "a,b\\n1,2"
                outputFiles: ["*.txt", "out/**"]
                commands:
                  - mkdir -p out && wc -l < in/data.csv | tr -d ' ' > lines.txt
                  - cp in/data.csv out/copy.csv
                  - echo extra > {{ outputDir }}/extra.txt
              - id: use
                type: io.kestra.plugin.scripts.python.Script
                inputFiles:
                  copied.csv: "{{ outputs.make.outputFiles['out/copy.csv'] }}"
                script: |
                  from kestra import Kestra
                  rows = open("copied.csv").read().splitlines()
                  lines = "{{ read(outputs.make.outputFiles['lines.txt']) | trim }}"
                  Kestra.outputs({"rows": len(rows), "lines": lines})
            """
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    files = (one_run(execution, "make").outputs or {})["outputFiles"]
    assert set(files) == {"lines.txt", "out/copy.csv", "extra.txt"}
    assert all(uri.startswith("kestra:///ns/f/executions/") for uri in files.values())
    assert (one_run(execution, "use").outputs or {})["vars"] == {"rows": 2, "lines": "1"}


async def test_python_commands_and_the_legacy_bash_task(tmp_path: Path) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            inputs:
              - {id: n, type: INT, defaults: 5}
            tasks:
              - id: py
                type: io.kestra.plugin.scripts.python.Commands
                inputFiles:
                  main.py: |
                    import sys
                    from kestra import Kestra
                    Kestra.outputs({"square": int(sys.argv[1]) ** 2})
                commands: ["python main.py {{ inputs.n }}"]
              - id: bash
                type: io.kestra.core.tasks.scripts.Bash
                outputFiles: [result]
                commands:
                  - echo "{{ outputs.py.vars.square }}" > {{ outputFiles.result }}
            """
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    assert (one_run(execution, "py").outputs or {})["vars"] == {"square": 25}
    assert set((one_run(execution, "bash").outputs or {})["outputFiles"]) == {"result"}


async def test_current_python_properties_and_the_legacy_tasks_args(tmp_path: Path) -> None:
    """`packageManager` (UV or PIP) is a property of today's python Script and Commands
    (plugin-scripts, python/internals/PythonBasedPlugin.java); the legacy Python task passes its
    `args` to main.py (io.kestra.core.tasks.scripts.Python)."""
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: py
                type: io.kestra.plugin.scripts.python.Script
                packageManager: UV
                script: print("modern")
              - id: legacy
                type: io.kestra.core.tasks.scripts.Python
                args: ["--name", "{{ flow.id }}"]
                inputFiles:
                  main.py: |
                    import sys
                    print("args", sys.argv[1:])
            """
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    said = messages(logs)
    assert "modern" in said
    assert any(line == "args ['--name', 'f']" for line in said), said


async def test_the_python_helpers_logger_levels_map_to_kestras(tmp_path: Path) -> None:
    """Kestra's logs have no level above ERROR: `Kestra.logger().critical()` logs at ERROR, and
    `warning()` at WARN (kestra-io/libs, python/src/kestra.py: its log formatter's level names)."""
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: py
                type: io.kestra.plugin.scripts.python.Script
                script: |
                  from kestra import Kestra
                  log = Kestra.logger()
                  log.debug("d")
                  log.warning("w")
                  log.error("e")
                  log.critical("c")
            """
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    said = [(entry.level.name, entry.message) for entry in logs if entry.message in ("d", "w", "e", "c")]
    assert said == [("DEBUG", "d"), ("WARN", "w"), ("ERROR", "e"), ("ERROR", "c")]


async def test_a_docker_runner_runs_locally_and_says_so_once(tmp_path: Path) -> None:
    _, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: sh
                type: io.kestra.plugin.scripts.shell.Commands
                containerImage: ubuntu:22.04
                taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker}
                commands: ["echo ran"]
            """
        ),
    )
    notes = [line for line in messages(logs) if "local process" in line]
    assert len(notes) == 1 and "ubuntu:22.04" in notes[0]


async def test_working_directory_shares_a_folder_and_keeps_output_files(tmp_path: Path) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: wd
                type: io.kestra.plugin.core.flow.WorkingDirectory
                inputFiles:
                  seed.txt: seed
                outputFiles: ["result.txt"]
                tasks:
                  - id: first
                    type: io.kestra.plugin.scripts.shell.Commands
                    commands: ["cat seed.txt > result.txt", "echo one >> result.txt"]
                  - id: second
                    type: io.kestra.plugin.scripts.shell.Commands
                    commands: ["echo two >> result.txt", "pwd"]
              - id: show
                type: io.kestra.plugin.core.log.Log
                message: "{{ read(outputs.wd.outputFiles['result.txt']) }}"
            """
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    assert "seedone\ntwo\n" in messages(logs)  # seed.txt has no final newline
    folder = next(line for line in messages(logs) if "tiercel-wd-" in line)
    assert not Path(folder).exists(), "the shared folder is removed at the end"


KILL_SCRIPT = "trap '' TERM; sleep {n} & (setsid sleep {n} &); echo started; sleep {n}"


async def test_kill_takes_down_every_process_of_the_task(tmp_path: Path) -> None:
    marker = "307.25"  # an unusual duration, to find this test's processes and no others
    source = flow(
        f"""
        tasks:
          - id: stubborn
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["bash -c \\"{KILL_SCRIPT.format(n=marker)}\\""]
        """
    )
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "f.yml").write_text(source)
    from tiercel.engine.engine import Engine
    from tiercel.engine.store import Store

    store = await Store.open(tmp_path / "t.db")
    engine = Engine(store, flows_dir=flows, kill_grace=1.0)
    await engine.start(control=False)
    try:
        execution_id = await engine.trigger("ns", "f")
        await until(lambda: len(_processes_with(marker)) >= 3, what="the task's three processes")
        await asyncio.sleep(0.2)
        await engine.kill(execution_id)
        # The processes sleep for minutes and ignore TERM: the kill ends them, not their end.
        final = await asyncio.wait_for(engine.wait(execution_id), HANG)
        lines = messages(await logs_of(engine, execution_id))
    finally:
        await engine.stop()
    assert final.state.current is S.KILLED
    assert _processes_with(marker) == []
    assert "started" in lines, "the last line printed before the kill is kept"


async def test_timeout_fails_the_task_and_ends_its_process(tmp_path: Path) -> None:
    marker = "101.75"
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "f.yml").write_text(
        flow(
            f"""
            tasks:
              - id: slow
                type: io.kestra.plugin.scripts.shell.Commands
                timeout: PT1S
                commands: ["sleep {marker}"]
            """
        )
    )
    from tiercel.engine.engine import Engine
    from tiercel.engine.store import Store

    store = await Store.open(tmp_path / "t.db")
    engine = Engine(store, flows_dir=flows, kill_grace=1.0)
    await engine.start(control=False)
    try:
        # The program sleeps for minutes: the run ends within its timeout only if the task's timeout cut it.
        execution = await run(engine, "ns", "f")
        lines = messages(await logs_of(engine, execution.id))
    finally:
        await engine.stop()
    assert states(execution)["slow"] is S.FAILED
    assert any("Timeout" in line for line in lines)
    assert _processes_with(marker) == []


SECRET = "s3cr3t-Value-9f2c"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_API_TOKEN", base64.b64encode(SECRET.encode()).decode())


@pytest.mark.usefixtures("secret_env")
async def test_secrets_never_reach_logs_or_files_in_clear(tmp_path: Path) -> None:
    """Every line logged is masked; only the task's output, which is data, keeps the real value."""
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: leak
                type: io.kestra.plugin.scripts.shell.Commands
                warningOnStdErr: false
                env: {TOKEN: "{{ secret('API_TOKEN') }}"}
                commands:
                  - echo "out $TOKEN"
                  - echo "err $TOKEN" >&2
                  - echo "upper $(echo $TOKEN | tr a-z A-Z)"
                  - echo "b64 $(printf %s $TOKEN | base64)"
                  - echo "::{\\"outputs\\":{\\"token\\":\\"$TOKEN\\"}}::"
              - id: log
                type: io.kestra.plugin.core.log.Log
                message: "rendered {{ secret('API_TOKEN') }} and {{ outputs.leak.vars.token }}"
            """
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    assert any("******" in line for line in messages(logs))
    assert (one_run(execution, "leak").outputs or {})["vars"]["token"] == SECRET
    encodings = [SECRET, SECRET.upper(), base64.b64encode(SECRET.encode()).decode()]
    for line in messages(logs):
        assert not any(encoded in line for encoded in encodings), line
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.name.startswith("tiercel.db"):  # the store holds outputs as data
            data = path.read_bytes()
            for encoded in encodings:
                assert encoded.encode() not in data, f"{encoded} found in {path}"


@pytest.mark.parametrize(
    "name",
    ["../escape.txt", "/tmp/absolute.txt", "a/../../escape.txt"],
)
async def test_input_files_outside_the_working_folder_are_refused(tmp_path: Path, name: str) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            f"""
            tasks:
              - id: sh
                type: io.kestra.plugin.scripts.shell.Commands
                inputFiles:
                  "{name}": nope
                commands: ["echo should not run"]
            """
        ),
    )
    assert states(execution)["sh"] is S.FAILED
    assert "should not run" not in messages(logs)
    assert not (tmp_path.parent / "escape.txt").exists()
    assert not Path("/tmp/absolute.txt").exists()


async def test_output_files_through_a_symlink_out_of_the_folder_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("private")
    execution, _ = await run_flow(
        tmp_path / "run",
        flow(
            f"""
            tasks:
              - id: sh
                type: io.kestra.plugin.scripts.shell.Commands
                outputFiles: ["*.txt"]
                commands: ["ln -s {outside} link.txt", "echo ok > real.txt"]
            """
        ),
    )
    files = (one_run(execution, "sh").outputs or {}).get("outputFiles", {})
    assert "link.txt" not in files and "real.txt" in files


@pytest.mark.parametrize(
    "uri",
    ["kestra:///../../etc/passwd", "kestra:///ns/f/../../../../etc/passwd", "file:///etc/passwd"],
)
async def test_reading_outside_the_storage_is_refused(tmp_path: Path, uri: str) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            f"""
            tasks:
              - id: read
                type: io.kestra.plugin.core.log.Log
                message: "{{{{ read('{uri}') }}}}"
            """
        ),
    )
    assert states(execution)["read"] is S.FAILED
    assert not any("root:" in line for line in messages(logs))


async def test_a_file_input_is_stored_and_readable(tmp_path: Path) -> None:
    local = tmp_path / "upload.csv"
    local.write_text("x,y\n")
    async with running_engine(
        tmp_path,
        flow(
            """
            inputs:
              - {id: data, type: FILE}
            tasks:
              - id: show
                type: io.kestra.plugin.core.log.Log
                message: "{{ inputs.data }} {{ read(inputs.data) }}"
            """
        ),
    ) as engine:
        # A local path is the user's own command's to give (`tiercel run --input data=PATH`).
        execution_id = await engine.trigger("ns", "f", {"data": str(local)}, local_files=True)
        execution = await asyncio.wait_for(engine.wait(execution_id), 20)
        lines = messages(await logs_of(engine, execution.id))
    assert execution.state.current is S.SUCCESS, lines
    assert str(execution.inputs["data"]).startswith("kestra:///ns/f/executions/")
    assert any(line.endswith("x,y\n") for line in lines)
