"""The flow parser: safe YAML, Kestra's validation rules, and errors that say where and how to fix."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tiercel.engine.model import DagNode, Flow, Label, OutputSpec, PluginDefault, RetrySpec, TaskSpec
from tiercel.engine.parser import (
    MAX_FLOW_BYTES,
    FlowError,
    FlowParseError,
    loader as parser_yaml,
    parse_flow,
    parse_flow_file,
    validate_flows,
)

CONFORMANCE_FLOWS = Path(__file__).parents[3] / "shared" / "conformance" / "flows"
INVALID_FLOWS = Path(__file__).parent / "flows_invalid"

LOG = "io.kestra.plugin.core.log.Log"
RETURN = "io.kestra.plugin.core.debug.Return"
SEQUENTIAL = "io.kestra.plugin.core.flow.Sequential"
SWITCH = "io.kestra.plugin.core.flow.Switch"
DAG = "io.kestra.plugin.core.flow.Dag"
SUBFLOW = "io.kestra.plugin.core.flow.Subflow"
SCHEDULE = "io.kestra.plugin.core.trigger.Schedule"


def flow_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def parse(text: str, path: str | None = "flow.yml") -> Flow:
    return parse_flow(flow_text(text), path)


def errors_of(text: str, path: str | None = "flow.yml") -> list[FlowError]:
    with pytest.raises(FlowParseError) as caught:
        parse_flow(flow_text(text), path)
    return caught.value.errors


def error_at(text: str, fragment: str, line: int, column: int, yaml_path: str | None = None) -> FlowError:
    """The one error whose message holds `fragment`, checked to be at line:column (and yaml_path)."""
    errors = errors_of(text)
    found = [error for error in errors if fragment in error.message]
    assert len(found) == 1, f"expected one error with {fragment!r}, got:\n" + "\n".join(map(str, errors))
    error = found[0]
    assert (error.line, error.column) == (line, column), str(error)
    if yaml_path is not None:
        assert error.yaml_path == yaml_path, str(error)
    return error


# A valid flow in three lines; tests append the section they check from line 4 on.
HEAD = (
    "id: demo\nnamespace: company.team\ntasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: x}]\n"
)


def wrap_tasks(tasks: str) -> str:
    """A valid flow header (two lines) followed by `tasks:` on line 3 and the given task lines."""
    return "id: demo\nnamespace: company.team\ntasks:\n" + textwrap.indent(flow_text(tasks), "  ")


# ---------------------------------------------------------------------------------------------
# Error objects
# ---------------------------------------------------------------------------------------------


def test_flow_error_prints_like_a_compiler() -> None:
    assert str(FlowError("a.yml", 12, 5, "tasks[2].retry", "bad")) == "a.yml:12:5: tasks[2].retry: bad"
    assert str(FlowError(None, 3, 1, "id", "bad")) == "3:1: id: bad"
    assert str(FlowError("a.yml", None, None, "", "too big")) == "a.yml: too big"
    assert str(FlowError(None, None, None, "", "bad")) == "bad"


def test_parse_error_lists_every_error_one_per_line() -> None:
    errors = [FlowError("a.yml", 1, 1, "id", "one"), FlowError("a.yml", 2, 1, "namespace", "two")]
    exc = FlowParseError(errors)
    assert exc.errors == errors
    assert str(exc) == "a.yml:1:1: id: one\na.yml:2:1: namespace: two"


# ---------------------------------------------------------------------------------------------
# Kestra's own flows
# ---------------------------------------------------------------------------------------------


def _conformance_files() -> list[Path]:
    if not CONFORMANCE_FLOWS.is_dir():
        return []
    return sorted(path for path in CONFORMANCE_FLOWS.iterdir() if path.suffix in (".yml", ".yaml"))


@pytest.mark.skipif(not CONFORMANCE_FLOWS.is_dir(), reason="conformance flows not available")
@pytest.mark.parametrize("path", _conformance_files(), ids=lambda path: path.name)
def test_every_conformance_flow_parses(path: Path) -> None:
    flow = parse_flow_file(path)
    assert flow.path == str(path)
    assert flow.source == path.read_text()
    assert flow.tasks


@pytest.mark.skipif(not CONFORMANCE_FLOWS.is_dir(), reason="conformance flows not available")
def test_conformance_flows_have_no_cross_flow_errors() -> None:
    flows = [parse_flow_file(path) for path in _conformance_files()]
    assert validate_flows(flows) == []


# ---------------------------------------------------------------------------------------------
# A valid flow, parsed into the model
# ---------------------------------------------------------------------------------------------

COMPLEX = """
id: complex
namespace: company.team.data
revision: 7
description: A flow that uses every section
labels:
  owner: data
  tier: 1
inputs:
  - id: customer
    type: STRING
    defaults: acme
    validator: ^[a-z]+$
  - name: region
    type: SELECT
    values: [eu, us]
    required: false
    displayName: Region
variables:
  bucket: s3://data
pluginDefaults:
  - type: io.kestra.plugin.core.log
    values:
      level: WARN
  - type: io.kestra.plugin.core.debug.Return
    forced: true
    values:
      format: forced
