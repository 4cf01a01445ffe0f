"""`tiercel migrate`: an SQLite store into PostgreSQL and back, on real files and the real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

TIERCEL = Path(sys.executable).parent / "tiercel"

FLOW = """
id: chain
namespace: acme.move
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [a, b, c]
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: "value {{ taskrun.value }}"
  - id: keep
    type: io.kestra.plugin.core.kv.Set
    key: last
    value: "{{ execution.id }}"
  - id: report
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: [report.txt]
    commands:
      - printf rows-3 > report.txt
"""


def tiercel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(TIERCEL), *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )
    return done


def listing(db: str, cwd: Path) -> list[dict[str, object]]:
    done = tiercel("executions", "--db", db, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows


def test_a_store_moves_to_postgresql_and_back_whole(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "chain.yml").write_text(FLOW)
    sqlite = str(tmp_path / "old.db")
    for _ in range(3):
        assert tiercel("run", "--db", sqlite, "chain.yml", cwd=tmp_path).returncode == 0
    before = listing(sqlite, tmp_path)

    moved = tiercel("migrate", "--from", sqlite, "--to", pg_url, cwd=tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert "executions                        3 rows" in moved.stdout
    assert listing(pg_url, tmp_path) == before
    newest = str(before[0]["id"])
    logs = tiercel("logs", "--db", pg_url, newest, cwd=tmp_path)
    assert [line.split("  ")[-1].strip() for line in logs.stdout.splitlines() if "value" in line] == [
        "value a",
        "value b",
        "value c",
    ]
    # New executions on the copy come after the copied ones.
    assert tiercel("run", "--db", pg_url, "chain.yml", cwd=tmp_path).returncode == 0
    after = listing(pg_url, tmp_path)
    assert len(after) == 4 and after[1:] == before

    back = str(tmp_path / "back.db")
    returned = tiercel("migrate", "--from", pg_url, "--to", back, cwd=tmp_path)
    assert returned.returncode == 0, returned.stderr
    assert listing(back, tmp_path) == after
    namespaces = tiercel("namespaces", "--db", back, cwd=tmp_path)
    assert "last" in namespaces.stdout  # the KV pair came along
    # And the executions' files, into the storage of each new store: PostgreSQL's database, the
    # folder beside an SQLite file.
    with psycopg.connect(pg_url) as conn:
        stored = conn.execute("SELECT uri, size FROM files WHERE uri LIKE '%/report.txt'").fetchall()
    assert len(stored) == 4 and {size for _, size in stored} == {len("rows-3")}
    copies = list((tmp_path / "storage").glob("**/report.txt"))
    assert len(copies) == 4 and {path.read_text() for path in copies} == {"rows-3"}


def test_a_target_that_holds_data_is_refused(tmp_path: Path) -> None:
    (tmp_path / "chain.yml").write_text(FLOW)
    first, second = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    assert tiercel("run", "--db", first, "chain.yml", cwd=tmp_path).returncode == 0
    assert tiercel("run", "--db", second, "chain.yml", cwd=tmp_path).returncode == 0
    refused = tiercel("migrate", "--from", first, "--to", second, cwd=tmp_path)
    assert refused.returncode == 1
    assert "already holds data" in refused.stderr
    assert len(listing(second, tmp_path)) == 1
