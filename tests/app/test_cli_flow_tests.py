"""`tiercel test`: a line per case, the failures in detail, a summary and the exit code; `--json`;
the results kept beside the database; `validate` checks test files as such."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.waiting import blocking_until

TIERCEL = Path(sys.executable).parent / "tiercel"

FLOW = """id: hello
namespace: acme
inputs:
  - {id: who, type: STRING, defaults: world}
tasks:
  - id: greet
    type: io.kestra.plugin.core.debug.Return
    format: "hello {{ inputs.who }}"
"""
TESTS = """id: hello_tests
namespace: acme
flowId: hello
testCases:
  - id: greets_the_world
    assertions:
      - value: "{{ outputs.greet.value }}"
        equalTo: hello world
  - id: greets_by_name
    fixtures:
      inputs: {who: Ada}
    assertions:
      - value: "{{ outputs.greet.value }}"
        endsWith: Grace
"""


def tiercel(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TIERCEL_DB", "NO_COLOR")}
    return subprocess.run(
        [str(TIERCEL), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _project(tmp_path: Path, tests: str = TESTS) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.yml").write_text(FLOW)
    (tmp_path / "flows" / "hello_tests.yml").write_text(tests)
    return tmp_path


def test_a_failing_case_is_reported_and_fails_the_run(tmp_path: Path) -> None:
    project = _project(tmp_path)
    done = tiercel(project, "test")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("flows/hello_tests.yml::hello_tests::greets_the_world PASSED (")
    assert lines[1].startswith("flows/hello_tests.yml::hello_tests::greets_by_name FAILED (")
    assert "--- hello_tests::greets_by_name (flows/hello_tests.yml:9) ---" in lines
    assert "    actual: 'hello Ada'" in lines and "    expected: endsWith 'Grace'" in lines
    assert lines[-1].startswith("=== 1 passed, 1 failed in ")
    kept = json.loads((project / ".tiercel" / "test-results.json").read_text())
    assert [case["outcome"] for case in kept["acme.hello"]["cases"]] == ["PASSED", "FAILED"]
    assert not (project / ".tiercel" / "tiercel.db").exists()  # the cases ran elsewhere


def test_passing_cases_exit_0_and_json_lists_them(tmp_path: Path) -> None:
    project = _project(tmp_path, TESTS.replace("endsWith: Grace", "endsWith: Ada"))
    done = tiercel(project, "test", "--json", "flows/hello_tests.yml")
    assert done.returncode == 0, done.stderr
    cases = json.loads(done.stdout)
    assert [(case["caseId"], case["outcome"]) for case in cases] == [
        ("greets_the_world", "PASSED"),
        ("greets_by_name", "PASSED"),
    ]
    assert cases[1]["assertions"][0]["actual"] == "hello Ada"


def test_no_test_and_a_broken_test_file(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.yml").write_text(FLOW)
    none = tiercel(tmp_path, "test")
    assert none.returncode == 2
    assert "no test file (a YAML file with `testCases`) under flows" in none.stderr
    (tmp_path / "flows" / "broken_tests.yml").write_text("id: t\nnamespace: acme\ntestCases: [{id: x}]\n")
    broken = tiercel(tmp_path, "test")
    assert broken.returncode == 1
    assert "error: flows/broken_tests.yml:1:1: A test file needs `flowId`" in broken.stderr
    checked = tiercel(tmp_path, "validate", "flows")
    assert checked.returncode == 1 and "broken_tests.yml:1:1: A test file needs `flowId`" in checked.stdout
    assert tiercel(tmp_path, "test", "nowhere").returncode == 2


def test_validate_checks_test_files_as_tests(tmp_path: Path) -> None:
    project = _project(tmp_path)
    done = tiercel(project, "validate", "flows")
    assert done.returncode == 0, done.stdout
    assert "OK flows/hello_tests.yml (tests of acme.hello)" in done.stdout.splitlines()


def test_a_broken_flow_is_named_where_the_user_keeps_it(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "hello.yml").write_text("id: hello\nnamespace: acme\ntasks: [unclosed\n")
    (tmp_path / "flows" / "hello_tests.yml").write_text(TESTS)
    done = tiercel(tmp_path, "test")
    assert done.returncode == 1
    error = next(line for line in done.stdout.splitlines() if line.startswith("  error: "))
    assert error.startswith(
        "  error: no flow acme.hello in the flows folder (1 file(s) there have errors, e.g. "
    )
    assert "flows/hello.yml:4:1: Invalid YAML" in error and "tiercel-test-" not in error


def test_an_interrupted_run_cleans_up_after_itself(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "slow.yml").write_text(
        "id: slow\nnamespace: acme\ntasks:\n"
        "  - {id: wait, type: io.kestra.plugin.core.flow.Sleep, duration: PT60S}\n"
    )
    (tmp_path / "flows" / "slow_tests.yml").write_text(
        "id: t\nnamespace: acme\nflowId: slow\ntestCases:\n"
        "  - id: waits\n    assertions: [{value: '{{ states.wait }}', equalTo: SUCCESS}]\n"
    )
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("TIERCEL_DB", "NO_COLOR")} | {
        "TMPDIR": str(scratch)
    }
    process = subprocess.Popen(
        [str(TIERCEL), "test"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        blocking_until(lambda: any(scratch.glob("tiercel-test-*/tiercel.db")), what="the throwaway database")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 1
    assert "tiercel: interrupted: the tests did not all run" in err
    assert list(scratch.glob("tiercel-test-*")) == []