tasks:
  - id: seq
    type: io.kestra.core.tasks.flows.Sequential
    tasks:
      - id: hello
        type: io.kestra.plugin.core.log.Log
        message: "Hello {{ inputs.customer }}"
      - id: loud
        type: io.kestra.plugin.core.log.Log
        message: loud
        level: ERROR
  - id: route
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ inputs.region }}"
    cases:
      eu:
        - id: eu_return
          type: io.kestra.plugin.core.debug.Return
          format: not this
      1:
        - id: one
          type: io.kestra.plugin.core.log.Log
          message: one
    defaults:
      - id: fallback
        type: io.kestra.plugin.core.log.Log
        message: fallback
  - id: graph
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task:
          id: first
          type: io.kestra.plugin.core.log.Log
          message: first
      - task:
          id: second
          type: io.kestra.plugin.core.log.Log
          message: second
        dependsOn: [first]
  - id: flaky
    type: io.kestra.plugin.core.execution.Fail
    timeout: PT5M
    allowFailure: true
    runIf: "{{ true }}"
    logLevel: DEBUG
    retry:
      type: exponential
      interval: PT1S
      maxInterval: PT30S
      maxAttempts: 4
      delayFactor: 3
      warningOnRetry: true
errors:
  - id: on_error
    type: io.kestra.plugin.core.log.Log
    message: failed
finally:
  - id: cleanup
    type: io.kestra.plugin.core.log.Log
    message: done
triggers:
  - id: nightly
    type: io.kestra.core.models.triggers.types.Schedule
    cron: "0 2 * * *"
    timezone: Europe/Paris
    disabled: true
concurrency:
  limit: 2
  behavior: CANCEL
outputs:
  - id: greeting
    type: STRING
    value: "{{ outputs.hello }}"
retry:
  type: constant
  interval: PT10S
  maxAttempt: 2
"""


def test_complex_flow_parses_into_the_model() -> None:
    flow = parse(COMPLEX, "complex.yml")
    assert (flow.id, flow.namespace, flow.description) == (
        "complex",
        "company.team.data",
        COMPLEX_DESCRIPTION,
    )
    assert flow.revision == 1  # the store assigns revisions; the file's is ignored
    assert flow.path == "complex.yml"
    assert flow.source == flow_text(COMPLEX)
    assert flow.labels == (Label("owner", "data"), Label("tier", "1"))
    assert flow.variables == {"bucket": "s3://data"}
    assert flow.plugin_defaults == (
        PluginDefault("io.kestra.plugin.core.log", {"level": "WARN"}),
        PluginDefault(RETURN, {"format": "forced"}, forced=True),
    )
    assert flow.concurrency == {"limit": 2, "behavior": "CANCEL"}
    assert flow.outputs == (OutputSpec("greeting", "STRING", "{{ outputs.hello }}"),)
    assert flow.retry == RetrySpec("constant", interval=timedelta(seconds=10), max_attempt=2)
    assert list(flow.tasks_by_id) == [
        *("seq", "hello", "loud", "route", "eu_return", "one", "fallback"),
        *("graph", "first", "second", "flaky", "on_error", "cleanup"),
    ]


COMPLEX_DESCRIPTION = "A flow that uses every section"


def test_complex_flow_inputs() -> None:
    customer, region = parse(COMPLEX).inputs
    assert (customer.id, customer.type, customer.required, customer.defaults) == (
        "customer",
        "STRING",
        True,
        "acme",
    )
    assert customer.props == {"validator": "^[a-z]+$"}
    assert customer.position is not None and (customer.position.line, customer.position.column) == (9, 5)
    # `name` is Kestra's older spelling of `id`.
    assert (region.id, region.type, region.required, region.display_name) == (
        "region",
        "SELECT",
        False,
        "Region",
    )
    assert region.props == {"values": ["eu", "us"]}


def test_complex_flow_children_defaults_and_aliases() -> None:
    seq, route, graph, flaky = parse(COMPLEX).tasks
    # The legacy type name resolves to the canonical one.
    assert seq.type == SEQUENTIAL
    hello, loud = seq.props["tasks"]
    assert hello == TaskSpec(
        id="hello",
        type=LOG,
        props={"message": "Hello {{ inputs.customer }}", "level": "WARN"},  # default by package prefix
        position=hello.position,
    )
    assert hello.position is not None and (hello.position.line, hello.position.column) == (32, 9)
    assert loud.props["level"] == "ERROR"  # the task's own value wins over a non-forced default

    assert route.type == SWITCH
    assert set(route.props) == {"value", "cases", "defaults"}
    assert list(route.props["cases"]) == ["eu", "1"]  # case keys are text
    (eu_return,) = route.props["cases"]["eu"]
    assert eu_return.props == {"format": "forced"}  # a forced default overrides the task
    assert [task.id for task in route.props["defaults"]] == ["fallback"]

    first, second = graph.props["tasks"]
    assert isinstance(first, DagNode) and first.task.id == "first" and first.depends_on == ()
    assert second.task.id == "second" and second.depends_on == ("first",)

    assert flaky.timeout == "PT5M"
    assert (flaky.allow_failure, flaky.run_if, flaky.log_level) == (True, "{{ true }}", "DEBUG")
    assert flaky.retry == RetrySpec(
        "exponential",
        interval=timedelta(seconds=1),
        max_interval=timedelta(seconds=30),
        delay_factor=3.0,
        max_attempt=4,
        warning_on_retry=True,
    )
    assert flaky.props == {}


def test_complex_flow_branches_and_triggers() -> None:
    flow = parse(COMPLEX)
    assert [task.id for task in flow.errors] == ["on_error"]
    assert [task.id for task in flow.finally_] == ["cleanup"]
    (trigger,) = flow.triggers
    assert (trigger.id, trigger.type, trigger.disabled) == ("nightly", SCHEDULE, True)
    assert trigger.props == {"cron": "0 2 * * *", "timezone": "Europe/Paris"}
    assert trigger.position is not None and (trigger.position.line, trigger.position.column) == (89, 5)


def test_labels_as_a_list_of_key_value() -> None:
    flow = parse(
        """
        id: demo
        namespace: company.team
        labels:
          - key: team
            value: data
          - key: active
            value: true
        tasks:
          - id: t
            type: io.kestra.plugin.core.log.Log
            message: hi
        """
    )
    assert flow.labels == (Label("team", "data"), Label("active", "true"))


def test_task_defaults_alias_merges_maps_and_later_defaults_win() -> None:
    flow = parse(
        """
        id: demo
        namespace: company.team
        taskDefaults:
          - type: io.kestra.plugin.core.flow.Subflow
            values:
              inputs: {a: 1, b: 1}
              wait: false
        pluginDefaults:
          - type: io.kestra.plugin.core.flow.Subflow
            values:
              wait: true
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: company.team
            flowId: other
            inputs: {b: 2}
        """
    )
    (call,) = flow.tasks
    assert call.props == {
        "namespace": "company.team",
        "flowId": "other",
        "inputs": {"b": 2, "a": 1},
        "wait": True,
    }


def test_defaults_fill_required_properties_and_apply_to_triggers() -> None:
    flow = parse(
        """
        id: demo
        namespace: company.team
        pluginDefaults:
          - type: io.kestra.core.tasks.log.Log
            values: {message: from defaults}
          - type: io.kestra.plugin.core.trigger
            values: {timezone: UTC}
        tasks:
          - id: t
            type: io.kestra.plugin.core.log.Log
        triggers:
          - id: every_hour
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "@hourly"
        """
    )
    assert flow.tasks[0].props == {"message": "from defaults"}
    assert flow.triggers[0].props == {"cron": "@hourly", "timezone": "UTC"}


def test_a_child_property_written_as_null_is_absent() -> None:
    flow = parse(
        wrap_tasks(
            """
            - id: sw
              type: io.kestra.plugin.core.flow.Switch
              value: x
              cases:
                x: [{id: t, type: io.kestra.plugin.core.log.Log, message: hi}]
              defaults: null
            """
        )
    )
    assert "defaults" not in flow.tasks[0].props


def test_a_type_may_keep_a_common_property_of_its_own() -> None:
    flow = parse(
        wrap_tasks(
            """
            - id: wait
              type: io.kestra.plugin.core.flow.Pause
              timeout: PT1S
            """
        )
    )
    (pause,) = flow.tasks
    assert pause.timeout == "PT1S" and pause.props["timeout"] == "PT1S"


def test_timeout_holding_an_expression_is_kept_as_text() -> None:
    flow = parse(
        wrap_tasks(
            """
            - id: t
              type: io.kestra.plugin.core.log.Log
              message: hi
              timeout: "{{ inputs.limit }}"
            """
        )
    )
    assert flow.tasks[0].timeout == "{{ inputs.limit }}"


# ---------------------------------------------------------------------------------------------
# YAML safety
# ---------------------------------------------------------------------------------------------

BILLION_LAUGHS = """
id: bomb
namespace: company.team
variables:
  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


