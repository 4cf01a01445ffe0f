"""The command line on a PostgreSQL store: `--db postgresql://...` (and TIERCEL_DB) for every
command, on the real server; each test in a schema of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TIERCEL = Path(sys.executable).parent / "tiercel"

FLOW = """
id: greet
namespace: acme.pg
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "Hello, {{ inputs.name }}"
  - id: count
    type: io.kestra.plugin.core.kv.Set
    key: greeted
    value: "{{ inputs.name }}"
"""


def tiercel(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TIERCEL), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_DATA_HOME": str(cwd / "data"), **(env or {})},
    )


def test_run_executions_and_logs_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "greet.yml").write_text(FLOW)
    ran = tiercel("run", "--db", pg_url, "greet.yml", "--input", "name=pg", "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    execution = json.loads(ran.stdout)
    assert execution["state"]["current"] == "SUCCESS"
    # Nothing was written to an SQLite file: the store is the database.
    assert not (tmp_path / ".tiercel").exists()
    listed = tiercel("executions", "--json", cwd=tmp_path, env={"TIERCEL_DB": pg_url})
    assert listed.returncode == 0, listed.stderr
    assert [row["id"] for row in json.loads(listed.stdout)] == [execution["id"]]
    logs = tiercel("logs", "--db", pg_url, execution["id"][:6], cwd=tmp_path)
    assert logs.returncode == 0, logs.stderr
    assert "Hello, pg" in logs.stdout
    namespaces = tiercel("namespaces", "--db", pg_url, cwd=tmp_path)
    assert namespaces.returncode == 0, namespaces.stderr
    assert "greeted" in namespaces.stdout  # the KV key, stored in PostgreSQL


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "greet.yml").write_text(FLOW)
    url = "postgresql://nobody:secret@127.0.0.1:1/nowhere"
    ran = tiercel("run", "--db", url, "greet.yml", cwd=tmp_path)
    assert ran.returncode != 0
    assert "cannot connect to postgresql://nobody:***@127.0.0.1:1/nowhere" in ran.stderr
    assert "secret" not in ran.stderr and "Traceback" not in ran.stderr


REPORT = """
id: report
namespace: acme.pg
tasks:
  - id: write
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: [out.txt]
    commands:
      - printf shared > out.txt
  - id: read
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - cat {{ outputs.write.outputFiles['out.txt'] }}
"""


def test_tiercel_storage_puts_the_files_of_executions_in_a_shared_folder(tmp_path: Path, pg_url: str) -> None:
    """Machines that share a PostgreSQL store share their files through TIERCEL_STORAGE (a shared
    mount): the files go there, for a file store as well, and a task reads its upstream's file."""
    (tmp_path / "report.yml").write_text(REPORT)
    shared = tmp_path / "shared"
    env = {"TIERCEL_STORAGE": str(shared)}
    for db in (pg_url, str(tmp_path / "local.db")):
        ran = tiercel("run", "--db", db, "report.yml", "--json", cwd=tmp_path, env=env)
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["state"]["current"] == "SUCCESS"
    assert [path.read_text() for path in shared.glob("**/out.txt")] == ["shared", "shared"]
    assert not list((tmp_path / "data").glob("**/out.txt")) and not (tmp_path / "storage").exists()
