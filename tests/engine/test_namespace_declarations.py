"""CreateNamespace and UpdateNamespace: namespace settings written by tasks into the same
`_namespace.yaml` files people write, read by the engine at once, merged on update; and what a
declaration may hold (permissions, the article's taskDefaults and flowDefaults)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from tiercel.engine.access import Access, Permission, Principal
from tiercel.engine.model import NamespacePermission, StateType
from tiercel.engine.parser import FlowParseError
from tiercel.engine.parser.namespace import parse_namespace

from .helpers import logs_of, messages, one_run, run, running_engine
from .test_parser import parse

# The founding article's "Practical Implementation" (kestra-architecture-article.txt, lines 75-108),
# with two mends the validator asks for: a task id cannot hold an expression (`create-subnamespace-
# {{ task.value }}`), and a loop's value is `taskrun.value` (`task` has no `value`).
CREATE_NAMESPACES = """
id: create-namespaces
namespace: system.admin
description: Create organizational namespace structure

tasks:
  - id: create-finance-namespace
    type: io.kestra.plugin.core.namespace.CreateNamespace
    namespace: acme.finance
    description: "Finance department workflows"
    variables:
      department: finance
      sla: business_hours
      owner: finance-team@acme.com

  - id: create-finance-subnamespaces
    type: io.kestra.plugin.core.flow.EachSequential
    value: ["reports", "reconciliation", "compliance", "forecasting"]
    tasks:
      - id: create-subnamespace
        type: io.kestra.plugin.core.namespace.CreateNamespace
        namespace: "acme.finance.{{ taskrun.value }}"
        description: "Finance {{ taskrun.value }} workflows"

  - id: set-permissions
    type: io.kestra.plugin.core.namespace.UpdateNamespace
    namespace: acme.finance.reports
    permissions:
      - username: alice@acme.com
        permission: EXECUTE
      - username: bob@acme.com
        permission: READ
      - group: finance-managers
        permission: OWNER
"""

# The article's "Namespace Configuration Options" (lines 112-146), as written.
CONFIGURE_NAMESPACE = """
id: configure-namespace
namespace: system.config
description: Configure namespace with advanced settings

tasks:
  - id: create-namespace-with-advanced-config
    type: io.kestra.plugin.core.namespace.CreateNamespace
    namespace: acme.data.sensitive
    description: "Namespace for sensitive data processing"
    variables:
      # Custom metadata
      data_classification: PII
      retention_days: 30
      backup_frequency: daily
      compliance: GDPR

    # Task defaults for this namespace
    taskDefaults:
      - type: io.kestra.plugin.scripts.python.Script
        values:
          taskRunner:
            type: io.kestra.plugin.core.runner.Process
            memory: 1Gi
            cpu: 500m
          timeout: PT30M

    # Flow defaults
    flowDefaults:
      triggers:
        - type: io.kestra.plugin.core.trigger.Schedule
          disabled: false
      logging:
        level: INFO