def test_alias_bomb_is_refused_fast() -> None:
    # Expanded, the document would not fit in memory: an answer at all means it was refused unexpanded.
    errors = errors_of(BILLION_LAUGHS)
    assert len(errors) == 1
    assert "alias bomb" in errors[0].message
    assert errors[0].line is not None and 4 <= errors[0].line <= 12


def test_a_few_aliases_are_fine() -> None:
    flow = parse(
        """
        id: demo
        namespace: company.team
        variables:
          common: &common {region: eu}
          copy: *common
        tasks:
          - &hello {id: hello, type: io.kestra.plugin.core.log.Log, message: hi}
          - <<: *hello
            id: again
        """
    )
    assert flow.variables == {"common": {"region": "eu"}, "copy": {"region": "eu"}}
    assert [(task.id, task.props["message"]) for task in flow.tasks] == [("hello", "hi"), ("again", "hi")]


def test_python_tag_is_refused() -> None:
    text = wrap_tasks(
        """
        - !!python/object/apply:os.system ["echo owned"]
        """
    )
    error = error_at(text, "Python tags", 4, 5, "tasks[0]")
    assert "!!python/object/apply:os.system" in error.message


def test_unknown_tag_is_refused() -> None:
    text = """
    id: !secret demo
    namespace: company.team
    tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: hi}]
    """
    error_at(text, "Unsupported YAML tag `!secret`", 1, 5, "id")


def test_duplicate_keys_point_at_the_second_one() -> None:
    text = wrap_tasks(
        """
        - id: t
          type: io.kestra.plugin.core.log.Log
          message: one
          message: two
        """
    )
    error = error_at(text, "Duplicate key `message`", 7, 5, "tasks[0].message")
    assert "already set on line 6" in error.message


def test_yaml_syntax_error_has_yaml_position() -> None:
    text = """
    id: demo
    namespace: company.team
    tasks:
      - id: t
       type: io.kestra.plugin.core.log.Log
    """
    error = error_at(text, "Invalid YAML", 5, 4)
    assert error.yaml_path == ""


def test_tabs_get_a_hint() -> None:
    (error,) = errors_of("id: demo\n\tnamespace: company.team\n")
    assert "use spaces" in error.message and error.line == 2


