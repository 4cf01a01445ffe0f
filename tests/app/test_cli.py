"""End-to-end tests of the `tiercel` command line: the real command, run as a subprocess on real files.

They follow the command-line contract of the design guide: exit codes (0 success, 1 failed execution or
invalid flow, 2 usage error, 3 execution left PAUSED), Kestra's JSON shape, the default database, the
one-engine-per-database lock and the control channel that reaches a running engine.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import HANG, blocking_until

TIERCEL = Path(sys.executable).parent / "tiercel"
CONFORMANCE_FLOWS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "flows"

LOG = "io.kestra.plugin.core.log.Log"

HELLO = f"""
id: hello
namespace: acme
tasks:
  - id: greet
    type: {LOG}
    message: "Hello, {{{{ inputs.name }}}}"
inputs:
  - id: name
    type: STRING
    defaults: world
"""

FAILING = """
id: failing
namespace: acme.ops
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: it broke
"""

WARNING = """
id: warning
namespace: acme
tasks:
  - id: tolerated
    type: io.kestra.plugin.core.execution.Fail
    allowFailure: true
"""

PAUSING = f"""
id: pausing
namespace: acme
tasks:
  - id: before
    type: {LOG}
    message: before the pause
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: {LOG}
    message: after the pause
"""

TYPED = """
id: typed
namespace: acme.data
labels:
  owner: ops
inputs:
  - id: count
    type: INT
  - id: flag
    type: BOOLEAN
  - id: payload
    type: JSON
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.count * 2 }}-{{ inputs.flag }}-{{ inputs.payload.k }}"
outputs:
  - id: doubled
    type: STRING
    value: "{{ outputs.ret.value }}"
"""

LEVELS = f"""
id: levels
namespace: acme.finance
tasks:
  - id: info
    type: {LOG}
    message: an info line
  - id: warn
    type: {LOG}
    level: WARN
    message: a warning line
  - id: err
    type: {LOG}
    level: ERROR
    message: an error line
"""

# Fails until the engine process has ENV_GO=yes (Kestra exposes ENV_* variables as `envs`).
GATED = f"""
id: gated
namespace: acme.ops
tasks:
  - id: first
    type: {LOG}
    message: first
  - id: gate
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{{{ (envs.go ?? 'no') != 'yes' }}}}"
  - id: last
    type: {LOG}
    message: last
"""


def sleeping(duration: str, flow_id: str = "sleepy") -> str:
    return f"""
id: {flow_id}
namespace: acme.ops
tasks:
  - id: one
    type: {LOG}
    message: first line
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: {duration}
  - id: two
    type: {LOG}
    message: second line
"""


# -- helpers ----------------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without TIERCEL_DB or ENV_* variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "TIERCEL_DB" and not k.startswith("ENV_")}
    env.update(extra)
    return env


def tiercel(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TIERCEL), *map(str, args)],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `tiercel` in the background with unbuffered pipes."""
    return subprocess.Popen(
        [str(TIERCEL), *map(str, args)],
        env=env if env is not None else clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )


def read_until(stream: Any, needle: bytes, timeout: float) -> bytes:
    """Read a pipe as bytes arrive until `needle` shows up; fail after `timeout` seconds."""
    fd = stream.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not seen within {timeout} s; got {data!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"pipe closed before {needle!r} was seen; got {data!r}")
            data += chunk
    return data


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts in the background; any still alive at the end are killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def run_json(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = tiercel("run", "--json", *args, env=env)
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)


def executions(db: Path, *filters: str) -> list[dict[str, Any]]:
    result = tiercel("executions", "--db", db, "--json", *filters)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    return rows


def task_run(execution: dict[str, Any], task_id: str) -> dict[str, Any]:
    runs = [run for run in execution["taskRunList"] if run["taskId"] == task_id]
    assert len(runs) == 1, execution["taskRunList"]
    return runs[0]


# -- run: exit codes and output ----------------------------------------------------------------------


def test_run_file_prints_logs_and_exits_0_on_success(flows_dir: Path, tmp_path: Path) -> None:
    flow = write(flows_dir, "hello.yml", HELLO)
    result = tiercel("run", flow, "--db", tmp_path / "t.db", "--input", "name=Ada")
    assert result.returncode == 0, result.stderr
    assert "Hello, Ada" in result.stdout
    assert "SUCCESS" in result.stderr


def test_run_exits_0_on_warning(flows_dir: Path, tmp_path: Path) -> None:
    code, execution = run_json(write(flows_dir, "warning.yml", WARNING), "--db", tmp_path / "t.db")
    assert code == 0
    assert execution["state"]["current"] == "WARNING"


def test_run_exits_1_on_failed_execution(flows_dir: Path, tmp_path: Path) -> None:
    code, execution = run_json(write(flows_dir, "failing.yml", FAILING), "--db", tmp_path / "t.db")
    assert code == 1
    assert execution["state"]["current"] == "FAILED"
    assert task_run(execution, "boom")["state"]["current"] == "FAILED"


def test_run_by_namespace_and_flow_id(flows_dir: Path, tmp_path: Path) -> None:
    write(flows_dir, "deep/hello.yml", HELLO)
    write(flows_dir, "failing.yml", FAILING)
    code, execution = run_json("--flows", flows_dir, "--db", tmp_path / "t.db", "acme", "hello")
    assert code == 0
    assert (execution["namespace"], execution["flowId"]) == ("acme", "hello")
    assert execution["inputs"] == {"name": "world"}


def test_run_exits_3_when_left_paused(flows_dir: Path, tmp_path: Path) -> None:
    code, execution = run_json(write(flows_dir, "pausing.yml", PAUSING), "--db", tmp_path / "t.db")
    assert code == 3
    assert execution["state"]["current"] == "PAUSED"
    assert task_run(execution, "wait")["state"]["current"] == "PAUSED"
    assert all(run["taskId"] != "after" for run in execution["taskRunList"])