"""

REPORT = """
id: monthly
namespace: acme.finance.reports
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: "{{ namespace.department }}/{{ namespace.sla }}/{{ namespace.description }}"
"""


def _declaration(folder: Path, namespace: str) -> dict[str, object]:
    path = folder / "flows" / Path(*namespace.split(".")) / "_namespace.yaml"
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


async def test_the_articles_namespace_structure_is_declared_and_read_at_once(tmp_path: Path) -> None:
    async with running_engine(tmp_path, CREATE_NAMESPACES, REPORT) as engine:
        execution = await run(engine, "system.admin", "create-namespaces")
        assert execution.state.current is StateType.SUCCESS, messages(await logs_of(engine, execution.id))
        reports = _declaration(tmp_path, "acme.finance.reports")
        assert reports["description"] == "Finance reports workflows"
        assert reports["permissions"] == [
            {"username": "alice@acme.com", "permission": "EXECUTE"},
            {"username": "bob@acme.com", "permission": "READ"},
            {"group": "finance-managers", "permission": "OWNER"},
        ]
        for name in ("reconciliation", "compliance", "forecasting"):
            assert (
                _declaration(tmp_path, f"acme.finance.{name}")["description"] == f"Finance {name} workflows"
            )
        # The engine read them: a flow below inherits the variables, at its next run.
        monthly = await run(engine, "acme.finance.reports", "monthly")
        assert one_run(monthly, "say").outputs == {
            "value": "finance/business_hours/Finance reports workflows"
        }
        granted = engine.folder.namespaces.declared["acme.finance.reports"].permissions
        assert NamespacePermission("group", "finance-managers", "OWNER") in granted
        # ... and what the API, the webhooks and the dashboard ask of it, at once.
        chain = engine.catalog.namespaces.chain
        held = {
            who.name: Access(chain, who).held("acme.finance.reports")
            for who in (
                Principal("alice@acme.com"),
                Principal("bob@acme.com"),
                Principal("cy", frozenset({"finance-managers"})),
            )
        }
        assert held == {
            "alice@acme.com": Permission.EXECUTE,
            "bob@acme.com": Permission.READ,
            "cy": Permission.OWNER,
        }
        assert Access(chain, Principal("alice@acme.com")).held("acme.finance") is None
        # Again: CreateNamespace leaves what exists alone, UpdateNamespace finds nothing to change.
        again = await run(engine, "system.admin", "create-namespaces")
        assert again.state.current is StateType.SUCCESS
        assert one_run(again, "create-finance-namespace").outputs == {
            "namespace": "acme.finance",
            "path": str(tmp_path / "flows" / "acme" / "finance" / "_namespace.yaml"),
            "created": False,
            "changed": False,
        }
        assert one_run(again, "set-permissions").outputs["changed"] is False  # type: ignore[index]


SCRIPT_FLOW = """
id: scrub
namespace: acme.data.sensitive
tasks:
  - id: clean
    type: io.kestra.plugin.scripts.python.Script
    script: print("clean")
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
"""


async def test_the_articles_task_and_flow_defaults_apply_to_the_namespaces_flows(tmp_path: Path) -> None:
    async with running_engine(tmp_path, CONFIGURE_NAMESPACE, SCRIPT_FLOW) as engine:
        execution = await run(engine, "system.config", "configure-namespace")
        assert execution.state.current is StateType.SUCCESS, messages(await logs_of(engine, execution.id))
        declared = _declaration(tmp_path, "acme.data.sensitive")
        assert declared["variables"] == {
            "data_classification": "PII",
            "retention_days": 30,
            "backup_frequency": "daily",
            "compliance": "GDPR",
        }
        assert declared["pluginDefaults"][0]["values"]["timeout"] == "PT30M"  # type: ignore[index]
        scrub = engine.flows[("acme.data.sensitive", "scrub")]
        clean = scrub.tasks_by_id["clean"]
        assert (clean.timeout, clean.log_level) == ("PT30M", "INFO")
        assert scrub.triggers[0].props.get("logLevel") == "INFO"


ADJUST = """
id: adjust
namespace: system.admin
inputs:
  - {id: day, type: STRING}
tasks:
  - id: update
    type: io.kestra.plugin.core.namespace.UpdateNamespace
    namespace: acme.finance
    variables:
      last_processed: "{{ inputs.day }}"
      limits: {rows: 10}
    taskDefaults:
      - type: io.kestra.plugin.core.log.Log
        values: {level: WARN}
    permissions:
      - {username: bob@acme.com, permission: OWNER}
"""
FINANCE = """
description: Finance
variables:
  department: finance
  limits: {rows: 5, cols: 3}
pluginDefaults:
  - type: io.kestra.plugin.core.log.Log
    values: {level: DEBUG}
  - type: io.kestra.plugin.core.debug.Return
    values: {format: x}
permissions:
  - {username: bob@acme.com, permission: READ}
  - {group: auditors, permission: READ}
