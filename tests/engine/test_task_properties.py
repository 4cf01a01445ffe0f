"""The properties each built-in task type accepts are those of Kestra's task class.

Each flow below is a documented example of the class (its `@Example` in kestra-io/kestra,
core/src/main/java/io/kestra/plugin/core/..., or kestra-io/plugin-scripts): it must validate here.
A property the class lacks is refused, and one Tiercel accepts without honouring is a warning.
"""

from __future__ import annotations

import textwrap

import pytest

from tiercel.engine.parser import FlowParseError, parse_flow


def _flow(tasks: str) -> str:
    body = textwrap.indent(textwrap.dedent(tasks).strip(), "  ")
    return f"id: f\nnamespace: company.team\ntasks:\n{body}\n"


# (Kestra class whose @Example it is, the example's tasks)
EXAMPLES: list[tuple[str, str]] = [
    (
        "log/Log.java",
        """
        - id: log
          type: io.kestra.plugin.core.log.Log
          level: DEBUG
          message: "{{ task.id }} > {{ taskrun.startDate }}"
        - id: greeting
          type: io.kestra.plugin.core.log.Log
          message:
            - Kestra team wishes you a great day
            - If you need some help, reach out via Slack
        """,
    ),
    (
        "debug/Echo.java",
        """
        - id: echo
          type: io.kestra.plugin.core.debug.Echo
          level: WARN
          format: "{{ task.id }} > {{ taskrun.startDate }}"
        """,
    ),
    (
        "execution/Fail.java",
        """
        - id: fail
          type: io.kestra.plugin.core.execution.Fail
          errorMessage: Something went wrong, make sure to fix it asap!
        """,
    ),
    (
        "kv/Set.java",
        """
        - id: http_download
          type: io.kestra.plugin.core.http.Download
          uri: https://huggingface.co/datasets/kestra/datasets/raw/main/csv/orders.csv
        - id: kv_set
          type: io.kestra.plugin.core.kv.Set
          key: orders_file
          value: "{{ outputs.http_download.uri }}"
          kvType: STRING
        """,
    ),
    (
        "kv/Get.java",
        """
        - id: kv_get
          type: io.kestra.plugin.core.kv.Get
          key: my_variable
          namespace: company
          errorOnMissing: true
        """,
    ),
    (
        "storage/Split.java",
        """
        - id: by_size
          type: io.kestra.plugin.core.storage.Split
          from: "kestra://long/url/file1.txt"
          bytes: 10MB
        - id: by_rows
          type: io.kestra.plugin.core.storage.Split
          from: "kestra://long/url/file1.txt"
          rows: 1000
        - id: by_parts
          type: io.kestra.plugin.core.storage.Split
          from: "kestra://long/url/file1.txt"
          partitions: 8
        - id: by_regex
          type: io.kestra.plugin.core.storage.Split
          from: "kestra://long/url/logs.txt"
          regexPattern: "\\\\[(\\\\w+)\\\\]"
        """,
    ),
    (
        "log/Fetch.java",
        """
        - id: fetch
          type: io.kestra.plugin.core.log.Fetch
          executionId: "{{ execution.id }}"
          level: ERROR
        - id: fetch_hello
          type: io.kestra.plugin.core.log.Fetch
          level: INFO
          tasksId:
            - fetch
        """,
    ),
    (
        "log/PurgeLogs.java",
        """
        - id: purge
          type: io.kestra.plugin.core.log.PurgeLogs
          endDate: "{{ now() | dateAdd(-1, 'MONTHS') }}"
          logLevels: [TRACE, DEBUG, INFO, WARN]
        """,
    ),
    (
        "namespace/UploadFiles.java",
        """
        - id: upload
          type: io.kestra.plugin.core.namespace.UploadFiles
          filesMap:
            LICENCE: "kestra://some/file"
          namespace: "{{ flow.namespace }}"
        """,
    ),
    (
        "namespace/DeleteFiles.java",
        """
        - id: delete
          type: io.kestra.plugin.core.namespace.DeleteFiles
          namespace: tutorial
          files:
            - "**.upl"
        """,
    ),
    (
        "flow/Pause.java",
        """
        - id: pause
          type: io.kestra.plugin.core.flow.Pause
          pauseDuration: PT5M
          behavior: WARN
        """,
    ),
    (
        "http/Request.java",
        """
        - id: send_data
          type: io.kestra.plugin.core.http.Request
          uri: https://dummyjson.com/products/add
          method: POST
          contentType: application/json
          body: '{"title": "Kestra Pen"}'
        """,
    ),
    (
        "plugin-scripts shell/Commands.java",
        """
        - id: commands
          type: io.kestra.plugin.scripts.shell.Commands
          commands:
            - echo "Hello John" > name.txt
          outputFiles:
            - "name.txt"
        """,
    ),
]


