"""Flow tests in Kestra's unit-test format: test files read with positioned errors, fixtures put in
place of tasks, assertion operators, and cases run in a throwaway engine."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tiercel.engine.engine import Engine
from tiercel.engine.flowtests import ERROR, FAILED, PASSED, SKIPPED, find_suites, run_suites
from tiercel.engine.flowtests.assertions import failed_checks
from tiercel.engine.flowtests.fixtures import FixtureError, with_fixtures
from tiercel.engine.flowtests.suites import TaskFixture, read_suite
from tiercel.engine.parser import FlowParseError, parse_flow
from tiercel.engine.store import Store

GREET = """
id: greet
namespace: acme
inputs:
  - {id: name, type: STRING}
  - {id: fetch, type: STRING, defaults: "an input, not the task"}
tasks:
  - id: fetch
    type: io.kestra.plugin.core.execution.Fail
  - id: greeting
    type: io.kestra.plugin.core.debug.Return
    format: "Hello {{ inputs.name }} {{ outputs.fetch.value }}"
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [a, b]
    tasks:
      - id: shout
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value | upper }}"
  - id: notify
    type: io.kestra.plugin.core.log.Log
    message: "sent {{ outputs.greeting.value }}"
errors:
  - id: on_failure
    type: io.kestra.plugin.core.log.Log
    message: "recovering"
triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 0 * * *"
"""

SUITE = """
id: greet_tests
namespace: acme
flowId: greet
testCases:
  - id: mocked
    type: io.kestra.core.tests.flow.UnitTest
    fixtures:
      inputs: {name: Kestra}
      tasks:
        - id: fetch
          outputs: {value: from-fixture}
        - id: shout
          value: b
          outputs: {value: mocked-b}
        - id: shout
          outputs: {value: mocked}
    assertions:
      - value: "{{ outputs.greeting.value }}"
        equalTo: Hello Kestra from-fixture
      - value: "{{ outputs.shout.b.value }}/{{ outputs.shout.a.value }}"
        equalsTo: mocked-b/mocked
      - value: "{{ states.notify }}"
        equalTo: SUCCESS
      - value: "{{ logs | join(' ') }}"
        contains: sent Hello Kestra
      - value: "{{ execution.state }}"
        in: [SUCCESS, WARNING]
      - value: "{{ outputs.nothing.value }}"
        isNull: true
  - id: wrong
    fixtures:
      inputs: {name: Kestra}
      tasks:
        - {id: fetch, outputs: {value: x}}
    assertions:
      - value: "{{ outputs.greeting.value }}"
        equalTo: Something else
        errorMessage: the greeting changed
  - id: failing_fixture_runs_the_errors
    fixtures:
      inputs: {name: Kestra}
      tasks:
        - {id: fetch, state: FAILED}
    assertions:
      - value: "{{ execution.state }}"
        equalTo: FAILED
      - value: "{{ states.on_failure }}"
        equalTo: SUCCESS
      - value: "{{ states.greeting ?? 'never ran' }}"
        equalTo: never ran
  - id: unknown_task
    fixtures:
      inputs: {name: Kestra}
      tasks:
        - {id: missing}
    assertions:
      - {value: x, isNotNull: true}
  - id: off
    disabled: true
    assertions:
      - {value: x, isNull: true}