@pytest.mark.parametrize(
    ("text", "fragment", "line"),
    [
        ("", "The file is empty", 1),
        ("# only a comment\n", "The file is empty", 1),
        ("- id: t\n", "A flow is a mapping", 1),
        ("just text\n", "A flow is a mapping", 1),
        ("id: a\nnamespace: b\n---\nid: c\n", "more than one YAML document", 3),
    ],
)
def test_document_shape(text: str, fragment: str, line: int) -> None:
    (error,) = errors_of(text)
    assert fragment in error.message
    assert error.line == line


def test_deep_nesting_is_refused() -> None:
    nested = "".join("  " * level + f"k{level}:\n" for level in range(parser_yaml.MAX_DEPTH + 5))
    errors = errors_of("id: demo\nnamespace: company.team\nvariables:\n" + textwrap.indent(nested, "  "))
    assert any("nested more than" in error.message for error in errors)


def test_yes_no_and_dates_stay_text() -> None:
    flow = parse(
        """
        id: demo
        namespace: company.team
        variables: {answer: yes, switch: on, day: 2024-01-31, flag: true, ratio: 1.5}
        tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: hi}]
        """
    )
    assert flow.variables == {
        "answer": "yes",
        "switch": "on",
        "day": "2024-01-31",
        "flag": True,
        "ratio": 1.5,
    }


def test_pure_python_loader_behaves_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    with_libyaml = parse(COMPLEX)
    monkeypatch.setattr(parser_yaml, "_LOADER", yaml.SafeLoader)
    assert parse(COMPLEX) == with_libyaml
    assert [task.position for task in parse(COMPLEX).all_tasks()] == [
        task.position for task in with_libyaml.all_tasks()
    ]
    text = wrap_tasks(
        """
        - id: t
          type: io.kestra.plugin.core.log.Log
          message: one
          message: two
        """
    )
    error_at(text, "Duplicate key `message`", 7, 5)


def test_text_over_the_size_cap_is_refused() -> None:
    text = "id: demo\nnamespace: company.team\n# " + "x" * MAX_FLOW_BYTES + "\n"
    with pytest.raises(FlowParseError) as caught:
        parse_flow(text, "big.yml")
    (error,) = caught.value.errors
    assert error.path == "big.yml" and "1,000,000-byte limit" in error.message


def test_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    big.write_text("id: demo\n# " + "x" * MAX_FLOW_BYTES)
    with pytest.raises(FlowParseError) as caught:
        parse_flow_file(big)
    (error,) = caught.value.errors
    assert error.path == str(big) and "limit" in error.message


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(FlowParseError, match="Cannot read the file"):
        parse_flow_file(tmp_path / "missing.yml")
    latin = tmp_path / "latin.yml"
    latin.write_bytes(b"id: demo\ndescription: caf\xe9\n")
    with pytest.raises(FlowParseError) as caught:
        parse_flow_file(latin)
    (error,) = caught.value.errors
    assert (error.line, error.column) == (2, 17) and "UTF-8" in error.message


def test_parse_flow_file_keeps_source_and_path(tmp_path: Path) -> None:
    path = tmp_path / "hello.yml"
    path.write_text(flow_text(wrap_tasks("- {id: t, type: io.kestra.plugin.core.log.Log, message: hi}\n")))
    flow = parse_flow_file(path)
    assert flow.path == str(path) and flow.source == path.read_text()


# ---------------------------------------------------------------------------------------------
# The flow's own properties
# ---------------------------------------------------------------------------------------------


def test_unknown_flow_property_with_suggestion() -> None:
    text = wrap_tasks("- {id: t, type: io.kestra.plugin.core.log.Log, message: hi}\n") + "trigers: []\n"
    error = error_at(text, "Unknown property `trigers` on the flow", 5, 1, "trigers")
    assert error.message.endswith("Did you mean `triggers`?")


@pytest.mark.parametrize(
    ("header", "fragment", "line", "column"),
    [
        ("id: my flow\nnamespace: company.team\n", "Flow id `my flow` is invalid", 1, 5),
        ("id: -flow\nnamespace: company.team\n", "^[a-zA-Z0-9][a-zA-Z0-9._-]*$", 1, 5),
        ("id: demo\nnamespace: Company.Team\n", "namespaces are lower case", 2, 12),
        ("id: demo\nnamespace: company/team\n", "^[a-z0-9][a-z0-9._-]*$", 2, 12),
        ("id: demo\nnamespace: " + "a" * 151 + "\n", "at most 150 characters", 2, 12),
        ("namespace: company.team\n", "The flow has no `id`", 1, 1),
        ("id: demo\n", "The flow has no `namespace`", 1, 1),
    ],
)
def test_flow_id_and_namespace(header: str, fragment: str, line: int, column: int) -> None:
    error_at(
        header + "tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: hi}]\n",
        fragment,
        line,
        column,
    )


def test_dotted_flow_ids_are_valid_as_in_kestra() -> None:
    flow = parse(HEAD.replace("id: demo", "id: etl.daily"))
    assert flow.id == "etl.daily"


@pytest.mark.parametrize("tasks", ["", "tasks: []\n"])
def test_flow_needs_tasks(tasks: str) -> None:
    error_at(
        "id: demo\nnamespace: company.team\n" + tasks,
        "The flow has no tasks",
        3 if tasks else 1,
        8 if tasks else 1,
    )


def test_flow_revision_is_accepted_and_ignored() -> None:
    flow = parse(HEAD + "revision: 12\n")
    assert flow.revision == 1