@pytest.mark.parametrize("tasks", [tasks for _, tasks in EXAMPLES], ids=[name for name, _ in EXAMPLES])
def test_kestra_examples_validate(tasks: str) -> None:
    flow = parse_flow(_flow(tasks), "f.yml")
    assert flow.tasks


# (type, a property its Kestra class does not have)
REFUSED: list[tuple[str, str]] = [
    ("io.kestra.plugin.core.log.Log", "format: x"),
    ("io.kestra.plugin.core.debug.Return", "message: x"),
    ("io.kestra.plugin.core.log.Fetch", "taskId: t"),
    ("io.kestra.plugin.core.kv.Get", "value: x"),
    ("io.kestra.plugin.core.storage.Split", "lines: 3"),
    ("io.kestra.plugin.scripts.node.Script", "dependencies: [colors]"),
    ("io.kestra.plugin.core.flow.Pause", "condition: x"),
]


@pytest.mark.parametrize(("type_name", "prop"), REFUSED)
def test_a_property_kestra_lacks_is_refused(type_name: str, prop: str) -> None:
    name = prop.split(":")[0]
    with pytest.raises(FlowParseError, match=name):
        parse_flow(_flow(f"- id: t\n  type: {type_name}\n  {prop}\n"), "f.yml")


def test_a_working_directory_has_no_task_runner_of_its_own() -> None:
    tasks = """
    - id: wdir
      type: io.kestra.plugin.core.flow.WorkingDirectory
      containerImage: ubuntu
      tasks:
        - {id: t, type: io.kestra.plugin.core.log.Log, message: x}
    """
    with pytest.raises(FlowParseError, match="containerImage"):
        parse_flow(_flow(tasks), "f.yml")


def test_echo_needs_no_format() -> None:
    assert parse_flow(_flow("- {id: e, type: io.kestra.plugin.core.debug.Echo}"), "f.yml").tasks


@pytest.mark.parametrize(
    ("tasks", "warned"),
    [
        (
            "- {id: p, type: io.kestra.plugin.core.storage.PurgeCurrentExecutionFiles, "
            "includeChildExecutions: true, includeStates: true}",
            ["includeChildExecutions", "includeStates"],
        ),
        (
            "- {id: f, type: io.kestra.plugin.core.log.Fetch, namespace: a, flowId: b, executionId: c}",
            ["namespace", "flowId"],
        ),
        (
            "- {id: py, type: io.kestra.plugin.scripts.python.Script, script: 'print(1)', "
            "uvInstallerSha256: abc, uvInstallerVersion: '0.5.0'}",
            ["uvInstallerSha256", "uvInstallerVersion"],
        ),
        (
            "- {id: py, type: io.kestra.core.tasks.scripts.Python, packageManager: PIP}",
            ["packageManager"],
        ),
    ],
)
def test_accepted_but_not_honoured_is_a_warning(tasks: str, warned: list[str]) -> None:
    warnings = parse_flow(_flow(tasks), "f.yml").warnings
    assert [warning.split(": ", 2)[1].rsplit(".", 1)[-1] for warning in warnings] == warned
