"""The expression console's renders: an expression against a stored execution, as its tasks saw it."""

from __future__ import annotations

import base64
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tiercel.engine.engine import Engine
from tiercel.engine.errors import EngineCommandError
from tiercel.engine.evaluation import error_position
from tiercel.engine.secrets import Secrets
from tiercel.engine.store import Store

from ..postgres import engine_store
from .helpers import one_run, run

FLOW = """
id: report
namespace: acme.sales
inputs:
  - {id: region, type: STRING, defaults: EMEA}
tasks:
  - id: total
    type: io.kestra.plugin.core.debug.Return
    format: "{{ 40 + 2 }}"
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [a, b]
    tasks:
      - id: shout
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value | upper }}"
  - id: token
    type: io.kestra.plugin.core.debug.Return
    format: "{{ secret('API_TOKEN') }}"
"""


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "report.yml").write_text(textwrap.dedent(FLOW))
    token = base64.b64encode(b"tok-7f3a9c").decode()
    store = await Store.open(engine_store(tmp_path))
    started = Engine(store, flows_dir=flows, secrets=Secrets(environ={"SECRET_API_TOKEN": token}))
    await started.start(control=False)
    try:
        yield started
    finally:
        await started.stop()


async def test_an_expression_sees_the_execution_and_a_task_run_sees_its_own_variables(engine: Engine) -> None:
    execution = await run(engine, "acme.sales", "report", {"region": "APAC"})
    whole = await engine.evaluate(execution.id, None, "{{ inputs.region }}: {{ outputs.total.value }}")
    assert (whole.result, whole.error) == ("APAC: 42", None)
    shout = one_run(execution, "shout", "b")
    seen = await engine.evaluate(execution.id, shout.id, "{{ task.id }} {{ taskrun.value }} {{ taskrun.id }}")
    assert seen.result == f"shout b {shout.id}"
    listed = await engine.evaluate(execution.id, None, "{{ outputs.shout | keys | sort | join(',') }}")
    assert listed.result == "a,b"


async def test_a_failing_expression_names_its_error_and_where_it_is(engine: Engine) -> None:
    execution = await run(engine, "acme.sales", "report")
    missing = await engine.evaluate(execution.id, None, "total is {{ outputs.totl.value }}")
    assert missing.result is None and "Unable to find `totl`" in (missing.error or "")
    assert (missing.line, missing.column) == (1, 21)
    broken = await engine.evaluate(execution.id, None, "one\n{{ 1 + }}")
    assert broken.error is not None and "Unexpected end of expression" in broken.error and broken.line == 2


async def test_secrets_are_refused_and_what_holds_one_is_masked(engine: Engine) -> None:
    execution = await run(engine, "acme.sales", "report")
    refused = await engine.evaluate(execution.id, None, "{{ secret('API_TOKEN') }}")
    assert refused.result is None and "secret() is not available here" in (refused.error or "")
    # An output made of a secret keeps its real value in the execution, never on a screen.
    shown = await engine.evaluate(execution.id, None, "token={{ outputs.token.value }}")
    assert shown.result is not None and "tok-7f3a9c" not in shown.result and shown.result.startswith("token=")
    # Masked before the render too: a filter cannot turn it past recognition.
    for turned in (
        "{{ outputs.token.value | reverse }}",
        "{{ outputs.token.value | split('') | join(' ') }}",
    ):
        found = await engine.evaluate(execution.id, None, turned)
        assert (
            found.result is not None and "c9a3f7-kot" not in found.result and "t o k - 7" not in found.result
        )


async def test_a_paused_executions_secret_input_stays_masked(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "flows" / "gate.yml").write_text(
        "id: gate\nnamespace: acme.sales\ninputs:\n  - {id: pwd, type: SECRET}\n"
        "tasks:\n  - {id: wait, type: io.kestra.plugin.core.flow.Pause}\n"
    )
    await engine.sync_flows()
    execution = await run(engine, "acme.sales", "gate", {"pwd": "hunter2-superpass"})
    assert execution.state.current.value == "PAUSED"
    found = await engine.evaluate(execution.id, None, "{{ inputs.pwd }} {{ inputs.pwd | reverse }}")
    assert found.result is not None and "hunter2" not in found.result and "2retnuh" not in found.result


async def test_an_unknown_execution_or_task_run_is_an_error(engine: Engine) -> None:
    execution = await run(engine, "acme.sales", "report")
    with pytest.raises(EngineCommandError, match="no execution `nope`"):
        await engine.evaluate("nope", None, "{{ 1 }}")
    with pytest.raises(EngineCommandError, match="has no task run `zzz`"):
        await engine.evaluate(execution.id, "zzz", "{{ 1 }}")


@pytest.mark.parametrize(
    ("expression", "message", "position"),
    [
        ("a {{ x.y }}", "Unable to find `x` used in the expression `a {{ x.y }}`", (1, 6)),
        ("{{ v | nosuch }}", "Invalid expression `...`: Unknown filter 'nosuch' (line 1)", (1, 8)),
        ("x\n\n{{ 1 + }}", "Invalid expression `...`: Unexpected end of expression (line 3)", (3, None)),
        ("{{ a }}", "The expression took longer than 10 s", (None, None)),
    ],
)
def test_the_position_of_an_error(
    expression: str, message: str, position: tuple[int | None, int | None]
) -> None:
    assert error_position(expression, message) == position