def test_reserved_labels_are_refused_in_both_forms() -> None:
    text = """
    id: demo
    namespace: company.team
    labels:
      system.correlationId: x
    tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: hi}]
    """
    error_at(text, "reserved `system.` prefix", 4, 3, 'labels["system.correlationId"]')
    text = """
    id: demo
    namespace: company.team
    labels:
      - key: system.username
        value: x
      - key: ok
    tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: hi}]
    """
    error_at(text, "reserved `system.` prefix", 4, 10, "labels[0].key")
    error_at(text, "Label `ok` has no value", 6, 5, "labels[1].value")


def test_a_listener_without_tasks_is_refused() -> None:
    """Kestra's Listener declares `tasks` @NotEmpty (core/.../models/listeners/Listener.java)."""
    text = HEAD + "listeners:\n  - description: nothing to do\n    tasks: []\n"
    error_at(text, "A listener needs at least one task in `tasks`", 5, 5, "listeners[0]")


def test_a_flow_may_mark_itself_read_only() -> None:
    """`system.readOnly` is the one system label a flow sets itself: Kestra's UI shows such a flow
    read-only (Label.READ_ONLY in core/.../models/Label.java; Kestra's "System labels" docs)."""
    flow = parse(HEAD.replace("tasks:", 'labels:\n  system.readOnly: "true"\ntasks:', 1))
    assert [(label.key, label.value) for label in flow.labels] == [("system.readOnly", "true")]


def test_concurrency_rules() -> None:
    text = wrap_tasks("- {id: t, type: io.kestra.plugin.core.log.Log, message: hi}\n") + (
        "concurrency:\n  limit: 0\n  behavior: DROP\n"
    )
    error_at(text, "`concurrency.limit` must be an integer >= 1", 6, 10, "concurrency.limit")
    error_at(
        text, "Unknown concurrency behavior `DROP`: use QUEUE, CANCEL, FAIL", 7, 13, "concurrency.behavior"
    )
    text = (
        wrap_tasks("- {id: t, type: io.kestra.plugin.core.log.Log, message: hi}\n")
        + "concurrency: {behavior: FAIL}\n"
    )
    error_at(text, "`concurrency` needs a `limit`", 5, 14)


def test_outputs_need_id_type_and_value() -> None:
    text = wrap_tasks("- {id: t, type: io.kestra.plugin.core.log.Log, message: hi}\n") + flow_text(
        """
        outputs:
          - id: result
            type: STRING
          - id: result
            type: TEXT
            value: x
        """
    )
    error_at(text, "Output `result` has no `value`", 6, 5, "outputs[0]")
    error_at(text, "Duplicate output id `result`", 8, 9, "outputs[1].id")
    error_at(text, "Unknown type `TEXT` on output `result`", 9, 11, "outputs[1].type")


def test_variables_must_be_a_mapping() -> None:
    text = wrap_tasks("- {id: t, type: io.kestra.plugin.core.log.Log, message: hi}\n") + "variables: [a, b]\n"
    error_at(text, "`variables` must be a mapping", 5, 12)


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def inputs_flow(inputs: str) -> str:
    """Inputs start on line 5 (after the three header lines and `inputs:`)."""
    return HEAD + "inputs:\n" + textwrap.indent(flow_text(inputs), "  ")


def test_input_type_is_required_and_known() -> None:
    text = inputs_flow(
        """
        - id: a
        - id: b
          type: string
        """
    )
    error_at(text, "The input `a` has no `type`", 5, 5, "inputs[0]")
    error = error_at(text, "Unknown type `string` on input `b`", 7, 11, "inputs[1].type")
    assert "STRING, INT, FLOAT" in error.message and error.message.endswith("Did you mean `STRING`?")


def test_input_ids() -> None:
    text = inputs_flow(
        """
        - id: a
          type: STRING
        - id: a
          type: INT
        - type: INT
        - id: bad id
          type: INT
        """
    )
    error_at(text, "Duplicate input id `a`", 7, 9, "inputs[1].id")
    error_at(text, "An input has no `id`", 9, 5, "inputs[2]")
    error_at(text, "Input id `bad id` is invalid", 10, 9, "inputs[3].id")


def test_choice_inputs_need_values_unless_expression() -> None:
    text = inputs_flow(
        """
        - id: pick
          type: SELECT
        - id: many
          type: MULTISELECT
          expression: "{{ kv('choices') }}"
        - id: old
          type: MULTISELECT
          options: [a, b]
        - id: letter
          type: ENUM
          values: abc
        """
    )
    errors = errors_of(text)
    assert [str(error) for error in errors] == [
        "flow.yml:5:5: inputs[0]: Input `pick` of type SELECT needs `values` (the list of choices) or an "
        "`expression` that computes them",
        "flow.yml:15:13: inputs[3].values: `values` must be a list of choices, not text",
    ]


def test_array_inputs_need_an_item_type_and_validators_must_compile() -> None:
    text = inputs_flow(
        """
        - id: list
          type: ARRAY
        - id: code
          type: STRING
          validator: "[a-z"
        - id: named
          type: STRING
          validator: "(?<word>[a-z]+)"
        """
    )
    errors = errors_of(text)
    assert len(errors) == 2
    error_at(text, "needs `itemType`", 5, 5, "inputs[0]")
    error_at(text, "not a valid regular expression", 9, 16, "inputs[1].validator")


def test_input_unknown_property_and_depends_on() -> None:
    text = inputs_flow(
        """
        - id: country
          type: STRING
          requird: false
        - id: city
          type: SELECT
          expression: "{{ cities[inputs.country] }}"
          dependsOn:
            inputs: [countri]
        """
    )
    error = error_at(text, "Unknown property `requird` on input `country`", 7, 5, "inputs[0].requird")
    assert error.message.endswith("Did you mean `required`?")
    error = error_at(text, "depends on `countri`", 12, 16, "inputs[1].dependsOn.inputs[0]")
    assert error.message.endswith("Did you mean `country`?")


