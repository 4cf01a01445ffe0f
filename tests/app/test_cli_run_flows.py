"""`tiercel run FILE` reads the file and the flows it names, not every flow beside it.

A Subflow, a ForEachItem or a trigger Toggle names its flow: those flows (and the ones they name)
are found in the folder by their id and read alone. A name known only at run time (an expression)
makes the run read the whole folder, as a run by namespace and id does. The folder's namespace
declarations apply all the same.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from tests.app.test_cli import LOG, run_json, task_run, tiercel, write

SUBFLOW = "io.kestra.plugin.core.flow.Subflow"


def calling(flow_id: str, namespace: str, target: str, target_namespace: str = "acme.team") -> str:
    return f"""
    id: {flow_id}
    namespace: {namespace}
    tasks:
      - id: call
        type: {SUBFLOW}
        namespace: {target_namespace}
        flowId: {target}
        wait: true
        transmitFailed: true
    """


def logging(flow_id: str, message: str, namespace: str = "acme.team") -> str:
    return f"""
    id: {flow_id}
    namespace: {namespace}
    tasks:
      - id: say
        type: {LOG}
        message: {message}
    """


def stored_flows(db: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {(row[0], row[1]) for row in conn.execute("SELECT namespace, flow_id FROM flows")}


def test_run_file_reads_the_flows_it_calls_and_leaves_the_others(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    parent = write(flows_dir, "parent.yml", calling("parent", "acme", "child"))
    write(flows_dir, "team/child.yml", calling("child", "acme.team", "grandchild"))
    write(flows_dir, "team/deeper/grandchild.yml", logging("grandchild", "hello from below"))
    write(flows_dir, "other.yml", logging("other", "never run", namespace="acme"))
    write(flows_dir, "broken.yml", "id: broken\nnamespace: acme\ntasks: [\n")

    done = tiercel("run", "--db", db, parent)

    assert done.returncode == 0, done.stderr
    assert "hello from below" in done.stdout
    assert "broken" not in done.stderr
    assert stored_flows(db) == {("acme", "parent"), ("acme.team", "child"), ("acme.team", "grandchild")}


def test_run_file_naming_its_subflow_by_expression_reads_the_folder(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    parent = write(
        flows_dir,
        "parent.yml",
        f"""
        id: parent
        namespace: acme
        inputs:
          - id: child
            type: STRING
        tasks:
          - id: call
            type: {SUBFLOW}
            namespace: acme.team
            flowId: "{{{{ inputs.child }}}}"
            wait: true
        """,
    )
    write(flows_dir, "team/picked.yml", logging("picked", "picked at run time"))

    done = tiercel("run", "--db", db, "--input", "child=picked", parent)

    assert done.returncode == 0, done.stderr
    assert "picked at run time" in done.stdout


def test_run_file_toggling_a_trigger_of_another_flow_reads_that_flow(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    toggler = write(
        flows_dir,
        "toggler.yml",
        """
        id: toggler
        namespace: acme
        tasks:
          - id: pause_nightly
            type: io.kestra.plugin.core.trigger.Toggle
            namespace: acme.team
            flowId: nightly
            trigger: every_night
            enabled: false
        """,
    )
    write(
        flows_dir,
        "team/nightly.yml",
        f"""
        id: nightly
        namespace: acme.team
        tasks:
          - id: say
            type: {LOG}
            message: night
        triggers:
          - id: every_night
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "0 2 * * *"
        """,
    )

    code, execution = run_json("--db", db, toggler)

    assert code == 0, execution
    assert task_run(execution, "pause_nightly")["state"]["current"] == "SUCCESS"


def test_run_file_with_a_for_each_item_reads_its_subflow(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    items = tmp_path / "items.txt"
    items.write_text("a\nb\nc\n")
    parent = write(
        flows_dir,
        "parent.yml",
        """
        id: parent
        namespace: acme
        inputs:
          - id: file
            type: FILE
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEachItem
            items: "{{ inputs.file }}"
            batch:
              rows: 2
            namespace: acme.team
            flowId: per_batch
            wait: true
            transmitFailed: true
            inputs:
              items: "{{ taskrun.items }}"
        """,
    )
    write(
        flows_dir,
        "team/per_batch.yml",
        f"""
        id: per_batch
        namespace: acme.team
        inputs:
          - id: items
            type: STRING
        tasks:
          - id: say
            type: {LOG}
            message: a batch
        """,
    )

    code, execution = run_json("--db", db, "--input", f"file={items}", parent)

    assert code == 0, execution
    assert task_run(execution, "each_items")["outputs"]["numberOfBatches"] == 2


def test_run_file_finds_a_subflow_that_moved_to_another_file(flows_dir: Path, tmp_path: Path) -> None:
    """The store remembers which file defined the subflow; that file defines another flow now."""
    db = tmp_path / "t.db"
    parent = write(flows_dir, "parent.yml", calling("parent", "acme", "child"))
    write(flows_dir, "a.yml", logging("child", "from the first file"))
    assert tiercel("run", "--db", db, parent).returncode == 0
    write(flows_dir, "a.yml", logging("renamed", "from the first file"))
    write(flows_dir, "b.yml", logging("child", "from the second file"))
    for name in ("a.yml", "b.yml"):  # saved a while ago: a file is then known by its stamp
        os.utime(flows_dir / name, (time.time() - 3600, time.time() - 3600))

    done = tiercel("run", "--db", db, parent)

    assert done.returncode == 0, done.stderr
    assert "from the second file" in done.stdout


def test_run_file_whose_subflows_lead_back_to_it_is_refused(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    first = write(flows_dir, "first.yml", calling("first", "acme", "second", target_namespace="acme"))
    write(flows_dir, "second.yml", calling("second", "acme", "first", target_namespace="acme"))

    done = tiercel("run", "--db", db, first)

    assert done.returncode == 1
    assert "leads back to flow `acme.first`" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_file_gets_its_namespace_declarations_from_the_folder(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    write(
        flows_dir,
        "_namespace.yaml",
        f"""
        id: acme
        variables:
          company: ACME Corp
        pluginDefaults:
          - type: {LOG}
            values:
              level: WARN
        """,
    )
    flow = write(flows_dir, "hello.yml", logging("hello", "'Hello from {{ namespace.company }}'", "acme"))

    done = tiercel("run", "--db", db, flow)

    assert done.returncode == 0, done.stderr
    assert "WARN  say" in done.stdout and "Hello from ACME Corp" in done.stdout
