"""Flow test files in Kestra's unit-test format, read and checked.

A test file names one flow (`namespace`, `flowId`) and holds `testCases`. Each case runs the flow
once with its fixtures (inputs, inline files, tasks replaced by given outputs and a state) and checks
its `assertions` (an expression, then operators such as `equalTo` or `contains`):

    id: orders_tests
    namespace: acme.sales
    flowId: orders
    testCases:
      - id: totals_are_summed
        type: io.kestra.core.tests.flow.UnitTest
        fixtures:
          inputs: {day: "2025-01-02"}
          tasks:
            - id: extract
              outputs: {rows: 3}
            - id: notify            # replaced: succeeds without sending anything
        assertions:
          - value: "{{ outputs.total.value }}"
            equalTo: 42

Problems are reported as flow errors are, with their line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..parser.context import Context, java_text, suggestion, type_name
from ..parser.errors import FlowError, FlowParseError
from ..parser.loader import YamlPath, format_path, load_yaml

UNIT_TEST = "io.kestra.core.tests.flow.UnitTest"
FIXTURE_STATES = ("SUCCESS", "WARNING", "FAILED")
# Each operator with the names Kestra's documentation also gives it.
OPERATORS = {
    "isNotNull": "isNotNull",
    "isNull": "isNull",
    "equalTo": "equalTo",
    "equalsTo": "equalTo",
    "notEqualTo": "notEqualTo",
    "notEqualsTo": "notEqualTo",
    "endsWith": "endsWith",
    "startsWith": "startsWith",
    "contains": "contains",
    "greaterThan": "greaterThan",
    "greaterThanOrEqualTo": "greaterThanOrEqualTo",
    "lessThan": "lessThan",
    "lessThanOrEqualTo": "lessThanOrEqualTo",
    "in": "in",
    "notIn": "notIn",
}
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_SUITE_KEYS = ("id", "namespace", "flowId", "description", "disabled", "testCases")
_CASE_KEYS = ("id", "type", "description", "disabled", "fixtures", "assertions")
_FIXTURE_KEYS = ("inputs", "files", "tasks")
_TASK_FIXTURE_KEYS = ("id", "value", "description", "outputs", "state")
_ASSERTION_KEYS = ("value", "description", "errorMessage", "taskId", *OPERATORS)


@dataclass(frozen=True, slots=True)
class TaskFixture:
    """A task the case replaces: it runs no code and ends `state` with `outputs`."""

    task_id: str
    outputs: Mapping[str, Any] = field(default_factory=dict)
    state: str = "SUCCESS"
    description: str | None = None
    # The loop value of the task runs it stands for (all of them when None).
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Assertion:
    """An expression and what its rendered value must satisfy (operator name to expected value)."""

    value: str
    checks: Mapping[str, Any]
    line: int | None = None
    task_id: str | None = None
    description: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class TestCase:
    id: str
    line: int | None = None
    description: str | None = None
    disabled: bool = False
    inputs: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)
    tasks: tuple[TaskFixture, ...] = ()
    assertions: tuple[Assertion, ...] = ()


@dataclass(frozen=True, slots=True)
class TestSuite:
    id: str
    namespace: str
    flow_id: str
    path: str
    cases: tuple[TestCase, ...]
    description: str | None = None
    disabled: bool = False


def read_suite(path: Path) -> TestSuite:
    """The test file at `path`, checked.

    Raises:
        FlowParseError: Every problem found, each at its line.
    """
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise FlowParseError(
            [FlowError(shown, None, None, "", f"Cannot read the test file: {error}")]
        ) from None
    document = load_yaml(text)
    ctx = Context(document.source, shown)
    for problem in document.problems:
        line, column = problem.position if problem.position else (None, None)
        ctx.errors.append(FlowError(shown, line, column, format_path(problem.path), problem.message))
    suite = _suite(ctx, document.value, shown) if document.complete else None
    if ctx.errors or suite is None:
        raise FlowParseError(sorted(ctx.errors, key=FlowError.sort_key))
    return suite


def _suite(ctx: Context, root: Any, path: str) -> TestSuite | None:
    data = ctx.mapping(root, (), "A test file")
    if data is None:
        return None
    ctx.unknown_keys(data, _SUITE_KEYS, (), "a test file")
    names = {key: ctx.text(data, key, (), f"`{key}`") for key in ("id", "namespace", "flowId")}
    for key, value in names.items():
        if not value:
            ctx.error((), f"A test file needs `{key}`")
    cases: list[TestCase] = []
    seen: set[str] = set()
    raw_cases = ctx.sequence(data.get("testCases"), ("testCases",), "`testCases`") or []
    if not raw_cases:
        ctx.error(("testCases",), "A test file needs at least one entry in `testCases`")
    for index, raw in enumerate(raw_cases):
        case = _case(ctx, raw, ("testCases", index))
        if case is None:
            continue
        if case.id in seen:
            ctx.error(("testCases", index, "id"), f"Duplicate test case id `{case.id}`")
        seen.add(case.id)
        cases.append(case)
    if not all(names.values()):
        return None
    return TestSuite(
        id=str(names["id"]),
        namespace=str(names["namespace"]),
        flow_id=str(names["flowId"]),
        path=path,
        cases=tuple(cases),
        description=ctx.text(data, "description", (), "`description`"),
        disabled=ctx.boolean(data, "disabled", (), "`disabled`", False),
    )


def _with_id(
    ctx: Context, raw: Any, path: YamlPath, what: str, keys: tuple[str, ...], missing: str
) -> tuple[dict[str, Any], str] | None:
    """An entry (a test case, a task fixture) as a mapping of known keys with its `id`, or None."""
    data = ctx.mapping(raw, path, what[:1].upper() + what[1:])
    if data is None:
        return None
    ctx.unknown_keys(data, keys, path, what)
    entry_id = ctx.text(data, "id", path, "`id`")
    if not entry_id:
        ctx.error(path, missing)
        return None
    return data, entry_id


def _case(ctx: Context, raw: Any, path: YamlPath) -> TestCase | None:
    found = _with_id(ctx, raw, path, "a test case", _CASE_KEYS, "A test case needs an `id`")
    if found is None:
        return None
    data, case_id = found
    kind = ctx.text(data, "type", path, "`type`")
    if kind is not None and kind != UNIT_TEST:
        ctx.error((*path, "type"), f"Unknown test case type `{kind}`: the one type is `{UNIT_TEST}`")
    fixtures = ctx.mapping(data.get("fixtures") or {}, (*path, "fixtures"), "`fixtures`") or {}
    where = (*path, "fixtures")
    ctx.unknown_keys(fixtures, _FIXTURE_KEYS, where, "`fixtures`")
    inputs = ctx.mapping(fixtures.get("inputs") or {}, (*where, "inputs"), "`inputs` of the fixtures") or {}
    files = ctx.mapping(fixtures.get("files") or {}, (*where, "files"), "`files` of the fixtures") or {}
    for name, content in files.items():
        if not _FILE_NAME.fullmatch(str(name)):
            ctx.error(
                (*where, "files", name),
                f"File name `{name}`: a plain name (letters, digits, `.`, `_` and `-`), no folder",
                key=True,
            )
        elif isinstance(content, dict | list) or content is None:
            ctx.error(
                (*where, "files", name),
                f"The content of file `{name}` must be text, not {type_name(content)}",
            )
    raw_tasks = ctx.sequence(fixtures.get("tasks"), (*where, "tasks"), "`tasks` of the fixtures") or []
    tasks = [
        fixture for i, item in enumerate(raw_tasks) if (fixture := _task(ctx, item, (*where, "tasks", i)))
    ]
    raw_assertions = ctx.sequence(data.get("assertions"), (*path, "assertions"), "`assertions`") or []
    assertions = [
        checked
        for i, item in enumerate(raw_assertions)
        if (checked := _assertion(ctx, item, (*path, "assertions", i)))
    ]
    return TestCase(
        id=case_id,
        line=ctx.line_of(path),
        description=ctx.text(data, "description", path, "`description`"),
        disabled=ctx.boolean(data, "disabled", path, "`disabled`", False),
        inputs=dict(inputs),
        files={
            str(name): java_text(content)
            for name, content in files.items()
            if isinstance(content, str | int | float) and _FILE_NAME.fullmatch(str(name))
        },
        tasks=tuple(tasks),
        assertions=tuple(assertions),
    )


def _task(ctx: Context, raw: Any, path: YamlPath) -> TaskFixture | None:
    missing = "A task fixture needs the `id` of the task it replaces"
    found = _with_id(ctx, raw, path, "a task fixture", _TASK_FIXTURE_KEYS, missing)
    if found is None:
        return None
    data, task_id = found
    state = (ctx.text(data, "state", path, "`state`") or "SUCCESS").upper()
    if state not in FIXTURE_STATES:
        ctx.error((*path, "state"), f"Task fixture state `{state}`: use one of {', '.join(FIXTURE_STATES)}")
    outputs = ctx.mapping(data.get("outputs") or {}, (*path, "outputs"), "`outputs` of a task fixture") or {}
    description = ctx.text(data, "description", path, "`description`")
    return TaskFixture(task_id, dict(outputs), state, description, ctx.text(data, "value", path, "`value`"))


def _assertion(ctx: Context, raw: Any, path: YamlPath) -> Assertion | None:
    data = ctx.mapping(raw, path, "An assertion")
    if data is None:
        return None
    for key in data:
        if key not in _ASSERTION_KEYS:
            ctx.error(
                (*path, key), f"Unknown assertion key `{key}`{suggestion(key, _ASSERTION_KEYS)}", key=True
            )
    value = ctx.text(data, "value", path, "`value`")
    checks = {OPERATORS[key]: expected for key, expected in data.items() if key in OPERATORS}
    if value is None:
        ctx.error(path, 'An assertion needs a `value`, e.g. `value: "{{ outputs.t.value }}"`')
        return None
    if not checks:
        ctx.error(
            path, f"An assertion needs an operator: one of {', '.join(sorted(set(OPERATORS.values())))}"
        )
        return None
    for name in ("in", "notIn"):
        if name in checks and not isinstance(checks[name], list):
            ctx.error((*path, name), f"`{name}` takes a list of values, not {type_name(checks[name])}")
    return Assertion(
        value=value,
        checks=checks,
        line=ctx.line_of(path),
        task_id=ctx.text(data, "taskId", path, "`taskId`"),
        description=ctx.text(data, "description", path, "`description`"),
        error_message=ctx.text(data, "errorMessage", path, "`errorMessage`"),
    )
