"""What a command-line user expects of `tiercel`: a version, help for every option with examples,
JSON out of `validate` and `logs`, colour on a terminal only (and never with NO_COLOR), and a log
level to choose."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tiercel.app.cli.main import build_parser

TIERCEL = Path(sys.executable).parent / "tiercel"


def tiercel(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TIERCEL), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env or dict(os.environ),
    )


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [sub] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_version_names_the_installed_release(tmp_path: Path) -> None:
    done = tiercel("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"tiercel {version('tiercel')}"


# A Ctrl-C while the command still loads: SIGINT sent as its parser is being built, before any command
# has begun (the one point of the start-up that is the same on every run). Python's own handler is
# set first, as in a terminal: a test run in the background may have inherited SIGINT ignored.
INTERRUPTED_WHILE_LOADING = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
import tiercel.app.cli
cli = sys.modules["tiercel.app.cli.main"]
build = cli.build_parser
cli.build_parser = lambda: (os.kill(os.getpid(), signal.SIGINT), build())[1]
from tiercel.app.program import program
sys.argv[0] = "tiercel"
sys.exit(program())
"""


def test_a_ctrl_c_while_the_command_loads_ends_it_quietly_with_130(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_WHILE_LOADING, "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "")


def test_the_executable_is_the_program_entry(tmp_path: Path) -> None:
    assert "from tiercel.app.program import program" in TIERCEL.read_text()


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_option_and_argument_of_a_command_says_what_it_is_for(name: str) -> None:
    parser = commands()[name]
    missing = [
        action.dest
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert not missing, f"`tiercel {name}`: no help for {missing}"


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_command_shows_examples_of_itself(name: str) -> None:
    epilog = commands()[name].epilog or ""
    assert epilog.startswith("examples:")
    assert any(line.strip().startswith(f"tiercel {name}") for line in epilog.splitlines()[1:])


def test_help_keeps_the_examples_laid_out(tmp_path: Path) -> None:
    shown = tiercel("run", "--help", cwd=tmp_path).stdout
    examples = shown.split("examples:\n", 1)[1].splitlines()
    assert examples and all(line.startswith("  tiercel run") or not line.strip() for line in examples)


LOG_TASK = "    type: io.kestra.plugin.core.log.Log\n"
BROKEN = "id: broken\nnamespace: acme\ntasks:\n  - id: a\n" + LOG_TASK + "  - id: a\n"
GOOD = "id: good\nnamespace: acme\ntasks:\n  - id: hello\n" + LOG_TASK + "    message: hi\n"


def test_validate_json_gives_each_file_with_its_errors_where_they_are(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(GOOD)
    (tmp_path / "broken.yml").write_text(BROKEN)
    done = tiercel("validate", "--json", ".", cwd=tmp_path)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert (report["files"], report["invalid"]) == (2, 1)
    by_file = {Path(result["file"]).name: result for result in report["results"]}
    assert by_file["good.yml"]["valid"] and by_file["good.yml"]["flow"] == "acme.good"
    [error, *_] = by_file["broken.yml"]["errors"]
    assert not by_file["broken.yml"]["valid"]
    assert Path(error["file"]).name == "broken.yml"
    assert isinstance(error["line"], int) and isinstance(error["column"], int) and error["message"]


def test_logs_json_prints_one_kestra_log_entry_a_line(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(GOOD)
    ran = tiercel("run", "--json", "good.yml", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    execution_id = json.loads(ran.stdout)["id"]
    done = tiercel("logs", "--json", execution_id, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stdout.splitlines()]
    [said] = [entry for entry in entries if entry["message"] == "hi"]
    assert said["executionId"] == execution_id and said["taskId"] == "hello" and said["level"] == "INFO"
    assert said["namespace"] == "acme" and said["flowId"] == "good" and said["timestamp"].endswith("Z")


def on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """What a command writes to a terminal (a pseudo-terminal of 200 columns)."""
    import pty
    import select

    main, secondary = pty.openpty()
    process = subprocess.Popen(
        [str(TIERCEL), *args], cwd=cwd, stdin=secondary, stdout=secondary, stderr=secondary, env=env
    )
    os.close(secondary)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([main], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the command ended and closed its side
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=30)
    os.close(main)
    return b"".join(chunks).decode(errors="replace")


HOSTILE = (
    "id: loud\nnamespace: acme\ntasks:\n  - id: shout\n    type: io.kestra.plugin.core.log.Log\n"
    '    level: ERROR\n    message: "\\e[31mred text\\e[0m"\n'
)


def test_states_and_levels_are_coloured_on_a_terminal_only_and_never_with_no_color(tmp_path: Path) -> None:
    (tmp_path / "loud.yml").write_text(HOSTILE)
    ran = tiercel("run", "--json", "loud.yml", cwd=tmp_path)
    execution_id = json.loads(ran.stdout)["id"]
    plain_env = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
    plain_env["TERM"] = "xterm"
    logs = on_a_terminal(["logs", execution_id], tmp_path, plain_env)
    listing = on_a_terminal(["executions"], tmp_path, plain_env)
    assert "\x1b[31mERROR\x1b[0m" in logs
    assert "\\x1b[31mred text\\x1b[0m" in logs  # the flow's own escapes are shown, not obeyed
    assert "\x1b[32mSUCCESS" in listing
    for quiet in (
        on_a_terminal(["logs", execution_id], tmp_path, {**plain_env, "NO_COLOR": "1"}),
        on_a_terminal(["executions"], tmp_path, {**plain_env, "NO_COLOR": "1"}),
        tiercel("logs", execution_id, cwd=tmp_path, env=plain_env).stdout,
        tiercel("executions", cwd=tmp_path, env=plain_env).stdout,
    ):
        assert "\x1b" not in quiet
        assert "SUCCESS" in quiet or "ERROR" in quiet


def test_verbose_shows_the_engines_info_lines(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(GOOD)
    quiet = tiercel("run", "good.yml", cwd=tmp_path)
    chatty = tiercel("run", "-vv", "good.yml", cwd=tmp_path)
    chosen = tiercel("--log-level", "debug", "run", "good.yml", cwd=tmp_path)
    assert quiet.returncode == chatty.returncode == chosen.returncode == 0
    engine_lines = [line for line in chatty.stderr.splitlines() if line.startswith("tiercel: ")]
    assert engine_lines and not [line for line in quiet.stderr.splitlines() if line.startswith("tiercel: ")]
    assert [line for line in chosen.stderr.splitlines() if line.startswith("tiercel: ")]


def test_schema_for_vscode_maps_the_flows_folder_and_keeps_the_other_settings(tmp_path: Path) -> None:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / ".vscode").mkdir()
    (tmp_path / ".vscode" / "settings.json").write_text('{"editor.tabSize": 2}')
    done = tiercel("schema", "--vscode", "--flows", "pipelines", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    settings = json.loads((tmp_path / ".vscode" / "settings.json").read_text())
    assert settings["editor.tabSize"] == 2
    patterns = settings["yaml.schemas"]["./.vscode/tiercel-flow.schema.json"]
    assert "pipelines/**/*.yml" in patterns and "!**/_namespace.yaml" in patterns
    schema = json.loads((tmp_path / ".vscode" / "tiercel-flow.schema.json").read_text())
    assert schema["required"] == ["id", "namespace", "tasks"]


def test_schema_for_vscode_leaves_settings_with_comments_alone(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / ".vscode").mkdir()
    commented = '{\n  // two spaces\n  "editor.tabSize": 2\n}\n'
    (tmp_path / ".vscode" / "settings.json").write_text(commented)
    done = tiercel("schema", "--vscode", cwd=tmp_path)
    assert done.returncode == 1
    assert "yaml.schemas" in done.stderr and "flows/**/*.yml" in done.stderr
    assert (tmp_path / ".vscode" / "settings.json").read_text() == commented


def test_schema_for_vscode_says_what_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / ".vscode").write_text("a file where the folder should be")
    done = tiercel("schema", "--vscode", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("tiercel: cannot write .vscode") and "Traceback" not in done.stderr