"""


async def test_the_sample_flows_tests_pass(tmp_path: Path) -> None:
    samples = Path(__file__).resolve().parents[2] / "sample_flows"
    suites, problems = find_suites([samples])
    assert problems == [] and len(suites) >= 3
    results = await run_suites(suites, samples)
    assert [r.to_json() for r in results if r.outcome != PASSED] == []


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


async def test_cases_run_with_their_fixtures_and_report_each_assertion(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flow_file = _write(flows, "greet.yml", GREET)
    _write(flows, "tests/greet_tests.yml", SUITE)
    suites, problems = find_suites([flows])
    assert problems == [] and [suite.id for suite in suites] == ["greet_tests"]
    heard: list[str] = []
    results = await run_suites(suites, flows, on_result=lambda result: heard.append(result.case.id))
    outcomes = {result.case.id: result.outcome for result in results}
    assert outcomes == {
        "mocked": PASSED,
        "wrong": FAILED,
        "failing_fixture_runs_the_errors": PASSED,
        "unknown_task": ERROR,
        "off": SKIPPED,
    }, [result.to_json() for result in results if result.outcome != PASSED]
    assert heard == list(outcomes)
    wrong = next(result for result in results if result.case.id == "wrong")
    [checked] = wrong.assertions
    assert checked.actual == "Hello Kestra x"
    assert checked.failures == ("the greeting changed", "equalTo 'Something else'")
    unknown = next(result for result in results if result.case.id == "unknown_task")
    assert unknown.error is not None and "flow acme.greet has no task `missing`" in unknown.error
    # The user's folder is as it was: the rewritten flow lived in a copy.
    assert flow_file.read_text() == textwrap.dedent(GREET).lstrip()


async def test_inline_files_are_stored_for_the_fixtures(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    _write(
        flows,
        "products.yml",
        """
        id: products
        namespace: acme.shop
        tasks:
          - id: extract
            type: io.kestra.plugin.core.http.Download
            uri: https://example.invalid/products.json
          - id: names
            type: io.kestra.plugin.core.debug.Return
            format: "{{ fromJson(read(outputs.extract.uri)) | jq('.[].name') }}"
        """,
    )
    suite = _write(
        tmp_path,
        "products_tests.yml",
        """
        id: products_tests
        namespace: acme.shop
        flowId: products
        testCases:
          - id: names_are_read
            fixtures:
              files:
                products.json: '[{"name": "hat"}, {"name": "scarf"}]'
              tasks:
                - id: extract
                  outputs: {uri: "{{ files['products.json'] }}"}
            assertions:
              - value: "{{ outputs.names.value }}"
                equalTo: '["hat","scarf"]'
        """,
    )
    [result] = await run_suites([read_suite(suite)], flows)
    assert result.outcome == PASSED, result.to_json()


async def test_a_test_file_in_the_flows_folder_is_no_broken_flow(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    _write(flows, "greet.yml", GREET)
    _write(flows, "greet_tests.yml", SUITE)
    store = await Store.open(tmp_path / "t.db")
    engine = Engine(store, flows_dir=flows)
    await engine.start(control=False, triggers=False)
    try:
        assert engine.flow_errors == {}
        assert sorted(engine.flows) == [("acme", "greet")]
    finally:
        await engine.stop()


def test_a_test_file_is_checked_with_positions(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "bad.yml",
        """
        id: t
        namespace: acme
        testCases:
          - id: one
            type: io.kestra.core.tests.flow.Other
            fixtures:
              tasks:
                - {id: a, state: BROKEN}
            assertions:
              - value: x
                equalto: 1
              - value: y
                in: 3
          - id: one
            assertions: [{isNull: true}]
        """,
    )
    with pytest.raises(FlowParseError) as caught:
        read_suite(path)
    found = [(error.line, error.message) for error in caught.value.errors]
    assert found == [
        (1, "A test file needs `flowId`"),
        (5, "Unknown test case type `io.kestra.core.tests.flow.Other`: the one type is "
         "`io.kestra.core.tests.flow.UnitTest`"),
        (8, "Task fixture state `BROKEN`: use one of SUCCESS, WARNING, FAILED"),
        (10, "An assertion needs an operator: one of contains, endsWith, equalTo, greaterThan, "
         "greaterThanOrEqualTo, in, isNotNull, isNull, lessThan, lessThanOrEqualTo, notEqualTo, notIn, "
         "startsWith"),
        (11, "Unknown assertion key `equalto`. Did you mean `equalTo`?"),
        (13, "`in` takes a list of values, not a number"),
        (14, "Duplicate test case id `one`"),
        (15, "An assertion needs a `value`, e.g. `value: \"{{ outputs.t.value }}\"`"),
    ]  # fmt: skip


def test_a_fixture_replaces_the_task_where_it_is_written_and_keeps_its_control() -> None:
    source = textwrap.dedent(GREET).replace("  - id: notify\n", '  - id: notify\n    runIf: "{{ true }}"\n')
    flow = parse_flow(source, "greet.yml")
    rewritten = parse_flow(with_fixtures(source, flow, [TaskFixture("notify"), TaskFixture("fetch")], {}))
    notify = rewritten.tasks_by_id["notify"]
    assert (notify.type, notify.run_if) == ("tiercel.test.TaskFixture", "{{ true }}")
    assert rewritten.tasks_by_id["fetch"].type == "tiercel.test.TaskFixture"
    assert [(i.id, i.type) for i in rewritten.inputs] == [("name", "STRING"), ("fetch", "STRING")]
    with pytest.raises(FixtureError, match=r"flow acme\.greet has no task `nope`"):
        with_fixtures(source, flow, [TaskFixture("nope")], {})


@pytest.mark.parametrize(
    ("actual", "checks", "failures"),
    [
        ("200", {"equalTo": 200}, []),
        ("200.0", {"equalTo": 200, "greaterThan": 199, "lessThanOrEqualTo": "200"}, []),
        ("abc", {"equalTo": 200}, ["equalTo 200"]),
        ("true", {"equalTo": True, "notEqualTo": False}, []),
        ('["a","b"]', {"equalTo": ["a", "b"]}, []),
        ("[a, b]", {"equalTo": "[a, b]", "contains": "a,", "startsWith": "[", "endsWith": "]"}, []),
        ("b", {"in": ["a", "b"], "notIn": ["c"]}, []),
        ("2", {"in": [1, 2.0]}, []),
        ("c", {"in": ["a", "b"]}, ['in ["a", "b"]']),
        ("2025-01-02", {"greaterThan": "2025-01-01", "lessThan": "2025-01-03"}, []),
        ("", {"isNull": True}, []),
        (None, {"isNull": True, "isNotNull": False}, []),
        ("x", {"isNull": True}, ["isNull true"]),
        (None, {"equalTo": "x"}, ["equalTo 'x'"]),
        ("10", {"greaterThan": 9}, []),
        ("9", {"greaterThan": 10}, ["greaterThan 10"]),
    ],
)
def test_assertion_operators(actual: str | None, checks: dict[str, object], failures: list[str]) -> None:
    assert failed_checks(actual, checks) == failures


async def test_cases_keep_their_files_to_themselves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared-storage"
    monkeypatch.setenv("TIERCEL_STORAGE", str(shared))
    flows = tmp_path / "flows"
    _write(
        flows,
        "hello.yml",
        "id: hello\nnamespace: acme\ntasks:\n  - {id: say, type: io.kestra.plugin.core.log.Log, message: hi}\n",  # noqa: E501
    )
    suite = _write(
        tmp_path,
        "hello_tests.yml",
        """
        id: t
        namespace: acme
        flowId: hello
        testCases:
          - id: with_a_file
            fixtures:
              files: {data.txt: "some data"}
            assertions:
              - {value: "{{ states.say }}", equalTo: SUCCESS}
        """,
    )
    [result] = await run_suites([read_suite(suite)], flows)
    assert result.outcome == PASSED, result.to_json()
    assert not shared.exists() or not any(shared.rglob("*"))


def test_a_fixture_file_name_stays_a_name(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "t.yml",
        """
        id: t
        namespace: acme
        flowId: hello
        testCases:
          - id: escape
            fixtures:
              files: {"../../x": data}
            assertions: [{value: x, isNotNull: true}]
        """,
    )
    with pytest.raises(FlowParseError) as caught:
        read_suite(path)
    [error] = caught.value.errors
    assert (error.line, error.message) == (
        7,
        "File name `../../x`: a plain name (letters, digits, `.`, `_` and `-`), no folder",
    )