def test_run_json_prints_one_document_in_kestra_shape(flows_dir: Path, tmp_path: Path) -> None:
    flow = write(flows_dir, "typed.yml", TYPED)
    result = tiercel(
        "run", "--json", "--db", tmp_path / "t.db", flow,
        "--input", "count=21", "--input", "flag=true", "--input", 'payload={"k": "v"}',
        "--label", "team=data",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    execution = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert isinstance(execution["id"], str) and execution["id"]
    assert (execution["namespace"], execution["flowId"]) == ("acme.data", "typed")
    state = execution["state"]
    assert state["current"] == "SUCCESS"
    assert [h["state"] for h in state["histories"]] == ["CREATED", "RUNNING", "SUCCESS"]
    assert all("date" in h for h in state["histories"])
    assert execution["inputs"] == {"count": 21, "flag": True, "payload": {"k": "v"}}
    assert {"key": "team", "value": "data"} in execution["labels"]
    assert {"key": "owner", "value": "ops"} in execution["labels"]
    assert execution["outputs"] == {"doubled": "42-true-v"}
    run = task_run(execution, "ret")
    assert run["state"]["current"] == "SUCCESS"
    assert run["outputs"] == {"value": "42-true-v"}
    assert [a["state"]["current"] for a in run["attempts"]] == ["SUCCESS"]
    assert {"id", "parentTaskRunId", "value"} <= run.keys()


def test_run_json_keeps_logs_off_stdout(flows_dir: Path, tmp_path: Path) -> None:
    result = tiercel("run", "--json", "--db", tmp_path / "t.db", write(flows_dir, "levels.yml", LEVELS))
    assert result.returncode == 0
    assert json.loads(result.stdout)["state"]["current"] == "SUCCESS"
    assert "an info line" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch.yml"], "nosuch.yml"),
        (["--flows", "{flows}", "acme", "nope"], "nope"),
        (["{flow}", "--input", "name"], "--input"),
        (["{flow}", "--input", "=x"], "--input"),
        (["{flow}", "--label", "team"], "--label"),
        (["acme", "hello", "extra"], ""),
    ],
    ids=["no-such-file", "unknown-flow", "input-without-equals", "input-without-key", "bad-label", "3-args"],
)
def test_run_usage_errors_exit_2(flows_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    flow = write(flows_dir, "hello.yml", HELLO)
    argv = [a.format(flows=flows_dir, flow=flow) for a in args]
    result = tiercel("run", "--db", tmp_path / "t.db", *argv, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_run_invalid_input_value_names_the_input(flows_dir: Path, tmp_path: Path) -> None:
    flow = write(flows_dir, "typed.yml", TYPED)
    result = tiercel(
        "run", "--db", tmp_path / "t.db", flow,
        "--input", "count=abc", "--input", "flag=true", "--input", "payload={}",
    )  # fmt: skip
    assert result.returncode == 2
    assert "count" in result.stderr and "abc" in result.stderr
    assert executions(tmp_path / "t.db") == []


def test_run_missing_required_input_names_it(flows_dir: Path, tmp_path: Path) -> None:
    flow = write(flows_dir, "typed.yml", TYPED)
    result = tiercel("run", "--db", tmp_path / "t.db", flow, "--input", "count=1", "--input", "flag=false")
    assert result.returncode == 2
    assert "payload" in result.stderr


def test_run_invalid_flow_file_reports_file_line_column(flows_dir: Path, tmp_path: Path) -> None:
    flow = write(flows_dir, "bad.yml", HELLO.replace(LOG, "io.kestra.plugin.core.log.Lgo"))
    result = tiercel("run", "--db", tmp_path / "t.db", flow)
    assert result.returncode == 1  # an invalid flow; 2 is for usage errors
    assert re.search(rf"{re.escape(str(flow))}:5:\d+: .*Lgo", result.stderr), result.stderr


def test_run_file_runs_that_file_even_with_a_same_id_sibling(flows_dir: Path, tmp_path: Path) -> None:
    write(flows_dir, "a.yml", HELLO.replace("Hello", "From a"))
    chosen = write(flows_dir, "b.yml", HELLO.replace("Hello", "From b"))
    result = tiercel("run", "--db", tmp_path / "t.db", chosen)
    assert "From a" not in result.stdout
    assert result.returncode == 2 or "From b" in result.stdout


def test_run_file_whose_name_starts_with_underscore(flows_dir: Path, tmp_path: Path) -> None:
    result = tiercel("run", "--db", tmp_path / "t.db", write(flows_dir, "_draft.yml", HELLO))
    ran = result.returncode == 0 and "Hello, world" in result.stdout
    assert ran or "_draft.yml" in result.stderr, result.stderr


def test_logs_are_printed_while_the_flow_runs(flows_dir: Path, tmp_path: Path, background: list[Any]) -> None:
    proc = start("run", "--db", tmp_path / "t.db", write(flows_dir, "sleepy.yml", sleeping("PT1S")))
    background.append(proc)
    early = read_until(proc.stdout, b"first line", timeout=HANG)
    # The first line arrived while the flow still ran, before the line printed after its sleep.
    assert proc.poll() is None, "the process ended before its first log line was read"
    assert b"second line" not in early
    rest, _ = proc.communicate(timeout=HANG)
    assert proc.returncode == 0
    assert b"second line" in rest


# -- run: the database ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_default_database_is_in_the_current_folder_for_every_command(flows_dir: Path, tmp_path: Path) -> None:
    write(flows_dir, "acme/hello.yml", HELLO)
    default_db = tmp_path / ".tiercel" / "tiercel.db"
    assert tiercel("run", "acme", "hello", cwd=tmp_path).returncode == 0  # ./flows is the default folder
    assert tiercel("run", "flows/acme/hello.yml", cwd=tmp_path).returncode == 0  # a file deeper down
    assert tiercel("run", "--flows", "flows", "acme", "hello", cwd=tmp_path).returncode == 0
    assert not (flows_dir / ".tiercel").exists() and not (flows_dir / "acme" / ".tiercel").exists()
    assert len(executions(default_db)) == 3
    listed = tiercel("executions", "--json", cwd=tmp_path)  # the same default for queries
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 3
    # From another folder, the database is that folder's: never beside the flows folder it names.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert tiercel("run", "--flows", flows_dir, "acme", "hello", cwd=elsewhere).returncode == 0
    assert len(executions(elsewhere / ".tiercel" / "tiercel.db")) == 1
    assert len(executions(default_db)) == 3


def test_a_folder_without_flows_never_uses_the_database_of_the_folder_above(tmp_path: Path) -> None:
    # A sibling project keeps its database in the parent folder's .tiercel: a bare command in a
    # project without ./flows must not open it.
    project = tmp_path / "project"
    write(project, "hello.yml", HELLO)
    server = subprocess.Popen(
        [str(TIERCEL), "server", "--port", "0"],
        cwd=project,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    try:
        said = read_until(server.stderr, b"webhooks on", timeout=20)
    finally:
        server.terminate()
        server.communicate(timeout=15)
    assert (
        str(project / ".tiercel" / "tiercel.db").encode() in said or b"database .tiercel/tiercel.db" in said
    )
    assert not (tmp_path / ".tiercel").exists()


def test_a_missing_flows_folder_is_a_usage_error_and_creates_nothing(tmp_path: Path) -> None:
    here = tmp_path / "here"
    here.mkdir()
    for command in (("run", "--flows", tmp_path / "missing", "acme", "hello"), ("flows", "--flows", "nope")):
        result = tiercel(*command, cwd=here)
        assert result.returncode == 2, result.stderr
        assert "no such flows folder" in result.stderr
    assert not (tmp_path / ".tiercel").exists() and not (here / ".tiercel").exists()


def test_validate_without_arguments_skips_dot_folders(tmp_path: Path) -> None:
    write(tmp_path, "hello.yml", HELLO)
    write(tmp_path, ".venv/lib/site-packages/pkg/config.yaml", "not: [a flow")
    write(tmp_path, ".git/hooks/x.yml", "nor: this")
    result = tiercel("validate", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert "1 file, 0 invalid" in result.stderr
    assert ".venv" not in result.stdout and ".git" not in result.stdout


def test_tiercel_db_overrides_the_default(flows_dir: Path, tmp_path: Path) -> None:
    flow = write(flows_dir, "hello.yml", HELLO)
    env_db = tmp_path / "env" / "env.db"
    env_db.parent.mkdir()
    env = clean_env(TIERCEL_DB=str(env_db))
    assert tiercel("run", flow, env=env).returncode == 0
    assert env_db.is_file()
    assert not (tmp_path / ".tiercel").exists()
    listed = tiercel("executions", "--json", env=env)
    assert [e["flowId"] for e in json.loads(listed.stdout)] == ["hello"]


def test_db_option_overrides_tiercel_db_and_the_default(flows_dir: Path, tmp_path: Path) -> None:
    flow = write(flows_dir, "hello.yml", HELLO)
    env_db, option_db = tmp_path / "env.db", tmp_path / "option.db"
    assert tiercel("run", "--db", option_db, flow, env=clean_env(TIERCEL_DB=str(env_db))).returncode == 0
    assert option_db.is_file()
    assert not env_db.exists()
    assert not (tmp_path / ".tiercel").exists()


@pytest.mark.slow
def test_second_run_on_a_busy_database_is_refused(
    flows_dir: Path, tmp_path: Path, background: list[Any]
) -> None:
    db = tmp_path / "t.db"
    flow = write(flows_dir, "sleepy.yml", sleeping("PT2S"))
    owner = start("run", "--db", db, flow)
    background.append(owner)
    read_until(owner.stdout, b"first line", timeout=10)
    second = tiercel("run", "--db", db, write(flows_dir, "hello.yml", HELLO))
    assert second.returncode == 2
    assert "in use" in second.stderr
    assert str(owner.pid) in second.stderr
    owner.communicate(timeout=15)
    assert owner.returncode == 0
    assert [e["flowId"] for e in executions(db)] == ["sleepy"]


# -- validate -----------------------------------------------------------------------------------------

INVALID = {
    "unknown-type": (HELLO.replace(LOG, "io.kestra.plugin.core.log.Lgo"), 5, ["Lgo", LOG]),
    "duplicate-id": (
        HELLO.replace("tasks:\n", f"tasks:\n  - id: greet\n    type: {LOG}\n    message: twice\n"),
        7,
        ["greet", "uplicate"],
    ),
    "bad-cron": (
        HELLO + "triggers:\n  - id: every\n    type: io.kestra.plugin.core.trigger.Schedule\n"
        '    cron: "61 * * * *"\n',
        14,
        ["61", "cron"],
    ),
    "unknown-property": (HELLO.replace("    message:", "    mesage: typo\n    message:"), 6, ["mesage"]),
}


def test_validate_valid_files_print_ok(flows_dir: Path) -> None:
    files = [write(flows_dir, "hello.yml", HELLO), write(flows_dir, "typed.yml", TYPED)]
    result = tiercel("validate", *files)
    assert result.returncode == 0, result.stdout
    for file in files:
        assert re.search(rf"^OK .*{re.escape(file.name)}", result.stdout, re.MULTILINE)


@pytest.mark.parametrize("case", sorted(INVALID))
def test_validate_reports_each_error_with_file_line_column(flows_dir: Path, case: str) -> None:
    source, line, words = INVALID[case]
    file = write(flows_dir, f"{case}.yml", source)
    result = tiercel("validate", file)
    assert result.returncode == 1
    match = re.search(rf"^{re.escape(str(file))}:{line}:\d+: (.*)$", result.stdout, re.MULTILINE)
    assert match, result.stdout
    for word in words:  # the unknown type comes with a suggestion: the real type name
        assert word in match.group(1)


def test_validate_a_folder_checks_every_file(flows_dir: Path) -> None:
    write(flows_dir, "hello.yml", HELLO)
    write(flows_dir, "nested/failing.yml", FAILING)
    for case, (source, _, _) in INVALID.items():
        write(flows_dir, f"nested/{case}.yml", source)
    result = tiercel("validate", flows_dir)
    assert result.returncode == 1
    assert len(re.findall(r"^OK ", result.stdout, re.MULTILINE)) == 2
    for case in INVALID:
        assert re.search(rf"{case}\.yml:\d+:\d+: ", result.stdout), case


def test_validate_unknown_path_is_a_usage_error(tmp_path: Path) -> None:
    result = tiercel("validate", tmp_path / "nowhere")
    assert result.returncode == 2
    assert "nowhere" in result.stderr


@pytest.mark.skipif(not CONFORMANCE_FLOWS.is_dir(), reason="no conformance flows beside the repository")
def test_validate_accepts_every_conformance_flow() -> None:
    files = sorted(p for p in CONFORMANCE_FLOWS.rglob("*") if p.suffix in (".yml", ".yaml"))
    result = tiercel("validate", CONFORMANCE_FLOWS)
    assert result.returncode == 0, result.stdout
    assert len(re.findall(r"^OK ", result.stdout, re.MULTILINE)) == len(files)


# -- logs and executions ---------------------------------------------------------------------------------


def test_logs_filter_by_level_and_task(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    _, execution = run_json(write(flows_dir, "levels.yml", LEVELS), "--db", db)
    every = tiercel("logs", "--db", db, execution["id"])
    assert every.returncode == 0
    assert [line.split()[1] for line in every.stdout.splitlines()] == ["INFO", "WARN", "ERROR"]
    warn = tiercel("logs", "--db", db, "--level", "WARN", execution["id"])
    assert warn.returncode == 0
    assert "a warning line" in warn.stdout and "an error line" in warn.stdout
    assert "an info line" not in warn.stdout
    one_task = tiercel("logs", "--db", db, "--task", "info", execution["id"])
    assert one_task.stdout.strip().endswith("an info line")
    assert len(one_task.stdout.splitlines()) == 1


def test_logs_of_an_unknown_execution(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    run_json(write(flows_dir, "hello.yml", HELLO), "--db", db)
    result = tiercel("logs", "--db", db, "noSuchExecution")
    assert result.returncode != 0
    assert "noSuchExecution" in result.stderr
    no_db = tiercel("logs", "--db", tmp_path / "missing.db", "x")
    assert no_db.returncode == 2
    assert "missing.db" in no_db.stderr


def test_logs_unknown_level_is_a_usage_error(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    _, execution = run_json(write(flows_dir, "hello.yml", HELLO), "--db", db)
    result = tiercel("logs", "--db", db, "--level", "LOUD", execution["id"])
    assert result.returncode == 2
    assert "LOUD" in result.stderr and "Traceback" not in result.stderr


def test_executions_json_newest_first_with_filters(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    ids = [
        run_json(write(flows_dir, name, source), "--db", db)[1]["id"]
        for name, source in (
            ("levels.yml", LEVELS),  # acme.finance, SUCCESS
            ("failing.yml", FAILING),  # acme.ops, FAILED
            ("other.yml", HELLO.replace("namespace: acme", "namespace: acmecorp")),
            ("hello.yml", HELLO),  # acme, SUCCESS
        )
    ]
    listed = executions(db)
    assert [e["id"] for e in listed] == ids[::-1]
    for execution in listed:
        assert {"id", "namespace", "flowId", "state", "taskRunList", "inputs", "labels"} <= execution.keys()
        assert execution["taskRunList"] and "histories" in execution["state"]
    assert [e["id"] for e in executions(db, "--namespace", "acme")] == [ids[3], ids[1], ids[0]]
    assert [e["id"] for e in executions(db, "--namespace", "acme.finance")] == [ids[0]]
    assert [e["id"] for e in executions(db, "--flow", "failing")] == [ids[1]]
    assert [e["id"] for e in executions(db, "--state", "FAILED")] == [ids[1]]
    assert [e["id"] for e in executions(db, "--state", "success", "--namespace", "acme")] == [ids[3], ids[0]]
    text = tiercel("executions", "--db", db)
    assert text.returncode == 0 and all(i in text.stdout for i in ids)


def test_executions_unknown_state_is_a_usage_error(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    run_json(write(flows_dir, "hello.yml", HELLO), "--db", db)
    result = tiercel("executions", "--db", db, "--state", "SUCCES")
    assert result.returncode == 2
    assert "SUCCES" in result.stderr


# -- flows and namespaces ----------------------------------------------------------------------------------


def test_flows_json_lists_valid_and_invalid_files(flows_dir: Path) -> None:
    write(flows_dir, "hello.yml", HELLO)
    write(flows_dir, "acme/ops/failing.yml", FAILING)
    write(flows_dir, "broken.yml", HELLO.replace(LOG, "io.kestra.plugin.core.log.Lgo"))
    result = tiercel("flows", "--flows", flows_dir, "--json")
    assert result.returncode == 0
    rows = json.loads(result.stdout)
    assert sorted((r["namespace"], r["id"]) for r in rows if "id" in r) == [
        ("acme", "hello"),
        ("acme.ops", "failing"),
    ]
    broken = [r for r in rows if "errors" in r]
    assert len(broken) == 1 and broken[0]["path"].endswith("broken.yml")
    assert "Lgo" in " ".join(broken[0]["errors"])


def test_flows_names_an_invalid_file_once_with_its_line(flows_dir: Path) -> None:
    broken = write(flows_dir, "broken.yml", HELLO.replace(LOG, "io.kestra.plugin.core.log.Lgo"))
    result = tiercel("flows", "--flows", flows_dir)
    [line] = [line for line in result.stdout.splitlines() if line.startswith("INVALID")]
    assert line.startswith(f"INVALID {broken}:5:") and line.count(str(broken)) == 1, line


def test_namespaces_tree_shows_parents_and_flows(flows_dir: Path) -> None:
    write(flows_dir, "a.yml", FAILING)  # acme.ops
    write(flows_dir, "b.yml", LEVELS.replace("acme.finance", "acme.finance.reports"))
    result = tiercel("namespaces", "--flows", flows_dir)
    assert result.returncode == 0
    lines = result.stdout.splitlines()

    def line_of(word: str) -> int:
        found = [i for i, line in enumerate(lines) if re.search(rf"(^|[\s(]){re.escape(word)}\b", line)]
        assert found, (word, result.stdout)
        return found[0]

    def indent(index: int) -> int:
        return len(lines[index]) - len(lines[index].lstrip())

    acme, finance, reports = line_of("acme"), line_of("finance"), line_of("reports")
    ops, levels, failing = line_of("ops"), line_of("levels"), line_of("failing")
    assert acme < finance < reports < levels
    assert acme < ops < failing
    assert indent(acme) < indent(finance) < indent(reports) < indent(levels)
    assert indent(acme) < indent(ops) < indent(failing)


# -- kill, resume, restart ----------------------------------------------------------------------------------


def test_kill_reaches_the_running_engine(flows_dir: Path, tmp_path: Path, background: list[Any]) -> None:
    db = tmp_path / "t.db"
    run = start("run", "--json", "--db", db, write(flows_dir, "sleepy.yml", sleeping("PT1H")))
    background.append(run)
    read_until(run.stderr, b"first line", timeout=10)  # with --json, logs go to stderr
    [execution] = executions(db)
    assert execution["state"]["current"] == "RUNNING"
    unknown = tiercel("kill", "noSuchExecution", "--db", db)
    assert unknown.returncode != 0 and "noSuchExecution" in unknown.stderr
    assert run.poll() is None
    killed = tiercel("kill", execution["id"], "--db", db)
    assert killed.returncode == 0, killed.stderr
    out, _ = run.communicate(timeout=HANG)  # the flow sleeps for an hour: it ends only if killed
    assert run.returncode == 1
    final = json.loads(out)
    assert final["id"] == execution["id"]
    assert final["state"]["current"] == "KILLED"
    assert executions(db)[0]["state"]["current"] == "KILLED"


def test_resume_a_paused_execution_without_a_running_engine(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    code, paused = run_json(write(flows_dir, "pausing.yml", PAUSING), "--db", db)
    assert code == 3
    result = tiercel("resume", paused["id"], "--db", db)
    [stored] = executions(db)
    assert stored["state"]["current"] == "SUCCESS"
    assert task_run(stored, "after")["state"]["current"] == "SUCCESS"
    assert result.returncode == 0, (result.stdout, result.stderr)


def test_kill_a_paused_execution_without_a_running_engine(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    _, paused = run_json(write(flows_dir, "pausing.yml", PAUSING), "--db", db)
    tiercel("kill", paused["id"], "--db", db)
    assert executions(db)[0]["state"]["current"] == "KILLED"


def test_restart_a_failed_execution_without_a_running_engine(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    code, failed = run_json(write(flows_dir, "gated.yml", GATED), "--db", db)
    assert code == 1
    assert task_run(failed, "gate")["state"]["current"] == "FAILED"
    result = tiercel("restart", failed["id"], "--db", db, env=clean_env(ENV_GO="yes"))
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "SUCCESS" in result.stdout
    [stored] = executions(db)
    assert stored["id"] == failed["id"]
    assert stored["state"]["current"] == "SUCCESS"
    assert "RESTARTED" in [h["state"] for h in stored["state"]["histories"]]
    gate = task_run(stored, "gate")
    assert [a["state"]["current"] for a in gate["attempts"]] == ["FAILED", "SUCCESS"]
    assert len(task_run(stored, "first")["attempts"]) == 1
    assert task_run(stored, "last")["state"]["current"] == "SUCCESS"


def test_restart_refuses_a_successful_execution(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    _, done = run_json(write(flows_dir, "hello.yml", HELLO), "--db", db)
    result = tiercel("restart", done["id"], "--db", db)
    assert result.returncode != 0
    assert done["id"] in result.stderr and "SUCCESS" in result.stderr
    assert executions(db)[0]["state"]["current"] == "SUCCESS"


# -- the command itself ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["bogus"], ["run", "--bogus", "x.yml"], ["executions", "--nope"], ["logs"]],
    ids=["unknown-command", "unknown-run-option", "unknown-executions-option", "missing-argument"],
)
def test_wrong_command_or_option_exits_2_with_usage(tmp_path: Path, argv: list[str]) -> None:
    result = tiercel(*argv, cwd=tmp_path)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_help_lists_the_sub_commands() -> None:
    result = tiercel("--help")
    assert result.returncode == 0
    commands = ("run", "validate", "flows", "namespaces", "executions", "logs", "kill", "resume", "restart")
    for command in commands:
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command


def test_importing_the_cli_does_not_import_textual() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import tiercel.app.cli"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "tiercel.app.cli" in result.stderr
    assert not re.search(r"\|\s*textual(\.|$)", result.stderr, re.MULTILINE)


# -- revisions, replay, change-status, server ------------------------------------------------------------


def test_revisions_list_show_and_diff(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    file = write(flows_dir, "hello.yml", HELLO)
    assert tiercel("run", "--db", db, file).returncode == 0
    write(flows_dir, "hello.yml", HELLO.replace("Hello,", "Good morning,"))
    assert tiercel("run", "--db", db, file).returncode == 0

    listed = tiercel("revisions", "--db", db, "acme", "hello")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["1", "2"]
    shown = tiercel("revisions", "--db", db, "--show", "1", "acme", "hello")
    assert "Hello, {{ inputs.name }}" in shown.stdout
    diff = tiercel("revisions", "--db", db, "--diff", "1", "acme", "hello")
    assert diff.returncode == 0
    assert "--- revision 1" in diff.stdout and "+++ revision 2" in diff.stdout
    assert '-    message: "Hello, {{ inputs.name }}"' in diff.stdout
    assert '+    message: "Good morning, {{ inputs.name }}"' in diff.stdout
    missing = tiercel("revisions", "--db", db, "--show", "7", "acme", "hello")
    assert missing.returncode == 2 and "no revision 7" in missing.stderr

    rows = json.loads(tiercel("flows", "--flows", flows_dir, "--db", db, "--json").stdout)
    assert [(r["id"], r["revision"], r["editedSinceRevision"]) for r in rows] == [("hello", 2, False)]
    write(flows_dir, "hello.yml", HELLO.replace("Hello,", "Hi,"))
    rows = json.loads(tiercel("flows", "--flows", flows_dir, "--db", db, "--json").stdout)
    assert [(r["id"], r["revision"], r["editedSinceRevision"]) for r in rows] == [("hello", 2, True)]


def test_replay_from_a_task_run_and_change_status(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    file = write(flows_dir, "gated.yml", GATED)
    code, failed = run_json("--db", db, file)
    assert code == 1 and failed["state"]["current"] == "FAILED"
    gate = task_run(failed, "gate")

    replay = tiercel("replay", "--db", db, "--from", gate["id"], failed["id"], env=clean_env(ENV_GO="yes"))
    assert replay.returncode == 0, replay.stderr
    [second] = [e for e in executions(db) if e["id"] != failed["id"]]
    assert second["originalId"] == failed["id"]
    assert second["state"]["current"] == "SUCCESS"
    assert task_run(second, "first")["state"]["current"] == "SUCCESS"
    assert task_run(second, "last")["state"]["current"] == "SUCCESS"

    bad = tiercel("replay", "--db", db, "--from", "nope", failed["id"])
    assert bad.returncode == 1 and "no task run nope" in bad.stderr

    changed = tiercel("change-status", "--db", db, failed["id"], "success")
    assert changed.returncode == 0, changed.stderr
    assert next(e for e in executions(db) if e["id"] == failed["id"])["state"]["current"] == "SUCCESS"
    wrong = tiercel("change-status", "--db", db, failed["id"], "sideways")
    assert wrong.returncode == 1 and "Unknown state `sideways`" in wrong.stderr


WEBHOOK = """
id: hook
namespace: acme.web
tasks:
  - id: said
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.body.name }}"
triggers:
  - id: incoming
    type: io.kestra.plugin.core.trigger.Webhook
    key: s3cretKey
"""


def test_server_serves_webhooks_watches_flows_and_stops_on_sigterm(
    flows_dir: Path, tmp_path: Path, background: list[Any]
) -> None:
    import httpx

    db = tmp_path / "t.db"
    write(flows_dir, "hook.yml", WEBHOOK)
    server = start("server", "--flows", flows_dir, "--db", db, "--port", "0")
    background.append(server)
    banner = read_until(server.stderr, b"webhooks on http://", timeout=20)
    while not re.search(rb"webhooks on http://[\d.]+:\d+\n", banner):
        banner += read_until(server.stderr, b"\n", timeout=5)
    url = re.search(rb"webhooks on (http://[\d.]+:\d+)", banner)
    assert url is not None, banner
    base = url.group(1).decode()

    answer = httpx.post(f"{base}/api/v1/executions/webhook/acme.web/hook/s3cretKey", json={"name": "ada"})
    assert answer.status_code == 200, answer.text
    execution_id = answer.json()["id"]
    assert httpx.post(f"{base}/api/v1/executions/webhook/acme.web/hook/wrong", json={}).status_code == 404

    # A flow saved while the server runs is picked up: the next webhook runs the new revision.
    write(flows_dir, "hook.yml", WEBHOOK.replace("trigger.body.name", "trigger.body.name | upper"))

    def saved_as_revision_2() -> bool:
        rows = json.loads(tiercel("flows", "--flows", flows_dir, "--db", db, "--json").stdout)
        return bool(rows[0]["revision"] == 2 and not rows[0]["editedSinceRevision"])

    blocking_until(saved_as_revision_2, what="revision 2 of the saved flow", interval=0.1)
    second = httpx.post(f"{base}/api/v1/executions/webhook/acme.web/hook/s3cretKey", json={"name": "ada"})
    assert second.status_code == 200

    # The server owns the database: a second engine is refused.
    busy = tiercel("server", "--flows", flows_dir, "--db", db, "--port", "0")
    assert busy.returncode == 2 and "in use" in busy.stderr

    def two_succeeded() -> dict[str, Any]:
        done = {e["id"]: e for e in executions(db) if e["state"]["current"] == "SUCCESS"}
        return done if len(done) == 2 else {}

    done = blocking_until(two_succeeded, what="two successful executions", interval=0.1)
    assert task_run(done[execution_id], "said")["outputs"] == {"value": "ada"}
    assert {task_run(e, "said")["outputs"]["value"] for e in done.values()} == {"ada", "ADA"}

    server.send_signal(15)
    _, err = server.communicate(timeout=15)
    assert server.returncode == 0, err
    assert b"stopping" in err
    # The database is free again.
    assert tiercel("run", "--db", db, "--flows", flows_dir, "acme.web", "hook").returncode != 2


def test_namespaces_show_declared_variables_and_kv_keys(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    write(flows_dir, "acme/_namespace.yaml", "description: The company\nvariables:\n  region: eu\n")
    kv = """
    id: keeper
    namespace: acme.ops
    tasks:
      - id: put
        type: io.kestra.plugin.core.kv.Set
        key: last_run
        value: today
    """
    file = write(flows_dir, "acme/keeper.yml", kv)
    assert tiercel("run", "--db", db, "--flows", flows_dir, file).returncode == 0
    result = tiercel("namespaces", "--flows", flows_dir, "--db", db)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^acme +\(acme\)  The company$", result.stdout, re.M), result.stdout
    assert re.search(r"^  var region = \"eu\"$", result.stdout, re.M), result.stdout
    assert re.search(r"^    kv  last_run$", result.stdout, re.M), result.stdout
    assert tiercel("validate", flows_dir).returncode == 0


HOURLY = """
id: hourly
namespace: acme.sched
tasks:
  - id: slot
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.date }}"
triggers:
  - id: every_hour
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
"""


@pytest.mark.slow
def test_backfill_runs_here_when_no_engine_owns_the_database(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    write(flows_dir, "hourly.yml", HOURLY)
    args = ["--flows", flows_dir, "--db", db, "acme.sched", "hourly", "every_hour"]
    done = tiercel("backfill", *args, "--start", "2025-01-01T00:00:00Z", "--end", "2025-01-01T05:00:00Z")
    assert done.returncode == 0, done.stderr
    assert "6 executions" in done.stdout
    ran = executions(db)
    dates = sorted(task_run(e, "slot")["outputs"]["value"] for e in ran)
    assert dates == [f"2025-01-01T0{h}:00:00Z" for h in range(6)]
    assert all(e["state"]["current"] == "SUCCESS" for e in ran)
    assert all({"key": "system.backfill", "value": "true"} in e["labels"] for e in ran)

    listed = json.loads(tiercel("triggers", "--db", db, "--json").stdout)
    [row] = listed
    assert (row["triggerId"], row["enabled"], row["backfill"]["status"]) == ("every_hour", True, "DONE")
    assert tiercel("triggers", "--db", db, "--disable", "acme.sched", "hourly", "every_hour").returncode == 0
    assert json.loads(tiercel("triggers", "--db", db, "--json").stdout)[0]["enabled"] is False

    no_start = tiercel("backfill", *args)
    assert no_start.returncode == 2 and "--start" in no_start.stderr
    naive = tiercel("backfill", *args, "--start", "2025-01-01T00:00:00")
    assert naive.returncode == 2 and "time zone" in naive.stderr


@pytest.mark.slow
def test_trigger_commands_reach_the_running_server(
    flows_dir: Path, tmp_path: Path, background: list[Any]
) -> None:
    db = tmp_path / "t.db"
    write(flows_dir, "hourly.yml", HOURLY)
    server = start("server", "--flows", flows_dir, "--db", db, "--port", "0")
    background.append(server)
    read_until(server.stderr, b"webhooks on http://", timeout=20)

    [row] = json.loads(tiercel("triggers", "--db", db, "--json").stdout)
    assert row["type"] == "io.kestra.plugin.core.trigger.Schedule" and row["nextDate"]
    assert tiercel("triggers", "--db", db, "--disable", "acme.sched", "hourly", "every_hour").returncode == 0
    assert json.loads(tiercel("triggers", "--db", db, "--json").stdout)[0]["enabled"] is False
    unknown = tiercel("triggers", "--db", db, "--enable", "acme.sched", "hourly", "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr
    assert tiercel("triggers", "--db", db, "--enable", "acme.sched", "hourly", "every_hour").returncode == 0

    sent = tiercel(
        "backfill", "--db", db, "acme.sched", "hourly", "every_hour",
        "--start", "2025-03-01T00:00:00Z", "--end", "2025-03-01T02:00:00Z",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    blocking_until(
        lambda: len([e for e in executions(db) if e["state"]["current"] == "SUCCESS"]) >= 3,
        what="three successful executions",
        interval=0.1,
    )
    server.send_signal(15)
    server.communicate(timeout=15)
    assert server.returncode == 0


@pytest.mark.slow
def test_one_off_commands_leave_other_unfinished_executions_alone(
    flows_dir: Path, tmp_path: Path, background: list[Any]
) -> None:
    db = tmp_path / "t.db"
    crashed = start("run", "--json", "--db", db, write(flows_dir, "sleepy.yml", sleeping("PT60S")))
    background.append(crashed)
    read_until(crashed.stderr, b"first line", timeout=10)
    crashed.kill()  # kill -9: the execution stays RUNNING in the store
    crashed.communicate(timeout=10)
    [left] = executions(db)
    assert left["state"]["current"] == "RUNNING"

    assert tiercel("run", "--db", db, write(flows_dir, "hello.yml", HELLO)).returncode == 0
    untouched = next(e for e in executions(db) if e["id"] == left["id"])
    assert untouched["state"]["current"] == "RUNNING"
    assert len(task_run(untouched, "nap")["attempts"]) == 1  # not rerun by a run of another flow

    killed = tiercel("kill", left["id"], "--db", db)
    assert killed.returncode == 0, killed.stderr
    assert next(e for e in executions(db) if e["id"] == left["id"])["state"]["current"] == "KILLED"


@pytest.mark.slow
def test_server_on_a_busy_port_stops_before_resuming_anything(
    flows_dir: Path, tmp_path: Path, background: list[Any]
) -> None:
    import socket

    db = tmp_path / "t.db"
    crashed = start("run", "--json", "--db", db, write(flows_dir, "sleepy.yml", sleeping("PT60S")))
    background.append(crashed)
    read_until(crashed.stderr, b"first line", timeout=10)
    crashed.kill()
    crashed.communicate(timeout=10)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        refused = tiercel("server", "--flows", flows_dir, "--db", db, "--port", str(port))
    assert refused.returncode == 2 and "cannot listen" in refused.stderr
    [left] = executions(db)
    assert left["state"]["current"] == "RUNNING"
    assert len(task_run(left, "nap")["attempts"]) == 1  # nothing was resumed, so no attempt was used


def test_a_trigger_list_over_64_kib_reaches_the_triggers_command(
    flows_dir: Path, tmp_path: Path, background: list[Any]
) -> None:
    db = tmp_path / "t.db"
    yearly = "".join(
        f"  - {{id: yearly_{n:04d}, type: io.kestra.plugin.core.trigger.Schedule, cron: '0 0 1 1 *'}}\n"
        for n in range(400)
    )
    write(flows_dir, "busy.yml", HELLO.replace("id: hello", "id: busy") + "triggers:\n" + yearly)
    server = start("server", "--flows", flows_dir, "--db", db, "--port", "0")
    background.append(server)
    read_until(server.stderr, b"webhooks on http://", timeout=30)
    listed = tiercel("triggers", "--db", db, "--json", timeout=60)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == 400 and len(listed.stdout) > 64 * 1024


def test_run_copies_a_local_file_named_for_a_file_input(flows_dir: Path, tmp_path: Path) -> None:
    local = tmp_path / "report.csv"
    local.write_text("a,b\n")
    source = f"""
    id: upload
    namespace: acme
    inputs:
      - {{id: doc, type: FILE}}
    tasks:
      - {{id: show, type: {LOG}, message: "{{{{ read(inputs.doc) }}}}"}}
    """
    flow_file = write(flows_dir, "u.yml", source)
    code, execution = run_json("--db", tmp_path / "t.db", "--input", f"doc={local}", flow_file)
    assert code == 0, execution
    assert execution["inputs"]["doc"].startswith("kestra:///acme/upload/executions/")


# -- bad arguments are usage errors, and output cut short ends quietly -------------------------------

APPROVAL = f"""
id: approval
namespace: acme
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: count
        type: INT
  - id: after
    type: {LOG}
    message: "count {{{{ outputs.wait.onResume.count }}}}"
"""

SCHEDULED = f"""
id: scheduled
namespace: acme
tasks:
  - id: tick
    type: {LOG}
    message: tick
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
"""


@pytest.mark.slow
@pytest.mark.parametrize("given", [(), ("--input", "count=many")])
def test_resume_with_missing_or_wrong_on_resume_inputs_is_a_usage_error(
    flows_dir: Path, tmp_path: Path, given: tuple[str, ...]
) -> None:
    db = tmp_path / "t.db"
    code, paused = run_json(write(flows_dir, "approval.yml", APPROVAL), "--db", db)
    assert code == 3
    result = tiercel("resume", paused["id"], "--db", db, *given)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "count" in result.stderr
    assert executions(db)[0]["state"]["current"] == "PAUSED"  # still waiting for a good answer
    assert tiercel("resume", paused["id"], "--db", db, "--input", "count=3").returncode == 0


@pytest.mark.slow
def test_resume_with_wrong_inputs_through_a_running_server_is_a_usage_error(
    flows_dir: Path, tmp_path: Path, background: list[Any]
) -> None:
    db = tmp_path / "t.db"
    code, paused = run_json(write(flows_dir, "approval.yml", APPROVAL), "--db", db)
    assert code == 3
    server = start("server", "--flows", flows_dir, "--db", db, "--port", "0")
    background.append(server)
    read_until(server.stderr, b"webhooks on http://", timeout=20)
    wrong = tiercel("resume", paused["id"], "--db", db, "--input", "count=many")
    assert wrong.returncode == 2, wrong.stderr
    assert "count" in wrong.stderr and "Traceback" not in wrong.stderr
    assert tiercel("resume", paused["id"], "--db", db, "--input", "count=3").returncode == 0
    server.send_signal(15)
    server.communicate(timeout=15)


@pytest.mark.slow
def test_switching_an_unknown_flow_or_trigger_is_a_usage_error(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    write(flows_dir, "scheduled.yml", SCHEDULED)
    assert tiercel("run", "--flows", flows_dir, "--db", db, "acme", "scheduled").returncode == 0
    typo = tiercel("triggers", "--db", db, "--disable", "acme", "scheduled", "nightlyy")
    assert typo.returncode == 2, typo.stdout
    assert "disabled" not in typo.stdout
    assert "no trigger `nightlyy`" in typo.stderr and "nightly" in typo.stderr
    unknown = tiercel("triggers", "--db", db, "--enable", "acme", "nope", "nightly")
    assert unknown.returncode == 2
    assert "no flow acme.nope" in unknown.stderr
    listed = json.loads(tiercel("triggers", "--db", db, "--json").stdout)
    assert all(row["triggerId"] == "nightly" and row["flowId"] == "scheduled" for row in listed)
    assert tiercel("triggers", "--db", db, "--disable", "acme", "scheduled", "nightly").returncode == 0


@pytest.mark.parametrize("start", ["yesterday", "2025-01-01T00:00:00"])
def test_a_backfill_start_that_is_not_a_dated_instant_is_a_usage_error(
    flows_dir: Path, tmp_path: Path, start: str
) -> None:
    write(flows_dir, "scheduled.yml", SCHEDULED)
    result = tiercel(
        "backfill",
        "--flows",
        flows_dir,
        "--db",
        tmp_path / "t.db",
        "acme",
        "scheduled",
        "nightly",
        "--start",
        start,
    )
    assert result.returncode == 2, result.stderr
    assert f"--start `{start}`" in result.stderr
    assert "2025-01-01T00:00:00Z" in result.stderr  # the expected form, as an example
    assert "Invalid isoformat" not in result.stderr


@pytest.mark.parametrize("command", ["executions", "validate", "run"])
def test_output_closed_early_ends_quietly(flows_dir: Path, tmp_path: Path, command: str) -> None:
    db = tmp_path / "t.db"
    write(flows_dir, "levels.yml", LEVELS)
    assert tiercel("run", "--flows", flows_dir, "--db", db, "acme.finance", "levels").returncode == 0
    args = {
        "executions": ["executions", "--db", str(db)],
        "validate": ["validate", str(flows_dir)],
        "run": ["run", "--flows", str(flows_dir), "--db", str(db), "acme.finance", "levels"],
    }[command]
    read, write_end = os.pipe()
    os.close(read)  # the reader is gone before anything is written, as after `| head -0`
    try:
        result = subprocess.run(
            [str(TIERCEL), *args], stdout=write_end, stderr=subprocess.PIPE, env=clean_env(), timeout=30
        )
    finally:
        os.close(write_end)
    assert b"Traceback" not in result.stderr and b"BrokenPipeError" not in result.stderr, result.stderr
    # A listing stops as a program stopped by SIGPIPE does; a run still says how its execution ended.
    assert result.returncode == (0 if command == "run" else 141)
