"""Shell completion, through each shell's own completion machinery: bash's `complete -F` function
called as bash calls it, fish's `complete -C`, and zsh's function with the completion builtins it
calls standing in. Values come from a real store: a flow run once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
FLOW = (
    "id: hello\nnamespace: acme.team\ntasks:\n  - id: say\n    type: io.kestra.plugin.core.log.Log\n"
    "    message: hi\ntriggers:\n  - id: nightly\n    type: io.kestra.plugin.core.trigger.Schedule\n"
    "    cron: '0 2 * * *'\n"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A folder with a flow and a store holding one execution of it; the execution's id."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "flows").mkdir()
    (folder / "flows" / "hello.yml").write_text(FLOW)
    done = subprocess.run(
        [str(BIN / "tiercel"), "run", "--json", "acme.team", "hello"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    execution_id = done.stdout.split('"id": "', 1)[1].split('"', 1)[0]
    return folder, execution_id


def environment() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def run_in(shell: str, script: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shell, "-c", script], cwd=folder, capture_output=True, text=True, env=environment()
    )


def bash(folder: Path, line: str) -> list[str]:
    """What bash offers for `line` (completing its last word; a trailing space: a new word)."""
    words = line.split() + ([""] if line.endswith(" ") else [])
    script = (
        "source <(tiercel completion bash)\n"
        f"COMP_WORDS=({' '.join(repr(word) for word in words)}); COMP_CWORD={len(words) - 1}\n"
        "_tiercel; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    done = subprocess.run(
        ["bash", "-c", script], cwd=folder, capture_output=True, text=True, env=environment()
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def test_bash_completes_commands_and_their_options(project: tuple[Path, str]) -> None:
    folder, _ = project
    assert bash(folder, "tiercel ru") == ["run"]
    assert set(bash(folder, "tiercel ")) >= {"run", "executions", "logs", "completion", "ui"}
    assert bash(folder, "tiercel executions --st") == ["--state"]
    assert "--json" in bash(folder, "tiercel logs --")
    assert bash(folder, "tiercel executions --state SU") == ["SUCCESS"]
    assert bash(folder, "tiercel completion f") == ["fish"]


def test_bash_completes_what_the_store_holds(project: tuple[Path, str]) -> None:
    folder, execution_id = project
    assert bash(folder, f"tiercel logs {execution_id[:4]}") == [execution_id]
    assert bash(folder, "tiercel run acme") == ["acme.team"]
    assert bash(folder, "tiercel run acme.team ") == ["hello"]
    assert bash(folder, "tiercel backfill --start 2025-01-01T00:00:00Z acme.team hello ") == ["nightly"]
    assert bash(folder, "tiercel triggers --disable acme.team h") == ["hello"]
    assert bash(folder, "tiercel executions --namespace acme.team --flow ") == ["hello"]


def test_a_store_that_is_not_there_completes_nothing_and_creates_nothing(tmp_path: Path) -> None:
    assert bash(tmp_path, "tiercel kill ") == []
    assert not (tmp_path / ".tiercel").exists()


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_through_its_own_complete_command(project: tuple[Path, str]) -> None:
    folder, execution_id = project
    script = (
        "tiercel completion fish | source\n"
        "complete -C 'tiercel ru'\n"
        f"complete -C 'tiercel kill {execution_id[:4]}'\n"
    )
    done = subprocess.run(
        ["fish", "-c", script], cwd=folder, capture_output=True, text=True, env=environment()
    )
    assert done.returncode == 0, done.stderr
    offered = [line.split("\t")[0] for line in done.stdout.splitlines()]
    assert "run" in offered and execution_id in offered


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completes_through_its_function(project: tuple[Path, str]) -> None:
    folder, execution_id = project
    script = (
        'compdef() { :; }; compadd() { shift; print -l -- "$@"; }; _files() { print FILES; }\n'
        "source <(tiercel completion zsh)\n"
        "words=(tiercel run acme.team ''); CURRENT=4; _tiercel\n"
        f"words=(tiercel logs {execution_id[:4]}); CURRENT=3; _tiercel\n"
        "words=(tiercel run --db ''); CURRENT=4; _tiercel\n"
    )
    done = subprocess.run(
        ["zsh", "-c", script], cwd=folder, capture_output=True, text=True, env=environment()
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["hello", execution_id, "FILES"]
