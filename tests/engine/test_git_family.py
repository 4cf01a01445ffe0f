"""The git family (io.kestra.plugin.git), loaded through its `tiercel.tasks` entry point: Kestra's
documented examples run through a real engine against local bare repositories (file:// URLs), what
they pushed read back with git itself."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.helpers import flow, logs_of, messages, one_run, run, running_engine
from tests.waiting import until
from tiercel.engine.engine import Engine
from tiercel.engine.model import StateType
from tiercel.engine.plugin import ion_loads
from tiercel.engine.tasks.namespace_store import namespace_files
from tiercel.engine.tasks.registry import registry

pytestmark = pytest.mark.asyncio

IDENTITY = {
    "GIT_AUTHOR_NAME": "Seeder",
    "GIT_AUTHOR_EMAIL": "seeder@example.com",
    "GIT_COMMITTER_NAME": "Seeder",
    "GIT_COMMITTER_EMAIL": "seeder@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **IDENTITY}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return done.stdout


def remote(tmp_path: Path, files: dict[str, str] | None = None, branch: str = "main") -> str:
    """A bare repository with one commit of `files` on `branch` (none: an empty repository)."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare))
    if files:
        seed = tmp_path / "seed"
        git(tmp_path, "clone", "--quiet", str(bare), str(seed))
        for name, text in files.items():
            (seed / name).parent.mkdir(parents=True, exist_ok=True)
            (seed / name).write_text(text)
        git(seed, "add", ".")
        git(seed, "commit", "--quiet", "-m", "seed")
        git(seed, "tag", "v1")
        git(seed, "push", "--quiet", "--tags", "origin", f"HEAD:refs/heads/{branch}")
    return bare.as_uri()


def show(url: str, revision: str) -> str:
    """A file of the bare repository (`branch:path`), read with git."""
    return git(Path(url.removeprefix("file://")), "show", revision)


def tree(url: str, branch: str) -> list[str]:
    return git(Path(url.removeprefix("file://")), "ls-tree", "-r", "--name-only", branch).split()


def rows(engine: Engine, uri: str) -> list[dict[str, Any]]:
    text = engine.storage.read_bytes(uri).decode()
    return [dict(ion_loads(line)) for line in text.splitlines() if line.strip()]