# ---------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------


def test_task_needs_id_and_type() -> None:
    text = wrap_tasks(
        """
        - type: io.kestra.plugin.core.log.Log
          message: hi
        - id: no_type
          message: hi
        - just text
        """
    )
    error_at(text, "A task has no `id`", 4, 5, "tasks[0]")
    error_at(text, "Task `no_type` has no `type`", 6, 5, "tasks[1]")
    error_at(text, "A task must be a mapping", 8, 5, "tasks[2]")


def test_unknown_task_type_with_suggestion() -> None:
    text = wrap_tasks(
        """
        - id: t
          type: io.kestra.plugin.core.log.Logg
        - id: u
          type: com.example.Nothing
        """
    )
    error = error_at(
        text, "Unknown task type `io.kestra.plugin.core.log.Logg` on task `t`", 5, 11, "tasks[0].type"
    )
    assert error.message.endswith("Did you mean `io.kestra.plugin.core.log.Log`?")
    error = error_at(text, "Unknown task type `com.example.Nothing`", 7, 11)
    assert "install the plugin" in error.message


def test_unknown_task_property_with_suggestion() -> None:
    text = wrap_tasks(
        """
        - id: t
          type: io.kestra.plugin.core.log.Log
          message: hi
          levl: WARN
        """
    )
    error = error_at(
        text, "Unknown property `levl` on task `t` (io.kestra.plugin.core.log.Log)", 7, 5, "tasks[0].levl"
    )
    assert error.message.endswith("Did you mean `level`?")


def test_missing_required_task_property() -> None:
    text = wrap_tasks(
        """
        - id: call
          type: io.kestra.plugin.core.flow.Subflow
          namespace: company.team
        """
    )
    error_at(text, "Task `call` (Subflow) is missing the required property `flowId`", 4, 5, "tasks[0]")


@pytest.mark.parametrize("task_id", ["my task", "_hidden", "a.b"])
def test_task_id_pattern(task_id: str) -> None:
    text = wrap_tasks(f"- id: '{task_id}'\n  type: io.kestra.plugin.core.log.Log\n  message: hi\n")
    error = error_at(text, f"Task id `{task_id}` is invalid", 4, 9, "tasks[0].id")
    assert "^[a-zA-Z0-9][a-zA-Z0-9_-]*$" in error.message


def test_duplicate_task_ids_anywhere_in_the_tree() -> None:
    text = """
    id: demo
    namespace: company.team
    tasks:
      - id: seq
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: x}
        errors:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: x}
    finally:
      - {id: seq, type: io.kestra.plugin.core.log.Log, message: x}
    listeners:
      - tasks:
          - {id: a, type: io.kestra.plugin.core.log.Log, message: x}
    """
    errors = [error for error in errors_of(text) if "Duplicate task id" in error.message]
    assert [(error.line, error.column, error.yaml_path) for error in errors] == [
        (9, 14, "tasks[0].errors[0].id"),
        (11, 10, "finally[0].id"),
        (14, 14, "listeners[0].tasks[0].id"),
    ]
    assert errors[0].message == (
        "Duplicate task id `a`: ids must be unique in the whole flow (first used on line 7)"
    )


def test_listener_tasks_are_validated_and_kept_raw() -> None:
    flow = parse(
        """
        id: demo
        namespace: company.team
        tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: hi}]
        listeners:
          - conditions: []
            tasks: [{id: notify, type: io.kestra.plugin.core.log.Log, message: done}]
        """
    )
    assert flow.listeners == (
        {"conditions": [], "tasks": [{"id": "notify", "type": LOG, "message": "done"}]},
    )
    text = """
    id: demo
    namespace: company.team
    tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: hi}]
    listeners:
      - tasks: [{id: notify, type: io.kestra.plugin.core.log.Log}]
    """
    error_at(text, "Task `notify` (Log) is missing the required property `message`", 5, 13)


def test_switch_needs_cases() -> None:
    text = wrap_tasks(
        """
        - id: route
          type: io.kestra.plugin.core.flow.Switch
          value: x
        - id: empty
          type: io.kestra.plugin.core.flow.Switch
          value: x
          cases: {}
        """
    )
    error_at(
        text, "Switch task `route` has no cases: add at least one entry under `cases`", 4, 5, "tasks[0].cases"
    )
    error_at(text, "Switch task `empty` has no cases", 10, 12, "tasks[1].cases")


def test_dag_dependencies_must_exist() -> None:
    text = wrap_tasks(
        """
        - id: graph
          type: io.kestra.plugin.core.flow.Dag
          tasks:
            - task: {id: extract, type: io.kestra.plugin.core.log.Log, message: x}
            - task: {id: load, type: io.kestra.plugin.core.log.Log, message: x}
              dependsOn: [extrct]
        """
    )
    error = error_at(text, "depends on `extrct`, which is not a task of this Dag", 9, 21)
    assert error.yaml_path == "tasks[0].tasks[1].dependsOn[0]"
    assert error.message.endswith("Did you mean `extract`?")