"""


async def test_an_update_merges_into_a_declaration_written_by_hand(tmp_path: Path) -> None:
    folder = tmp_path / "flows" / "acme" / "finance"
    folder.mkdir(parents=True)
    (folder / "_namespace.yaml").write_text(FINANCE.lstrip())
    async with running_engine(tmp_path, ADJUST) as engine:
        execution = await run(engine, "system.admin", "adjust", {"day": "2026-12-01"})
        assert execution.state.current is StateType.SUCCESS, messages(await logs_of(engine, execution.id))
    declared = _declaration(tmp_path, "acme.finance")
    assert declared["description"] == "Finance"
    assert declared["variables"] == {
        "department": "finance", "limits": {"rows": 10, "cols": 3}, "last_processed": "2026-12-01",
    }  # fmt: skip
    assert declared["pluginDefaults"] == [
        {"type": "io.kestra.plugin.core.debug.Return", "values": {"format": "x"}},
        {"type": "io.kestra.plugin.core.log.Log", "values": {"level": "WARN"}},
    ]
    assert declared["permissions"] == [
        {"group": "auditors", "permission": "READ"},
        {"username": "bob@acme.com", "permission": "OWNER"},
    ]
    first = (folder / "_namespace.yaml").read_text().splitlines()[0]
    assert first.startswith("# Written by task update of system.admin.adjust, execution ")


async def test_a_declaration_the_file_parser_refuses_is_not_written(tmp_path: Path) -> None:
    bad = ADJUST.replace("permission: OWNER", "permission: ADMIN")
    async with running_engine(tmp_path, bad) as engine:
        execution = await run(engine, "system.admin", "adjust", {"day": "x"})
        assert execution.state.current is StateType.FAILED
        logs = messages(await logs_of(engine, execution.id))
    assert any(
        "Namespace `acme.finance` cannot be declared so: " in line and "Permission `ADMIN`" in line
        for line in logs
    )
    assert not (tmp_path / "flows" / "acme").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "permissions: [{username: a, group: b, permission: READ}]",
            "A permission names one `username` or one `group`",
        ),
        (
            "permissions: [{group: b, permission: WRITE}]",
            "Permission `WRITE`: use one of READ, EXECUTE, OWNER",
        ),
        ("flowDefaults: {logging: {level: LOUD}}", "Unknown log level `LOUD`"),
        ("flowDefaults: {schedules: []}", "Unknown property `schedules` on `flowDefaults`"),
        ("flowDefaults: {triggers: [{disabled: true}]}", "An entry of `flowDefaults.triggers` has no `type`"),
    ],
)
def test_a_declaration_is_checked(text: str, message: str) -> None:
    with pytest.raises(FlowParseError) as caught:
        parse_namespace(f"id: acme\n{text}\n", "_namespace.yaml", None)
    assert any(message in error.message for error in caught.value.errors), caught.value.errors


def _updating(namespace: str, settings: str) -> str:
    return f"""
id: adjust
namespace: system.admin
tasks:
  - id: update
    type: io.kestra.plugin.core.namespace.UpdateNamespace
    namespace: "{namespace}"
{settings}
"""


@pytest.mark.parametrize(
    ("namespace", "settings", "message"),
    [
        (
            "acme",
            "    variables: {token: \"{{ secret('API_TOKEN') }}\"}",
            "secret() cannot be written into a namespace",
        ),
        ("a..", "    description: x", "`a..` is not a namespace name"),
        ("acme", '    variables: "just text"', "`variables` must be a mapping, not str"),
    ],
)
async def test_what_cannot_be_declared_fails_the_task_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, namespace: str, settings: str, message: str
) -> None:
    monkeypatch.setenv("SECRET_API_TOKEN", base64.b64encode(b"s3cr3t-value").decode())
    async with running_engine(tmp_path, _updating(namespace, settings)) as engine:
        execution = await run(engine, "system.admin", "adjust")
        logs = messages(await logs_of(engine, execution.id))
    assert execution.state.current is StateType.FAILED
    assert any(message in line for line in logs), logs
    assert not (tmp_path / "flows" / "acme").exists() and not (tmp_path / "flows" / "a").exists()


async def test_a_broken_declaration_in_the_way_is_not_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "flows" / "acme"
    folder.mkdir(parents=True)
    broken = "description: [unclosed\nvariables: {keep: me}\n"
    (folder / "_namespace.yaml").write_text(broken)
    async with running_engine(tmp_path, _updating("acme", "    description: new")) as engine:
        execution = await run(engine, "system.admin", "adjust")
        logs = messages(await logs_of(engine, execution.id))
    assert execution.state.current is StateType.FAILED
    assert any("_namespace.yaml is there already and it has errors: " in line for line in logs), logs
    assert (folder / "_namespace.yaml").read_text() == broken


def test_validation_says_kestra_has_no_such_task() -> None:
    flow = parse(_updating("acme", "    description: x"))
    assert any("is a Tiercel task: Kestra refuses this flow" in warning for warning in flow.warnings)
