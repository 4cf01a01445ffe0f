"""Under the usual umask 022, everything Tiercel creates is private: files 0600, folders 0700."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.reliability.conftest import TIERCEL, write_flow
from tiercel.engine.engine import Engine
from tiercel.engine.model import StateType
from tiercel.engine.store import Store

pytestmark = pytest.mark.reliability

# Each shell task prints the mode of the folders it runs in, as `mode <what> <octal>`.
FLOW = """\
id: private
namespace: rel.perms
inputs:
  - id: upload
    type: FILE
tasks:
  - id: script
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: [made.txt]
    commands:
      - echo "mode task-folder $(stat -c %a "$PWD")"
      - echo "mode output-dir $(stat -c %a '{{ outputDir }}')"
      - echo secret > made.txt
      - echo data > '{{ outputDir }}/extra.txt'
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    outputFiles: [kept.txt]
    tasks:
      - id: inside
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo "mode working-dir $(stat -c %a "$PWD") $PWD"
          - echo kept > kept.txt
  - id: joined
    type: io.kestra.plugin.core.storage.Concat
    files:
      - "{{ inputs.upload }}"
      - "{{ outputs.script.outputFiles['made.txt'] }}"
"""


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.lstat().st_mode))[2:]


async def test_database_storage_and_working_folders_are_private(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "private.yml").write_text(FLOW)
    upload = tmp_path / "upload.txt"
    upload.write_text("uploaded by the user\n")
    db = tmp_path / "state" / "tiercel.db"
    with umask(0o022):
        store = await Store.open(db)
        engine = Engine(store, flows_dir=flows)
        await engine.start(control=True, triggers=False)
        try:
            execution_id = await engine.trigger(
                "rel.perms", "private", {"upload": str(upload)}, local_files=True
            )
            execution = await asyncio.wait_for(engine.wait(execution_id), 60)
            lines = [entry.message for _, entry in await engine.logs(execution_id)]
            assert execution.state.current is StateType.SUCCESS, lines
            # Checked while the engine holds the database open: -wal and -shm exist now.
            database = {
                path.name: mode(path)
                for path in [db.parent, db, *db.parent.iterdir()]
                if path == db.parent or path.name.startswith(db.name)
            }
            sockets = {path.name: mode(path) for path in db.parent.iterdir() if path.is_socket()}
        finally:
            await engine.stop()
    reported = {line.split()[1]: line.split()[2] for line in lines if line.startswith("mode ")}
    storage = db.parent / "storage"
    stored = {str(path.relative_to(db.parent)): mode(path) for path in [storage, *storage.rglob("*")]}
    print(f"\ndatabase: {database}\ncontrol socket: {sockets}\nfolders seen by tasks: {reported}")
    print(f"storage: {len(stored)} entries, modes {sorted(set(stored.values()))}")

    assert database.pop("state") == "700"
    assert {f"{db.name}{suffix}" for suffix in ("", "-wal", "-shm")} <= set(database)
    assert set(database.values()) == {"600"}, database
    assert sockets and set(sockets.values()) == {"600"}, sockets
    assert reported == {"task-folder": "700", "output-dir": "700", "working-dir": "700"}, lines
    assert any(line.startswith("mode working-dir 700 /") and "/tiercel-wd-" in line for line in lines)
    files = [path for path in storage.rglob("*") if path.is_file()]
    assert len(files) >= 4  # the uploaded input, made.txt, extra.txt, kept.txt, the joined file
    for path in [storage, *storage.rglob("*")]:
        expected = "700" if path.is_dir() else "600"
        assert mode(path) == expected, (str(path), mode(path))


# -- a folder shared with other local users ---------------------------------------------------------

HELLO = """\
id: hello
namespace: rel.perms
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: hello
"""
VICTIM_TEXT = "another file of the user's, which no tiercel command may write\n"
NOBODY = 65534


def tiercel_run(flows: Path, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TIERCEL), "run", "--flows", str(flows), "--db", str(db), "rel.perms", "hello"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_lock_file_planted_as_a_symlink_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    flows, team = tmp_path / "flows", tmp_path / "team"
    write_flow(flows, "hello.yml", HELLO)
    team.mkdir(mode=0o777)
    victim = tmp_path / "important.txt"
    victim.write_text(VICTIM_TEXT)
    db = team / "team.db"
    (team / "team.db.lock").symlink_to(victim)

    refused = tiercel_run(flows, db)
    print(f"\nlock planted as a symlink: exit {refused.returncode}: {refused.stderr.strip()}")
    assert refused.returncode == 2, refused.stderr
    assert f"refusing the lock file {team / 'team.db.lock'}: it is a symbolic link" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert victim.read_text() == VICTIM_TEXT
    assert not db.exists()

    (team / "team.db.lock").unlink()
    ran = tiercel_run(flows, db)
    assert ran.returncode == 0, ran.stderr
    assert victim.read_text() == VICTIM_TEXT


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user's needs root")
def test_a_database_precreated_0666_by_another_user_is_refused(tmp_path: Path) -> None:
    flows, team = tmp_path / "flows", tmp_path / "team"
    write_flow(flows, "hello.yml", HELLO)
    team.mkdir(mode=0o777)
    db = team / "team.db"
    with umask(0):
        os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o666))
    os.chown(db, NOBODY, NOBODY)

    refused = tiercel_run(flows, db)
    print(f"\ndatabase of another user: exit {refused.returncode}: {refused.stderr.strip()}")
    assert refused.returncode == 2, refused.stderr
    assert f"refusing the database {db}: it belongs to nobody (uid 65534)" in refused.stderr
    assert "--db or TIERCEL_DB" in refused.stderr
    assert db.stat().st_size == 0 and db.stat().st_uid == NOBODY
    assert sorted(path.name for path in team.iterdir()) == ["team.db", "team.db.lock"]