def test_dag_cycles_are_named() -> None:
    text = wrap_tasks(
        """
        - id: d
          type: io.kestra.plugin.core.flow.Dag
          tasks:
            - task: {id: a, type: io.kestra.plugin.core.log.Log, message: x}
              dependsOn: [b]
            - task: {id: b, type: io.kestra.plugin.core.log.Log, message: x}
              dependsOn: [a]
            - task: {id: c, type: io.kestra.plugin.core.log.Log, message: x}
              dependsOn: [c]
        """
    )
    error_at(text, "Dag `d` has a cyclic dependency: a -> b -> a", 10, 21, "tasks[0].tasks[1].dependsOn[0]")
    error_at(text, "Dag `d` has a cyclic dependency: c -> c", 12, 21)


def test_dag_entries_need_a_task() -> None:
    text = wrap_tasks(
        """
        - id: d
          type: io.kestra.plugin.core.flow.Dag
          tasks:
            - dependsOn: []
            - task: {id: a, type: io.kestra.plugin.core.log.Log, message: x}
              after: [b]
        """
    )
    error_at(text, "An entry of Dag `d` has no `task`", 7, 9)
    error_at(text, "Unknown property `after` on an entry of Dag `d`", 9, 9)


def test_required_child_list_must_not_be_empty() -> None:
    text = wrap_tasks("- id: seq\n  type: io.kestra.plugin.core.flow.Sequential\n  tasks: []\n")
    error_at(text, "`tasks` of task `seq` is empty", 6, 12, "tasks[0].tasks")


def test_common_task_properties_are_checked() -> None:
    text = wrap_tasks(
        """
        - id: t
          type: io.kestra.plugin.core.log.Log
          message: hi
          disabled: "no"
          logLevel: VERBOSE
          timeout: 5 minutes
        """
    )
    error_at(text, "`disabled` must be `true` or `false`", 7, 15, "tasks[0].disabled")
    error_at(text, "Unknown log level `VERBOSE`: use one of TRACE, DEBUG, INFO, WARN, ERROR", 8, 15)
    error_at(text, "`timeout`: '5 minutes' is not an ISO 8601 duration", 9, 14, "tasks[0].timeout")


# ---------------------------------------------------------------------------------------------
# Retry
# ---------------------------------------------------------------------------------------------


def retry_flow(retry: str) -> str:
    """A task whose `retry:` mapping starts on line 8, indented by 6."""
    task = "- id: t\n  type: io.kestra.plugin.core.log.Log\n  message: hi\n  retry:\n"
    return wrap_tasks(task + textwrap.indent(flow_text(retry), "    "))


@pytest.mark.parametrize(
    ("retry", "fragment", "line", "column"),
    [
        ("interval: PT1S\n", "`retry` has no `type`: use `constant`, `exponential` or `random`", 8, 7),
        ("type: linear\n", "Unknown retry type `linear`", 8, 13),
        ("type: constant\n", "A retry of type `constant` needs `interval`", 8, 7),
        ("type: exponential\ninterval: PT1S\n", "A retry of type `exponential` needs `maxInterval`", 8, 7),
        ("type: random\nmaxInterval: PT1S\n", "A retry of type `random` needs `minInterval`", 8, 7),
        ("type: constant\ninterval: PT1S\nmaxAttempt: 0\n", "`maxAttempt` must be an integer >= 1", 10, 19),
        ("type: constant\ninterval: soon\n", "`interval`: 'soon' is not an ISO 8601 duration", 9, 17),
        ("type: constant\ninterval: -PT1S\n", "`interval` must not be negative", 9, 17),
        ("type: constant\ninterval: PT1S\nbehavior: LATER\n", "Unknown retry behavior `LATER`", 10, 17),
        ("type: constant\ninterval: PT1S\nmaxAttemps: 2\n", "Did you mean `maxAttempts`?", 10, 7),
    ],
)
def test_retry_rules(retry: str, fragment: str, line: int, column: int) -> None:
    error_at(retry_flow(retry), fragment, line, column)


def test_retry_max_attempts_alias() -> None:
    flow = parse(retry_flow("type: random\nminInterval: PT1S\nmaxInterval: PT2S\nmaxAttempts: 3\n"))
    assert flow.tasks[0].retry == RetrySpec(
        "random", min_interval=timedelta(seconds=1), max_interval=timedelta(seconds=2), max_attempt=3
    )


# ---------------------------------------------------------------------------------------------
# Triggers
# ---------------------------------------------------------------------------------------------


def triggers_flow(triggers: str) -> str:
    """Triggers start on line 5; the only task is `t`."""
    return HEAD + "triggers:\n" + textwrap.indent(flow_text(triggers), "  ")


@pytest.mark.parametrize(
    ("cron", "fragment"),
    [
        ("61 * * * *", "the minute field `61` is invalid (allowed: 0-59)"),
        ("0 25 * * *", "the hour field `25` is invalid"),
        ("0 0 * * 9", "the day-of-week field `9` is invalid"),
        ("0 0 * *", "it has 4 fields, expected 5"),
        ("0 0 0 * * *", "set `withSeconds: true`"),
        ("@sometimes", "unknown nickname"),
    ],
)
def test_bad_cron_is_refused(cron: str, fragment: str) -> None:
    text = triggers_flow(f"- id: sched\n  type: io.kestra.plugin.core.trigger.Schedule\n  cron: '{cron}'\n")
    error = error_at(text, fragment, 7, 11, "triggers[0].cron")
    assert error.message.startswith(f"Invalid cron expression `{cron}` on trigger `sched`")


@pytest.mark.parametrize(
    "extra",
    [
        "cron: '*/15 * * * *'",
        "cron: '@daily'",
        "cron: '@annually'",
        "cron: '30 0 9 * * MON'\n  withSeconds: true",
    ],
)
def test_good_crons(extra: str) -> None:
    flow = parse(triggers_flow(f"- id: sched\n  type: io.kestra.plugin.core.trigger.Schedule\n  {extra}\n"))
    assert flow.triggers[0].type == SCHEDULE