def seed_files(tmp_path: Path, namespace: str, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = tmp_path / "flows" / "_files" / namespace / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def namespace_content(engine: Engine, namespace: str) -> dict[str, str]:
    """A namespace's files as the engine's tasks see them (the folder's, or the shared store's)."""
    store = namespace_files(engine.storage, engine.flows_dir)
    assert store is not None
    return {path: store.read_file(namespace, path).decode() for path in sorted(store.list_files(namespace))}


async def test_the_family_comes_through_its_entry_point() -> None:
    types = ("Clone", "Push", "PushNamespaceFiles", "SyncNamespaceFiles", "PushFlows", "SyncFlows")
    for name in types:
        assert registry().source(f"io.kestra.plugin.git.{name}").startswith("tiercel ")
    assert not registry().failures


async def test_clone_then_a_script_lists_the_files(tmp_path: Path) -> None:
    """Kestra's git_python example: Clone in a WorkingDirectory, then a script sees the files."""
    url = remote(tmp_path, {"README.md": "hello\n", "scripts/etl_script.py": "print('etl')\n"})
    source = flow(
        f"""
        tasks:
          - id: file_system
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: clone_repository
                type: io.kestra.plugin.git.Clone
                url: {url}
                branch: main
              - id: list
                type: io.kestra.plugin.scripts.shell.Commands
                commands: ["ls -R", "cat scripts/etl_script.py"]
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        assert execution.state.current is StateType.SUCCESS, messages(await logs_of(engine, execution.id))
        lines = messages(await logs_of(engine, execution.id))
        assert "README.md" in lines and "etl_script.py" in lines and "print('etl')" in lines
        directory = one_run(execution, "clone_repository").outputs["directory"]  # type: ignore[index]
        assert Path(directory).name  # the WorkingDirectory's folder


async def test_clone_into_a_directory_at_a_tag_and_with_git_config(tmp_path: Path) -> None:
    url = remote(tmp_path, {"a.txt": "one\n"})
    source = flow(
        f"""
        tasks:
          - id: wdir
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: clone
                type: io.kestra.plugin.git.Clone
                url: {url}
                directory: checkout
                tag: v1
                gitConfig:
                  core.fileMode: false
                  core.autocrlf: "false"
              - id: check
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - cat checkout/a.txt
                  - git -C checkout config core.fileMode
                  - git -C checkout describe --tags
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        lines = messages(await logs_of(engine, execution.id))
        assert execution.state.current is StateType.SUCCESS, lines
        assert "one" in lines and "false" in lines and "v1" in lines
        assert one_run(execution, "clone").outputs["directory"].endswith("/checkout")  # type: ignore[index]


async def test_push_of_files_written_by_a_script(tmp_path: Path) -> None:
    """Kestra's push_new_file_to_git example: Clone main, a script writes a file, Push commits the
    `inputFiles` under `addFilesPattern` to a new branch."""
    url = remote(tmp_path, {"README.md": "hello\n"})
    source = flow(
        f"""
        inputs:
          - id: commit_message
            type: STRING
            defaults: add a new file to Git
        tasks:
          - id: wdir
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: clone
                type: io.kestra.plugin.git.Clone
                branch: main
                url: {url}
              - id: generate_data
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - "echo '::{{\\"outputs\\":{{\\"average_order\\":42.5}}}}::'"
                  - echo junk > untracked.txt
              - id: push
                type: io.kestra.plugin.git.Push
                username: git_username
                password: not-needed-locally
                branch: feature_branch
                inputFiles:
                  to_commit/avg_order.txt: "{{{{ outputs.generate_data.vars.average_order }}}}"
                addFilesPattern:
                  - to_commit
                commitMessage: "{{{{ inputs.commit_message }}}}"
                author:
                  name: Ada
                  email: ada@example.com
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        assert execution.state.current is StateType.SUCCESS, messages(await logs_of(engine, execution.id))
        commit_id = one_run(execution, "push").outputs["commitId"]  # type: ignore[index]
    assert show(url, "feature_branch:to_commit/avg_order.txt") == "42.5"
    assert tree(url, "feature_branch") == ["README.md", "to_commit/avg_order.txt"]  # not untracked.txt
    assert git(Path(url[7:]), "rev-parse", "feature_branch").strip() == commit_id
    assert git(Path(url[7:]), "log", "-1", "--format=%an <%ae> %s", "feature_branch").strip() == (
        "Ada <ada@example.com> add a new file to Git"
    )
    assert tree(url, "main") == ["README.md"]


async def test_push_with_url_commits_only_what_the_task_writes(tmp_path: Path) -> None:
    url = remote(tmp_path, {"old.txt": "old\n"})
    source = flow(
        f"""
        tasks:
          - id: push
            type: io.kestra.plugin.git.Push
            url: {url}
            branch: main
            commitMessage: replace
            flows:
              enabled: false
            inputFiles:
              new.txt: fresh
          - id: again
            type: io.kestra.plugin.git.Push
            url: {url}
            branch: main
            commitMessage: nothing new
            flows:
              enabled: false
            inputFiles:
              new.txt: fresh
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        assert execution.state.current is StateType.SUCCESS, messages(await logs_of(engine, execution.id))
        assert one_run(execution, "again").outputs == {}  # nothing changed: no commit
        assert "No changes to commit. Skipping push." in messages(await logs_of(engine, execution.id))
    assert tree(url, "main") == ["new.txt"]


PUSH_FILES = """
id: push_to_git
namespace: company.ops
inputs:
  - id: dry
    type: BOOL
    defaults: true
tasks:
  - id: commit_and_push
    type: io.kestra.plugin.git.PushNamespaceFiles
    namespace: dev
    files: "**"
    gitDirectory: _files
    url: {url}
    username: git_username
    password: "{{{{ 'tok-' ~ 'secret' }}}}"
    branch: dev
    commitMessage: "add namespace files"
    dryRun: "{{{{ inputs.dry }}}}"
"""
SYNC_FILES = """
id: sync_from_git
namespace: company.ops
inputs:
  - id: dry
    type: BOOL
tasks:
  - id: git
    type: io.kestra.plugin.git.SyncNamespaceFiles
    namespace: prod
    gitDirectory: _files
    delete: true
    url: {url}
    branch: dev
    dryRun: "{{{{ inputs.dry }}}}"
"""


async def test_namespace_files_round_trip(tmp_path: Path) -> None:
    """PushNamespaceFiles (dry run, then for real) into a new branch, then SyncNamespaceFiles of that
    branch into another namespace (dry run, then with `delete`)."""
    url = remote(tmp_path, {"README.md": "hello\n"})
    seed_files(tmp_path, "dev", {"a.py": "print(1)\n", "sql/q.sql": "select 1;\nselect 2;\n"})
    seed_files(tmp_path, "prod", {"a.py": "print(0)\n", "stale.txt": "bye\n"})
    sources = (PUSH_FILES.format(url=url), SYNC_FILES.format(url=url))
    async with running_engine(tmp_path, *sources) as engine:
        dry = await run(engine, "company.ops", "push_to_git", {"dry": True})
        assert dry.state.current is StateType.SUCCESS, messages(await logs_of(engine, dry.id))
        outputs = one_run(dry, "commit_and_push").outputs or {}
        assert "commitId" not in outputs
        assert rows(engine, outputs["files"]) == [
            {"changes": "0", "file": "_files/a.py", "deletions": "-0", "additions": "+1"},
            {"changes": "0", "file": "_files/sql/q.sql", "deletions": "-0", "additions": "+2"},
        ]
        assert "refs/heads/dev" not in git(Path(url[7:]), "branch", "--format=%(refname)")

        pushed = await run(engine, "company.ops", "push_to_git", {"dry": False})
        assert pushed.state.current is StateType.SUCCESS
        outputs = one_run(pushed, "commit_and_push").outputs or {}
        assert outputs["commitId"] == git(Path(url[7:]), "rev-parse", "dev").strip()
        assert outputs["commitURL"] == f"{url.removesuffix('.git')}/commit/{outputs['commitId']}"
        assert tree(url, "dev") == ["README.md", "_files/a.py", "_files/sql/q.sql"]
        assert show(url, "dev:_files/sql/q.sql") == "select 1;\nselect 2;\n"
        assert git(Path(url[7:]), "log", "-1", "--format=%s", "dev").strip() == "add namespace files"
        log_text = "\n".join(messages(await logs_of(engine, pushed.id)))
        assert "tok-secret" not in log_text

        preview = await run(engine, "company.ops", "sync_from_git", {"dry": True})
        assert preview.state.current is StateType.SUCCESS, messages(await logs_of(engine, preview.id))
        assert namespace_content(engine, "prod") == {"a.py": "print(0)\n", "stale.txt": "bye\n"}
        expected = [
            {"syncState": "DELETED", "kestraPath": "/prod/_files/stale.txt"},
            {"gitPath": "_files/a.py", "syncState": "OVERWRITTEN", "kestraPath": "/prod/_files/a.py"},
            {"gitPath": "_files/sql/", "syncState": "ADDED", "kestraPath": "/prod/_files/sql/"},
            {"gitPath": "_files/sql/q.sql", "syncState": "ADDED", "kestraPath": "/prod/_files/sql/q.sql"},
        ]
        assert rows(engine, one_run(preview, "git").outputs["files"]) == expected  # type: ignore[index]

        synced = await run(engine, "company.ops", "sync_from_git", {"dry": False})
        assert rows(engine, one_run(synced, "git").outputs["files"]) == expected  # type: ignore[index]
        assert namespace_content(engine, "prod") == {
            "a.py": "print(1)\n",
            "sql/q.sql": "select 1;\nselect 2;\n",
        }

        again = await run(engine, "company.ops", "sync_from_git", {"dry": False})
        states = [row["syncState"] for row in rows(engine, one_run(again, "git").outputs["files"])]  # type: ignore[index]
        assert states == ["UNCHANGED", "UNCHANGED", "UNCHANGED"]


async def test_push_namespace_files_deletes_what_the_namespace_lost(tmp_path: Path) -> None:
    url = remote(tmp_path, {"_files/gone.py": "x\n", "_files/kept.py": "k\n", "other.txt": "o\n"})
    seed_files(tmp_path, "dev", {"kept.py": "k\n", "new.py": "n\n"})
    async with running_engine(
        tmp_path, PUSH_FILES.format(url=url).replace("branch: dev", "branch: main")
    ) as engine:
        execution = await run(engine, "company.ops", "push_to_git", {"dry": False})
        assert execution.state.current is StateType.SUCCESS, messages(await logs_of(engine, execution.id))
        diff = rows(engine, one_run(execution, "commit_and_push").outputs["files"])  # type: ignore[index]
    assert tree(url, "main") == ["_files/kept.py", "_files/new.py", "other.txt"]
    assert [row["file"] for row in diff] == ["_files/gone.py", "_files/new.py"]
    assert diff[0]["deletions"] == "-1"


PUSH_FLOWS = """
id: push_to_git
namespace: company.ops
inputs:
  - id: dry
    type: BOOL
tasks:
  - id: commit_and_push
    type: io.kestra.plugin.git.PushFlows
    sourceNamespace: dev
    targetNamespace: prod
    flows: "*"
    includeChildNamespaces: true
    gitDirectory: _flows
    url: {url}
    branch: main
    commitMessage: "add flows {{{{ now() }}}}"
    dryRun: "{{{{ inputs.dry }}}}"
"""
SYNC_FLOWS = """
id: sync_flows
namespace: company.ops
inputs:
  - id: dry
    type: BOOL
tasks:
  - id: git
    type: io.kestra.plugin.git.SyncFlows
    targetNamespace: prod
    gitDirectory: _flows
    includeChildNamespaces: true
    delete: true
    url: {url}
    branch: main
    dryRun: "{{{{ inputs.dry }}}}"
"""
LOG = "tasks:\n  - id: log\n    type: io.kestra.plugin.core.log.Log\n"
HELLO = f"id: hello\nnamespace: dev\n{LOG}    message: hi\n"
NESTED = f"id: nested\nnamespace: dev.child\n{LOG}    message: n\n"
OLD_HELLO = HELLO.replace("dev", "prod").replace("hi", "old")
OLD = f"id: old\nnamespace: prod\n{LOG}    message: o\n"


async def test_flows_round_trip(tmp_path: Path) -> None:
    """Kestra's push_to_git example (dev -> prod, child namespaces), then SyncFlows of that branch
    into prod (dry run first, then with `delete`)."""
    url = remote(tmp_path, {"README.md": "hello\n"})
    sources = (PUSH_FLOWS.format(url=url), SYNC_FLOWS.format(url=url), HELLO, NESTED, OLD_HELLO, OLD)
    async with running_engine(tmp_path, *sources) as engine:
        dry = await run(engine, "company.ops", "push_to_git", {"dry": True})
        assert dry.state.current is StateType.SUCCESS, messages(await logs_of(engine, dry.id))
        diff = rows(engine, one_run(dry, "commit_and_push").outputs["flows"])  # type: ignore[index]
        assert [row["file"] for row in diff] == ["_flows/child/nested.yml", "_flows/hello.yml"]
        assert tree(url, "main") == ["README.md"]

        pushed = await run(engine, "company.ops", "push_to_git", {"dry": False})
        assert pushed.state.current is StateType.SUCCESS, messages(await logs_of(engine, pushed.id))
        assert tree(url, "main") == ["README.md", "_flows/child/nested.yml", "_flows/hello.yml"]
        assert show(url, "main:_flows/hello.yml") == HELLO.replace("namespace: dev", "namespace: prod")
        assert "namespace: prod.child\n" in show(url, "main:_flows/child/nested.yml")

        preview = await run(engine, "company.ops", "sync_flows", {"dry": True})
        assert preview.state.current is StateType.SUCCESS, messages(await logs_of(engine, preview.id))
        expected = [
            {"syncState": "DELETED", "flowId": "old", "namespace": "prod"},
            {
                "gitPath": "_flows/child/nested.yml",
                "syncState": "ADDED",
                "flowId": "nested",
                "namespace": "prod.child",
            },
            {"gitPath": "_flows/hello.yml", "syncState": "UPDATED", "flowId": "hello", "namespace": "prod"},
        ]
        assert rows(engine, one_run(preview, "git").outputs["flows"]) == expected  # type: ignore[index]
        assert ("prod", "old") in engine.flows and ("prod.child", "nested") not in engine.flows

        synced = await run(engine, "company.ops", "sync_flows", {"dry": False})
        assert synced.state.current is StateType.SUCCESS, messages(await logs_of(engine, synced.id))
        assert rows(engine, one_run(synced, "git").outputs["flows"]) == expected  # type: ignore[index]
        await until(lambda: ("prod", "old") not in engine.flows, what="prod.old deleted")
        assert "message: hi" in (engine.flows.source(("prod", "hello")) or "")
        nested = await run(engine, "prod.child", "nested")
        assert nested.state.current is StateType.SUCCESS

        again = await run(engine, "company.ops", "sync_flows", {"dry": False})
        states = [row["syncState"] for row in rows(engine, one_run(again, "git").outputs["flows"])]  # type: ignore[index]
        assert states == ["UNCHANGED", "UNCHANGED"]


async def test_sync_flows_refuses_an_invalid_flow_unless_told_to_ignore_it(tmp_path: Path) -> None:
    url = remote(tmp_path, {"_flows/bad.yml": "id: bad\nnamespace: x\ntasks: nope\n", "_flows/ok.yml": OLD})
    source = SYNC_FLOWS.format(url=url).replace("delete: true", 'ignoreInvalidFlows: "{{ inputs.ignore }}"')
    source = source.replace(
        "  - id: dry\n    type: BOOL\n", "  - id: dry\n    type: BOOL\n  - id: ignore\n    type: BOOL\n"
    )
    async with running_engine(tmp_path, source) as engine:
        failed = await run(engine, "company.ops", "sync_flows", {"dry": False, "ignore": False})
        assert failed.state.current is StateType.FAILED
        assert any(
            "Invalid flow imported from Git (bad.yml)" in m
            for m in messages(await logs_of(engine, failed.id))
        )
        ignored = await run(engine, "company.ops", "sync_flows", {"dry": False, "ignore": True})
        assert ignored.state.current is StateType.SUCCESS
        flows = rows(engine, one_run(ignored, "git").outputs["flows"])  # type: ignore[index]
        assert [row["flowId"] for row in flows] == ["old"]


def refusing_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_url_fails_promptly_without_the_password(tmp_path: Path) -> None:
    port = refusing_port()
    source = flow(
        f"""
        tasks:
          - id: clone
            type: io.kestra.plugin.git.Clone
            url: http://someone:in-url-secret@127.0.0.1:{port}/repo.git
            username: git_username
            password: "{{{{ 'pass' ~ 'word-42' }}}}"
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        assert execution.state.current is StateType.FAILED
        text = "\n".join(messages(await logs_of(engine, execution.id)))
    assert f"127.0.0.1:{port}" in text and "Cloning" in text
    assert "password-42" not in text and "in-url-secret" not in text


async def test_bad_input_fails_with_a_clear_message(tmp_path: Path) -> None:
    url = remote(tmp_path, {"a.txt": "a\n"})
    source = flow(
        f"""
        inputs:
          - id: case
            type: STRING
        tasks:
          - id: switch
            type: io.kestra.plugin.core.flow.Switch
            value: "{{{{ inputs.case }}}}"
            cases:
              branch:
                - id: missing_branch
                  type: io.kestra.plugin.git.Clone
                  url: {url}
                  branch: nowhere
              depth:
                - id: bad_depth
                  type: io.kestra.plugin.git.Clone
                  url: {url}
                  depth: deep
              single:
                - id: single_without_branch
                  type: io.kestra.plugin.git.Clone
                  url: {url}
                  cloneAllBranches: false
              outside:
                - id: outside
                  type: io.kestra.plugin.git.Clone
                  url: {url}
                  directory: ../../escape
              missing_dir:
                - id: missing_dir
                  type: io.kestra.plugin.git.SyncNamespaceFiles
                  url: {url}
                  gitDirectory: nothing_here
        """
    )
    expected = {
        "branch": "Remote branch nowhere not found",
        "depth": "`depth` must be a whole number, not `deep`",
        "single": "when `cloneAllBranches` is false, `branch` must be set",
        "outside": "outside the task's working directory",
        "missing_dir": "The directory 'nothing_here' was not found in the git repository",
    }
    async with running_engine(tmp_path, source) as engine:
        for case, message in expected.items():
            execution = await run(engine, "ns", "f", {"case": case})
            assert execution.state.current is StateType.FAILED, case
            assert any(message in m for m in messages(await logs_of(engine, execution.id))), case


def _git_processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung git server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


async def test_a_killed_clone_leaves_no_git_process_and_shows_no_password(
    tmp_path: Path, silent_server: int
) -> None:
    marker = f"127.0.0.1:{silent_server}/hung-{os.getpid()}.git"
    source = flow(
        f"""
        tasks:
          - id: clone
            type: io.kestra.plugin.git.Clone
            url: http://{marker}
            username: someone
            password: hung-secret-77
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution_id = await engine.trigger("ns", "f", {}, [])
        await until(lambda: _git_processes_with(marker), what="git clone started")
        assert not _git_processes_with("hung-secret-77")  # never on a command line
        await engine.kill(execution_id)
        execution = await asyncio.wait_for(engine.wait(execution_id), 60)
        assert execution.state.current is StateType.KILLED
        await until(lambda: not _git_processes_with(marker), what="every git process gone")


async def test_a_missing_git_program_fails_saying_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = remote(tmp_path, {"a.txt": "a\n"})
    source = flow(f"tasks:\n  - id: c\n    type: io.kestra.plugin.git.Clone\n    url: {url}\n")
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        assert execution.state.current is StateType.FAILED
        assert any(
            "`git` program, which must be installed" in m
            for m in messages(await logs_of(engine, execution.id))
        )
