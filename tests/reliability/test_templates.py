"""Expressions on a running engine: inputs stay text, sandbox escapes fail and run nothing, limits hold."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tiercel.engine.engine import Engine
from tiercel.engine.model import Execution, LogEntry, StateType
from tiercel.engine.store import Store

pytestmark = pytest.mark.reliability

NS = "rel.templates"

# Each payload, if it escaped the sandbox, would create the file MARKER (or reach what could).
ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ [].__class__.__base__.__subclasses__() }}",
    "{{ ''|attr('__class__') }}",
    "{{ (flow|attr('__class__')).__mro__ }}",
    "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ joiner.__init__.__globals__.os.system('touch MARKER') }}",
    "{{ lipsum.__globals__['os'].system('touch MARKER') }}",
    "{{ range.__self__.__import__('os').system('touch MARKER') }}",
    "{{ (range|attr('__self__')).eval('__import__(\"os\").system(\"touch MARKER\")') }}",
    "{{ execution['__class__'] }}",
    "{{ ''[('__cla' ~ 'ss__')].__mro__ }}",
    "{{ taskrun|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ '{0.__class__.__mro__}'.format('') }}",
    "{{ '{0.__init__.__globals__}'.format(flow) }}",
    "{{ '%s'.format_map(flow) }}{{ '{x.__class__}'.format_map({'x': 1}) }}",
    "{% set f = ''.__class__ %}{{ f.__subclasses__() }}",
    "{{ [].append('touch MARKER') }}",
    "{{ {}.update(a=1) }}",
    "{{ flow.__dict__ }}",
]

FLOODS = {
    "repeat": "{{ 'a' * 10**9 }}",
    "range": "{{ range(10**9) | list }}",
}


def returning(flow_id: str, expression: str) -> str:
    return (
        f"id: {flow_id}\nnamespace: {NS}\ntasks:\n"
        f"  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: {json.dumps(expression)}\n"
    )


ECHO = f"""\
id: echo
namespace: {NS}
inputs:
  - id: text
    type: STRING
tasks:
  - id: returned
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.text }}}}"
  - id: logged
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ inputs.text }}}}"
  - id: shell
    type: io.kestra.plugin.scripts.shell.Commands
    env:
      TEXT: "{{{{ inputs.text }}}}"
    commands:
      - printf '<%s>\\n' "$TEXT"
"""


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    flows = tmp_path / "flows"
    flows.mkdir()
    marker = tmp_path / "escaped"
    (flows / "echo.yml").write_text(ECHO)
    for index, payload in enumerate(ESCAPES):
        (flows / f"escape_{index:02d}.yml").write_text(
            returning(f"escape_{index:02d}", payload.replace("MARKER", str(marker)))
        )
    (flows / "escape_shell.yml").write_text(
        f"id: escape_shell\nnamespace: {NS}\ntasks:\n  - id: sh\n"
        "    type: io.kestra.plugin.scripts.shell.Commands\n    commands:\n"
        f"      - touch {marker}-shell {{{{ cycler.__init__.__globals__ }}}}\n"
    )
    for name, payload in FLOODS.items():
        (flows / f"flood_{name}.yml").write_text(returning(f"flood_{name}", payload))
    store = await Store.open(tmp_path / "db" / "tiercel.db")
    engine = Engine(store, flows_dir=flows)
    await engine.start(control=False, triggers=False)
    try:
        yield engine
    finally:
        await engine.stop()


async def run(engine: Engine, flow_id: str, inputs: dict[str, str] | None = None) -> Execution:
    execution_id = await engine.trigger(NS, flow_id, inputs or {})
    return await asyncio.wait_for(engine.wait(execution_id), 30)


async def logs(engine: Engine, execution_id: str) -> list[LogEntry]:
    return [entry for _, entry in await engine.logs(execution_id)]


async def test_an_input_holding_an_expression_reaches_the_task_byte_for_byte(engine: Engine) -> None:
    text = "{{ 7*7 }} {% if true %}yes{% endif %} {{ secret('X') }} $(echo no) é"
    execution = await run(engine, "echo", {"text": text})
    assert execution.state.current is StateType.SUCCESS
    returned = next(run for run in execution.task_runs if run.task_id == "returned")
    assert returned.outputs == {"value": text}
    lines = [entry.message for entry in await logs(engine, execution.id)]
    assert text in lines
    assert f"<{text}>" in lines
    assert not any("49" in line for line in lines)
    print(f"\ninput {text!r}: returned, logged and echoed by the shell unchanged")


async def test_sandbox_escapes_fail_with_a_security_error_and_run_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    started = time.perf_counter()
    ids = {index: await engine.trigger(NS, f"escape_{index:02d}") for index in range(len(ESCAPES))}
    ended = {
        index: await asyncio.wait_for(engine.wait(execution_id), 30) for index, execution_id in ids.items()
    }
    elapsed = time.perf_counter() - started
    refused, not_refused = [], []
    for index, execution in ended.items():
        errors = [entry.message for entry in await logs(engine, execution.id) if entry.level.value == "ERROR"]
        security = any("Forbidden in the expression" in message for message in errors)
        if execution.state.current is StateType.FAILED and security:
            refused.append(index)
        else:
            not_refused.append((ESCAPES[index], execution.state.current, errors))
    print(f"\n{len(refused)} sandbox escapes refused with a security error in {elapsed:.2f} s")
    assert not not_refused, not_refused
    assert len(refused) == len(ESCAPES) == 20
    assert not (tmp_path / "escaped").exists()


async def test_a_task_whose_command_holds_an_escape_never_starts(engine: Engine, tmp_path: Path) -> None:
    execution = await run(engine, "escape_shell")
    errors = [entry.message for entry in await logs(engine, execution.id) if entry.level.value == "ERROR"]
    print(f"\nshell command with an escape: {execution.state.current}, {errors[:1]}")
    assert execution.state.current is StateType.FAILED
    assert any("Forbidden in the expression" in message for message in errors), errors
    assert not (tmp_path / "escaped-shell").exists()


@pytest.mark.parametrize("name", sorted(FLOODS))
async def test_huge_results_fail_fast_with_a_clear_error(engine: Engine, name: str) -> None:
    started = time.perf_counter()
    execution = await run(engine, f"flood_{name}")
    elapsed = time.perf_counter() - started
    errors = [entry.message for entry in await logs(engine, execution.id) if entry.level.value == "ERROR"]
    print(f"\n{FLOODS[name]}: FAILED in {elapsed * 1000:.0f} ms: {errors[:1]}")
    assert execution.state.current is StateType.FAILED
    assert any("exceeds the limit" in message and FLOODS[name] in message for message in errors), errors