def test_schedule_properties_are_checked() -> None:
    text = triggers_flow(
        """
        - id: sched
          type: io.kestra.plugin.core.trigger.Schedule
          cron: "0 9 * * *"
          timezone: Mars/Olympus
          cronn: x
        - id: no_cron
          type: io.kestra.plugin.core.trigger.Schedule
        """
    )
    error_at(text, "Unknown time zone `Mars/Olympus`", 8, 15, "triggers[0].timezone")
    error = error_at(text, "Unknown property `cronn` on Schedule trigger `sched`", 9, 5)
    assert error.message.endswith("Did you mean `cron`?")
    error_at(text, "Schedule trigger `no_cron` has no `cron`", 10, 5, "triggers[1]")


def test_trigger_ids_and_types() -> None:
    text = triggers_flow(
        """
        - id: hook
          type: io.kestra.plugin.core.trigger.Webhook
          key: anything-goes
        - id: hook
          type: io.kestra.plugin.core.trigger.Webhook
          key: another
        - id: t
          type: io.kestra.plugin.core.trigger.Flow
        - type: io.kestra.plugin.core.trigger.Flow
        - id: typeless
        """
    )
    errors = errors_of(text)
    assert [(error.line, error.column) for error in errors] == [(8, 9), (11, 9), (13, 5), (14, 5)]
    assert "Duplicate trigger id `hook`" in errors[0].message
    assert "Trigger id `t` is also the id of a task" in errors[1].message
    assert "A trigger has no `id`" in errors[2].message
    assert "Trigger `typeless` has no `type`" in errors[3].message


@pytest.mark.parametrize(
    ("written", "hint"),
    [
        ("io.kestra.plugin.core.trigger.Sheduler", "Did you mean `io.kestra.plugin.core.trigger.Schedule`?"),
        ("io.kestra.plugin.scripts.python.ScriptTrigger", "This engine fires"),
        ("io.kestra.plugin.gcp.pubsub.Trigger", "This engine fires"),
        (
            "io.kestra.core.models.triggers.types.Webhok",
            "Did you mean `io.kestra.plugin.core.trigger.Webhook`?",
        ),
        ("com.example.Made.Up", "This engine fires"),
    ],
)
def test_an_unknown_trigger_type_is_refused_like_an_unknown_task(written: str, hint: str) -> None:
    """Kestra refuses a flow whose trigger type no plugin provides (its JSON type resolution fails);
    a trigger accepted but never fired would be worse than the error."""
    text = triggers_flow(f"- id: t1\n  type: {written}\n  interval: PT1M\n")
    error = error_at(text, f"Unknown trigger type `{written}` on trigger `t1`.", 6, 11, "triggers[0].type")
    assert hint in error.message


# ---------------------------------------------------------------------------------------------
# All errors at once
# ---------------------------------------------------------------------------------------------


def test_every_error_of_a_file_is_reported_in_source_order() -> None:
    path = INVALID_FLOWS / "many_errors.yml"
    with pytest.raises(FlowParseError) as caught:
        parse_flow_file(path)
    errors = caught.value.errors
    assert [(error.line, error.column) for error in errors] == sorted(
        (e.line or 0, e.column or 0) for e in errors
    )
    assert [error.yaml_path for error in errors] == [
        "namespace",
        "inputs[0].type",
        "tasks[0].mesage",
        "tasks[0].retry.interval",
        "tasks[1].id",
        "triggers[0].cron",
        "concurrency.limit",
    ]
    assert all(error.path == str(path) for error in errors)


# ---------------------------------------------------------------------------------------------
# Across flows
# ---------------------------------------------------------------------------------------------


def subflow(flow_id: str, *calls: str, namespace: str = "company.team") -> Flow:
    tasks = (
        "".join(
            f"  - id: call_{index}\n    type: {SUBFLOW}\n"
            f'    namespace: company.team\n    flowId: "{target}"\n'
            for index, target in enumerate(calls)
        )
        or f"  - id: log\n    type: {LOG}\n    message: hi\n"
    )
    return parse_flow(f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n{tasks}", f"{flow_id}.yml")


def test_a_flow_calling_itself_is_refused() -> None:
    (error,) = validate_flows([subflow("loop", "loop")])
    assert (error.path, error.line, error.column, error.yaml_path) == ("loop.yml", 4, 5, "tasks[0]")
    assert error.message.startswith(
        "Subflow task `call_0` leads back to flow `company.team.loop` "
        "(company.team.loop -> company.team.loop)"
    )


def test_a_cycle_through_several_flows_is_reported_on_each() -> None:
    errors = validate_flows([subflow("a", "b"), subflow("b", "c"), subflow("c", "a"), subflow("d", "a")])
    assert sorted(error.path or "" for error in errors) == ["a.yml", "b.yml", "c.yml"]
    first = next(error for error in errors if error.path == "a.yml")
    assert "company.team.a -> company.team.b -> company.team.c -> company.team.a" in first.message


def test_chains_without_cycles_and_expressions_are_fine() -> None:
    flows = [subflow("a", "b"), subflow("b"), subflow("c", "{{ inputs.next }}"), subflow("x", "a", "a")]
    assert validate_flows(flows) == []
    # Same flow id in another namespace is another flow.
    assert validate_flows([subflow("a", "a", namespace="company.other")]) == []
