"""kestra:// URIs in a script's commands and script become local files of its working folder.

Kestra: io.kestra.core.models.tasks.runners.ScriptService.replaceInternalStorage (called by the
plugin-scripts CommandsWrapper on the rendered commands, and on the Script tasks' script), and its
ScriptServiceTest: the URI is replaced by the path of a local copy that exists.
"""

from __future__ import annotations

from pathlib import Path

from tests.engine.helpers import flow, messages, one_run, run_flow, states
from tiercel.engine.model import StateType as S

_PRODUCER = """
  - id: make
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["data.csv"]
    commands:
      - printf 'id,name\\n1,ada\\n2,bob\\n' > data.csv
"""


async def test_commands_read_an_upstream_file_through_its_uri(tmp_path: Path) -> None:
    """The blueprint pattern: `cat {{ outputs.x.outputFiles[...] }}` reads the file's content."""
    execution, logs = await run_flow(
        tmp_path,
        flow(
            "tasks:"
            + _PRODUCER
            + """
  - id: use
    type: io.kestra.plugin.scripts.shell.Commands
    beforeCommands:
      - test -f {{ outputs.make.outputFiles['data.csv'] }}
    commands:
      - cat {{ outputs.make.outputFiles['data.csv'] }}
      - echo "lines=$(wc -l < {{ outputs.make.outputFiles['data.csv'] }})"
      - echo "path={{ outputs.make.outputFiles['data.csv'] }}"
      - ls kestra-*.csv | wc -l | sed 's/^ */copies=/'
"""
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    lines = messages(logs)
    assert "1,ada" in lines and "2,bob" in lines
    assert "lines=3" in lines
    path = next(line.removeprefix("path=") for line in lines if line.startswith("path="))
    assert path.startswith("/") and path.endswith(".csv") and "kestra:" not in path
    assert "copies=1" in lines  # one copy for the four mentions of the same URI


async def test_a_python_script_opens_the_uri_as_a_local_path(tmp_path: Path) -> None:
    """Kestra's python.Script replaces the URIs of its script before writing it to a file."""
    execution, logs = await run_flow(
        tmp_path,
        flow(
            "tasks:"
            + _PRODUCER
            + """
  - id: count
    type: io.kestra.plugin.scripts.python.Script
    script: |
      from kestra import Kestra
      with open("{{ outputs.make.outputFiles['data.csv'] }}") as f:
          Kestra.outputs({"rows": len(f.read().splitlines())})
"""
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    assert (one_run(execution, "count").outputs or {})["vars"] == {"rows": 3}


async def test_the_legacy_bash_task_replaces_uris_too(tmp_path: Path) -> None:
    """The deprecated io.kestra.core.tasks.scripts.Bash went through the same replacement."""
    execution, logs = await run_flow(
        tmp_path,
        flow(
            "tasks:"
            + _PRODUCER
            + """
  - id: legacy
    type: io.kestra.core.tasks.scripts.Bash
    commands:
      - grep -c , {{ outputs.make.outputFiles['data.csv'] }} | sed 's/^/rows=/'
"""
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    assert "rows=3" in messages(logs)


async def test_a_missing_file_fails_the_task_and_names_the_uri(tmp_path: Path) -> None:
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: use
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - cat {{ 'kestra:///ns/f/executions/' ~ execution.id ~ '/missing.txt' }}
            """
        ),
    )
    assert states(execution)["use"] is S.FAILED
    assert any("missing.txt' does not exist" in line for line in messages(logs)), messages(logs)


async def test_another_namespaces_file_is_refused(tmp_path: Path) -> None:
    """An execution reads only its namespace's files (and its parents'), as read() does."""
    execution, logs = await run_flow(
        tmp_path,
        flow(
            """
            tasks:
              - id: use
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - cat kestra:///other/f/executions/abc/tasks/t/run/secret.txt
            """
        ),
    )
    assert states(execution)["use"] is S.FAILED
    assert any("belongs to namespace `other`" in line for line in messages(logs)), messages(logs)


async def test_input_files_copy_a_stored_file_whole(tmp_path: Path) -> None:
    """FilesService.inputFiles: a content that is a storage URI is fetched into the named file."""
    execution, logs = await run_flow(
        tmp_path,
        flow(
            "tasks:"
            + _PRODUCER
            + """
  - id: use
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      in/copy.csv: "{{ outputs.make.outputFiles['data.csv'] }}"
      elsewhere.txt: kestra:///other/f/executions/abc/tasks/t/run/secret.txt
    commands:
      - cat in/copy.csv
"""
        ),
    )
    assert states(execution)["use"] is S.FAILED
    assert any("inputFiles `elsewhere.txt`" in line and "`other`" in line for line in messages(logs))


async def test_an_env_value_that_is_a_uri_names_the_local_copy(tmp_path: Path) -> None:
    """A URI passed through `env` is as useful to the script as one in its commands."""
    execution, logs = await run_flow(
        tmp_path,
        flow(
            "tasks:"
            + _PRODUCER
            + """
  - id: use
    type: io.kestra.plugin.scripts.python.Commands
    env:
      DATA: "{{ outputs.make.outputFiles['data.csv'] }}"
    commands:
      - python -c "import os; print('header=' + open(os.environ['DATA']).readline().strip())"
"""
        ),
    )
    assert execution.state.current is S.SUCCESS, messages(logs)
    assert "header=id,name" in messages(logs)
